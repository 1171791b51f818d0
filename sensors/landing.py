"""Watches the landing zone and requests an ingestion run for every new batch."""

import hashlib
import json

import dagster as dg

from churn_assets.resources import WarehouseResource
from warehouse.contract import TABLES
from warehouse.ingestion import landing_files

# The run covers ingestion and the feature tables it feeds; checks gate each step.
LANDING_TARGET = dg.AssetSelection.groups("raw", "staging", "feature_engineering", "features")


def new_landing_files(landing_dir, cursor: dict[str, list[str]]) -> dict[str, list[str]]:
    """Files per table that the cursor has not seen (by name and size)."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        seen = set(cursor.get(table, []))
        fresh = [
            f"{p.name}:{p.stat().st_size}"
            for p in landing_files(landing_dir, table)
            if f"{p.name}:{p.stat().st_size}" not in seen
        ]
        if fresh:
            found[table] = fresh
    return found


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
    fresh = new_landing_files(warehouse.landing_dir, cursor)
    if not fresh:
        return dg.SkipReason("no new files in the landing zone")
    for table, files in fresh.items():
        cursor[table] = sorted(set(cursor.get(table, [])) | set(files))
    batch = json.dumps(fresh, sort_keys=True)
    run_key = hashlib.sha256(batch.encode()).hexdigest()[:16]
    summary = ", ".join(f"{len(files)} {table}" for table, files in fresh.items())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key, tags={"churn/trigger": "landing_zone", "churn/new_files": summary}
            )
        ],
        cursor=json.dumps(cursor),
    )
