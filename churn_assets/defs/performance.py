"""model_performance: how the served models do once outcomes are known. The prediction
log joined with prediction_outcomes gives realized AUC, Brier, calibration and
precision/recall per model version and day, and the business metrics per day; the
`live_performance` check fails when the champion falls below the floor or significantly
below its evaluation holdout. The latest figures go to Redis for the service's /metrics."""

import json
import time
from typing import Any

import dagster as dg
import pandas as pd
from mlflow.exceptions import MlflowException
from redis.exceptions import RedisError

from churn_assets.defs.automation import FOLLOW_UPSTREAM
from churn_assets.defs.monitoring import MONITORING_GROUP
from churn_assets.ml.feature_matrix import MARTS
from churn_assets.ml.performance import (
    COLUMNS,
    HoldoutReference,
    Verdict,
    daily_business,
    daily_performance,
    judge,
    live_snapshot,
)
from churn_assets.ml.registry import CHAMPION, Registry
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from warehouse.connection import Warehouse
from warehouse.online_store import LIVE_METRICS_KEY
from warehouse.prediction_log import PREDICTION_LOG

PERFORMANCE_KEY = dg.AssetKey("model_performance")
LIVE_PERFORMANCE_CHECK = "live_performance"
OUTCOMES = f"{MARTS}.prediction_outcomes"
log = dg.get_dagster_logger()

# One row per served (version, customer, snapshot): a customer scored many times on
# the same features by the same version is one prediction with one outcome.
SERVED_WITH_OUTCOMES = f"""
SELECT p.model_version, p.customer_id, o.as_of_date AS day, avg(p.probability) AS probability,
       max(o.churned) AS churned, max(o.monthly_revenue) AS monthly_revenue
FROM {PREDICTION_LOG} p
JOIN {OUTCOMES} o
  ON o.customer_id = p.customer_id AND o.as_of_date = cast(p.features_as_of AS date)
WHERE p.probability IS NOT NULL AND p.model_version <> ''
GROUP BY p.model_version, p.customer_id, o.as_of_date
"""


