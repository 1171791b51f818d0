"""Monitoring that acts, end to end on real Redis, DuckDB and MLflow, with the sensor
driven by Dagster's own testing API against a real instance, following the README's
drift scenario.

`churn generate --through` lands the first 240 days of a world (the same with or
without the drift that starts on day 240); they are materialized (train, gate, promote,
online sync) and served through the scoring API. Then the rest of the world lands:
1. with a 25 % price increase: the drift check fails, the retraining sensor launches
   exactly one retrain (the next tick launches nothing), the retrain trains a new
   version that is promoted or refused with its reasons, and the ledger and run tags
   tell the story from incident to version;
2. without it: nothing is launched.
(The third scenario, a worse model's outcomes failing the live-performance check and
launching a retrain, is tests/serving/test_model_performance.py.)"""

import asyncio
import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import redis
from litestar.testing import AsyncTestClient

from churn_assets.defs.monitoring import DRIFT_KEY, FEATURE_DRIFT_CHECK
from churn_assets.resources import MlflowResource, WarehouseResource
from churn_assets.runner import materialize
from sensors.retraining import RETRAINING_JOB, retraining_sensor
from serving.app import create_app
from tests.e2e.test_model_lifecycle import TINY_BUDGET
from tests.servers import redis_db_url
from tests.serving.conftest import SECRET, bearer
from warehouse.connection import Warehouse
from warehouse.generator import GeneratorConfig, generate
from warehouse.promotion_ledger import PromotionLedger
from warehouse.settings import load_settings

START = dt.date(2025, 1, 1)
CUT = START + dt.timedelta(days=240)  # the first day of the new data
WORLD = GeneratorConfig(customers=3000, days=300, seed=21, start=START)
DRIFTED = dataclasses.replace(WORLD, drift="price_increase", drift_start=CUT)
# its own database: other tests flush theirs
REDIS_URL = redis_db_url(7)
AFTER_LANDING = "not group:models"  # ingestion, features, online sync, monitoring


def land(cfg: GeneratorConfig, home: Path) -> None:
    """`churn generate` into home: its landing zone and ground truth."""
    generate(cfg, home / "landing", home / "ground_truth")


