"""Overload is shed, not queued: a real server with a small CHURN_MAX_IN_FLIGHT under a
burst of concurrent requests answers the excess 503 with Retry-After at once, never
times out or fails, keeps its probes answering, and serves normally after the burst."""

import asyncio

import httpx
import pytest

from serving.app import create_app
from serving.errors import UNAVAILABLE_DETAIL
from serving.settings import load_serving_settings
from tests.serving.conftest import bearer, live_server

pytestmark = pytest.mark.anyio
CONCURRENT = 64
MAX_BURSTS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_burst_beyond_the_in_flight_limit_is_shed_and_the_service_recovers(
    serving_env, customers, monkeypatch
) -> None:
    monkeypatch.setenv("CHURN_MAX_IN_FLIGHT", "2")
    monkeypatch.setenv("CHURN_RATE_LIMIT", "100000000")
    app = create_app(load_serving_settings())
    body = {"customer_ids": customers * 20}  # 100 ids: a Redis round trip and some numpy
    with live_server(app) as url:
        limits = httpx.Limits(max_connections=2 * CONCURRENT)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            headers = bearer("analyst")

            async def predict() -> httpx.Response:
                return await client.post("/v1/predict/batch", json=body, headers=headers)

            answers: list[httpx.Response] = []
            probes: list[httpx.Response] = []
            for _ in range(MAX_BURSTS):  # concurrency is the client's to create, so retry
                burst = [predict() for _ in range(CONCURRENT)]
                probe = [client.get("/health/live") for _ in range(4)]
                done = await asyncio.gather(*burst, *probe)
                answers += done[:CONCURRENT]
                probes += done[CONCURRENT:]
                if any(r.status_code == 503 for r in answers):
                    break

            shed = [r for r in answers if r.status_code == 503]
            assert shed, "no request was ever shed"
            assert {r.status_code for r in answers} == {200, 503}
            for r in shed:
                assert r.headers["retry-after"] == "1"
                assert r.json()["detail"] == UNAVAILABLE_DETAIL
                assert len(r.json()["request_id"]) == 32
            assert all(r.status_code == 200 for r in probes)  # probes are never shed

            after = [await predict() for _ in range(5)]
            assert [r.status_code for r in after] == [200] * 5
            metrics = (await client.get("/metrics")).text
    assert f"churn_http_requests_shed_total {float(len(shed))}" in metrics
    # every request that was let in has left: only this scrape is in flight
    assert "churn_http_requests_in_flight 1.0" in metrics
    # shed requests are counted with the route's other answers
    assert 'route="/v1/predict/batch",status="503"' in metrics
