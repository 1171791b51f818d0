"""Running the asset graph in-process from the command line, with readable output."""

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import dagster as dg

from warehouse.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def prepare_dbt_manifest(settings: Settings) -> None:
    """`dbt parse` so the manifest the code location loads exists and is current."""
    env = {**os.environ, **settings.dbt_env()}
    subprocess.run(
        ["dbt", "parse", "--quiet", "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR,
        env=env,
        check=True,
    )


def use_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at var/dagster_home (unless set) so runs show in `make ui`."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@dataclass
class RunSummary:
    success: bool
    materialized: dict[str, dict] = field(default_factory=dict)  # key -> metadata
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)
    # failed checks of monitoring assets: what they found about the data, not a failure
    # of the run (drift is reported and acted on by sensors, it does not fail `make demo`)
    findings: list[tuple[str, str, bool, str]] = field(default_factory=list)
    # failed WARN checks elsewhere (e.g. landing files set aside): shown, not a failure
    warnings: list[tuple[str, str, bool, str]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    # step key -> the first line of its error, so the summary says why without a traceback
    step_errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.success and not self.not_run and all(c[2] for c in self.checks)


def materialize(
    selection: str | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict | None = None,
) -> RunSummary:
    """Materialize the selected assets (default: all) and their checks in this process."""
    from churn_assets.definitions import ASSET_CHECKS, ASSETS, default_resources, defs
    from churn_assets.defs.monitoring import MONITORING_GROUP

    graph = defs.resolve_asset_graph()
    # assets one step writes together (raw/customers and raw/customer_attributes) go
    # together: selecting one of them alone would fail to build a job at all
    chosen = (
        dg.AssetSelection.from_string(selection).required_multi_asset_neighbors()
        if selection
        else dg.AssetSelection.all()
    )
    planned = chosen.resolve(graph)
    result = dg.materialize(
        [*ASSETS, *ASSET_CHECKS],
        resources=resources or default_resources(),
        selection=chosen,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET_LOGS,
        tags={"churn/trigger": "cli"},
    )
    summary = RunSummary(success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        summary.materialized[mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items()
        }
    for evaluation in result.get_asset_check_evaluations():
        observed = graph.get(evaluation.asset_key).group_name == MONITORING_GROUP
        warned = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        target = summary.findings if observed else summary.warnings if warned else summary.checks
        target.append(
            (
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.passed,
                evaluation.description or "",
            )
        )
    summary.not_run = sorted(
        k.to_user_string() for k in planned if k.to_user_string() not in summary.materialized
    )
    failures = [e for e in result.all_events if e.is_step_failure]
    summary.failed_steps = [e.step_key or "" for e in failures]
    summary.step_errors = {e.step_key or "": _error_line(e) for e in failures}
    return summary


def _error_line(event: dg.DagsterEvent) -> str:
    error = event.step_failure_data.error
    while error is not None and error.cause is not None and not error.message.strip():
        error = error.cause
    lines = (error.message if error else "").strip().splitlines()
    return lines[0] if lines else ""


def print_summary(summary: RunSummary, out: TextIO | None = None) -> None:
    """Every asset with its row count, every check result, every failed step."""
    out = out or sys.stdout
    print("\nAssets", file=out)
    for key, metadata in sorted(summary.materialized.items()):
        rows = metadata.get("dagster/row_count")
        print(
            f"  materialized  {key}" + (f"  ({rows:,} rows)" if rows is not None else ""), file=out
        )
    for key in summary.not_run:
        print(f"  NOT RUN       {key}  (blocked by a failed check or step upstream)", file=out)
    print("\nChecks", file=out)
    for asset, name, passed, description in sorted(
        summary.checks, key=lambda c: (c[2], c[0], c[1])
    ):
        print(
            f"  {'pass' if passed else 'FAIL':<5} {asset}:{name}  {description}".rstrip(), file=out
        )
    for asset, name, _, description in sorted(summary.warnings):
        print(f"  WARN  {asset}:{name}  {description}".rstrip(), file=out)
    if summary.findings:
        print("\nMonitoring (findings about the data; they do not fail the run)", file=out)
    for asset, name, passed, description in sorted(
        summary.findings, key=lambda c: (c[2], c[0], c[1])
    ):
        print(
            f"  {'ok' if passed else 'ALERT':<5} {asset}:{name}  {description}".rstrip(), file=out
        )
    for step in summary.failed_steps:
        reason = summary.step_errors.get(step, "")
        print(f"  ERROR step {step} failed: {reason or 'see the log above'}", file=out)
    failed = sum(1 for c in summary.checks if not c[2])
    print(
        f"\nRun {'succeeded' if summary.ok else 'FAILED'}: {len(summary.materialized)} assets "
        f"materialized, {len(summary.checks) - failed}/{len(summary.checks)} checks passed, "
        f"{len(summary.not_run)} not run.",
        file=out,
    )
