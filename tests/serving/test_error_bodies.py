"""A 5xx body says only that something failed and under which request id; what failed
(Redis' reply, an exception's type or text, a host, a path) is in the log under that
id. A 4xx body keeps its message for the caller."""

import httpx
import pytest
import redis
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.errors import INTERNAL_DETAIL, UNAVAILABLE_DETAIL
from serving.settings import load_serving_settings
from tests.servers import own_redis
from tests.serving.conftest import TEST_REDIS_URL, bearer
from tests.serving.service_log import service_log
from warehouse.online_store import pointer_key, vector_key

pytestmark = pytest.mark.anyio
INTERNALS = ("Redis", "Error", "error:", "127.0.0.1", "refused", "WRONGTYPE", "bytes", "/")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def assert_generic(response: httpx.Response, status: int, *also_hidden: str) -> str:
    """The body is the generic one for `status`; returns its request id."""
    assert response.status_code == status, response.text
    body = response.json()
    generic = UNAVAILABLE_DETAIL if status == 503 else INTERNAL_DETAIL
    assert body["detail"] == generic and set(body) == {"status_code", "detail", "request_id"}
    for text in (*INTERNALS, *also_hidden):
        assert text not in response.text.replace(generic, ""), text
    return body["request_id"]


async def test_an_unreachable_redis_is_not_named_in_any_answer(
    serving_env, served_home, customers, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("CHURN_BREAKER_FAILURES", "2")
    with service_log() as log, own_redis(tmp_path) as server:
        url = server.url
        monkeypatch.setenv("REDIS_URL", url)
        port = url.rsplit(":", 1)[1].split("/")[0]
        hidden = (port, str(served_home), str(tmp_path))
        async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
            server.stop()
            ids = {"customer_ids": customers[:2]}
            answers = [
                await client.post("/v1/predict", json=ids, headers=bearer("scorer")),
                await client.post("/v1/predict/batch", json=ids, headers=bearer("analyst")),
                # the circuit is open by now: a different internal reason, the same body
                await client.post("/v1/explain", json=ids, headers=bearer("analyst")),
            ]
            rids = [assert_generic(r, 503, *hidden) for r in answers]
            assert client.app.state.breaker.state == "open"
            # 4xx answers keep their message
            bad = await client.post("/v1/predict", json={}, headers=bearer("scorer"))
            assert bad.status_code == 400 and "exactly one of" in bad.json()["detail"]
            assert len(bad.json()["request_id"]) == 32
    # the operator finds the reason under the request id the caller reports
    assert "online feature store unavailable: " in log.mentioning(rids[0])
    assert "circuit open" in log.mentioning(rids[2])


async def test_a_redis_error_reply_and_an_unexpected_failure_stay_in_the_log(
    serving_env, customers
) -> None:
    store = redis.Redis.from_url(TEST_REDIS_URL)
    store.rpush("churn:rate:broken", "x")  # the rate-limit counter holds the wrong type
    app = create_app(load_serving_settings())
    with service_log() as log:
        async with AsyncTestClient(app=app) as client:
            model = client.app.state.holder.current
            sync = store.get(pointer_key(model.fs_version)).decode()
            ghost = "ghost-customer"
            store.set(vector_key(sync, ghost), b"/var/lib/secret.bin")  # not a vector
            try:
                refused = await client.post(
                    "/v1/predict",
                    json={"customer_id": customers[0]},
                    headers=bearer("scorer", "broken"),
                )
                crashed = await client.post(
                    "/v1/predict", json={"customer_id": ghost}, headers=bearer("scorer")
                )
            finally:
                store.delete("churn:rate:broken", vector_key(sync, ghost))
    refused_id = assert_generic(refused, 503, "wrong kind of value", "script")
    crashed_id = assert_generic(crashed, 500, "secret", "online vector", "ValueError")
    assert "WRONGTYPE" in log.mentioning(refused_id)
    assert "online vector of 19 bytes" in log.mentioning(crashed_id)
