"""The service's side of the exactly-once prediction log: entries carry the client's
Idempotency-Key (or the request id), a resend lands once in the warehouse, a bad key
is a 400 that logs nothing, the stream is capped, and /metrics reports its backlog."""

import anyio
import pytest
import redis
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer
from warehouse.connection import Warehouse
from warehouse.prediction_log import PREDICTION_LOG, STREAM, drain
from warehouse.settings import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _stream_holds(stream: redis.Redis, n: int) -> list[dict[str, str]]:
    for _ in range(500):  # the writer flushes every few ms in the background
        if stream.xlen(STREAM) >= n:
            break
        await anyio.sleep(0.01)
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in stream.xrange(STREAM)]


async def test_a_resend_with_the_same_idempotency_key_is_logged_once(
    serving_env, customers, tmp_path
) -> None:
    resend = {**bearer("analyst", "retrying-client"), "Idempotency-Key": "order-42"}
    stream = redis.Redis.from_url(TEST_REDIS_URL)
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        answers = [
            await client.post(
                "/v1/predict/batch", json={"customer_ids": customers[:3]}, headers=resend
            )
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [200, 200]
        plain = await client.post(
            "/v1/predict", json={"customer_id": customers[3]}, headers=bearer("scorer")
        )
        for bad in ("has space", "x" * 256, "é".encode()):  # bytes: httpx sends them as they are
            refused = await client.post(
                "/v1/predict",
                json={"customer_id": customers[4]},
                headers={**bearer("scorer"), "Idempotency-Key": bad},
            )
            assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["detail"]
        logged = await _stream_holds(stream, 7)
        metrics = (await client.get("/metrics")).text

    assert len(logged) == 7  # nothing from the refused requests
    assert [e["idempotency_key"] for e in logged] == ["order-42"] * 6 + [plain.json()["request_id"]]
    assert {e["request_id"] for e in logged[:6]} == {a.json()["request_id"] for a in answers}
    assert "churn_prediction_log_stream_backlog 7.0" in metrics
    assert "churn_prediction_log_stream_max_entries 5e+06" in metrics

    warehouse = Warehouse(load_settings({"CHURN_HOME": str(tmp_path)}))
    report = drain(redis.Redis.from_url(TEST_REDIS_URL), warehouse)
    assert (report.entries, report.inserted) == (7, 4)
    rows = warehouse.query_df(
        f"SELECT request_id, customer_id FROM {PREDICTION_LOG} WHERE subject = 'retrying-client'"
    )
    assert sorted(rows["customer_id"]) == customers[:3]
    assert set(rows["request_id"]) == {answers[0].json()["request_id"]}  # the first kept


async def test_the_stream_is_capped(serving_env, customers, monkeypatch) -> None:
    """XADD MAXLEN ~ trims whole stream nodes (100 entries each by default), so the
    length stays near the cap, not at it exactly."""
    monkeypatch.setenv("CHURN_PREDICTION_LOG_MAX_ENTRIES", "10")
    stream = redis.Redis.from_url(TEST_REDIS_URL)
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        for _ in range(100):
            answer = await client.post(
                "/v1/predict", json={"customer_ids": customers}, headers=bearer("scorer")
            )
            assert answer.status_code == 200
        metrics = (await client.get("/metrics")).text
    # the app has stopped: its writer flushed all 500 entries before it did
    assert 10 <= stream.xlen(STREAM) < 500
    assert "churn_prediction_log_stream_max_entries 10.0" in metrics
