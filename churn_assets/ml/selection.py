"""Importance-based feature selection with a stability check.

A feature is kept when it belongs to the set carrying `keep_share` of the total gain
importance in most of several LightGBM fits on resampled rows. One lucky fit cannot
keep a noise feature, and one unlucky fit cannot drop a useful one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn_assets.ml.bundle import train_booster

PROBE_PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
}
PROBE_ROUNDS = 150


@dataclass(frozen=True)
class Selection:
    kept: list[str]
    dropped: list[str]
    stability: dict[str, float]  # share of probe fits in which the feature was important
    importance: dict[str, float]  # mean share of total gain over the probe fits

    def as_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "dropped": self.dropped,
            "stability": self.stability,
            "importance": self.importance,
        }


def select_features(
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    categorical: list[int] | None = None,
    seed: int = 0,
    rounds: int = 3,
    keep_share: float = 0.99,
    min_stability: float = 0.5,
) -> Selection:
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} columns but {len(names)} names")
    shares = np.zeros((rounds, len(names)))
    important = np.zeros((rounds, len(names)), dtype=bool)
    for r in range(rounds):
        booster = train_booster(
            x, y, {**PROBE_PARAMS, "bagging_seed": seed + r}, PROBE_ROUNDS, seed + r, categorical
        )
        gain = booster.feature_importance(importance_type="gain").astype(float)
        total = gain.sum()
        shares[r] = gain / total if total > 0 else 0.0
        order = np.argsort(-shares[r], kind="stable")
        cumulative = np.cumsum(shares[r][order])
        # smallest prefix reaching keep_share of the gain (all of it when gain is zero)
        count = int(np.searchsorted(cumulative, keep_share) + 1) if total > 0 else len(names)
        important[r, order[:count]] = True
    stability = important.mean(axis=0)
    keep = stability > min_stability
    if not keep.any():  # a degenerate fit: keep the single most important feature
        keep[int(np.argmax(shares.mean(axis=0)))] = True
    return Selection(
        kept=[n for n, k in zip(names, keep, strict=True) if k],
        dropped=[n for n, k in zip(names, keep, strict=True) if not k],
        stability={n: float(s) for n, s in zip(names, stability, strict=True)},
        importance={n: float(s) for n, s in zip(names, shares.mean(axis=0), strict=True)},
    )
