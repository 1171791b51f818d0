"""The model on the request path: the champion's LightGBM Booster on numpy with one
thread, the calibrator as plain arrays, and native per-feature contributions
(`pred_contrib`, which are exact TreeSHAP values) for the reasons."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.calibration import Calibrator
from churn_assets.ml.explain import risk_band, top_k
from serving.row_predictor import RowPredictor
from serving.schemas import Reason


@dataclass
class LoadedModel:
    version: str
    bundle: ModelBundle
    aliases: list[str] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        spec = self.bundle.spec
        self.names = spec.names
        self.width = len(spec.names)
        self.fs_version = spec.version
        self.index = {name: i for i, name in enumerate(spec.names)}
        self.categories = spec.categories
        self.threshold = float(self.bundle.metadata.get("threshold", 0.5))  # type: ignore[arg-type]
        self._calibrate = _calibration(self.bundle.calibrator)
        self._row = RowPredictor(self.bundle.booster, self.width)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 1:
            raw = np.array([self._row.probability(x[0])])
        else:
            raw = np.asarray(self.bundle.booster.predict(x, num_threads=1), dtype=float)
        return self._calibrate(raw)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(n, width + 1) log-odds contributions of the uncalibrated score; the last
        column is the expected value (bias)."""
        if len(x) == 1:
            return self._row.contributions(x[0])[None, :]
        return np.asarray(self.bundle.booster.predict(x, num_threads=1, pred_contrib=True))

    def risk_band(self, p: float) -> str:
        return risk_band(p, self.threshold)

    def feature_value(self, j: int, value: float) -> float | str | None:
        if np.isnan(value):
            return None
        name = self.names[j]
        if name in self.categories:
            return self.categories[name][int(value)]
        return float(value)

    def reasons(self, x_row: np.ndarray, contrib_row: np.ndarray, k: int) -> list[Reason]:
        """The k features that move this customer's score most, either way."""
        top = top_k(contrib_row[None, : self.width], k)[0]
        return [
            Reason(
                feature=self.names[j],
                value=self.feature_value(j, float(x_row[j])),
                contribution=round(float(contrib_row[j]), 6),
            )
            for j in top
        ]


def _calibration(calibrator: Calibrator | None) -> Callable[[np.ndarray], np.ndarray]:
    """The calibrator with its knots as arrays once, not converted on every request."""
    if calibrator is None:
        return lambda raw: raw
    x, y = np.asarray(calibrator.x, dtype=float), np.asarray(calibrator.y, dtype=float)
    if calibrator.method == "isotonic":
        return lambda raw: np.interp(raw, x, y)
    return calibrator.transform
