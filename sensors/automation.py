"""What keeps the graph moving without a person: automation conditions (evaluated by
one automation sensor) so feature tables follow new raw data and drift is measured on
every new feature build, and a cron schedule that retrains even when no sensor fires."""

import os

import dagster as dg

from sensors.retraining import RETRAINING_JOB

DEFAULT_RETRAIN_CRON = "0 3 * * 0"  # Sundays 03:00 UTC

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_conditions",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions: feature tables follow new "
    "raw data, the drift report follows every feature build or new champion.",
)


def retraining_schedule(cron: str | None = None) -> dg.ScheduleDefinition:
    """The fallback: retrain on a cron (CHURN_RETRAIN_CRON) whatever the sensors saw."""
    cron = cron or os.environ.get("CHURN_RETRAIN_CRON") or DEFAULT_RETRAIN_CRON
    try:
        return dg.ScheduleDefinition(
            name="retraining_fallback",
            job_name=RETRAINING_JOB,
            cron_schedule=cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            tags={"churn/trigger": "schedule"},
            description=f"Retrains on '{cron}' (UTC) even when no drift or staleness was seen.",
        )
    except dg.DagsterInvalidDefinitionError as exc:
        raise ValueError(f"CHURN_RETRAIN_CRON is not a valid cron expression: {cron!r}") from exc
