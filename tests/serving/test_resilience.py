"""The service under change and failure: a champion swapped during traffic, a champion
whose features are not online yet, and Redis dying and coming back."""

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
import redis
from litestar.testing import AsyncTestClient

from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.ml.registry import CHAMPION
from serving.app import create_app
from serving.errors import UNAVAILABLE_DETAIL
from serving.settings import load_serving_settings
from tests.serving.conftest import (
    TEST_REDIS_URL,
    bearer,
    free_port,
    live_server,
    redis_server,
    register_model,
    sync_online_features,
)
from tests.serving.service_log import service_log
from warehouse.connection import Warehouse
from warehouse.online_store import EVENTS_CHANNEL, info_key, pointer_key
from warehouse.settings import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _ids(home: Path, n: int) -> list[str]:
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(home)})))
    return sorted(frame["customer_id"].astype(str))[:n]


async def test_champion_swap_during_traffic_fails_no_request(
    serving_env, served_home, own_registry
) -> None:
    ids = _ids(served_home, 3)
    v2 = register_model(own_registry, Warehouse(load_settings()), seed=2, rounds=12)
    versions: list[str] = []
    failures: list[int] = []
    app = create_app(load_serving_settings())
    with live_server(app) as url:
        client = httpx.AsyncClient(base_url=url)
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                r = await client.post(
                    "/v1/predict", json={"customer_ids": ids}, headers=bearer("scorer")
                )
                if r.status_code != 200:
                    failures.append(r.status_code)
                    continue
                versions.extend(p["model_version"] for p in r.json()["predictions"])

        workers = [asyncio.create_task(traffic()) for _ in range(4)]
        await asyncio.sleep(0.3)
        own_registry.set_alias(CHAMPION, v2)
        redis.Redis.from_url(TEST_REDIS_URL).publish(EVENTS_CHANNEL, '{"event": "champion"}')
        for _ in range(200):
            if versions and versions[-1] == v2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)
        await client.aclose()
    assert failures == []
    assert versions[0] == "1" and versions[-1] == v2
    assert set(versions) == {"1", v2}


