"""Live performance: served predictions joined with their realized outcomes, as a time
series per model version and day, business metrics per day, and the verdict on whether
a version performs worse live than on its evaluation holdout.

Input rows are one served prediction each (deduplicated per version, customer and
snapshot): model_version, customer_id, day (the served features' snapshot date),
probability, churned (NaN while the label window is open) and monthly_revenue. Pure
numpy/pandas/scipy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from churn_assets.ml.business import CampaignEconomics
from churn_assets.ml.metrics import METRICS, threshold_metrics

Status = Literal["ok", "waiting", "too_few", "below_floor", "degraded"]
COLUMNS = ("model_version", "customer_id", "day", "probability", "churned", "monthly_revenue")


@dataclass(frozen=True)
class PerformanceLimits:
    auc_floor: float = 0.70  # realized AUC below this fails outright
    alpha: float = 0.01  # one-sided level of each test against the holdout (two tests)
    min_auc_drop: float = 0.02  # a significant drop smaller than this is not an incident
    min_brier_rise: float = 0.01
    min_labelled: int = 200  # fewer realized outcomes than this are not judged
    min_per_class: int = 20  # ... nor fewer churners or stayers than this
    window_days: int = 30  # the verdict pools the latest window of served days

    def __post_init__(self) -> None:
        if (
            not 0 < self.alpha < 1
            or not 0 <= self.auc_floor < 1
            or self.window_days < 1
            or self.min_per_class < 1
        ):
            raise ValueError(f"implausible performance limits: {self}")


@dataclass(frozen=True)
class HoldoutReference:
    """What the evaluation measured on the holdout, with standard errors from its
    bootstrap intervals (0 when unknown: the holdout value is then taken as exact)."""

    roc_auc: float
    brier: float
    roc_auc_se: float = 0.0
    brier_se: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> HoldoutReference | None:
        if "roc_auc" not in metrics or "brier" not in metrics:
            return None

        def se(name: str) -> float:
            value = float(metrics.get(name) or 0.0)
            return value if math.isfinite(value) else 0.0

        return cls(float(metrics["roc_auc"]), float(metrics["brier"]),
                   se("roc_auc_se"), se("brier_se"))  # fmt: skip


@dataclass
class Verdict:
    version: str
    status: Status
    labelled: int
    churners: int
    window: tuple[str, str] | None  # served days pooled
    metrics: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, dict[str, float]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in ("below_floor", "degraded")

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "labelled": self.labelled,
            "churners": self.churners,
            "window": list(self.window) if self.window else None,
            "metrics": self.metrics,
            "tests": self.tests,
            "reasons": self.reasons,
        }


def labelled_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Realized AUC, Brier, calibration and precision/recall at the operating threshold
    (NaN where undefined: AUC needs both classes)."""
    if len(y) == 0:
        return {}
    both = 0 < y.sum() < len(y)
    at = threshold_metrics(y, p, threshold)
    return {
        "roc_auc": METRICS["roc_auc"](y, p) if both else math.nan,
        "brier": METRICS["brier"](y, p),
        "ece": METRICS["ece"](y, p),
        "mean_probability": float(p.mean()),
        "realized_rate": float(y.mean()),
        "precision": at["precision"],
        "recall": at["recall"],
    }


