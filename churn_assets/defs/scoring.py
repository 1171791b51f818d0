"""batch_scores: every customer scored by the champion into a warehouse table."""

import datetime as dt
import time

import dagster as dg

from churn_assets.defs.online import SERVING_GROUP
from churn_assets.ml.batch_scoring import score_frame
from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.resources import MlflowResource, WarehouseResource

SCORES_SCHEMA = "scores"
BATCH_SCORES = f"{SCORES_SCHEMA}.batch_scores"
COLUMNS = [
    ("customer_id", "VARCHAR"),
    ("as_of_date", "DATE"),
    ("churn_probability", "DOUBLE PRECISION"),
    ("risk_band", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("reasons", "VARCHAR"),
    ("scored_at", "TIMESTAMP"),
]


@dg.asset(
    key="batch_scores",
    group_name=SERVING_GROUP,
    owners=["team:ml-platform"],
    kinds={"python", "sql"},
    deps=["scoring_features", "customer_attributes", "churn_model_promotion"],
    description=(
        f"Every customer's churn probability, risk band and top-3 reasons from the "
        f"champion, replaced as a whole in {BATCH_SCORES} (one transaction), for "
        "campaigns and reports that read the warehouse rather than the API. "
        "CHURN_BATCH_REASONS=at_risk explains only the medium and high bands."
    ),
)
def batch_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
) -> dg.MaterializeResult:
    champion, bundle = mlflow_registry.champion(before="batch scoring")
    settings = mlflow_registry.settings()
    wh = warehouse.warehouse()
    started = time.perf_counter()
    frame = load_scoring_frame(wh)
    scores = score_frame(bundle, frame, champion, reasons_for=settings.batch_reasons)
    scores["scored_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with wh.transaction() as s:
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {SCORES_SCHEMA}")
        s.execute(f"CREATE TABLE IF NOT EXISTS {BATCH_SCORES} "
                  f"({', '.join(f'{n} {t}' for n, t in COLUMNS)})")  # fmt: skip
        staged = s.stage(scores[[n for n, _ in COLUMNS]], BATCH_SCORES)
        s.execute(f"DELETE FROM {BATCH_SCORES}")
        s.execute(f"INSERT INTO {BATCH_SCORES} SELECT * FROM {staged}")
    seconds = time.perf_counter() - started
    context.log.info(f"scored {len(scores):,} customers with v{champion} in {seconds:.2f} s")
    bands = scores["risk_band"].value_counts()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "model_version": champion,
            "reasons_for": settings.batch_reasons,
            "explained": int(scores["reasons"].notna().sum()),
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
            "customers_per_second": dg.MetadataValue.float(float(round(len(scores) / seconds))),
            "mean_probability": dg.MetadataValue.float(float(scores["churn_probability"].mean())),
            "high_risk": int(bands.get("high", 0)),
            "medium_risk": int(bands.get("medium", 0)),
            "low_risk": int(bands.get("low", 0)),
            "table": BATCH_SCORES,
        }
    )
