"""The MLflow side of the model lifecycle: the search run with one nested run per trial,
the logged model (a pyfunc returning probabilities that carries the native bundle),
registered versions with lineage tags, and the champion/challenger aliases.

Aliases only; MLflow's deprecated stages are never touched."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import mlflow.pyfunc
import numpy as np
import optuna
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.model_cache import fill_atomically, is_complete

CHAMPION = "champion"
CHALLENGER = "challenger"
BUNDLE_ARTIFACT = "bundle"  # inside the logged model: artifacts/bundle/
MODEL_NAME_IN_RUN = "model"


class ChurnPyfunc(PythonModel):
    """`mlflow.pyfunc.load_model(...).predict(frame)` -> churn probabilities; the frame
    holds the feature columns by name (extra columns are ignored)."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.bundle.predict(self.bundle.spec.transform(model_input))


def pyfunc_input(frame: pd.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    """The feature columns as plain float64 / string columns: what the pyfunc signature
    documents (warehouse frames carry nullable integers MLflow cannot describe)."""
    out = pd.DataFrame(index=frame.index)
    for name in bundle.spec.names:
        column = frame[name]
        if name in bundle.spec.categories:
            out[name] = column.astype(object).where(column.notna(), None)
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def _filter_string(value: str) -> str:
    """A string value in an MLflow search filter. MLflow's filter grammar has no escape
    character, so the value is quoted with a quote it does not contain."""
    for quote in ("'", '"'):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise ValueError(f"{value!r} holds both quote characters; MLflow cannot filter on it")


class Registry:
    def __init__(
        self, tracking_uri: str, model_name: str, experiment: str, artifact_root: Path
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            artifact_root.mkdir(parents=True, exist_ok=True)
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_root.resolve().as_uri()
            )
        else:
            self.experiment_id = found.experiment_id
        self.activate()

    def activate(self) -> None:
        """Point MLflow's process-global fluent API (start_run, log_model) at this store:
        another Registry in the same process may have moved it. Runs started without an
        explicit experiment land in ours, never in MLflow's default ./mlruns."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(experiment_id=self.experiment_id)

    @contextmanager
    def search_run(self, run_name: str, tags: dict[str, str]) -> Iterator[str]:
        """The parent run of a search; yields its run id."""
        self.activate()
        with mlflow.start_run(
            experiment_id=self.experiment_id, run_name=run_name, tags=tags
        ) as run:
            yield run.info.run_id

    def trial_logger(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        """An Optuna callback logging every finished trial as a run nested under the
        active search run."""

        def log(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            with mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=f"trial-{trial.number:03d}-{trial.params.get('family', '?')}",
                nested=True,
                tags={"optuna_study": study.study_name, "trial_state": trial.state.name},
            ):
                mlflow.log_params(trial.params)
                if trial.value is not None:
                    mlflow.log_metric("validation_auc", trial.value)
                for step, value in trial.intermediate_values.items():
                    mlflow.log_metric("validation_auc_partial", value, step=step)
                if trial.duration is not None:
                    mlflow.log_metric("duration_seconds", trial.duration.total_seconds())

        return log

    def log_model(
        self, bundle: ModelBundle, example: pd.DataFrame, tags: dict[str, str]
    ) -> ModelVersion:
        """Log the pyfunc (with the bundle inside) in the active run and register it
        as a new version of the model, tagged with its lineage."""
        self.activate()
        with tempfile.TemporaryDirectory() as tmp:
            bundle_dir = bundle.save(Path(tmp) / BUNDLE_ARTIFACT)
            frame = pyfunc_input(example, bundle)
            signature = infer_signature(frame, bundle.predict(bundle.spec.transform(frame)))
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME_IN_RUN,
                python_model=ChurnPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                signature=signature,
                input_example=frame.head(3),
                # explicit requirements: inferring them imports the model in a subprocess
                pip_requirements=[
                    f"mlflow=={mlflow.__version__}",
                    f"lightgbm=={lgb.__version__}",
                    f"numpy=={np.__version__}",
                    f"pandas=={pd.__version__}",
                ],
                registered_model_name=self.model_name,
            )
        version = self.client.get_model_version(self.model_name, str(info.registered_model_version))
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version.version, key, value)
        return self.client.get_model_version(self.model_name, version.version)

    def version(self, version: str) -> ModelVersion:
        try:
            return self.client.get_model_version(self.model_name, str(version))
        except MlflowException as exc:
            raise LookupError(f"{self.model_name} has no version {version}") from exc

    def versions(self) -> list[ModelVersion]:
        found = self.client.search_model_versions(f"name = {_filter_string(self.model_name)}")
        return sorted(found, key=lambda v: int(v.version))

    def alias(self, alias: str) -> str | None:
        """The version an alias points at, or None."""
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def tag(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, value)

    def cache_entry(self, version: str, cache_dir: Path) -> Path:
        """Where a version's bundle is cached; a clear LookupError for an unknown one."""
        found = self.version(version)
        source_key = hashlib.sha256(str(found.source).encode()).hexdigest()[:12]
        return cache_dir / self.model_name / f"{version}-{source_key}"

    def load_bundle(self, version: str, cache_dir: Path) -> ModelBundle:
        """The native bundle of a version (downloaded once into cache_dir). The cache is
        keyed by the version's source too: a recreated registry reuses version numbers.
        An entry appears whole or not at all (see model_cache)."""
        entry = self.cache_entry(version, cache_dir)
        if not is_complete(entry):
            source = self.client.get_model_version_download_uri(self.model_name, str(version))

            def download(staging: Path) -> None:
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source}/artifacts/{BUNDLE_ARTIFACT}",
                    dst_path=str(staging),
                    tracking_uri=self.tracking_uri,
                )

            fill_atomically(entry, download)
        return ModelBundle.load(entry / BUNDLE_ARTIFACT)

    def summary(self, version: str) -> dict[str, Any]:
        """Version, creation time, tags with metrics parsed back from JSON."""
        found = self.version(version)
        tags = dict(found.tags)
        metrics = json.loads(tags.pop("metrics", "{}") or "{}")
        return {
            "version": str(found.version),
            "created": pd.Timestamp(found.creation_timestamp, unit="ms").isoformat(),
            "run_id": found.run_id,
            "metrics": metrics,
            "tags": tags,
        }
