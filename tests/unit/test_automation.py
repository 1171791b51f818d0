"""Automation: new raw data makes the dbt feature chain due, nothing is due before
that, models are left to the sensor and schedule, and the fallback retraining schedule
reads its cron from the environment and refuses a bad one."""

import datetime

import dagster as dg
import pytest

from churn_assets.definitions import defs
from sensors.automation import DEFAULT_RETRAIN_CRON, retraining_schedule
from warehouse.contract import TABLES


def requested(instance: dg.DagsterInstance, cursor=None) -> tuple[set[str], object]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys() if result.get_num_requested(k)}
    return keys, result.cursor


def test_feature_tables_follow_new_raw_data() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        before, cursor = requested(instance)
        assert before == set()  # raw data missing: nothing to build
        for table in TABLES:
            instance.report_runless_asset_event(dg.AssetMaterialization(["raw", table]))
        after, _ = requested(instance, cursor)
    # the whole dbt chain is due in one evaluation (eager counts parents requested now)
    assert {"stg_events", "customer_features", "training_examples", "scoring_features"} <= after
    assert not any(k.startswith("raw/") for k in after)  # ingestion is the sensor's job
    assert "churn_model_candidate" not in after  # retraining is the sensor's or schedule's
    assert "feature_drift_report" not in after  # no champion yet: a dependency is missing


def test_the_fallback_schedule(monkeypatch) -> None:
    assert retraining_schedule().cron_schedule == DEFAULT_RETRAIN_CRON
    monkeypatch.setenv("CHURN_RETRAIN_CRON", "30 4 * * *")
    schedule = retraining_schedule()
    assert schedule.cron_schedule == "30 4 * * *" and schedule.job_name == "churn_retraining"
    with pytest.raises(ValueError, match="CHURN_RETRAIN_CRON"):
        retraining_schedule("every sunday")
    assert defs.resolve_schedule_def("retraining_fallback").tags["churn/trigger"] == "schedule"


def test_the_prediction_log_is_drained_on_its_cron() -> None:
    """Nothing upstream announces new predictions: after each tick of CHURN_DRAIN_CRON
    (every 15 minutes) the drain is requested once."""
    start = datetime.datetime(2026, 1, 1, 12, 1, tzinfo=datetime.UTC)
    with dg.DagsterInstance.ephemeral() as instance:

        def drains(at: datetime.datetime, cursor=None):
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, cursor=cursor, evaluation_time=at
            )
            return result.get_num_requested(dg.AssetKey("prediction_log")), result.cursor

        _, cursor = drains(start)  # the first evaluation only sets the baseline
        due, cursor = drains(start + datetime.timedelta(minutes=15), cursor)
        assert due == 1
        again, _ = drains(start + datetime.timedelta(minutes=16), cursor)
        assert again == 0  # requested for this tick already
