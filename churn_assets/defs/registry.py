"""churn_model_promotion: a version that passed every gate becomes challenger and, under
the default policy, champion; each alias change is appended to the promotion ledger."""

from typing import Any

import dagster as dg

from churn_assets.defs.freshness import CHAMPION_FRESHNESS
from churn_assets.defs.training import MODEL_GROUP, trigger_of
from churn_assets.ml.promotion import promote
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from warehouse.online_store import announce
from warehouse.promotion_ledger import PromotionLedger


@dg.asset(
    key="churn_model_promotion",
    group_name=MODEL_GROUP,
    freshness_policy=CHAMPION_FRESHNESS,
    owners=["team:ml-platform"],
    kinds={"mlflow"},
    description=(
        "Runs only when every blocking quality gate passed: sets the challenger alias and, "
        "with CHURN_PROMOTION_POLICY=champion (default), the champion alias; every change "
        "is appended to the ops.promotion_ledger table with its evidence, and running scoring "
        "services are told to reload."
    ),
)
def churn_model_promotion(
    context: dg.AssetExecutionContext,
    churn_model_evaluation: dict[str, Any],
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
    redis_store: RedisResource,
) -> dg.Output[dict[str, Any]]:
    model_settings = mlflow_registry.settings()
    registry = mlflow_registry.registry()
    version = churn_model_evaluation["version"]
    evidence = {
        "dagster_run_id": context.run_id,
        "gates": churn_model_evaluation["gates"],
        "metrics": {k: v["value"] for k, v in churn_model_evaluation["metrics"].items()},
        "champion_comparison": churn_model_evaluation.get("champion_comparison"),
        "run_tags": dict(context.run.tags),
    }
    aliases = promote(
        registry,
        PromotionLedger(warehouse.warehouse()),
        version,
        trigger_of(context),
        evidence,
        make_champion=model_settings.promotion_policy == "champion",
    )
    context.log.info(f"{registry.model_name} aliases now {aliases}")
    problem = announce(redis_store.client(), {"event": "champion", "version": aliases["champion"]})
    if problem:
        context.log.warning(f"scoring services will reload at their next poll: {problem}")
    return dg.Output(
        {"version": version, **aliases},
        metadata={
            "champion": aliases["champion"] or "none",
            "challenger": aliases["challenger"] or "none",
            "previous_champion": aliases["previous_champion"] or "none",
            "policy": model_settings.promotion_policy,
            "roc_auc": dg.MetadataValue.float(
                churn_model_evaluation["metrics"]["roc_auc"]["value"]
            ),
        },
    )
