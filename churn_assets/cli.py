"""The `churn` command line: generate, import, materialize, demo, status, promote,
rollback, reproduce, serve, token."""

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from churn_assets.model_commands import add_model_commands
from churn_assets.serving_commands import add_serving_commands
from warehouse.contract import ContractError
from warehouse.generator import DRIFT_KINDS, GeneratorConfig, generate
from warehouse.importer import import_files
from warehouse.landing import landing_files
from warehouse.settings import Settings, load_settings

DEMO_CUSTOMERS = 50_000
DEMO_DAYS = 365
UI_PORT = 3000


def _say(message: str) -> None:
    print(message, flush=True)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date like 2025-01-31, got {text!r}") from exc


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    cfg = GeneratorConfig(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        start=args.start,
        drift=args.drift,
        drift_start=args.drift_start,
        through=args.through,
    )
    _say(
        f"Generating {cfg.customers:,} customers over {cfg.days} days from "
        f"{cfg.resolved_start()} (seed {cfg.seed}"
        + (f", drift {cfg.drift} from {cfg.resolved_drift_start()}" if cfg.drift else "")
        + f") into {settings.landing_dir}"
        + (f", batches through {cfg.through} only" if cfg.through else "")
    )
    started = time.perf_counter()
    summary = generate(cfg, settings.landing_dir, settings.ground_truth_dir, progress=_say)
    _say(
        f"Done in {time.perf_counter() - started:.1f}s: {summary.customers:,} customers, "
        f"{summary.subscriptions:,} subscription rows, {summary.events:,} events in "
        f"{summary.files} files; {summary.churned:,} customers churned. "
        f"Ground truth (never ingested): {summary.ground_truth}"
    )
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    files = {
        table: Path(path)
        for table, path in (
            ("customers", args.customers),
            ("events", args.events),
            ("subscriptions", args.subscriptions),
            ("labels", args.labels),
        )
        if path
    }
    try:
        placed = import_files(
            files,
            settings.landing_dir,
            event_types=settings.event_types,
            timestamp_format=args.timestamp_format,
        )
    except (ContractError, OSError, ValueError) as exc:
        print(f"Import refused, nothing was placed in the landing zone:\n{exc}", file=sys.stderr)
        return 2
    for item in placed:
        _say(f"{item.table:<14} {item.rows:>10,} rows  {item.source} -> {item.destination}")
    _say("Files are in the landing zone; `churn materialize` (or the sensor) ingests them.")
    return 0


def _prepare_dbt(settings: Settings) -> None:
    # The dbt manifest must exist before churn_assets.definitions is imported.
    from churn_assets.runner import prepare_dbt_manifest

    prepare_dbt_manifest(settings)


def _instance(settings: Settings):
    import dagster as dg

    from churn_assets.runner import use_dagster_home

    use_dagster_home(settings)
    return dg.DagsterInstance.get()


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from churn_assets.runner import materialize, print_summary

    _prepare_dbt(settings)
    what = args.select or "all assets"
    _say(f"Materializing {what} in-process against {settings.warehouse_url}")
    with _instance(settings) as instance:
        summary = materialize(selection=args.select, instance=instance)
    print_summary(summary)
    return 0 if summary.ok else 1


def _has_data(settings: Settings) -> bool:
    return bool(landing_files(settings.landing_dir, "customers"))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    if not _has_data(settings):
        _say("No data in the landing zone yet: generating the default data set.")
        gen_args = argparse.Namespace(
            customers=DEMO_CUSTOMERS,
            days=DEMO_DAYS,
            seed=7,
            start=None,
            drift=None,
            drift_start=None,
            through=None,
        )
        cmd_generate(gen_args, settings)
    started = time.perf_counter()
    code = cmd_materialize(argparse.Namespace(select=args.select), settings)
    _say(f"Pipeline finished in {time.perf_counter() - started:.0f}s.")
    if code != 0 or args.no_serve:
        if code == 0:
            _say("Run `make ui` to browse the graph, `churn status` for a summary.")
        return code
    return _serve_ui(settings)


