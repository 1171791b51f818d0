"""Watches the landing zone and requests an ingestion run for every new batch."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from churn_assets.resources import WarehouseResource
from warehouse.connection import LEDGER_TABLE, Warehouse
from warehouse.contract import TABLES
from warehouse.landing import landing_files

# The run covers ingestion and the feature tables it feeds; checks gate each step.
LANDING_TARGET = dg.AssetSelection.groups("raw", "staging", "feature_engineering", "features")


def unseen_landing_files(landing_dir: Path, cursor: dict[str, list[str]]) -> dict[str, list[str]]:
    """Files per table, as "name:size", that the cursor has not seen."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        seen = set(cursor.get(table, []))
        names = [f"{p.name}:{p.stat().st_size}" for p in landing_files(landing_dir, table)]
        fresh = [n for n in names if n not in seen]
        if fresh:
            found[table] = fresh
    return found


def ingested_file_names(warehouse: Warehouse) -> set[tuple[str, str]]:
    """(table, file name) pairs the ingestion ledger already holds, for example after
    `churn demo` ingested them in-process: no run is needed for those."""
    if not warehouse.table_exists(LEDGER_TABLE):
        return set()
    ledger = warehouse.query_df(f"SELECT table_name, file_name FROM {LEDGER_TABLE}")
    return set(zip(ledger["table_name"], ledger["file_name"], strict=True))


@dg.sensor(
    name="landing_zone_sensor",
    target=LANDING_TARGET,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests ingestion (and the feature build downstream) when files land.",
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    cursor: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
    unseen = unseen_landing_files(warehouse.landing_dir, cursor)
    if not unseen:
        return dg.SkipReason("no new files in the landing zone")
    try:
        ingested = ingested_file_names(warehouse.warehouse())
    except Exception as exc:  # a running pipeline holds the DuckDB file: try next tick
        return dg.SkipReason(f"warehouse busy ({type(exc).__name__}); will look again")
    fresh: dict[str, list[str]] = {}
    for table, files in unseen.items():
        cursor[table] = sorted(set(cursor.get(table, [])) | set(files))
        new = [f for f in files if (table, f.rsplit(":", 1)[0]) not in ingested]
        if new:
            fresh[table] = new
    if not fresh:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("new files were already ingested"), cursor=json.dumps(cursor)
        )
    batch = json.dumps(fresh, sort_keys=True)
    run_key = hashlib.sha256(batch.encode()).hexdigest()[:16]
    summary = ", ".join(f"{len(files)} {table}" for table, files in fresh.items())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                tags={"churn/trigger": "landing_zone", "churn/new_files": summary},
            )
        ],
        cursor=json.dumps(cursor),
    )
