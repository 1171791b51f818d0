"""churn_model_candidate: the model search over the training examples, logged to MLflow
(one nested run per trial) and registered as a new version of the model."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow

from churn_assets.ml.feature_matrix import load_training_frame
from churn_assets.ml.lineage import code_version, dbt_manifest_hash
from churn_assets.ml.search import SearchBudget, study_name_for
from churn_assets.ml.training import TrainedCandidate, TrainingSet, prepare_training_set
from churn_assets.ml.training import train_candidate as run_training
from churn_assets.resources import MlflowResource, WarehouseResource

REPO_DIR = Path(__file__).resolve().parents[2]
MANIFEST = REPO_DIR / "dbt_project" / "target" / "manifest.json"
MODEL_GROUP = "models"


def trigger_of(context: dg.AssetExecutionContext) -> str:
    """Who or what launched this run, for MLflow tags and the promotion ledger."""
    tags = context.run.tags
    trigger = tags.get("churn/trigger") or tags.get("dagster/sensor_name") or "dagster"
    incident = f" for {tags['churn/incident']}" if tags.get("churn/incident") else ""
    return f"{trigger}{incident} (run {context.run_id[:8]})"


@dg.asset(
    key="churn_model_candidate",
    deps=[dg.AssetKey("training_examples"), dg.AssetKey("customer_attributes")],
    group_name=MODEL_GROUP,
    owners=["team:ml-platform"],
    kinds={"python", "lightgbm", "mlflow"},
    description=(
        "Optuna search over five model families plus a stacking ensemble on time-respecting "
        "splits, stable feature selection, the parsimony rule and calibration on the later "
        "fold; the chosen LightGBM model is registered in MLflow as a new version."
    ),
)
def churn_model_candidate(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow_registry: MlflowResource
) -> dg.Output[dict[str, Any]]:
    settings = warehouse.settings()
    model_settings = mlflow_registry.settings()
    ts = prepare_training_set(load_training_frame(warehouse.warehouse()))
    context.log.info(f"Training examples: {json.dumps(ts.summary())}")
    registry = mlflow_registry.registry()
    budget = SearchBudget(
        trials=model_settings.trials,
        timeout_seconds=model_settings.timeout_seconds,
        seed=model_settings.seed,
        families=model_settings.families,
    )
    study_name = study_name_for(ts.fingerprint, budget)
    storage = f"sqlite:///{settings.home.resolve() / 'optuna.db'}"
    lineage = {
        "training_fingerprint": ts.fingerprint,
        "dbt_manifest_hash": dbt_manifest_hash(MANIFEST),
        "code_version": code_version(REPO_DIR),
        "churn_definition": json.dumps(settings.churn.as_dict(), sort_keys=True),
    }
    with registry.search_run(
        f"search-{context.run_id[:8]}",
        {**lineage, "dagster_run_id": context.run_id, "triggered_by": trigger_of(context)},
    ) as run_id:
        mlflow.log_params({"trials": budget.trials, "timeout_seconds": budget.timeout_seconds,
                           "seed": budget.seed, "families": ",".join(budget.families),
                           "optuna_study": study_name, "optuna_storage": storage})  # fmt: skip
        candidate = run_training(
            ts,
            budget,
            model_settings.parsimony_tolerance,
            model_settings.calibration,
            model_settings.economics,
            stack_size=model_settings.stack_size,
            storage=storage,
            study_name=study_name,
            callbacks=[registry.trial_logger(), _trial_progress(context, budget.trials)],
            progress=context.log.info,
        )
        search = candidate.search_summary()
        mlflow.log_metric("chosen_validation_auc", search["chosen"]["validation_auc"])
        for row in candidate.leaderboard:
            mlflow.log_metric(f"best_validation_auc_{row['family']}", row["validation_auc"])
        mlflow.log_dict(search, "search.json")
        mlflow.log_dict(candidate.selection.as_dict(), "feature_selection.json")
        candidate.bundle.metadata = _bundle_metadata(candidate, ts, lineage, settings, run_id)
        version = registry.log_model(
            candidate.bundle,
            ts.frame.iloc[ts.rows("validation")],
            {**lineage, "feature_set_version": candidate.bundle.spec.version,
             "mlflow_run_id": run_id, "triggered_by": trigger_of(context)},
        )  # fmt: skip
    context.log.info(f"Registered {registry.model_name} v{version.version}")
    value = {
        "version": str(version.version),
        "run_id": run_id,
        "training": ts.summary(),
        "lineage": lineage,
        "search": search,
        "selection": candidate.selection.as_dict(),
        "calibration": candidate.calibration,
        "threshold": candidate.threshold,
        "choice": candidate.choice.as_dict(),
        "feature_set_version": candidate.bundle.spec.version,
    }
    return dg.Output(
        value,
        metadata={
            "model_version": str(version.version),
            "mlflow_run_id": run_id,
            "chosen_family": search["chosen"]["family"],
            "validation_auc": dg.MetadataValue.float(search["chosen"]["validation_auc"]),
            "trials": search["trials"],
            "pruned_trials": search["pruned"],
            "features_kept": len(candidate.selection.kept),
            "features_dropped": dg.MetadataValue.json(candidate.selection.dropped),
            "parsimony": search["parsimony"]["decision"],
            "leaderboard": dg.MetadataValue.md(_leaderboard_md(candidate)),
            "training_fingerprint": ts.fingerprint,
            "training_rows": len(ts.frame),
        },
    )


def _trial_progress(context: dg.AssetExecutionContext, total: int):
    def log(study, trial) -> None:
        best = study.best_value if any(t.value is not None for t in study.trials) else None
        value = f"{trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
        context.log.info(
            f"trial {trial.number + 1}/{total} {trial.params.get('family')}: {value}"
            + (f" (best {best:.4f})" if best is not None else "")
        )

    return log


def _bundle_metadata(
    candidate: TrainedCandidate, ts: TrainingSet, lineage: dict, settings: Any, run_id: str
) -> dict[str, Any]:
    return {
        **lineage,
        "mlflow_run_id": run_id,
        "training": ts.summary(),
        "choice": candidate.choice.as_dict(),
        "threshold": candidate.threshold,
        "feature_set_version": candidate.bundle.spec.version,
        "churn_definition": settings.churn.as_dict(),
    }


def _leaderboard_md(candidate: TrainedCandidate) -> str:
    rows = [
        f"| {r['family']} | {r['validation_auc']:.4f} | {'yes' if r['servable'] else 'no'} |"
        for r in candidate.leaderboard
    ]
    if candidate.stack:
        rows.append(
            f"| stack ({' + '.join(candidate.stack['members'])}) | "
            f"{candidate.stack['validation_auc']:.4f} | no |"
        )
    return "\n".join(
        ["| family | best validation AUC | servable |", "|---|---|---|", *rows, "",
         f"**Chosen:** {candidate.parsimony['decision']}"]
    )  # fmt: skip
