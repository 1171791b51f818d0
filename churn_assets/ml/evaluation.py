"""Holdout evaluation of a model: metrics with intervals, business value, fairness by
segment and, on synthetic data, the gap to the generator's oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churn_assets.ml.business import CampaignEconomics, best_campaign, campaign_at, revenue_at_risk
from churn_assets.ml.fairness import fairness_report
from churn_assets.ml.metrics import METRICS, evaluate
from warehouse.ground_truth import GroundTruth

# segment name -> column of the training examples it is read from
SEGMENT_COLUMNS = {
    "plan": "current_plan",
    "region": "attr_region",
    "company_size": "attr_company_size",
}
TENURE_BANDS = (-np.inf, 90, 365, 730, np.inf)
TENURE_LABELS = ("under 3 months", "3-12 months", "1-2 years", "2 years or more")


def absent_segments(frame: pd.DataFrame) -> list[str]:
    """The fairness segments the frame has no column for (the gate names them)."""
    wanted = {**SEGMENT_COLUMNS, "tenure_band": "tenure_days"}
    return [name for name, column in wanted.items() if column not in frame.columns]


def segments(frame: pd.DataFrame) -> pd.DataFrame:
    """The fairness segments present in the frame, plus a tenure band from tenure_days."""
    out = pd.DataFrame(index=frame.index)
    for name, column in SEGMENT_COLUMNS.items():
        if column in frame.columns:
            out[name] = frame[column].astype(object)
    if "tenure_days" in frame.columns:
        out["tenure_band"] = pd.cut(
            pd.to_numeric(frame["tenure_days"], errors="coerce"),
            TENURE_BANDS,
            labels=TENURE_LABELS,
            right=False,
        ).astype(object)
    return out.reset_index(drop=True)


def oracle_probabilities(truth: GroundTruth, frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """The generator's oracle churn probability for every (customer, as_of) row; NaN
    where the simulation holds no state for it."""
    out = np.full(len(frame), np.nan)
    dates = pd.to_datetime(frame["as_of_date"]).dt.date.to_numpy()
    ids = frame["customer_id"].astype(str).to_numpy()
    for as_of in np.unique(dates):
        rows = np.flatnonzero(dates == as_of)
        try:
            out[rows] = truth.oracle_probability(ids[rows], as_of, horizon_days)
        except ValueError:  # as_of outside the simulated period
            continue
    return out


def evaluate_holdout(
    y: np.ndarray,
    p: np.ndarray,
    frame: pd.DataFrame,
    threshold: float,
    economics: CampaignEconomics,
    oracle: np.ndarray | None = None,
    rounds: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the evaluation report shows, as JSON-able values. `frame` holds the
    holdout rows (segments, revenue), aligned with y and p."""
    revenue = (
        pd.to_numeric(frame["monthly_revenue"], errors="coerce").to_numpy(dtype=float)
        if "monthly_revenue" in frame.columns
        else np.zeros(len(frame))
    )
    dates = pd.to_datetime(frame["as_of_date"])
    return {
        "holdout": {
            "rows": len(y),
            "churners": int(np.sum(y)),
            "as_of_from": str(dates.min().date()),
            "as_of_to": str(dates.max().date()),
        },
        "metrics": evaluate(y, p, threshold, rounds=rounds, seed=seed),
        "threshold": threshold,
        "business": {
            "revenue_at_risk": revenue_at_risk(p, revenue, economics),
            "economics": economics.__dict__,
            # at the threshold chosen on validation (what the model earns) and the
            # best threshold in hindsight on these very labels (an upper bound)
            "operating_campaign": campaign_at(y, p, revenue, economics, threshold).as_dict(),
            "campaign": best_campaign(y, p, revenue, economics).as_dict(),
        },
        "fairness": fairness_report(y, p, segments(frame), threshold),
        "fairness_absent": absent_segments(frame),
        "oracle": _oracle_gap(y, p, oracle),
    }


def _oracle_gap(y: np.ndarray, p: np.ndarray, oracle: np.ndarray | None) -> dict | None:
    if oracle is None:
        return None
    known = ~np.isnan(oracle)
    if known.sum() < 2 or len(np.unique(y[known])) < 2:
        return None
    auc, brier = METRICS["roc_auc"], METRICS["brier"]
    model_auc, model_brier = auc(y[known], p[known]), brier(y[known], p[known])
    oracle_auc, oracle_brier = auc(y[known], oracle[known]), brier(y[known], oracle[known])
    return {
        "rows": int(known.sum()),
        "roc_auc": oracle_auc,
        "brier": oracle_brier,
        "model_roc_auc": model_auc,
        "model_brier": model_brier,
        "auc_gap": oracle_auc - model_auc,
        "brier_gap": model_brier - oracle_brier,
    }
