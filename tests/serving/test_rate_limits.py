"""The rate limit counts customers, not calls, and does not switch off with Redis: a
batch costs its number of ids, and while Redis is down each worker counts the same
limit itself."""

import httpx
import pytest
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.settings import load_serving_settings
from tests.servers import own_redis
from tests.serving.conftest import bearer, live_server, sync_online_features

pytestmark = pytest.mark.anyio
LIMIT = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_batch_counts_its_ids_against_the_rate_limit(
    serving_env, customers, monkeypatch
) -> None:
    monkeypatch.setenv("CHURN_RATE_LIMIT", str(LIMIT))
    four = {"customer_ids": customers[:4]}
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:

        async def batch(body: dict, subject: str = "dora") -> httpx.Response:
            return await client.post(
                "/v1/predict/batch", json=body, headers=bearer("analyst", subject)
            )

        too_big = await batch({"customer_ids": [f"C{i}" for i in range(LIMIT + 1)]})
        first, second = await batch(four), await batch(four)
        third = await batch(four)  # 12 > 10
        last_two = await batch({"customer_ids": customers[:2]})  # exactly 10
        single = await client.post(
            "/v1/predict", json={"customer_id": customers[0]}, headers=bearer("scorer", "dora")
        )
        other = await batch(four, subject="erin")
    # a request no window could hold is a 400 to fix, not a 429 to retry forever
    assert too_big.status_code == 400 and "rate limit of 10 customers" in too_big.json()["detail"]
    assert [first.status_code, second.status_code] == [200, 200]
    assert third.status_code == 429 and 1 <= int(third.headers["retry-after"]) <= 60
    assert last_two.status_code == 200  # the refused batch cost nothing
    assert single.status_code == 429
    assert other.status_code == 200
    scored = [first, second, last_two]
    assert sum(len(r.json()["predictions"]) for r in scored) == LIMIT


async def test_with_redis_down_each_worker_keeps_counting_the_limit(
    serving_env, served_home, customers, monkeypatch, tmp_path
) -> None:
    tracking_uri = serving_env["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv("CHURN_RATE_LIMIT", str(LIMIT))
    monkeypatch.setenv("CHURN_BREAKER_FAILURES", "2")
    with own_redis(tmp_path) as server:
        url = server.url
        monkeypatch.setenv("REDIS_URL", url)
        sync_online_features(served_home, tracking_uri, url)
        failing = create_app(load_serving_settings())
        monkeypatch.setenv("CHURN_REDIS_FAILURE_MODE", "degraded")
        degrading = create_app(load_serving_settings())
        with live_server(failing) as fail_url, live_server(degrading) as degrade_url:
            fail = httpx.AsyncClient(base_url=fail_url, headers=bearer("analyst", "fred"))
            degrade = httpx.AsyncClient(base_url=degrade_url, headers=bearer("analyst", "gina"))
            three = {"customer_ids": customers[:3]}
            counted_in_redis = await degrade.post("/v1/predict/batch", json=three)
            assert counted_in_redis.status_code == 200
            assert not counted_in_redis.json()["predictions"][0].get("degraded")

            server.stop()
            # degraded mode keeps serving from the warehouse, up to the limit
            served = [await degrade.post("/v1/predict/batch", json=three) for _ in range(3)]
            over = await degrade.post("/v1/predict/batch", json=three)
            models = await degrade.get("/v1/models")  # reads no features: costs one
            assert [r.status_code for r in served] == [200] * 3
            assert all(p["degraded"] for r in served for p in r.json()["predictions"])
            assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
            assert models.status_code == 200  # 9 + 1 = 10

            # fail mode: 503 while under the limit, 429 once over it
            codes = [
                (await fail.post("/v1/predict/batch", json=three)).status_code for _ in range(4)
            ]
            assert codes == [503, 503, 503, 429]
            other = await fail.post(
                "/v1/predict/batch", json=three, headers=bearer("analyst", "hank")
            )
            assert other.status_code == 503  # another subject has a window of its own
            await fail.aclose()
            await degrade.aclose()
