"""churn_model_evaluation: the candidate on the untouched holdout (metrics, business
value, fairness, oracle gap, plots, HTML report, model card) and the blocking quality
gates that stand between it and promotion."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np

from churn_assets.defs.training import MANIFEST, MODEL_GROUP, trigger_of
from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.config import ModelSettings
from churn_assets.ml.evaluation import evaluate_holdout, oracle_probabilities
from churn_assets.ml.feature_matrix import load_training_frame
from churn_assets.ml.gates import GateResult, leaking_features, paired_auc_test, run_gates
from churn_assets.ml.lineage import dbt_docs_link, dbt_feature_docs
from churn_assets.ml.model_card import (
    ModelCardInputs,
    build_model_card,
    render_model_card_markdown,
    write_model_card,
)
from churn_assets.ml.promotion import GATE_STATUS_TAG, refuse
from churn_assets.ml.registry import CHAMPION, Registry
from churn_assets.ml.report import render_html, render_markdown, render_plots, write_report
from churn_assets.ml.training import TrainingSet, prepare_training_set
from churn_assets.resources import MlflowResource, WarehouseResource
from warehouse.ground_truth import GroundTruth
from warehouse.promotion_ledger import PromotionLedger

GATES = ("auc_floor", "not_worse_than_champion", "brier_ceiling", "fairness_gap", "leakage_alarm")
GATE_DESCRIPTIONS = {
    "auc_floor": "Holdout AUC at or above CHURN_GATE_AUC_FLOOR.",
    "not_worse_than_champion": (
        "Paired bootstrap on the same holdout: not significantly worse than the champion "
        "beyond CHURN_GATE_CHAMPION_TOLERANCE."
    ),
    "brier_ceiling": "Holdout Brier score at or below CHURN_GATE_BRIER_CEILING.",
    "fairness_gap": "Largest per-segment AUC gap within CHURN_GATE_FAIRNESS_GAP.",
    "leakage_alarm": (
        "Fails when AUC is implausibly high (CHURN_GATE_LEAKAGE_AUC), beats the oracle, "
        "or a single feature separates the label."
    ),
}
EVALUATION_KEY = dg.AssetKey("churn_model_evaluation")


@dg.asset(
    key=EVALUATION_KEY,
    group_name=MODEL_GROUP,
    owners=["team:ml-platform"],
    kinds={"python", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(g, asset=EVALUATION_KEY, blocking=True, description=GATE_DESCRIPTIONS[g])
        for g in GATES
    ],
    description=(
        "The candidate on the untouched holdout period: metrics with bootstrap intervals, "
        "business value, fairness by segment, oracle gap, plots, an HTML report and a model "
        "card; blocking quality gates decide whether it may be promoted."
    ),
)
def churn_model_evaluation(
    context: dg.AssetExecutionContext,
    churn_model_candidate: dict[str, Any],
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
):
    settings = warehouse.settings()
    model_settings = mlflow_registry.settings()
    registry = mlflow_registry.registry()
    version = churn_model_candidate["version"]
    ts = prepare_training_set(load_training_frame(warehouse.warehouse()))
    if ts.fingerprint != churn_model_candidate["training"]["fingerprint"]:
        raise dg.Failure(
            "The training examples changed since the candidate was trained; materialize "
            "churn_model_candidate again so evaluation sees the same data."
        )
    bundle = registry.load_bundle(version, model_settings.model_cache)
    rows = ts.rows("holdout")
    holdout = ts.frame.iloc[rows]
    x = bundle.spec.transform(holdout)
    y, p = ts.y[rows], bundle.predict(x)
    truth_path = settings.ground_truth_dir / "hazard.parquet"
    oracle = (
        oracle_probabilities(GroundTruth(truth_path), holdout, settings.churn.horizon_days)
        if truth_path.exists()
        else None
    )
    evaluation = {
        "model_name": registry.model_name,
        "version": version,
        **evaluate_holdout(y, p, holdout, churn_model_candidate["threshold"],
                           model_settings.economics, oracle, model_settings.bootstrap_rounds,
                           model_settings.seed),
    }  # fmt: skip
    champion = _champion_comparison(registry, model_settings, version, ts, y, p)
    leaks = leaking_features(x, y, bundle.spec.names, model_settings.gates.leakage_auc)
    gates = run_gates(evaluation, model_settings.gates, champion, leaks)
    evaluation["gates"] = [g.as_dict() for g in gates]
    evaluation["champion_comparison"] = champion

    contributions = np.asarray(bundle.booster.predict(x, pred_contrib=True, num_threads=1))
    plots = render_plots(y, p, contributions[:, :-1], x, list(bundle.spec.names))
    reports = model_settings.reports_dir
    card = build_model_card(
        _card_inputs(churn_model_candidate, evaluation, bundle, settings, reports)
    )
    card_md = render_model_card_markdown(card)
    name = f"{registry.model_name}-v{version}"
    card_paths = write_model_card(card, reports, stem=f"{name}_model_card")
    html_path = write_report(
        reports,
        name,
        render_html(
            evaluation, plots, f"{registry.model_name} v{version}", {"Model card": card_md}
        ),
        plots,
    )
    _log_to_mlflow(churn_model_candidate["run_id"], evaluation, html_path, card_paths, plots)
    registry.tag(version, {"metrics": _key_metrics_json(evaluation)})
    _record_gate_outcome(context, registry, warehouse, version, gates, evaluation)

    metrics = evaluation["metrics"]
    yield dg.Output(
        evaluation,
        metadata={
            "model_version": version,
            "holdout_rows": len(rows),
            "roc_auc": dg.MetadataValue.float(metrics["roc_auc"]["value"]),
            "pr_auc": dg.MetadataValue.float(metrics["pr_auc"]["value"]),
            "brier": dg.MetadataValue.float(metrics["brier"]["value"]),
            "oracle_auc_gap": dg.MetadataValue.float(evaluation["oracle"]["auc_gap"])
            if evaluation["oracle"]
            else None,
            # at the threshold chosen on validation, not the hindsight best
            "saved_revenue": dg.MetadataValue.float(
                evaluation["business"]["operating_campaign"]["saved_revenue"]
            ),
            "report": dg.MetadataValue.path(str(html_path)),
            "model_card": dg.MetadataValue.path(str(card_paths[0])),
            "evaluation": dg.MetadataValue.md(render_markdown(evaluation, plots)),
        },
    )
    for gate in gates:
        yield dg.AssetCheckResult(
            check_name=gate.name,
            passed=gate.passed,
            description=gate.detail,
            metadata={"value": gate.value, "limit": gate.limit},
        )


def _champion_comparison(
    registry: Registry,
    model_settings: ModelSettings,
    version: str,
    ts: TrainingSet,
    y: np.ndarray,
    p: np.ndarray,
) -> dict[str, Any] | None:
    champion = registry.alias(CHAMPION)
    if champion is None:
        return None
    if champion == version:
        return {"reason": f"v{version} already is the champion"}
    bundle = registry.load_bundle(champion, model_settings.model_cache)
    holdout = ts.frame.iloc[ts.rows("holdout")]
    try:
        p_champion = bundle.predict(bundle.spec.transform(holdout))
    except KeyError as exc:
        return {"reason": f"champion v{champion} cannot score these rows: {exc}"}
    test = paired_auc_test(
        y, p, p_champion, model_settings.gates.champion_tolerance,
        model_settings.bootstrap_rounds, model_settings.seed,
    )  # fmt: skip
    return {"version": champion, **test}


def _card_inputs(
    candidate: dict[str, Any],
    evaluation: dict[str, Any],
    bundle: ModelBundle,
    settings: Any,
    reports: Path,
) -> ModelCardInputs:
    """The card is written to `reports`; its dbt docs links are relative to it."""
    return ModelCardInputs(
        model_name=evaluation["model_name"],
        version=evaluation["version"],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        training=candidate["training"],
        churn_definition=settings.churn.as_dict(),
        features=list(bundle.spec.names),
        feature_docs=dbt_feature_docs(MANIFEST),
        dbt_docs_url=dbt_docs_link("customer_features", from_dir=reports),
        dbt_manifest_hash=candidate["lineage"]["dbt_manifest_hash"],
        code_version=candidate["lineage"]["code_version"],
        search=candidate["search"],
        selection=candidate["selection"],
        calibration=candidate["calibration"],
        evaluation=evaluation,
        synthetic=(settings.ground_truth_dir / "hazard.parquet").exists(),
    )


def _log_to_mlflow(
    run_id: str,
    evaluation: dict[str, Any],
    html_path: Path,
    card_paths: tuple[Path, Path],
    plots: dict[str, bytes],
) -> None:
    """Holdout metrics, plots, report and model card on the candidate's search run."""
    with mlflow.start_run(run_id=run_id):
        for name, metric in evaluation["metrics"].items():
            mlflow.log_metric(f"holdout_{name}", metric["value"])
        mlflow.log_artifact(str(html_path), "evaluation")
        for path in card_paths:
            mlflow.log_artifact(str(path), "model_card")
        for key in plots:
            mlflow.log_artifact(str(html_path.parent / f"{html_path.stem}_plots" / f"{key}.png"),
                                "evaluation/plots")  # fmt: skip


