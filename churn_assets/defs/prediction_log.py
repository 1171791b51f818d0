"""prediction_log: the scoring service's prediction stream drained into the warehouse
table ops.prediction_log, exactly once (see warehouse.prediction_log)."""

import dagster as dg

from churn_assets.defs.automation import ON_DRAIN_CRON
from churn_assets.defs.online import SERVING_GROUP
from churn_assets.resources import RedisResource, WarehouseResource
from warehouse.prediction_log import PREDICTION_LOG, drain


@dg.asset(
    key="prediction_log",
    group_name=SERVING_GROUP,
    owners=["team:ml-platform"],
    kinds={"redis", "sql"},
    automation_condition=ON_DRAIN_CRON,
    description=(
        f"Every prediction the scoring service made (request id, token subject, customer, "
        f"model version, variant, probability, features_as_of, latency, reasons), moved "
        f"from the Redis stream into {PREDICTION_LOG}; entries are acknowledged only after "
        "the warehouse commit, and re-delivered ones are not inserted twice."
    ),
)
def prediction_log(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, redis_store: RedisResource
) -> dg.MaterializeResult:
    def progress(entries: int) -> None:
        context.log.info(f"{entries:,} predictions moved to {PREDICTION_LOG}")

    report = drain(redis_store.client(), warehouse.warehouse(), progress=progress)
    rate = report.entries / report.seconds * 60 if report.seconds else 0.0
    return dg.MaterializeResult(
        metadata={
            "entries_drained": report.entries,
            "rows_inserted": report.inserted,
            "batches": report.batches,
            "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
            "entries_per_minute": dg.MetadataValue.float(float(round(rate))),
            "table": PREDICTION_LOG,
        }
    )
