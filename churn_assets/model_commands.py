"""Model commands of the `churn` CLI: promote, rollback, reproduce, and the model part
of `churn status`. No Dagster here: these act on MLflow and the warehouse directly."""

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from churn_assets.ml.config import ModelSettings, load_model_settings
from churn_assets.ml.feature_matrix import load_training_frame
from churn_assets.ml.lineage import code_version, dbt_manifest_hash
from churn_assets.ml.metrics import evaluate
from churn_assets.ml.promotion import (
    PromotionError,
    ledger_status,
    model_status,
    promote,
    rollback,
)
from churn_assets.ml.registry import Registry
from churn_assets.ml.training import TrainingChoice, fit_final, prepare_training_set
from warehouse.connection import Warehouse
from warehouse.online_store import announce
from warehouse.promotion_ledger import PromotionLedger, default_actor
from warehouse.redis_server import connect
from warehouse.settings import Settings

REPO_DIR = Path(__file__).resolve().parents[1]
MANIFEST = REPO_DIR / "dbt_project" / "target" / "manifest.json"


def _registry(model_settings: ModelSettings) -> Registry:
    return Registry(
        model_settings.tracking_uri,
        model_settings.model_name,
        model_settings.experiment,
        model_settings.artifact_root,
    )


def _tracking_store_exists(uri: str) -> bool:
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def model_status_or_none(settings: Settings) -> dict[str, Any] | None:
    """Champion and challenger for `churn status`, and the promotion ledger against
    them (a promotion or rollback a dead run left half-finished is repaired here);
    None before anything was trained."""
    model_settings = load_model_settings()
    if not _tracking_store_exists(model_settings.tracking_uri):
        return None
    registry = _registry(model_settings)
    ledger = ledger_status(registry, PromotionLedger(Warehouse(settings)), default_actor())
    return {**model_status(registry), "ledger": ledger}


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(load_model_settings())
    evidence = {"via": "churn promote", "reason": args.reason, "force": args.force}
    try:
        aliases = promote(
            registry,
            PromotionLedger(Warehouse(settings)),
            str(args.version),
            default_actor(),
            evidence,
            force=args.force,
        )
    except (PromotionError, LookupError) as exc:
        print(f"churn promote: {exc}")
        return 2
    print(
        f"{registry.model_name}: champion v{aliases['champion']} "
        f"(was v{aliases['previous_champion'] or 'none'}), challenger v{aliases['challenger']}; "
        "recorded in the promotion ledger"
    )
    _announce_champion(settings, aliases["champion"])
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(load_model_settings())
    try:
        result = rollback(
            registry, PromotionLedger(Warehouse(settings)), default_actor(), args.reason or ""
        )
    except PromotionError as exc:
        print(f"churn rollback: {exc}")
        return 2
    print(
        f"{registry.model_name}: champion back to v{result['champion']} "
        f"(rolled back v{result['rolled_back']}); recorded in the promotion ledger"
    )
    _announce_champion(settings, result["champion"])
    return 0


def _announce_champion(settings: Settings, version: str | None) -> None:
    """Tell running scoring services to reload now rather than at their next poll."""
    problem = announce(connect(settings), {"event": "champion", "version": version})
    if problem:
        print(f"(scoring services will notice at their next registry poll: {problem})")


def cmd_reproduce(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the recorded training set, retrain from the recorded choice and compare."""
    model_settings = load_model_settings()
    registry = _registry(model_settings)
    version = str(args.version)
    try:
        original = registry.load_bundle(version, model_settings.model_cache)
    except LookupError as exc:
        print(f"churn reproduce: {exc}")
        return 2
    recorded: dict[str, Any] = original.metadata
    training = recorded["training"]
    frame = load_training_frame(Warehouse(settings))
    dates = frame["as_of_date"].dt.date.astype(str)
    frame = frame[(dates >= training["as_of_from"]) & (dates <= training["as_of_to"])]
    print(
        f"Rebuilding the training set of v{version}: as_of {training['as_of_from']} to "
        f"{training['as_of_to']}, {len(frame):,} rows (recorded {training['rows']:,})"
    )
    ts = prepare_training_set(frame)
    choice = TrainingChoice(**recorded["choice"])
    retrained, _, threshold = fit_final(ts, choice, model_settings.economics)
    rows = ts.rows("holdout")
    holdout = ts.frame.iloc[rows]
    y = ts.y[rows]
    p_original = original.predict(original.spec.transform(holdout))
    p_retrained = retrained.predict(retrained.spec.transform(holdout))
    rounds, seed = model_settings.bootstrap_rounds, model_settings.seed
    before = evaluate(y, p_original, recorded["threshold"], rounds, seed)
    after = evaluate(y, p_retrained, threshold, rounds, seed)
    checks = {
        "training data fingerprint": ts.fingerprint == training["fingerprint"],
        "dbt manifest hash": dbt_manifest_hash(MANIFEST) == recorded["dbt_manifest_hash"],
        "code version": code_version(REPO_DIR) == recorded["code_version"],
        "model trees": retrained.booster.model_to_string() == original.booster.model_to_string(),
        "holdout predictions": bool(np.array_equal(p_original, p_retrained)),
        "operating threshold": threshold == recorded["threshold"],
        "metrics": json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True),
    }
    # the figures the evaluation asset recorded on the version when it was judged
    evaluated = {k: v for k, v in registry.summary(version)["metrics"].items() if k in after}
    if evaluated:
        checks["recorded evaluation"] = all(
            round(after[k]["value"], 6) == value for k, value in evaluated.items()
        )
    metrics = {k: {"recorded": before[k]["value"], "reproduced": after[k]["value"]} for k in before}
    report = {"version": version, "checks": checks, "metrics": metrics}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, ok in checks.items():
            print(f"  {'match' if ok else 'DIFFERS':<8} {name}")
        for name, pair in metrics.items():
            print(
                f"  {name:<24} recorded {pair['recorded']:.6f}  reproduced {pair['reproduced']:.6f}"
            )
    exact = all(checks[k] for k in checks if k not in ("dbt manifest hash", "code version"))
    print(
        f"v{version} reproduced {'exactly' if exact else 'with differences'}"
        + ("" if checks["code version"] else " (code changed since training)")
    )
    return 0 if exact else 1


def add_model_commands(sub: Any) -> None:
    promote_cmd = sub.add_parser("promote", help="make a model version champion (recorded)")
    promote_cmd.add_argument("version", help="registered version of churn-model, e.g. 3")
    promote_cmd.add_argument("--reason", default="", help="why, for the promotion ledger")
    promote_cmd.add_argument(
        "--force", action="store_true", help="promote even if its quality gates refused it"
    )
    promote_cmd.set_defaults(func=cmd_promote)

    rollback_cmd = sub.add_parser("rollback", help="champion back to the previous champion")
    rollback_cmd.add_argument("--reason", default="", help="why, for the promotion ledger")
    rollback_cmd.set_defaults(func=cmd_rollback)

    reproduce = sub.add_parser(
        "reproduce", help="retrain a version from its recorded inputs and compare exactly"
    )
    reproduce.add_argument("version")
    reproduce.add_argument("--json", action="store_true")
    reproduce.set_defaults(func=cmd_reproduce)
