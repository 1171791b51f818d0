"""Holdout metrics for a churn model, each with a bootstrap confidence interval.

Pure numpy/scikit-learn; the evaluation asset attaches the results to its
materialization and to MLflow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-width probability bins,
    weighted by the share of rows in each bin."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    y = np.asarray(y, dtype=float)
    top = _top_decile(p)
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def top_decile_capture(y: np.ndarray, p: np.ndarray) -> float:
    """Share of all churners found in the 10% highest scores."""
    y = np.asarray(y, dtype=float)
    total = y.sum()
    return float(y[_top_decile(p)].sum() / total) if total > 0 else float("nan")


def _top_decile(p: np.ndarray) -> np.ndarray:
    # stable order so ties do not make the metric depend on input order randomness
    order = np.argsort(-np.asarray(p), kind="stable")
    return order[: max(1, int(np.ceil(len(order) * 0.1)))]


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y).astype(bool)
    flagged = np.asarray(p) >= threshold
    tp = float((flagged & y).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / y.sum() if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


METRICS: dict[str, MetricFn] = {
    "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
    "pr_auc": lambda y, p: float(average_precision_score(y, p)),
    "brier": lambda y, p: float(brier_score_loss(y, p)),
    "log_loss": lambda y, p: float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
    "ece": expected_calibration_error,
    "top_decile_lift": top_decile_lift,
    "top_decile_capture": top_decile_capture,
}

# every metric `evaluate` returns, in report order
METRIC_ORDER = (*METRICS, "precision_at_threshold", "recall_at_threshold", "f1_at_threshold")


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    metric: MetricFn,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Point estimate on the full sample, percentile interval over resamples. Resamples
    with a single class (undefined AUC) are skipped."""
    y, p = np.asarray(y), np.asarray(p)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        values.append(metric(y[idx], p[idx]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if values else (np.nan, np.nan)
    return Estimate(metric(y, p), float(low), float(high))


def evaluate(
    y: np.ndarray, p: np.ndarray, threshold: float, rounds: int = 200, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Every metric with its interval, plus precision/recall/F1 at the threshold."""
    out = {name: bootstrap(y, p, fn, rounds, seed=seed).as_dict() for name, fn in METRICS.items()}
    for name in ("precision", "recall", "f1"):
        fn = partial(_at_threshold, threshold=threshold, name=name)
        out[f"{name}_at_threshold"] = bootstrap(y, p, fn, rounds, seed=seed).as_dict()
    return out


def _at_threshold(y: np.ndarray, p: np.ndarray, threshold: float, name: str) -> float:
    return threshold_metrics(y, p, threshold)[name]
