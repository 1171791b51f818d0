"""The native model bundle serving loads directly: a LightGBM Booster (text), the
calibrator and the feature spec as JSON, and free-form metadata. No pickles, so a
bundle is readable across library versions and safe to load."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from churn_assets.ml.calibration import Calibrator
from churn_assets.ml.drift import ReferenceProfile
from churn_assets.ml.feature_matrix import FeatureSpec

BOOSTER_FILE = "booster.txt"
SPEC_FILE = "features.json"
CALIBRATOR_FILE = "calibrator.json"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"  # drift reference, frozen at training time

DETERMINISTIC = {"deterministic": True, "force_row_wise": True, "verbose": -1}


def train_booster(
    x: np.ndarray,
    y: np.ndarray,
    params: Mapping[str, object],
    num_rounds: int,
    seed: int = 0,
    categorical: list[int] | None = None,
    callbacks: list[Callable[[Any], None]] | None = None,
) -> lgb.Booster:
    """Train a binary LightGBM booster reproducibly (same data, params, seed -> same model).
    Callbacks run after every boosting round (the search prunes from one)."""
    full = {"objective": "binary", "seed": seed, "num_threads": 2, **DETERMINISTIC, **params}
    data = lgb.Dataset(x, label=y, categorical_feature=categorical or "auto", free_raw_data=False)
    return lgb.train(full, data, num_boost_round=num_rounds, callbacks=callbacks)


@dataclass
class ModelBundle:
    booster: lgb.Booster
    spec: FeatureSpec
    calibrator: Calibrator | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    # what the model learned from, for drift reports (None in bundles made without one)
    reference: ReferenceProfile | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Churn probabilities for rows of x in spec order. One thread: on a small box,
        thread pools cost more in tail latency than they win."""
        if x.ndim != 2 or x.shape[1] != len(self.spec.names):
            raise ValueError(f"expected an (n, {len(self.spec.names)}) matrix, got {x.shape}")
        raw = np.asarray(self.booster.predict(x, num_threads=1), dtype=float)
        return self.calibrator.transform(raw) if self.calibrator else raw

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        (directory / SPEC_FILE).write_text(json.dumps(self.spec.to_dict(), indent=2))
        if self.calibrator:
            (directory / CALIBRATOR_FILE).write_text(json.dumps(self.calibrator.to_dict()))
        (directory / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, default=str))
        if self.reference:
            (directory / REFERENCE_FILE).write_text(json.dumps(self.reference.to_dict()))
        return directory

    @classmethod
    def load(cls, directory: Path) -> ModelBundle:
        missing = [
            f for f in (BOOSTER_FILE, SPEC_FILE, METADATA_FILE) if not (directory / f).exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"{directory} is not a model bundle: missing {', '.join(missing)}"
            )
        calibrator_path = directory / CALIBRATOR_FILE
        reference_path = directory / REFERENCE_FILE
        return cls(
            booster=lgb.Booster(model_file=str(directory / BOOSTER_FILE)),
            spec=FeatureSpec.from_dict(json.loads((directory / SPEC_FILE).read_text())),
            calibrator=Calibrator.from_dict(json.loads(calibrator_path.read_text()))
            if calibrator_path.exists()
            else None,
            metadata=json.loads((directory / METADATA_FILE).read_text()),
            reference=ReferenceProfile.from_dict(json.loads(reference_path.read_text()))
            if reference_path.exists()
            else None,
        )
