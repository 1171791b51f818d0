"""Live performance statistics: metrics per version and day against known values, the
business figures by hand, and the verdict's floor, tests and refusals to judge."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_assets.ml.business import CampaignEconomics
from churn_assets.ml.performance import (
    HoldoutReference,
    PerformanceLimits,
    daily_business,
    daily_performance,
    hanley_mcneil_se,
    judge,
)

ECONOMICS = CampaignEconomics(offer_cost=10.0, success_rate=0.5, value_months=2.0)


def served(n: int, version: str, quality: float, seed: int, day: str = "2025-03-01"):
    """n served predictions whose scores separate churners by `quality` (0: noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.clip(0.3 + quality * (y - 0.3) + rng.normal(0, 0.15, n), 0.001, 0.999)
    return pd.DataFrame(
        {
            "model_version": version,
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "day": pd.to_datetime(day).date(),
            "probability": p,
            "churned": y,
            "monthly_revenue": 100.0,
        }
    )


def test_daily_performance_matches_direct_computation() -> None:
    frame = pd.concat(
        [served(400, "1", 0.4, 0), served(300, "2", 0.1, 1, "2025-03-02")], ignore_index=True
    )
    frame.loc[frame.index[:50], "churned"] = np.nan  # outcomes not known yet
    rows = {(r["model_version"], r["day"]): r for r in daily_performance(frame, {"1": 0.5})}
    one = rows[("1", "2025-03-01")]
    known = frame[(frame["model_version"] == "1") & frame["churned"].notna()]
    assert one["predictions"] == 400 and one["labelled"] == len(known) == 350
    y, p = known["churned"].to_numpy(), known["probability"].to_numpy()
    assert one["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    assert one["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-6)
    flagged = p >= 0.5
    assert one["precision"] == pytest.approx((flagged & (y == 1)).sum() / flagged.sum(), abs=1e-6)
    assert one["recall"] == pytest.approx((flagged & (y == 1)).sum() / y.sum(), abs=1e-6)
    # version 2 has no threshold of its own: 0.5
    assert rows[("2", "2025-03-02")]["labelled"] == 300


def test_daily_business_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "model_version": ["1", "1", "1", "2"],
            "customer_id": ["a", "b", "c", "d"],
            "day": ["2025-03-01"] * 4,
            "probability": [0.9, 0.2, 0.6, 0.7],
            "churned": [1.0, 0.0, 0.0, np.nan],
            "monthly_revenue": [100.0, 50.0, np.nan, 10.0],
        }
    )
    (day,) = daily_business(frame, {"1": 0.5, "2": 0.8}, ECONOMICS)
    assert day["predicted_churn_rate"] == pytest.approx(0.6)
    assert day["realized_churn_rate"] == pytest.approx(1 / 3)  # of the three known
    # probability x revenue x value months; unknown revenue counts as 0
    assert day["revenue_at_risk"] == pytest.approx(0.9 * 200 + 0.2 * 100 + 0.7 * 20)
    assert day["contacted"] == 2 and day["campaign_cost"] == 20.0  # 0.9 and 0.6 (v1)
    assert day["expected_revenue_saved"] == pytest.approx(0.5 * 0.9 * 200)
    assert day["realized_revenue_saved"] is None  # one outcome still unknown
    frame.loc[3, "churned"] = 0.0
    (day,) = daily_business(frame, {"1": 0.5, "2": 0.8}, ECONOMICS)
    assert day["realized_revenue_saved"] == pytest.approx(0.5 * 200)  # the churner at 0.9


def test_hanley_mcneil_standard_error() -> None:
    # by hand: Q1 = 0.8/1.2, Q2 = 1.28/1.8,
    # var = (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500 = 0.0019805
    assert hanley_mcneil_se(0.8, 50, 50) == pytest.approx(math.sqrt(0.0019805), abs=1e-5)
    assert hanley_mcneil_se(0.8, 500, 500) < hanley_mcneil_se(0.8, 50, 50)


