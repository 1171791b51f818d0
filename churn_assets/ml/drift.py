"""Drift statistics against a reference frozen with the model.

At training time `build_reference` summarizes what the model learned from: for each
numeric feature its percentile grid, the reference CDF on that grid and decile
proportions (plus a missing bin); for each categorical feature its category shares
(plus unseen and missing); and the score distribution. The summary travels in the
model bundle, so a report always compares against the serving model's own data.

`drift_report` compares a batch with it, per feature:
- PSI over the reference deciles (categories for categorical features), the effect size;
- Kolmogorov-Smirnov for numeric features, evaluated on the reference percentile grid
  (the largest CDF gap at those 99 points, a slight underestimate of the exact
  statistic, so the p-value errs on the quiet side), with the asymptotic p-value;
- chi-square over categories + unseen + missing for categorical features, and the
  Jensen-Shannon distance (base 2, 0..1) as a second effect size.
Noise control: p-values are Benjamini-Hochberg adjusted across features, and a feature
counts as drifted only when it is significant after adjustment AND its PSI reaches the
warn level: on a large batch every test is significant, so significance alone would
alarm on noise. The data set drifts when the share of drifted features reaches
`share_alert`.

Numeric work sorts each float32 column once (a SIMD sort, a few ms per million values)
and reads every count from the sorted array by binary search."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

GRID_POINTS = 99  # percentiles 1..99
PSI_BINS = 10
EPSILON = 1e-4  # proportions are floored here so PSI stays finite
SCORE = "churn_probability"
Level = Literal["ok", "warn", "alert"]


@dataclass(frozen=True)
class DriftThresholds:
    """Every threshold is configuration (CHURN_DRIFT_*, see the README)."""

    psi_warn: float = 0.1  # the common convention: 0.1 moderate, 0.25 significant shift
    psi_alert: float = 0.25
    alpha: float = 0.05  # false discovery rate across features (Benjamini-Hochberg)
    share_alert: float = 0.3  # data-set drift: this share of features drifted
    min_rows: int = 50  # fewer rows than this: no verdict, a problem instead
    # features measured and shown but never counted: drift by construction that a
    # retrain cannot remove, such as the synthetic data's signup month
    ignore: frozenset[str] = frozenset({"attr_signup_cohort"})

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_alert:
            raise ValueError("need 0 < CHURN_DRIFT_PSI_WARN <= CHURN_DRIFT_PSI_ALERT")
        if not 0 < self.alpha < 1 or not 0 < self.share_alert <= 1:
            raise ValueError("CHURN_DRIFT_ALPHA and CHURN_DRIFT_SHARE_ALERT must be in (0, 1]")


@dataclass(frozen=True)
class FeatureReference:
    name: str
    kind: Literal["numeric", "categorical"]
    rows: int
    missing: float  # share of missing values
    # numeric: unique percentile grid, reference CDF (of non-missing) at it, PSI edges
    grid: tuple[float, ...] = ()
    cdf: tuple[float, ...] = ()
    psi_edges: tuple[float, ...] = ()
    # PSI bins: numeric -> len(psi_edges) + 1 value bins, then missing;
    # categorical -> one per category, then unseen, then missing
    proportions: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceProfile:
    features: tuple[FeatureReference, ...]
    score: FeatureReference | None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [asdict(f) for f in self.features],
            "score": asdict(self.score) if self.score else None,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        def feature(d: dict[str, Any]) -> FeatureReference:
            fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
            }
            return FeatureReference(**fields)

        return cls(
            features=tuple(feature(d) for d in data["features"]),
            score=feature(data["score"]) if data.get("score") else None,
            description=data.get("description", ""),
        )


def build_reference(
    frame: pd.DataFrame,
    categorical: Sequence[str],
    numeric: Sequence[str],
    scores: np.ndarray | None = None,
    description: str = "",
) -> ReferenceProfile:
    """Summaries of the named columns of `frame` (and of `scores`, when given)."""
    features = [_categorical_reference(c, frame[c]) for c in categorical]
    features += [_numeric_reference(c, _floats(frame[c])) for c in numeric]
    order = {name: i for i, name in enumerate(frame.columns)}
    features.sort(key=lambda f: order[f.name])
    score = (
        _numeric_reference(SCORE, np.asarray(scores, np.float32)) if scores is not None else None
    )
    return ReferenceProfile(tuple(features), score, description)


def _floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)


def _numeric_reference(name: str, values: np.ndarray) -> FeatureReference:
    present = np.sort(values[~np.isnan(values)])
    n = len(values)
    missing = 1 - len(present) / n if n else 0.0
    if not len(present):
        return FeatureReference(name, "numeric", n, missing, proportions=(0.0, 1.0))
    grid = np.unique(np.quantile(present, np.linspace(0.01, 0.99, GRID_POINTS)).astype(np.float32))
    cdf = np.searchsorted(present, grid, side="right") / len(present)
    psi_edges = np.unique(
        np.quantile(present, np.linspace(0.1, 0.9, PSI_BINS - 1)).astype(np.float32)
    )
    shares = _bin_shares(present, psi_edges) * (1 - missing)
    return FeatureReference(
        name,
        "numeric",
        n,
        float(missing),
        grid=tuple(grid.tolist()),
        cdf=tuple(cdf.tolist()),
        psi_edges=tuple(psi_edges.tolist()),
        proportions=(*shares.tolist(), float(missing)),
    )


def _bin_shares(sorted_present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of sorted values in (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    cuts = np.searchsorted(sorted_present, edges, side="right")
    counts = np.diff(np.concatenate(([0], cuts, [len(sorted_present)])))
    return counts / max(len(sorted_present), 1)


def _categorical_reference(name: str, column: pd.Series) -> FeatureReference:
    counts = column.dropna().astype(str).value_counts()
    n = len(column)
    categories = tuple(sorted(counts.index))
    shares = [counts[c] / n for c in categories] if n else [0.0] * len(categories)
    missing = float(column.isna().mean()) if n else 0.0
    return FeatureReference(
        name, "categorical", n, missing, proportions=(*shares, 0.0, missing), categories=categories
    )


@dataclass
class FeatureDrift:
    name: str
    kind: str
    psi: float
    statistic: float  # KS D (numeric) or chi-square (categorical)
    p_value: float
    p_adjusted: float = 1.0
    js_distance: float | None = None
    missing_reference: float = 0.0
    missing_current: float = 0.0
    unseen: float = 0.0  # share of values in categories the reference never saw
    level: Level = "ok"
    constant: float | None = None  # the one value of a numeric column that never varies
    ignored: bool = False  # in CHURN_DRIFT_IGNORE: measured and shown, not counted
    # the PSI bins side by side, for plots: labels, reference and current shares
    bins: list[str] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    problems: list[str]  # bad input, said plainly: the check fails on these
    thresholds: DriftThresholds
    share_drifted: float = 0.0
    dataset_drift: bool = False
    verdict: Level = "ok"

    def drifted(self) -> list[FeatureDrift]:
        """Features that drifted and count (not in CHURN_DRIFT_IGNORE), largest PSI first."""
        drifted = (f for f in self.features if f.level != "ok" and not f.ignored)
        return sorted(drifted, key=lambda f: -f.psi)

    def table(self) -> pd.DataFrame:
        columns = ["name", "kind", "level", "psi", "statistic", "p_value", "p_adjusted",
                   "js_distance", "missing_reference", "missing_current", "unseen",
                   "ignored"]  # fmt: skip
        rows = [[getattr(f, c) for c in columns] for f in self.features]
        return pd.DataFrame(rows, columns=columns).sort_values("psi", ascending=False)


def drift_report(
    reference: ReferenceProfile,
    frame: pd.DataFrame,
    scores: np.ndarray | None = None,
    thresholds: DriftThresholds = DriftThresholds(),
) -> DriftReport:
    """Compare a batch (one row per customer, the reference's feature columns) with the
    reference. Bad input never raises: it lands in `problems` and the verdict."""
    problems: list[str] = []
    rows = len(frame)
    if rows == 0:
        problems.append("the batch is empty: nothing to compare")
    elif rows < thresholds.min_rows:
        problems.append(
            f"the batch has {rows} rows, fewer than the {thresholds.min_rows} a verdict needs"
        )
    absent = [f.name for f in reference.features if f.name not in frame.columns]
    if absent:
        problems.append(f"features missing from the batch: {', '.join(absent[:10])}")
    results: list[FeatureDrift] = []
    if rows:
        for ref in reference.features:
            if ref.name in absent:
                continue
            column = frame[ref.name]
            if ref.kind == "numeric":
                result = _numeric_drift(ref, _floats(column))
            else:
                result = _categorical_drift(ref, column)
            if result.missing_current == 1.0:
                problems.append(f"{ref.name}: every value is null")
            elif (
                result.constant is not None
                and len(ref.grid) > 1
                # Bonferroni: chance constancy of any one feature stays under alpha
                and _constant_is_surprising(
                    ref, result.constant, rows, thresholds.alpha / len(reference.features)
                )
            ):
                problems.append(f"{ref.name}: constant ({result.constant:g})")
            results.append(result)
    prediction = None
    if reference.score is not None and scores is not None and len(scores):
        prediction = _numeric_drift(reference.score, np.asarray(scores, np.float32))
        prediction.p_adjusted = prediction.p_value
        prediction.level = _level(prediction, thresholds)
    for f in results:
        f.ignored = f.name in thresholds.ignore
    judged = [f for f in results if not f.ignored]
    for f, adjusted in zip(judged, benjamini_hochberg([f.p_value for f in judged]), strict=True):
        f.p_adjusted = adjusted
        f.level = _level(f, thresholds)
    for f in results:  # measured and shown, never counted
        if f.ignored:
            f.p_adjusted = f.p_value
            f.level = _level(f, thresholds)
    report = DriftReport(rows, results, prediction, problems, thresholds)
    counted = [f for f in reference.features if f.name not in thresholds.ignore]
    if judged and counted:
        report.share_drifted = sum(f.level != "ok" for f in judged) / len(counted)
    report.dataset_drift = report.share_drifted >= thresholds.share_alert
    levels = [f.level for f in judged]
    if problems or report.dataset_drift or "alert" in levels:
        report.verdict = "alert"
    elif "warn" in levels:
        report.verdict = "warn"
    return report


def _level(f: FeatureDrift, t: DriftThresholds) -> Level:
    if f.p_adjusted >= t.alpha:
        return "ok"
    if f.psi >= t.psi_alert:
        return "alert"
    return "warn" if f.psi >= t.psi_warn else "ok"


def _numeric_drift(ref: FeatureReference, values: np.ndarray) -> FeatureDrift:
    n = len(values)
    present = np.sort(values[~np.isnan(values)])
    missing = 1 - len(present) / n if n else 0.0
    edges = np.asarray(ref.psi_edges, dtype=np.float32)
    current = (*(_bin_shares(present, edges) * (1 - missing)).tolist(), missing)
    ks, p_value = 0.0, 1.0
    if len(present) and ref.grid:
        cdf = np.searchsorted(present, np.asarray(ref.grid, np.float32), side="right") / len(
            present
        )
        ks = float(np.max(np.abs(cdf - np.asarray(ref.cdf))))
        n_ref = ref.rows * (1 - ref.missing)
        effective = n_ref * len(present) / (n_ref + len(present))
        p_value = float(special.kolmogorov(np.sqrt(effective) * ks)) if ks else 1.0
    # a change in the share of missing values is drift too: test it as two proportions
    p_missing = _two_proportions(ref.missing, ref.rows, missing, n)
    labels = [*_numeric_labels(edges), "missing"]
    constant = float(present[0]) if len(present) > 1 and present[0] == present[-1] else None
    return FeatureDrift(
        ref.name,
        "numeric",
        psi(ref.proportions, current),
        ks,
        min(p_value, p_missing),
        missing_reference=ref.missing,
        missing_current=float(missing),
        constant=constant,
        bins=labels,
        reference=list(ref.proportions),
        current=list(current),
    )


def _numeric_labels(edges: np.ndarray) -> list[str]:
    if not len(edges):
        return ["all"]
    bounds = [f"{e:.4g}" for e in edges]
    return [
        f"<= {bounds[0]}",
        *(f"{a} - {b}" for a, b in itertools.pairwise(bounds)),
        f"> {bounds[-1]}",
    ]


def _two_proportions(p1: float, n1: int, p2: float, n2: int) -> float:
    if not n1 or not n2:
        return 1.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p2) / se))


def _categorical_drift(ref: FeatureReference, column: pd.Series) -> FeatureDrift:
    n = len(column)
    counts = column.dropna().astype(str).value_counts()
    known = [int(counts.get(c, 0)) for c in ref.categories]
    unseen = int(counts.sum()) - sum(known)
    observed = np.array([*known, unseen, int(column.isna().sum())], dtype=float)
    current = observed / max(n, 1)
    chi2, p_value = _homogeneity(np.asarray(ref.proportions) * ref.rows, observed)
    return FeatureDrift(
        ref.name,
        "categorical",
        psi(ref.proportions, current),
        chi2,
        p_value,
        js_distance=js_distance(ref.proportions, current),
        missing_reference=ref.missing,
        missing_current=float(current[-1]),
        unseen=float(current[-2]),
        bins=[*ref.categories, "unseen", "missing"],
        reference=list(ref.proportions),
        current=current.tolist(),
    )


def _homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample chi-square test that both samples come from one distribution over the
    categories. The reference is a sample too: treating its shares as exact makes a
    feature with many rare categories (a signup cohort, say) look drifted on noise."""
    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    totals = table.sum(axis=1, keepdims=True)
    if table.shape[1] < 2 or (totals == 0).any():
        return 0.0, 1.0
    expected = totals * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return chi2, float(stats.chi2.sf(chi2, table.shape[1] - 1))


def _constant_is_surprising(ref: FeatureReference, value: float, rows: int, level: float) -> bool:
    """Whether `rows` values all equal to `value` are less likely than `level` under
    the reference: a sparse count that is mostly 0 is legitimately all 0 in a small
    batch. The value's reference share is bounded from above by the CDF step at it."""
    grid = np.asarray(ref.grid)
    at = int(np.searchsorted(grid, value))
    if at == len(grid) or grid[at] != value:
        return True  # off the percentile grid: a share under about 1 %
    below = ref.cdf[at - 1] if at else 0.0
    share = (ref.cdf[at] - below) * (1 - ref.missing)
    return bool(share**rows < level)


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Population stability index: sum over bins of (c - r) * ln(c / r), both floored
    at EPSILON so an empty bin on either side stays finite."""
    r = np.maximum(np.asarray(reference, float), EPSILON)
    c = np.maximum(np.asarray(current, float), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> float:
    r = np.asarray(reference, float)
    c = np.asarray(current, float)
    if r.sum() == 0 or c.sum() == 0:
        return 1.0
    r, c = r / r.sum(), c / c.sum()
    m = (r + c) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.sqrt(max((kl(r) + kl(c)) / 2, 0.0)))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Adjusted p-values controlling the false discovery rate across the tests."""
    p = np.asarray(p_values, float)
    m = len(p)
    if not m:
        return []
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