def served_with_outcomes(warehouse: Warehouse) -> pd.DataFrame:
    """The served predictions with their outcomes (churned NaN while unknown); empty
    before anything was served and drained."""
    if not (warehouse.table_exists(PREDICTION_LOG) and warehouse.table_exists(OUTCOMES)):
        return pd.DataFrame(columns=list(COLUMNS))
    frame = warehouse.query_df(SERVED_WITH_OUTCOMES)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    for name in ("probability", "churned", "monthly_revenue"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


@dg.asset(
    key=PERFORMANCE_KEY,
    group_name=MONITORING_GROUP,
    owners=["team:ml-platform"],
    kinds={"python", "redis"},
    deps=["prediction_outcomes", "prediction_log"],
    automation_condition=FOLLOW_UPSTREAM,
    check_specs=[
        dg.AssetCheckSpec(
            LIVE_PERFORMANCE_CHECK,
            asset=PERFORMANCE_KEY,
            description="ERROR when the champion's realized AUC is below "
            "CHURN_PERFORMANCE_AUC_FLOOR, or its AUC significantly lower or Brier "
            "significantly higher than on the evaluation holdout (one-sided tests at "
            "CHURN_PERFORMANCE_ALPHA, with a minimum effect); WARN while too few outcomes "
            "are known to judge.",
        )
    ],
    description=(
        "Realized performance of every served model version per day (AUC, Brier, "
        "calibration, precision/recall at its operating threshold) and business metrics "
        "per day (predicted and realized churn rate, revenue at risk, campaign cost and "
        "revenue saved), from the prediction log and the outcomes whose label window "
        "has closed. Published to Redis for the service's /metrics gauges."
    ),
)
def model_performance(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
    redis_store: RedisResource,
):
    settings = mlflow_registry.settings()
    registry = mlflow_registry.registry()
    frame = served_with_outcomes(warehouse.warehouse())
    versions = sorted(frame["model_version"].astype(str).unique(), key=_version_order)
    thresholds = {v: _threshold(registry, v, settings.model_cache) for v in versions}
    verdicts = {
        v: judge(frame, v, _holdout(registry, v), thresholds[v], settings.performance)
        for v in versions
    }
    series = daily_performance(frame, thresholds)
    business = daily_business(frame, thresholds, settings.economics)
    champion = registry.alias(CHAMPION)
    context.log.info(
        f"{len(frame):,} served predictions, {int(frame['churned'].notna().sum()):,} with "
        f"outcomes, over {len(business)} day(s) and {len(versions)} version(s)"
    )
    published = _publish(redis_store, business, verdicts)
    yield dg.Output(
        None,
        metadata={
            "predictions": len(frame),
            "labelled": int(frame["churned"].notna().sum()),
            "champion": champion or "none",
            "verdicts": dg.MetadataValue.json([v.as_dict() for v in verdicts.values()]),
            "performance_by_day": dg.MetadataValue.json(series),
            "business_by_day": dg.MetadataValue.json(business),
            "report": dg.MetadataValue.md(_markdown(series, business)),
            "published_to_redis": published,
        },
    )
    yield live_check(verdicts.get(champion) if champion else None, champion)


def live_check(verdict: Verdict | None, champion: str | None) -> dg.AssetCheckResult:
    if verdict is None:
        why = "no champion" if champion is None else f"v{champion} served no prediction yet"
        return dg.AssetCheckResult(check_name=LIVE_PERFORMANCE_CHECK, passed=True,
                                   description=f"nothing to judge: {why}")  # fmt: skip
    metadata: dict[str, Any] = {
        "model_version": verdict.version,
        "status": verdict.status,
        "labelled": verdict.labelled,
        "metrics": dg.MetadataValue.json(verdict.metrics),
        "tests": dg.MetadataValue.json(verdict.tests),
    }
    description = "; ".join(verdict.reasons) or (
        f"v{verdict.version} performs as on its holdout: realized AUC "
        f"{verdict.metrics['roc_auc']} on {verdict.labelled:,} outcomes"
    )
    if verdict.status in ("ok", "waiting"):
        return dg.AssetCheckResult(check_name=LIVE_PERFORMANCE_CHECK, passed=True,
                                   description=description, metadata=metadata)  # fmt: skip
    return dg.AssetCheckResult(
        check_name=LIVE_PERFORMANCE_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if verdict.failed else dg.AssetCheckSeverity.WARN,
        description=f"v{verdict.version}: {description}"[:2000],
        metadata=metadata,
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (10**9, version)


def _threshold(registry: Registry, version: str, cache: Any) -> float:
    """The version's operating threshold from its bundle (0.5 for a version the
    registry no longer has)."""
    try:
        threshold = registry.load_bundle(version, cache).metadata.get("threshold", 0.5)
    except (MlflowException, OSError) as exc:  # a deleted version must not stop the report
        log.warning(f"v{version}: no bundle ({exc}); threshold 0.5")
        return 0.5
    return float(threshold)  # type: ignore[arg-type]


def _holdout(registry: Registry, version: str) -> HoldoutReference | None:
    try:
        return HoldoutReference.from_metrics(registry.summary(version)["metrics"])
    except MlflowException:  # same: then it is judged against the floor only
        return None


def _publish(
    redis_store: RedisResource, business: list[dict[str, Any]], verdicts: dict[str, Verdict]
) -> bool:
    """The latest day's business figures and each version's realized metrics, for the
    service's gauges. Monitoring must not fail over Redis, so a failure is reported."""
    snapshot = live_snapshot(business, verdicts, time.time())
    try:
        redis_store.client().set(LIVE_METRICS_KEY, json.dumps(snapshot))
    except (RedisError, OSError):
        return False
    return True


def _markdown(series: list[dict[str, Any]], business: list[dict[str, Any]]) -> str:
    def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows[-30:]:
            lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
        return lines

    return "\n".join(
        ["### Business metrics per day (latest 30)",
         *table(business, ["day", "predictions", "predicted_churn_rate", "realized_churn_rate",
                           "revenue_at_risk", "campaign_cost", "expected_revenue_saved",
                           "realized_revenue_saved"]),
         "", "### Realized performance per version and day (latest 30)",
         *table(series, ["model_version", "day", "predictions", "labelled", "roc_auc", "brier",
                         "ece", "precision", "recall"])]
    )  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)