def test_a_model_as_good_as_its_holdout_passes() -> None:
    frame = served(3000, "3", 0.4, 2)
    y, p = frame["churned"].to_numpy(), frame["probability"].to_numpy()
    holdout = HoldoutReference(roc_auc_score(y, p), float(np.mean((p - y) ** 2)), 0.01, 0.005)
    verdict = judge(frame, "3", holdout, 0.5, PerformanceLimits())
    assert verdict.status == "ok" and not verdict.failed and not verdict.reasons
    assert verdict.labelled == 3000 and verdict.tests["auc_drop"]["p_value"] > 0.4


def test_a_worse_model_fails_by_the_test_and_the_floor() -> None:
    frame = served(3000, "3", 0.02, 3)  # nearly noise
    verdict = judge(frame, "3", HoldoutReference(0.85, 0.1, 0.01, 0.005), 0.5, PerformanceLimits())
    assert verdict.status == "below_floor" and verdict.failed
    assert any("below the floor" in r for r in verdict.reasons)
    assert any("significantly below the holdout" in r for r in verdict.reasons)
    # with no floor it is the test that fails it
    limits = PerformanceLimits(auc_floor=0.0)
    assert judge(frame, "3", HoldoutReference(0.85, 0.1), 0.5, limits).status == "degraded"


def test_a_small_drop_is_not_significant_on_few_outcomes() -> None:
    frame = served(250, "4", 0.4, 4)
    y, p = frame["churned"].to_numpy(), frame["probability"].to_numpy()
    live_auc = roc_auc_score(y, p)
    # 0.03 better on the holdout: a raw difference, not a significant one on 250 rows
    verdict = judge(frame, "4", HoldoutReference(live_auc + 0.03, 0.2), 0.5, PerformanceLimits())
    assert verdict.status == "ok", verdict.reasons
    assert verdict.tests["auc_drop"]["p_value"] > 0.005


def test_nothing_to_judge_is_said_not_passed_silently() -> None:
    frame = served(100, "5", 0.4, 5)
    limits = PerformanceLimits()
    too_few = judge(frame, "5", None, 0.5, limits)
    assert too_few.status == "too_few" and "at least 200" in too_few.reasons[0]
    waiting = frame.assign(churned=np.nan)
    assert judge(waiting, "5", None, 0.5, limits).status == "waiting"
    assert judge(frame, "other", None, 0.5, limits).status == "waiting"


def test_the_verdict_pools_only_the_latest_window() -> None:
    old = served(2000, "6", 0.02, 6, "2025-01-01")  # bad long ago
    recent = served(2000, "6", 0.4, 7, "2025-03-01")
    verdict = judge(pd.concat([old, recent]), "6", None, 0.5, PerformanceLimits(window_days=30))
    assert verdict.window == ("2025-03-01", "2025-03-01") and verdict.labelled == 2000
    assert verdict.status == "ok" and "floor only" in verdict.reasons[0]


def test_holdout_reference_from_registry_metrics() -> None:
    ref = HoldoutReference.from_metrics({"roc_auc": 0.8, "brier": 0.1, "roc_auc_se": math.nan})
    assert ref == HoldoutReference(0.8, 0.1, 0.0, 0.0)
    assert HoldoutReference.from_metrics({"pr_auc": 0.3}) is None
    with pytest.raises(ValueError, match="implausible"):
        PerformanceLimits(alpha=0)


def test_one_outcome_per_customer_in_the_verdict_and_one_score_per_day_in_business() -> None:
    once = served(400, "7", 0.4, 9, "2025-03-01")
    # the same customers served again on later daily builds: the same outcomes
    daily = pd.concat(
        [
            once.assign(day=pd.Timestamp(d).date())
            for d in ("2025-03-01", "2025-03-02", "2025-03-03")
        ]
    )
    limits = PerformanceLimits(min_labelled=300)
    assert judge(daily, "7", None, 0.5, limits).labelled == 400  # not 1,200
    # an A/B split scoring one customer with two versions on one day counts it once,
    # with the newer version's score
    ab = pd.concat([once.head(1), once.head(1).assign(model_version="8", probability=0.99)])
    (day,) = daily_business(ab, {"7": 0.5, "8": 0.5}, ECONOMICS)
    assert day["predictions"] == 1 and day["predicted_churn_rate"] == 0.99
