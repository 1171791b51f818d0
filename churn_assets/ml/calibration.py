"""Probability calibration fitted on a time-later fold, stored as plain numbers so the
serving path applies it with numpy alone (no pickled estimator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["isotonic", "sigmoid"]
EPS = 1e-6


@dataclass(frozen=True)
class Calibrator:
    method: Method
    # isotonic: knots of the piecewise-linear map; sigmoid: [slope, intercept] on the logit
    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, method: Method = "isotonic") -> Calibrator:
        scores = np.asarray(scores, dtype=float)
        labels = np.asarray(labels, dtype=float)
        if len(np.unique(labels)) < 2:
            raise ValueError("calibration needs both churners and non-churners in its fold")
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
            x, y = _block_centres(np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_))
            return cls("isotonic", tuple(x.tolist()), tuple(y.tolist()))
        if method == "sigmoid":
            logit = _logit(scores).reshape(-1, 1)
            lr = LogisticRegression(C=1e6).fit(logit, labels)
            return cls("sigmoid", (float(lr.coef_[0, 0]),), (float(lr.intercept_[0]),))
        raise ValueError(f"unknown calibration method {method!r}; use isotonic or sigmoid")

    def transform(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.interp(scores, self.x, self.y)
        z = self.x[0] * _logit(scores) + self.y[0]
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        return cls(data["method"], tuple(data["x"]), tuple(data["y"]))


def _block_centres(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One knot per isotonic block, at the centre of its scores (plus the two ends), so
    the interpolated map rises strictly between blocks instead of stepping. A step
    function gives every score in a block the same probability: on a validation fold of
    a few hundred churners that is a few dozen distinct values, and the ties cost
    ranking (holdout AUC) without making the probabilities better calibrated."""
    levels, block = np.unique(y, return_inverse=True)
    centres = np.array([x[block == i].mean() for i in range(len(levels))])
    return (
        np.concatenate([[x[0]], centres, [x[-1]]]),
        np.concatenate([[levels[0]], levels, [levels[-1]]]),
    )


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))