@pytest.fixture
def unsynced_version(served_home, own_registry, tmp_path) -> tuple[Path, str]:
    """A home whose model has a feature set of its own (no acquisition_channel
    attribute), registered but not synced online: (home, version)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "warehouse.duckdb", home / "warehouse.duckdb")
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    with wh.transaction() as s:
        s.execute(
            "DELETE FROM analytics.customer_attributes WHERE attribute_name = 'acquisition_channel'"
        )
    version = register_model(own_registry, wh, seed=3, rounds=10)
    fs_version = own_registry.load_bundle(version, tmp_path / "cache").spec.version
    # another test may have synced this feature set already (readiness reads the info)
    redis.Redis.from_url(TEST_REDIS_URL).delete(pointer_key(fs_version), info_key(fs_version))
    return home, version


async def test_a_champion_without_online_features_is_not_served(
    serving_env, served_home, own_registry, unsynced_version
) -> None:
    _, v3 = unsynced_version
    own_registry.set_alias(CHAMPION, v3)
    ids = _ids(served_home, 2)
    app = create_app(load_serving_settings())
    with service_log() as log:
        async with AsyncTestClient(app=app) as client:
            r = await client.post(
                "/v1/predict", json={"customer_ids": ids}, headers=bearer("scorer")
            )
            ready = await client.get("/health/ready")
    # the caller is told to retry; readiness says why
    assert r.status_code == 503 and r.json()["detail"] == UNAVAILABLE_DETAIL
    assert ready.status_code == 503 and ready.json()["checks"]["features"] == "not synced"
    assert "not in the online store yet" in log.mentioning(r.json()["request_id"])


async def test_a_missed_event_is_caught_by_the_registry_poll(
    serving_env, served_home, own_registry
) -> None:
    v2 = register_model(own_registry, Warehouse(load_settings()), seed=2, rounds=12)
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        holder = client.app.state.holder
        assert holder.current.version == "1"
        own_registry.set_alias(CHAMPION, v2)  # no event published: only the poll can see it
        for _ in range(100):
            if holder.current.version == v2:
                break
            await asyncio.sleep(0.05)
        own_registry.set_alias("challenger", v2)  # the poll refreshes aliases too
        for _ in range(100):
            if "challenger" in holder.current.aliases:
                break
            await asyncio.sleep(0.05)
        models = await client.get("/v1/models", headers=bearer("analyst"))
    (model,) = models.json()["models"]
    assert model["version"] == v2 and sorted(model["aliases"]) == ["challenger", "champion"]


async def test_a_champion_waits_for_its_features_to_be_online(
    serving_env, served_home, own_registry, unsynced_version
) -> None:
    home, v3 = unsynced_version
    ids = _ids(served_home, 2)
    events = redis.Redis.from_url(TEST_REDIS_URL)
    app = create_app(load_serving_settings())
    with live_server(app) as url:
        client = httpx.AsyncClient(base_url=url)
        holder = app.state.holder
        assert holder.current is not None and holder.current.version == "1", holder.last_error
        own_registry.set_alias(CHAMPION, v3)
        events.publish(EVENTS_CHANNEL, '{"event": "champion"}')
        for _ in range(400):
            if holder.last_error:
                break
            await asyncio.sleep(0.05)
        assert "waits for its features" in (holder.last_error or "")
        r = await client.post("/v1/predict", json={"customer_ids": ids}, headers=bearer("scorer"))
        assert [p["model_version"] for p in r.json()["predictions"]] == ["1", "1"]

        sync_online_features(home, own_registry.tracking_uri)  # publishes online_sync
        for _ in range(100):
            if holder.current.version == v3:
                break
            await asyncio.sleep(0.05)
        r = await client.post("/v1/predict", json={"customer_ids": ids}, headers=bearer("scorer"))
        assert [p["model_version"] for p in r.json()["predictions"]] == [v3, v3]
        await client.aclose()


async def test_redis_down_fails_fast_or_degrades_and_recovers(
    serving_env, served_home, tmp_path, monkeypatch
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    tracking_uri = serving_env["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("CHURN_BREAKER_FAILURES", "2")
    monkeypatch.setenv("CHURN_BREAKER_RESET_SECONDS", "0.5")
    ids = _ids(served_home, 2)
    body = {"customer_ids": ids}
    failing = create_app(load_serving_settings())
    monkeypatch.setenv("CHURN_REDIS_FAILURE_MODE", "degraded")
    degrading = create_app(load_serving_settings())

    with redis_server(port, tmp_path) as first:
        sync_online_features(served_home, tracking_uri, url)
        with live_server(failing) as fail_url, live_server(degrading) as degrade_url:
            fail = httpx.AsyncClient(base_url=fail_url, headers=bearer("scorer"))
            degrade = httpx.AsyncClient(base_url=degrade_url, headers=bearer("scorer"))
            healthy = (await fail.post("/v1/predict", json=body)).json()["predictions"]

            first.terminate()
            first.wait()
            codes = [(await fail.post("/v1/predict", json=body)).status_code for _ in range(2)]
            assert codes == [503, 503] and failing.state.breaker.state == "open"
            errors = failing.state.reader.errors
            fast = await fail.post("/v1/predict", json=body)
            assert fast.status_code == 503 and fast.json()["detail"] == UNAVAILABLE_DETAIL
            assert failing.state.reader.errors == errors  # answered without touching Redis
            ready = await fail.get("/health/ready")
            assert ready.status_code == 503 and "unreachable" in ready.json()["checks"]["redis"]
            metrics = (await fail.get("/metrics")).text
            assert "churn_redis_circuit_state 2.0" in metrics
            assert "churn_redis_errors_total 2.0" in metrics

            what_if = await fail.post("/v1/predict/features", json={"features": {}})
            assert what_if.status_code == 400  # validated, not refused for want of Redis

            degraded = (await degrade.post("/v1/predict", json=body)).json()["predictions"]
            assert all(p["degraded"] for p in degraded)
            assert [p["churn_probability"] for p in degraded] == [
                p["churn_probability"] for p in healthy
            ]

            with redis_server(port, tmp_path):
                sync_online_features(served_home, tracking_uri, url)
                await asyncio.sleep(0.6)  # the breaker lets one probe through
                back = await fail.post("/v1/predict", json=body)
                assert back.status_code == 200 and failing.state.breaker.state == "closed"
                assert (await fail.get("/health/ready")).status_code == 200
            await fail.aclose()
            await degrade.aclose()
