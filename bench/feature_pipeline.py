"""Feature pipeline throughput on DuckDB: events per second through the dbt models that
turn raw events into customer_features, against a same-run baseline (one grouped scan
of the same events, the floor any feature build pays).

    uv run python bench/feature_pipeline.py --customers 20000 --days 365

Prints one JSON object. Uses its own CHURN_HOME under var/bench/ (or --home)."""

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import duckdb
from worlds import run_dbt

from warehouse.connection import Warehouse
from warehouse.generator import GeneratorConfig, generate
from warehouse.ingestion import Ingestor
from warehouse.settings import load_settings

FEATURE_MODELS = "+customer_features"


def _prepare(home: Path, customers: int, days: int) -> None:
    settings = load_settings({"CHURN_HOME": str(home)})
    if settings.duckdb_path.exists():
        return
    cfg = GeneratorConfig(customers=customers, days=days, seed=7, start=dt.date(2025, 1, 1))
    generate(cfg, settings.landing_dir, settings.ground_truth_dir)
    ingestor = Ingestor(Warehouse(settings), settings.landing_dir)
    for table in ("customers", "subscriptions", "events", "labels"):
        ingestor.ingest(table)


def _dbt_build_seconds(home: Path) -> float:
    started = time.perf_counter()
    run_dbt(home, [FEATURE_MODELS])
    return time.perf_counter() - started


def _baseline_seconds(path: Path) -> float:
    with duckdb.connect(str(path)) as con:
        started = time.perf_counter()
        con.execute(
            "CREATE OR REPLACE TEMP TABLE temp.main.scan AS SELECT customer_id, event_type, "
            "count(*) AS n, sum(value) AS v FROM raw.events GROUP BY 1, 2"
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--home", type=Path, default=Path("var/bench/feature_pipeline"))
    args = parser.parse_args()
    home = args.home.resolve()
    _prepare(home, args.customers, args.days)
    db = home / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        events = con.execute("SELECT count(*) FROM raw.events").fetchone()[0]
    baseline = _baseline_seconds(db)
    build = _dbt_build_seconds(home)
    print(
        json.dumps(
            {
                "benchmark": "feature_pipeline",
                "events": events,
                "dbt_feature_models_seconds": round(build, 2),
                "events_per_second": round(events / build),
                "baseline_grouped_scan_seconds": round(baseline, 3),
                "baseline_events_per_second": round(events / baseline),
                "ratio_to_baseline": round(build / baseline, 1),
                "target_events_per_second": 2_000_000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
