"""Quality gates a candidate must pass before promotion, each a plain verdict with the
value, the limit and a sentence a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from churn_assets.ml.config import GateLimits
from churn_assets.ml.fairness import MIN_GROUP_ROWS

ORACLE_MARGIN = 0.02  # beating the ground truth by more than noise means reading the future


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    value: float | None
    limit: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def paired_auc_test(
    y: np.ndarray,
    p_candidate: np.ndarray,
    p_champion: np.ndarray,
    tolerance: float,
    rounds: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap of AUC(candidate) - AUC(champion) on the same rows. p_not_worse
    is the share of resamples in which the candidate loses at most `tolerance`: a small
    value means it is significantly worse beyond the tolerance."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(
            roc_auc_score(y[idx], p_candidate[idx]) - roc_auc_score(y[idx], p_champion[idx])
        )
    values = np.asarray(diffs)
    return {
        "auc_candidate": float(roc_auc_score(y, p_candidate)),
        "auc_champion": float(roc_auc_score(y, p_champion)),
        "difference": float(roc_auc_score(y, p_candidate) - roc_auc_score(y, p_champion)),
        "ci_low": float(np.percentile(values, 2.5)) if len(values) else float("nan"),
        "ci_high": float(np.percentile(values, 97.5)) if len(values) else float("nan"),
        "p_not_worse": float(np.mean(values >= -tolerance)) if len(values) else 1.0,
        "rounds": len(values),
    }


def leaking_features(
    x: np.ndarray, y: np.ndarray, names: list[str] | tuple[str, ...], limit: float
) -> dict[str, float]:
    """Features that alone separate churners from the rest with AUC >= limit (in either
    direction): a single column that good almost always encodes the label."""
    suspects = {}
    for j, name in enumerate(names):
        column = np.asarray(x[:, j], dtype=float)
        known = ~np.isnan(column)
        if known.sum() < 2 or len(np.unique(y[known])) < 2:
            continue
        auc = float(roc_auc_score(y[known], column[known]))
        if max(auc, 1 - auc) >= limit:
            suspects[name] = max(auc, 1 - auc)
    return suspects


def run_gates(
    evaluation: dict[str, Any],
    limits: GateLimits,
    champion: dict[str, Any] | None,
    leaks: dict[str, float],
) -> list[GateResult]:
    """Every gate; `champion` is the paired test against the current champion (None when
    there is none or it cannot score these rows, with the reason in 'reason')."""
    metrics = evaluation["metrics"]
    auc = metrics["roc_auc"]["value"]
    brier = metrics["brier"]["value"]
    return [
        GateResult(
            "auc_floor",
            auc >= limits.auc_floor,
            auc,
            limits.auc_floor,
            f"holdout AUC {auc:.4f} (95% CI {metrics['roc_auc']['ci_low']:.4f}-"
            f"{metrics['roc_auc']['ci_high']:.4f}) against floor {limits.auc_floor}",
        ),
        _champion_gate(champion, limits),
        GateResult(
            "brier_ceiling",
            brier <= limits.brier_ceiling,
            brier,
            limits.brier_ceiling,
            f"holdout Brier {brier:.4f} against ceiling {limits.brier_ceiling}",
        ),
        _fairness_gate(
            evaluation.get("fairness", {}), evaluation.get("fairness_absent", []), limits
        ),
        _leakage_gate(auc, evaluation.get("oracle"), leaks, limits),
    ]


def _champion_gate(champion: dict[str, Any] | None, limits: GateLimits) -> GateResult:
    if champion is None or "p_not_worse" not in champion:
        reason = (champion or {}).get("reason", "no champion yet")
        return GateResult("not_worse_than_champion", True, None, None, f"not compared: {reason}")
    passed = champion["p_not_worse"] >= limits.significance
    return GateResult(
        "not_worse_than_champion",
        passed,
        champion["difference"],
        -limits.champion_tolerance,
        f"AUC {champion['auc_candidate']:.4f} vs champion v{champion.get('version', '?')} "
        f"{champion['auc_champion']:.4f} on the same holdout: difference "
        f"{champion['difference']:+.4f} (95% CI {champion['ci_low']:+.4f} to "
        f"{champion['ci_high']:+.4f}); share of paired bootstrap resamples losing at most "
        f"{limits.champion_tolerance}: {champion['p_not_worse']:.3f} "
        f"({'not ' if passed else ''}significantly worse at {limits.significance})",
    )


def _fairness_gate(fairness: dict[str, Any], absent: list[str], limits: GateLimits) -> GateResult:
    """The largest per-segment AUC gap against the limit. Segments it cannot judge (no
    column in the data, or fewer than two groups big enough to compare) are named, so
    a renamed column cannot switch the gate off unnoticed."""
    gaps = {segment: part["gaps"]["auc"] for segment, part in fairness.items()}
    measured = {s: g for s, g in gaps.items() if g is not None}
    unjudged = [
        f"{s} (fewer than two groups of {MIN_GROUP_ROWS}+ rows with both classes)"
        for s in sorted(set(gaps) - set(measured))
    ] + [f"{s} (no column in the data)" for s in absent]
    note = f"; not measured: {', '.join(unjudged)}" if unjudged else ""
    if not measured:
        return GateResult(
            "fairness_gap", True, None, limits.fairness_gap, f"no segment to compare{note}"
        )
    worst = max(measured, key=lambda s: measured[s])
    return GateResult(
        "fairness_gap",
        measured[worst] <= limits.fairness_gap,
        measured[worst],
        limits.fairness_gap,
        f"largest AUC gap between groups: {measured[worst]:.4f} across {worst}; "
        + ", ".join(f"{s} {g:.4f}" for s, g in sorted(measured.items()))
        + note,
    )


def _leakage_gate(
    auc: float, oracle: dict[str, Any] | None, leaks: dict[str, float], limits: GateLimits
) -> GateResult:
    reasons = []
    if auc >= limits.leakage_auc:
        reasons.append(f"holdout AUC {auc:.4f} is implausibly high (>= {limits.leakage_auc})")
    if oracle and auc > oracle["roc_auc"] + ORACLE_MARGIN:
        reasons.append(f"AUC {auc:.4f} beats the ground-truth oracle {oracle['roc_auc']:.4f}")
    if leaks:
        listed = ", ".join(f"{n} (AUC {a:.3f})" for n, a in sorted(leaks.items()))
        reasons.append(f"single features separate the label: {listed}")
    return GateResult(
        "leakage_alarm",
        not reasons,
        auc,
        limits.leakage_auc,
        "; ".join(reasons) or "no sign of label leakage",
    )