def _key_metrics_json(evaluation: dict[str, Any]) -> str:
    keys = ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")
    metrics = {k: round(evaluation["metrics"][k]["value"], 6) for k in keys}
    # standard errors from the bootstrap intervals, for the live-performance tests
    for k in ("roc_auc", "brier"):
        interval = evaluation["metrics"][k]
        metrics[f"{k}_se"] = round((interval["ci_high"] - interval["ci_low"]) / (2 * 1.96), 6)
    if evaluation["oracle"]:
        metrics["oracle_auc_gap"] = round(evaluation["oracle"]["auc_gap"], 6)
    return json.dumps(metrics, sort_keys=True)


def _record_gate_outcome(
    context: dg.AssetExecutionContext,
    registry: Registry,
    warehouse: WarehouseResource,
    version: str,
    gates: list[GateResult],
    evaluation: dict[str, Any],
) -> None:
    """A refused version stays registered, tagged with the reasons, and the refusal is
    on the promotion ledger; a passing one is tagged as such."""
    failed = [g for g in gates if not g.passed]
    if not failed:
        registry.tag(version, {GATE_STATUS_TAG: "passed"})
        return
    reasons = [f"{g.name}: {g.detail}" for g in failed]
    context.log.warning(f"v{version} refused: {' | '.join(reasons)}")
    refuse(
        registry,
        PromotionLedger(warehouse.warehouse()),
        version,
        trigger_of(context),
        reasons,
        {
            "gates": evaluation["gates"],
            "dagster_run_id": context.run_id,
            "run_tags": dict(context.run.tags),
        },
    )
