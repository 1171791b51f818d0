"""Generator worlds for the benchmarks: generate, ingest and build dbt models in a
CHURN_HOME of their own, so a benchmark never touches the demo's warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from churn_assets.runner import DBT_PROJECT_DIR
from warehouse.connection import Warehouse
from warehouse.generator import GeneratorConfig, HiddenStateObserver, generate
from warehouse.ingestion import Ingestor
from warehouse.settings import load_settings


def build_world(
    home: Path,
    cfg: GeneratorConfig,
    select: Sequence[str],
    observe_hidden_state: HiddenStateObserver | None = None,
) -> tuple[Warehouse, dict[str, float]]:
    """Generate cfg's world into home, ingest it into a DuckDB warehouse there and run
    the dbt models `select` names; returns the warehouse and the seconds of each phase."""
    started = time.perf_counter()
    settings = load_settings({"CHURN_HOME": str(home)})
    generate(
        cfg,
        settings.landing_dir,
        settings.ground_truth_dir,
        observe_hidden_state=observe_hidden_state,
    )
    phases = {"generate": time.perf_counter() - started}
    warehouse = Warehouse(settings)
    ingestor = Ingestor(warehouse, settings.landing_dir)
    for table in ("customers", "subscriptions", "events"):
        ingestor.ingest(table)
    phases["ingest"] = time.perf_counter() - started - sum(phases.values())
    run_dbt(home, select)
    phases["dbt"] = time.perf_counter() - started - sum(phases.values())
    return warehouse, phases


def run_dbt(home: Path, select: Sequence[str]) -> None:
    """`dbt run --select *select` against home's warehouse, with home's settings as dbt
    vars, and target and log paths of its own so other dbt runs are left alone."""
    settings = load_settings({"CHURN_HOME": str(home)})
    command = [
        "dbt",
        "run",
        "--quiet",
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--select",
        *select,
        "--vars",
        json.dumps(settings.dbt_vars()),
        "--target-path",
        str(home / "dbt_target"),
        "--log-path",
        str(home / "dbt_logs"),
    ]
    env = {**os.environ, **settings.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, check=True)
