"""Admin actions over the API: promotion and one-step rollback change the MLflow aliases,
land in the promotion ledger under the token's subject, tell other services on the
events channel, and switch what this worker serves before the response."""

import json
import shutil
import time

import pytest
import redis
from litestar.testing import AsyncTestClient

from churn_assets.ml.promotion import GATE_STATUS_TAG, REFUSAL_TAG
from churn_assets.ml.registry import CHAMPION
from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer, register_model
from warehouse.connection import Warehouse
from warehouse.online_store import EVENTS_CHANNEL
from warehouse.promotion_ledger import PromotionLedger
from warehouse.settings import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def own_home(served_home, tmp_path, monkeypatch):
    """A warehouse of the test's own, so its ledger entries stay here."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "warehouse.duckdb", home / "warehouse.duckdb")
    monkeypatch.setenv("CHURN_HOME", str(home))
    return home


async def test_promote_and_rollback_through_the_api(
    serving_env, own_home, own_registry, customers
) -> None:
    v2 = register_model(own_registry, Warehouse(load_settings()), seed=2, rounds=12)
    v3 = register_model(own_registry, Warehouse(load_settings()), seed=3, rounds=8)
    own_registry.tag(v3, {GATE_STATUS_TAG: "refused", REFUSAL_TAG: "AUC below the floor"})
    for version in ("1", v2):  # as churn_model_evaluation tags a version that passed
        own_registry.tag(version, {GATE_STATUS_TAG: "passed"})
    events = redis.Redis.from_url(TEST_REDIS_URL).pubsub(ignore_subscribe_messages=True)
    events.subscribe(EVENTS_CHANNEL)
    admin = bearer("admin", subject="ops-lead")
    body = {"customer_ids": customers[:2]}

    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:

        async def serving_versions() -> list[str]:
            r = await client.post("/v1/predict", json=body, headers=bearer("scorer"))
            return [p["model_version"] for p in r.json()["predictions"]]

        for role in ("scorer", "analyst"):
            denied = await client.post("/v1/admin/rollback", json={}, headers=bearer(role))
            assert denied.status_code == 403 and "admin" in denied.json()["detail"]
        unknown = await client.post("/v1/admin/promote", json={"version": "99"}, headers=admin)
        assert unknown.status_code == 404 and "no version 99" in unknown.json()["detail"]
        refused = await client.post("/v1/admin/promote", json={"version": v3}, headers=admin)
        assert refused.status_code == 409 and "AUC below the floor" in refused.json()["detail"]
        bad = await client.post("/v1/admin/promote", json={"version": ""}, headers=admin)
        assert bad.status_code == 400

        first = await client.post(
            "/v1/admin/promote", json={"version": "1", "reason": "baseline"}, headers=admin
        )
        assert first.status_code == 200, first.text
        second = await client.post("/v1/admin/promote", json={"version": v2}, headers=admin)
        assert second.json() == {
            "action": "promote",
            "champion": v2,
            "previous_champion": "1",
            "challenger": v2,
            "serving": v2,
        }
        assert own_registry.alias(CHAMPION) == v2
        assert await serving_versions() == [v2, v2]

        back = await client.post("/v1/admin/rollback", json={"reason": "complaints"}, headers=admin)
        assert back.json() == {
            "action": "rollback",
            "champion": "1",
            "previous_champion": v2,
            "serving": "1",
        }
        assert own_registry.alias(CHAMPION) == "1"
        assert await serving_versions() == ["1", "1"]
        nothing = await client.post("/v1/admin/rollback", json={}, headers=admin)
        assert nothing.status_code == 409 and "first champion" in nothing.json()["detail"]

    history = PromotionLedger(Warehouse(load_settings())).history("churn-model")
    assert list(history["action"]) == ["challenger", "promote", "challenger", "promote", "rollback"]
    assert set(history["triggered_by"]) == {"api:ops-lead"}
    assert "complaints" in history["reasons"].iloc[-1]
    assert json.loads(history["evidence"].iloc[1])["reason"] == "baseline"
    announced = []
    deadline = time.monotonic() + 5
    while len(announced) < 3 and time.monotonic() < deadline:
        # the subscribe confirmation is read (and skipped) as a None too
        if (message := events.get_message(timeout=0.2)) is not None:
            announced.append(json.loads(message["data"])["version"])
    assert announced == ["1", v2, "1"]