def _serve_ui(settings: Settings) -> int:
    """Start the Dagster UI on the same DAGSTER_HOME and wait until interrupted."""
    from churn_assets.runner import use_dagster_home

    home = use_dagster_home(settings)
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    command = [
        shutil.which("dagster") or "dagster",
        "dev",
        "-w",
        str(workspace),
        "-h",
        "127.0.0.1",
        "-p",
        str(UI_PORT),
    ]
    from churn_assets.serving_commands import SERVE_PORT, cmd_token, start_api_in_background

    api = start_api_in_background()
    _say(f"Dagster UI: http://127.0.0.1:{UI_PORT}  (DAGSTER_HOME={home}); Ctrl-C stops both.")
    _say(f"Scoring API: http://127.0.0.1:{SERVE_PORT}/schema/swagger; a scorer token for 8 hours:")
    cmd_token(argparse.Namespace(subject="demo", role="scorer", ttl=8 * 3600), settings)
    try:
        return subprocess.run(command, env=os.environ.copy(), check=False).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        api.terminate()


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from churn_assets.model_commands import model_status_or_none
    from churn_assets.status import collect_status, print_status
    from warehouse.connection import Warehouse

    _prepare_dbt(settings)
    from churn_assets.definitions import defs

    with _instance(settings) as instance:
        status = collect_status(defs, instance, Warehouse(settings), model_status_or_none(settings))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print_status(status)
    return 0


def cmd_dbt(args: argparse.Namespace, settings: Settings) -> int:
    """Run dbt against the configured warehouse with the configured churn definition."""
    from churn_assets.runner import DBT_PROJECT_DIR

    dbt_args = [a for a in args.dbt_args if a != "--"]
    if not dbt_args:
        print(
            "usage: churn dbt <dbt command> [args], e.g. churn dbt docs generate", file=sys.stderr
        )
        return 2
    command = ["dbt", *dbt_args, "--profiles-dir", str(DBT_PROJECT_DIR)]
    if dbt_args[0] in ("build", "run", "test", "compile", "docs", "show"):
        command += ["--vars", json.dumps(settings.dbt_vars())]
    env = {**os.environ, **settings.dbt_env()}
    return subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic daily batches into the landing zone")
    gen.add_argument("--customers", type=int, default=DEMO_CUSTOMERS)
    gen.add_argument("--days", type=int, default=DEMO_DAYS)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--start", type=_date, help="first simulated day (default: DAYS ago)")
    gen.add_argument("--drift", choices=DRIFT_KINDS, help="inject a named shift")
    gen.add_argument("--drift-start", type=_date, help="day the drift starts (default: midway)")
    gen.add_argument(
        "--through",
        type=_date,
        help="land the daily batches up to this day only; the same command without it "
        "lands the rest of the same world later",
    )
    gen.set_defaults(func=cmd_generate)

    imp = sub.add_parser("import", help="validate your files and place them in the landing zone")
    imp.add_argument("--customers", required=True, help="customers file (.parquet or .csv)")
    imp.add_argument("--events", help="events file")
    imp.add_argument("--subscriptions", help="subscriptions file")
    imp.add_argument("--labels", help="labels file (customer_id, as_of_date, churned)")
    imp.add_argument(
        "--timestamp-format",
        help="the one format of the files' text timestamps, as for strptime (e.g. "
        "'%%d/%%m/%%Y %%H:%%M'); default ISO 8601. The files then land as Parquet",
    )
    imp.set_defaults(func=cmd_import)

    mat = sub.add_parser("materialize", help="run the asset graph in-process")
    mat.add_argument(
        "--select", help="Dagster asset selection, e.g. 'group:raw' or 'key:training_examples+'"
    )
    mat.set_defaults(func=cmd_materialize)

    demo = sub.add_parser("demo", help="generate (if needed), materialize everything, serve the UI")
    demo.add_argument("--no-serve", action="store_true", help="stop after materializing")
    demo.add_argument(
        "--select",
        help="materialize only this selection, e.g. 'not group:models and not group:serving' (features only)",
    )
    demo.set_defaults(func=cmd_demo)

    dbt = sub.add_parser(
        "dbt", help="run dbt against the configured warehouse, e.g. `churn dbt docs generate`"
    )
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)

    status = sub.add_parser(
        "status", help="materializations, check results, champion/challenger, data freshness"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    add_serving_commands(sub)
    add_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"churn: configuration error: {exc}", file=sys.stderr)
        return 2
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
