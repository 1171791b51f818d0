"""Retraining by itself: the sensor reads the latest drift and live-performance check
results and the champion's age, turns what it finds into incidents, and launches the retraining job
(feature refresh, search, evaluation, gates, promotion, online sync, a new drift
report) under the policy in retrain_policy.py. Run tags carry the trigger, the
incident and its evidence; the promotion ledger records them with the new version."""

import json
import time
from collections.abc import Mapping

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from churn_assets.defs.monitoring import (
    DRIFT_KEY,
    FEATURE_DRIFT_CHECK,
    LIVE_DRIFT_KEY,
    PREDICTION_DRIFT_CHECK,
)
from churn_assets.defs.performance import LIVE_PERFORMANCE_CHECK, PERFORMANCE_KEY
from churn_assets.ml.registry import CHAMPION
from churn_assets.resources import MlflowResource, WarehouseResource
from sensors.alerts import Alert, AlertDispatcher
from sensors.retrain_policy import Incident, RetrainState

RETRAINING_JOB = "churn_retraining"
WATCHED_CHECKS = (
    dg.AssetCheckKey(DRIFT_KEY, FEATURE_DRIFT_CHECK),
    dg.AssetCheckKey(DRIFT_KEY, PREDICTION_DRIFT_CHECK),
    dg.AssetCheckKey(LIVE_DRIFT_KEY, FEATURE_DRIFT_CHECK),
    dg.AssetCheckKey(LIVE_DRIFT_KEY, PREDICTION_DRIFT_CHECK),
    dg.AssetCheckKey(PERFORMANCE_KEY, LIVE_PERFORMANCE_CHECK),
)


def check_incidents(instance: dg.DagsterInstance) -> list[Incident]:
    """An incident per watched check whose latest evaluation failed with ERROR severity
    (WARN is worth a look, not a retrain)."""
    incidents = []
    for key in WATCHED_CHECKS:
        name = key.name
        record = latest_evaluation(instance, key)
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        if evaluation is None or evaluation.passed:
            continue
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        if name == FEATURE_DRIFT_CHECK and not drifted_features(evaluation.metadata.get("drifted")):
            # a batch that cannot be judged (empty, a feature missing, a column all
            # null): the ERROR says so in the UI, but a retrain on it would not help
            continue
        incidents.append(
            Incident(
                id=incident_id(name, evaluation.metadata),
                source=name,
                evidence={
                    "check": f"{key.asset_key.to_user_string()}:{name}",
                    "run_id": record.run_id if record else None,
                    "description": (evaluation.description or "")[:500],
                },
            )
        )
    return incidents


def latest_evaluation(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey
) -> AssetCheckExecutionRecord | None:
    """The check's latest completed evaluation. A run that contains the check records
    it as planned when it starts; that row has no result and must not read as the
    incident having cleared (which would let it launch again)."""
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=done
    )
    return records[0] if records else None


def incident_id(check: str, metadata: Mapping[str, object]) -> str:
    """Stable while the cause lasts: the drifted features, or the failing version."""
    features = drifted_features(metadata.get("drifted"))
    if features:
        return f"{check}:{','.join(features)}"
    version = getattr(metadata.get("model_version"), "value", None)
    return f"{check}:v{version}" if version else check


def drifted_features(entry: object) -> list[str]:
    """Feature names from the check's `drifted` JSON metadata (sorted; [] when absent)."""
    value = getattr(entry, "value", None)
    if not isinstance(value, list):
        return []
    return sorted(str(d["feature"]) for d in value if isinstance(d, dict) and "feature" in d)


def stale_champion(mlflow_registry: MlflowResource, now: float) -> list[Incident]:
    settings = mlflow_registry.settings()
    registry = mlflow_registry.registry()
    version = registry.alias(CHAMPION)
    if version is None:
        return []
    age_days = (now - registry.version(version).creation_timestamp / 1000) / 86_400
    if age_days <= settings.champion_max_age_days:
        return []
    return [
        Incident(
            id=f"stale_champion:v{version}",
            source="stale_champion",
            evidence={
                "version": version,
                "age_days": round(age_days, 1),
                "limit_days": settings.champion_max_age_days,
            },
        )
    ]


ALERT_NAMES = {
    FEATURE_DRIFT_CHECK: ("ChurnFeatureDrift", "critical"),
    PREDICTION_DRIFT_CHECK: ("ChurnPredictionDrift", "critical"),
    LIVE_PERFORMANCE_CHECK: ("ChurnLivePerformance", "critical"),
    "stale_champion": ("ChurnChampionStale", "warning"),
}


def incident_alert(incident: Incident, decision: str) -> Alert:
    name, severity = ALERT_NAMES.get(incident.source, ("ChurnIncident", "warning"))
    detail = str(incident.evidence.get("description") or incident.evidence)
    return Alert(
        name,
        severity,
        summary=f"{incident.id}: {decision}",
        description=detail[:1000],
        labels={"incident": incident.id[:200], "source": incident.source},
    )


@dg.sensor(
    name="retraining_sensor",
    job_name=RETRAINING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches retraining on severe drift of features or scores, on a failed "
    "live-performance check, or on a champion older than CHURN_CHAMPION_MAX_AGE_DAYS; one "
    "retrain per incident, with a cooldown.",
)
def retraining_sensor(
    context: dg.SensorEvaluationContext,
    mlflow_registry: MlflowResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult:
    now = time.time()
    state = RetrainState.from_cursor(context.cursor)
    incidents = check_incidents(context.instance) + stale_champion(mlflow_registry, now)
    decision = state.decide(incidents, now, mlflow_registry.settings().retrain_cooldown_seconds)
    context.log.info(decision.reason)
    # queued in the warehouse outbox, delivered now or on a later tick; never blocks
    # the launch
    report = AlertDispatcher.from_env(warehouse.warehouse(), "retraining_sensor").raise_alerts(
        [incident_alert(i, decision.reason) for i in decision.attached],
        basis=context.cursor or "",
    )
    if report.problem:
        context.log.warning(report.describe())
    if decision.launch is None:
        return dg.SensorResult(skip_reason=decision.reason, cursor=state.to_cursor())
    trigger = decision.launch
    request = dg.RunRequest(
        run_key=f"retrain:{trigger.id}:{int(now)}",
        tags={
            "churn/trigger": "retraining_sensor",
            "churn/incident": trigger.id[:200],
            "churn/incidents": json.dumps([i.id for i in decision.attached])[:1000],
            "churn/evidence": json.dumps(trigger.evidence, default=str)[:2000],
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=state.to_cursor())
