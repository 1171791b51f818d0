"""The retraining sensor against a real Dagster instance and real check results: quiet
while the features look like the reference, one run request when a region nobody saw
appears (with the incident and its evidence in the tags), nothing on the next ticks
or on a repeat of the same finding, and a stale champion as an incident of its own."""

import json

import dagster as dg

from churn_assets.defs.monitoring import FEATURE_DRIFT_CHECK
from churn_assets.resources import MlflowResource, WarehouseResource
from sensors.retraining import RETRAINING_JOB, retraining_sensor
from tests.serving.conftest import free_port, run_drift_report
from tests.serving.test_drift_report import regions_nobody_saw


def tick(instance: dg.DagsterInstance, home, registry, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "mlflow_registry": MlflowResource(home=str(home), tracking_uri=registry.tracking_uri),
            "warehouse": WarehouseResource(home=str(home)),
        },
    )
    return retraining_sensor(context)


def test_severe_drift_launches_one_retrain_per_incident(drift_world, monkeypatch) -> None:
    home, registry, _ = drift_world
    # a webhook that is down costs a logged warning, never the launch
    monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/alerts")
    with dg.DagsterInstance.ephemeral() as instance:
        assert not tick(instance, home, registry, None).run_requests  # no report yet
        # the small test world's latest snapshot already differs from its validation
        # fold (short history): a first incident
        run_drift_report(home, registry, instance)
        first = tick(instance, home, registry, None)
        (request,) = first.run_requests
        assert request.tags["churn/trigger"] == "retraining_sensor"
        incident = request.tags["churn/incident"]
        assert incident.startswith(f"{FEATURE_DRIFT_CHECK}:") and "attr_region" not in incident
        evidence = json.loads(request.tags["churn/evidence"])
        assert " alert (PSI " in evidence["description"] and evidence["run_id"]
        assert retraining_sensor.job_name == RETRAINING_JOB

        # the next tick, and a new report with the same finding, launch nothing
        assert not tick(instance, home, registry, first.cursor).run_requests
        run_drift_report(home, registry, instance)
        repeat = tick(instance, home, registry, first.cursor)
        assert not repeat.run_requests and "all handled" in repeat.skip_reason.skip_message

        # a new finding inside the cooldown is absorbed by the retrain just launched...
        regions_nobody_saw(home)
        run_drift_report(home, registry, instance)
        absorbed = tick(instance, home, registry, repeat.cursor)
        assert not absorbed.run_requests and "absorbed" in absorbed.skip_reason.skip_message
        # ...and without a cooldown it launches a retrain of its own
        monkeypatch.setenv("CHURN_RETRAIN_COOLDOWN_SECONDS", "0")
        regions_nobody_saw(home)
        run_drift_report(home, registry, instance)
        (second,) = tick(instance, home, registry, repeat.cursor).run_requests
        assert "attr_region" in second.tags["churn/incident"]


def test_a_stale_champion_is_an_incident(drift_world, monkeypatch) -> None:
    home, registry, version = drift_world
    monkeypatch.setenv("CHURN_CHAMPION_MAX_AGE_DAYS", "0")
    with dg.DagsterInstance.ephemeral() as instance:
        (request,) = tick(instance, home, registry, None).run_requests
    assert request.tags["churn/incident"] == f"stale_champion:v{version}"
    assert json.loads(request.tags["churn/evidence"])["limit_days"] == 0
