"""Freshness failures raise an alert: every few minutes each asset with a freshness
policy is judged as `churn status` judges it, and an asset that turned warn or fail
since the last look is queued for the alert webhook, once per change of state. Every
tick also delivers the alerts still waiting in the outbox (see sensors.alerts)."""

import json
import time

import dagster as dg

from churn_assets.resources import WarehouseResource
from churn_assets.status import asset_freshness
from sensors.alerts import Alert, AlertDispatcher

LATE = ("warn", "fail")


def late_changes(
    states: dict[str, str], alerted: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(asset, state) pairs newly late or late in a new way, and the late states to
    remember; an asset that is fresh again is forgotten, so lateness later is new."""
    late = {key: state for key, state in states.items() if state in LATE}
    return [(k, s) for k, s in late.items() if alerted.get(k) != s], late


@dg.sensor(
    name="freshness_alerts",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert when an asset's freshness turns warn or fail.",
)
def freshness_alert_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    repository = context.repository_def
    if repository is None:  # only a bare test context lacks one
        return dg.SensorResult(skip_reason="no code location to judge")
    judged = asset_freshness(repository.asset_graph, context.instance, time.time())
    alerted: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changes, late = late_changes({k: str(v["state"]) for k, v in judged.items()}, alerted)
    cursor = json.dumps(late)
    alerts = [
        Alert(
            "ChurnAssetStale",
            "critical" if state == "fail" else "warning",
            summary=f"{key} freshness: {state}",
            description=f"last materialized {judged[key]['age_hours']} h ago; warns after "
            f"{judged[key]['warn_after_hours']} h, fails after {judged[key]['fail_after_hours']} h",
            labels={"asset": key},
        )
        for key, state in changes
    ]
    dispatcher = AlertDispatcher.from_env(warehouse.warehouse(), "freshness_alerts")
    report = dispatcher.raise_alerts(alerts, basis=context.cursor or "")
    if report.problem:
        context.log.warning(report.describe())
    if not changes:
        return dg.SensorResult(
            skip_reason=f"{len(late)} late asset(s), none newly; {report.describe()}",
            cursor=cursor,
        )
    reason = ", ".join(f"{k} {s}" for k, s in changes)
    return dg.SensorResult(skip_reason=f"alerted: {reason}; {report.describe()}", cursor=cursor)
