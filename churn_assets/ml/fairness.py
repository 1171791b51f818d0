"""Model behaviour across customer groups: AUC, selection rate and true positive rate
per group, and the largest gap between groups for each."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

MIN_GROUP_ROWS = 30  # smaller groups are reported but left out of the gaps


def group_metrics(
    y: np.ndarray, p: np.ndarray, groups: pd.Series, threshold: float
) -> pd.DataFrame:
    """One row per group value: rows, churn rate, AUC (NaN with one class),
    selection rate (share scored at or above threshold) and true positive rate."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=int), "p": np.asarray(p, dtype=float)})
    frame["group"] = groups.fillna("(missing)").astype(str).to_numpy()
    rows = []
    for value, part in frame.groupby("group", sort=True):
        flagged = part["p"] >= threshold
        churners = part["y"] == 1
        rows.append(
            {
                "group": value,
                "rows": len(part),
                "churn_rate": part["y"].mean(),
                "auc": roc_auc_score(part["y"], part["p"]) if part["y"].nunique() == 2 else np.nan,
                "selection_rate": flagged.mean(),
                "true_positive_rate": (flagged & churners).sum() / churners.sum()
                if churners.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def largest_gaps(table: pd.DataFrame) -> dict[str, float | None]:
    """Max minus min of each metric over groups with at least MIN_GROUP_ROWS rows; None
    when fewer than two such groups have the metric (nothing to compare, which is not
    the same as no gap)."""
    big = table[table["rows"] >= MIN_GROUP_ROWS]
    return {
        metric: float(big[metric].max() - big[metric].min())
        if big[metric].notna().sum() >= 2
        else None
        for metric in ("auc", "selection_rate", "true_positive_rate")
    }


def fairness_report(
    y: np.ndarray, p: np.ndarray, attributes: pd.DataFrame, threshold: float
) -> dict[str, dict]:
    """Per attribute (column of `attributes`): the group table and the largest gaps."""
    report = {}
    for column in attributes.columns:
        table = group_metrics(y, p, attributes[column].reset_index(drop=True), threshold)
        report[column] = {"groups": table.to_dict(orient="records"), "gaps": largest_gaps(table)}
    return report
