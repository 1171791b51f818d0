"""The code location: every asset, check, job and sensor of churn-lakehouse."""

import dagster as dg

from churn_assets.defs.dbt import dbt_feature_models, dbt_resource
from churn_assets.defs.evaluation import churn_model_evaluation
from churn_assets.defs.monitoring import feature_drift_report, live_drift_report
from churn_assets.defs.online import online_features
from churn_assets.defs.performance import model_performance
from churn_assets.defs.point_in_time import point_in_time_recomputation
from churn_assets.defs.prediction_log import prediction_log
from churn_assets.defs.raw import raw_assets, raw_contract_checks
from churn_assets.defs.registry import churn_model_promotion
from churn_assets.defs.scoring import batch_scores
from churn_assets.defs.training import MODEL_GROUP, churn_model_candidate
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from sensors.automation import automation_sensor, retraining_schedule
from sensors.freshness import freshness_alert_sensor
from sensors.landing import LANDING_TARGET, landing_zone_sensor
from sensors.retraining import RETRAINING_JOB, retraining_sensor

ASSETS = [
    *raw_assets,
    dbt_feature_models,
    churn_model_candidate,
    churn_model_evaluation,
    churn_model_promotion,
    online_features,
    prediction_log,
    batch_scores,
    feature_drift_report,
    live_drift_report,
    model_performance,
]
ASSET_CHECKS = [*raw_contract_checks, point_in_time_recomputation]

churn_pipeline = dg.define_asset_job(
    "churn_pipeline",
    selection=dg.AssetSelection.all(),
    description="Everything: ingestion, quality gates, feature tables, model training, "
    "evaluation, gates, promotion and the online feature sync.",
)
churn_model_training = dg.define_asset_job(
    "churn_model_training",
    selection=dg.AssetSelection.groups(MODEL_GROUP),
    description="Search, evaluate, gate and promote a model on the current feature tables.",
)

churn_retraining = dg.define_asset_job(
    RETRAINING_JOB,
    selection=(LANDING_TARGET - dg.AssetSelection.groups("raw"))
    | dg.AssetSelection.groups(MODEL_GROUP)
    | dg.AssetSelection.assets(online_features, feature_drift_report),
    description="What the retraining sensor launches: refresh the feature tables and the "
    "training set, search, evaluate, gate and promote, sync the new champion's features "
    "and measure drift against it.",
)


def default_resources() -> dict:
    return {
        "warehouse": WarehouseResource(),
        "dbt": dbt_resource(),
        "mlflow_registry": MlflowResource(),
        "redis_store": RedisResource(),
    }


# One process per run: DuckDB allows a single writing process per file, and on two
# cores parallel step processes cost more in start-up than they win.
defs = dg.Definitions(
    executor=dg.in_process_executor,
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[churn_pipeline, churn_model_training, churn_retraining],
    sensors=[landing_zone_sensor, retraining_sensor, automation_sensor, freshness_alert_sensor],
    schedules=[retraining_schedule()],
    resources=default_resources(),
)