def environment(home: Path, registry_home: Path) -> dict[str, str]:
    return {
        "CHURN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "REDIS_URL": REDIS_URL,
        # one MLflow store for the trained world and every scenario after it
        "MLFLOW_TRACKING_URI": f"sqlite:///{registry_home / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACTS": str(registry_home / "mlartifacts"),
        "CHURN_JWT_SECRET": SECRET,
        "CHURN_FEATURE_MAX_AGE_SECONDS": str(10 * 365 * 86_400),
        # this business treats a 25 % price rise as an incident: by the common PSI
        # convention it is moderate (PSI about 0.11 on revenue and invoices)
        "CHURN_DRIFT_PSI_WARN": "0.05",
        "CHURN_DRIFT_PSI_ALERT": "0.1",
        **TINY_BUDGET,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """240 days landed and materialized: a champion, its features online, predictions
    served by the API and drained."""
    home = tmp_path_factory.mktemp("trained")
    land(dataclasses.replace(DRIFTED, through=CUT - dt.timedelta(days=1)), home)
    redis.Redis.from_url(REDIS_URL).flushdb()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CHURN_WAREHOUSE_URL", raising=False)
        for key, value in environment(home, home).items():
            patch.setenv(key, value)
        summary = materialize("not key:batch_scores")
        assert summary.ok, (summary.failed_steps, summary.checks)
        served = asyncio.run(serve_some(home))
        assert served > 100
        assert materialize("key:prediction_log").ok
    return home


async def serve_some(home: Path) -> int:
    """Score the first customers through the real API (its prediction log writer)."""
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    ids = wh.query_df("SELECT customer_id FROM analytics.scoring_features ORDER BY 1 LIMIT 300")
    async with AsyncTestClient(app=create_app()) as http:
        response = await http.post(
            "/v1/predict/batch",
            json={"customer_ids": ids["customer_id"].astype(str).tolist()},
            headers=bearer("analyst"),
        )
        assert response.status_code == 200, response.text
        return sum(p["status"] == "ok" for p in response.json()["predictions"])


def scenario_home(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained world's warehouse and landing zone (the MLflow store and
    the online store stay shared)."""
    home = tmp_path / "home"
    shutil.copytree(trained / "landing", home / "landing")
    shutil.copy(trained / "warehouse.duckdb", home / "warehouse.duckdb")
    return home


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        # the sensor queues its alerts in the warehouse's outbox
        resources={"mlflow_registry": MlflowResource(), "warehouse": WarehouseResource()},
    )
    return retraining_sensor(context)


def drift_result(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    record = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(DRIFT_KEY, FEATURE_DRIFT_CHECK)
    )
    assert record is not None and record.event is not None
    evaluation = record.event.asset_check_evaluation
    assert evaluation is not None
    return evaluation


@pytest.mark.e2e
def test_without_drift_nothing_is_launched(trained, tmp_path, monkeypatch) -> None:
    home = scenario_home(trained, tmp_path)
    for key, value in environment(home, trained).items():
        monkeypatch.setenv(key, value)
    land(WORLD, home)  # the rest of the world, as it was
    with dg.DagsterInstance.ephemeral() as instance:
        summary = materialize(AFTER_LANDING, instance)
        assert summary.ok, (summary.failed_steps, summary.checks)
        evaluation = drift_result(instance)
        assert evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN, (
            evaluation.description
        )
        result = tick(instance, None)
    assert not result.run_requests and "no new incident (none)" in str(result.skip_reason)


@pytest.mark.e2e
def test_drift_launches_one_retrain_that_the_ledger_links_to_it(
    trained, tmp_path, monkeypatch
) -> None:
    home = scenario_home(trained, tmp_path)
    for key, value in environment(home, trained).items():
        monkeypatch.setenv(key, value)
    land(DRIFTED, home)  # the rest of the world, prices up 25 % from day 240
    ledger = PromotionLedger(Warehouse(load_settings()))
    before = len(ledger.history("churn-model"))
    with dg.DagsterInstance.ephemeral() as instance:
        summary = materialize(AFTER_LANDING, instance)
        assert summary.ok, (summary.failed_steps, summary.checks)
        evaluation = drift_result(instance)
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert "monthly_revenue" in (evaluation.description or ""), evaluation.description

        first = tick(instance, None)
        (request,) = first.run_requests
        incident = request.tags["churn/incident"]
        assert incident.startswith(f"{FEATURE_DRIFT_CHECK}:") and "monthly_revenue" in incident
        again = tick(instance, first.cursor)  # the next tick, in the cooldown
        assert not again.run_requests

        from churn_assets.definitions import defs

        job = defs.resolve_job_def(RETRAINING_JOB)
        run = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
        tags = instance.get_run_by_id(run.run_id).tags
        # after the retrain, and with no cooldown left, the same finding launches
        # nothing more: one incident, one retrain
        monkeypatch.setenv("CHURN_RETRAIN_COOLDOWN_SECONDS", "0")
        after = tick(instance, again.cursor)
        assert not after.run_requests, after.skip_reason
    assert tags["churn/incident"] == incident and json.loads(tags["churn/evidence"])["check"]

    entries = ledger.history("churn-model").iloc[before:]
    assert len(entries), "the retrain left no ledger entry"
    story = entries.iloc[-1]
    assert incident in story["triggered_by"] and run.run_id[:8] in story["triggered_by"]
    evidence = json.loads(story["evidence"])
    assert evidence["run_tags"]["churn/incident"] == incident
    failed = {e.step_key for e in run.all_events if e.is_step_failure}
    if story["action"] == "refuse":
        # refused with its reasons: the blocking gates stop the run before promotion
        assert story["reasons"] and evidence["version"] != "1"
        assert failed == {"churn_model_evaluation"}, failed
    else:
        assert story["action"] in ("promote", "challenger") and story["version_after"] != "1"
        assert run.success, failed