def daily_performance(frame: pd.DataFrame, thresholds: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per model version and served day: predictions, realized outcomes so far
    and the metrics on them."""
    rows = []
    for (version, day), group in frame.groupby(["model_version", "day"], sort=True):
        known = group[group["churned"].notna()]
        y = known["churned"].to_numpy(dtype=float)
        p = known["probability"].to_numpy(dtype=float)
        rows.append(
            {
                "model_version": str(version),
                "day": str(day),
                "predictions": len(group),
                "labelled": len(known),
                "churners": int(y.sum()),
                **_rounded(labelled_metrics(y, p, thresholds.get(str(version), 0.5))),
            }
        )
    return rows


def daily_business(
    frame: pd.DataFrame, thresholds: Mapping[str, float], economics: CampaignEconomics
) -> list[dict[str, Any]]:
    """Per served day, over every version: predicted and realized churn rate, revenue at
    risk (probability x customer value), and what the campaign policy (contact everyone
    at or above their version's threshold) costs and saves: expected from the scores,
    realized from the outcomes known so far. A customer two versions scored on the same
    day (A/B, canary) counts once, with the newer version's score."""
    frame = (
        frame.assign(_order=frame["model_version"].astype(str).map(_version_number))
        .sort_values("_order")
        .drop_duplicates(["customer_id", "day"], keep="last")
    )
    value = np.nan_to_num(frame["monthly_revenue"].to_numpy(dtype=float)) * economics.value_months
    p = frame["probability"].to_numpy(dtype=float)
    limit = frame["model_version"].astype(str).map(thresholds).fillna(0.5).to_numpy(dtype=float)
    churned = frame["churned"].to_numpy(dtype=float)
    parts = pd.DataFrame(
        {
            "day": frame["day"].astype(str).to_numpy(),
            "p": p,
            "at_risk": p * value,
            "contacted": p >= limit,
            "expected_saved": np.where(p >= limit, p * value, 0.0) * economics.success_rate,
            "labelled": ~np.isnan(churned),
            "churned": churned,
            "realized_saved": np.where((p >= limit) & (churned == 1), value, 0.0)
            * economics.success_rate,
        }
    )
    rows = []
    for day, g in parts.groupby("day", sort=True):
        labelled = int(g["labelled"].sum())
        contacted = int(g["contacted"].sum())
        rows.append(
            {
                "day": str(day),
                "predictions": len(g),
                "predicted_churn_rate": round(float(g["p"].mean()), 6),
                "realized_churn_rate": round(float(g["churned"].mean()), 6) if labelled else None,
                "labelled": labelled,
                "revenue_at_risk": round(float(g["at_risk"].sum()), 2),
                "contacted": contacted,
                "campaign_cost": round(contacted * economics.offer_cost, 2),
                "expected_revenue_saved": round(float(g["expected_saved"].sum()), 2),
                # only once every contacted customer's outcome is known
                "realized_revenue_saved": round(float(g["realized_saved"].sum()), 2)
                if labelled == len(g)
                else None,
            }
        )
    return rows


def _version_number(version: str) -> int:
    return int(version) if version.isdigit() else -1


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC from its value and class counts (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def judge(
    frame: pd.DataFrame,
    version: str,
    holdout: HoldoutReference | None,
    threshold: float,
    limits: PerformanceLimits,
) -> Verdict:
    """Whether `version` performs acceptably live, on its labelled predictions of the
    latest `window_days` served days that have outcomes: AUC against the floor, and
    one-sided tests of AUC (lower) and Brier (higher) against the holdout, each at
    alpha/2 (Bonferroni over the two) and with a minimum effect size."""
    mine = frame[(frame["model_version"].astype(str) == version) & frame["churned"].notna()]
    if mine.empty:
        return Verdict(version, "waiting", 0, 0, None,
                       reasons=["no served prediction has a closed label window yet"])  # fmt: skip
    days = pd.to_datetime(mine["day"])
    recent = mine[days >= days.max() - pd.Timedelta(days=limits.window_days - 1)]
    # one outcome per customer: daily snapshots of one customer have overlapping label
    # windows, and counting each would shrink the standard errors below the truth
    recent = recent.sort_values("day").drop_duplicates("customer_id", keep="last")
    y = recent["churned"].to_numpy(dtype=float)
    p = recent["probability"].to_numpy(dtype=float)
    churners = int(y.sum())
    window = (str(pd.to_datetime(recent["day"]).min().date()), str(days.max().date()))
    verdict = Verdict(version, "ok", len(y), churners, window)
    if len(y) < limits.min_labelled or min(churners, len(y) - churners) < limits.min_per_class:
        verdict.status = "too_few"
        verdict.reasons.append(
            f"{len(y)} realized outcomes ({churners} churners) in {window[0]}..{window[1]}: "
            f"at least {limits.min_labelled} with {limits.min_per_class} of each class "
            "are needed to judge"
        )
        return verdict
    verdict.metrics = _rounded(labelled_metrics(y, p, threshold))
    auc, brier = verdict.metrics["roc_auc"], verdict.metrics["brier"]
    if auc < limits.auc_floor:
        verdict.status = "below_floor"
        verdict.reasons.append(f"realized AUC {auc:.3f} is below the floor {limits.auc_floor}")
    if holdout is None:
        verdict.reasons.append("no holdout metrics recorded for this version: floor only")
        return verdict
    level = limits.alpha / 2
    se_auc = math.hypot(hanley_mcneil_se(auc, churners, len(y) - churners), holdout.roc_auc_se)
    drop = holdout.roc_auc - auc
    p_auc = _one_sided(drop, se_auc)
    squared = (p - y) ** 2
    se_brier = math.hypot(float(squared.std(ddof=1)) / math.sqrt(len(y)), holdout.brier_se)
    rise = brier - holdout.brier
    p_brier = _one_sided(rise, se_brier)
    verdict.tests = {
        "auc_drop": {"holdout": holdout.roc_auc, "live": auc, "difference": round(drop, 6),
                     "p_value": p_auc, "level": level},
        "brier_rise": {"holdout": holdout.brier, "live": brier, "difference": round(rise, 6),
                       "p_value": p_brier, "level": level},
    }  # fmt: skip
    if p_auc < level and drop >= limits.min_auc_drop:
        verdict.reasons.append(
            f"realized AUC {auc:.3f} is significantly below the holdout's "
            f"{holdout.roc_auc:.3f} (p={p_auc:.2g})"
        )
    if p_brier < level and rise >= limits.min_brier_rise:
        verdict.reasons.append(
            f"realized Brier {brier:.3f} is significantly above the holdout's "
            f"{holdout.brier:.3f} (p={p_brier:.2g})"
        )
    if verdict.status == "ok" and verdict.reasons:
        verdict.status = "degraded"
    return verdict


def _one_sided(difference: float, se: float) -> float:
    """P(a difference this large or larger) when the true difference is 0."""
    if se <= 0:
        return 0.0 if difference > 0 else 1.0
    return float(stats.norm.sf(difference / se))


def _rounded(metrics: dict[str, float]) -> dict[str, Any]:
    """Six decimals; undefined values (NaN) become None, which JSON can hold."""
    return {k: None if math.isnan(v) else round(v, 6) for k, v in metrics.items()}


def live_snapshot(
    business: list[dict[str, Any]], verdicts: Mapping[str, Verdict], now: float
) -> dict[str, Any]:
    """What the service's /metrics exports (serving/live_metrics.py): the latest day's
    business figures, the latest day with outcomes, and each judged version's metrics."""
    realized = [b for b in business if b["realized_churn_rate"] is not None]
    return {
        "published_at": now,
        "latest": business[-1] if business else None,
        "latest_realized": realized[-1] if realized else None,
        "versions": {v: verdict.metrics for v, verdict in verdicts.items() if verdict.metrics},
    }
