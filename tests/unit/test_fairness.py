import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.fairness import fairness_report, group_metrics, largest_gaps


def test_group_metrics_and_gaps_on_hand_made_groups():
    # group a: perfect ranking, everyone above threshold selected; group b: nobody selected
    y = np.array([1, 0] * 20 + [1, 0] * 20)
    p = np.array([0.9, 0.6] * 20 + [0.4, 0.1] * 20)
    groups = pd.Series(["a"] * 40 + ["b"] * 40)
    table = group_metrics(y, p, groups, threshold=0.5).set_index("group")
    assert table.loc["a", "selection_rate"] == 1.0 and table.loc["b", "selection_rate"] == 0.0
    assert (
        table.loc["a", "true_positive_rate"] == 1.0 and table.loc["b", "true_positive_rate"] == 0.0
    )
    assert table.loc["a", "auc"] == 1.0 and table.loc["b", "auc"] == 1.0
    gaps = largest_gaps(table.reset_index())
    assert gaps == {"auc": 0.0, "selection_rate": 1.0, "true_positive_rate": 1.0}


def test_small_groups_are_reported_but_not_gapped():
    y = np.array([1, 0] * 20 + [1, 0])
    p = np.array([0.9, 0.1] * 20 + [0.1, 0.9])
    groups = pd.Series(["big"] * 40 + ["tiny"] * 2)
    table = group_metrics(y, p, groups, threshold=0.5)
    assert set(table["group"]) == {"big", "tiny"}
    # one comparable group: no gap to report, rather than a gap of zero
    assert largest_gaps(table) == {"auc": None, "selection_rate": None, "true_positive_rate": None}


def test_report_covers_every_attribute():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = rng.uniform(0, 1, 200)
    attrs = pd.DataFrame(
        {"plan": rng.choice(["basic", "pro"], 200), "region": rng.choice(["eu", "na"], 200)}
    )
    report = fairness_report(y, p, attrs, threshold=0.5)
    assert set(report) == {"plan", "region"}
    assert report["plan"]["gaps"]["auc"] == pytest.approx(
        abs(report["plan"]["groups"][0]["auc"] - report["plan"]["groups"][1]["auc"])
    )
