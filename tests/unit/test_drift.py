"""Drift statistics: PSI and Benjamini-Hochberg against hand-computed and scipy values,
the grid KS against scipy's exact statistic, quiet on same-distribution batches and
on large but tiny shifts, loud on real shifts and unseen categories, and clear about
bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from churn_assets.ml.drift import (
    DriftThresholds,
    ReferenceProfile,
    benjamini_hochberg,
    build_reference,
    drift_report,
    js_distance,
    psi,
)

NUMERIC = ["tenure", "spend", "logins"]
CATEGORICAL = ["plan"]


def batch(
    n: int, seed: int, spend_shift: float = 0.0, plans=("basic", "pro", "team")
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 200.0, n),
            "spend": rng.normal(100.0 + spend_shift, 20.0, n),
            "logins": rng.poisson(12, n).astype(float),
            "plan": rng.choice(list(plans), n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "spend"] = np.nan
    return frame


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    frame = batch(50_000, seed=1)
    scores = np.random.default_rng(2).beta(2, 8, 50_000)
    return build_reference(frame, CATEGORICAL, NUMERIC, scores, "training fold")


def test_psi_and_js_by_hand() -> None:
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2]
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p).tolist())
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []


def test_grid_ks_is_close_to_the_exact_statistic_and_never_above(reference) -> None:
    current = batch(20_000, seed=5, spend_shift=3.0)
    report = drift_report(reference, current)
    spend = next(f for f in report.features if f.name == "spend")
    exact = stats.ks_2samp(
        batch(50_000, seed=1)["spend"].dropna().astype(np.float32),
        current["spend"].dropna().astype(np.float32),
    )
    assert spend.statistic <= exact.statistic + 1e-9
    assert spend.statistic == pytest.approx(exact.statistic, abs=0.01)
    assert spend.p_value >= exact.pvalue  # the grid statistic errs on the quiet side


def test_same_distribution_batches_stay_quiet(reference) -> None:
    verdicts = [drift_report(reference, batch(5_000, seed=s)).verdict for s in range(10, 30)]
    assert verdicts.count("ok") == len(verdicts)


def test_a_tiny_shift_on_a_huge_batch_is_significant_but_not_drift(reference) -> None:
    report = drift_report(reference, batch(400_000, seed=7, spend_shift=1.0))
    spend = next(f for f in report.features if f.name == "spend")
    assert spend.p_adjusted < 0.05 and spend.psi < 0.1  # significant, but too small
    assert spend.level == "ok" and report.verdict == "ok"


def test_real_shifts_and_unseen_categories_are_found(reference) -> None:
    current = batch(5_000, seed=9, spend_shift=20.0, plans=("basic", "pro", "enterprise"))
    report = drift_report(reference, current, np.random.default_rng(3).beta(4, 6, 5_000))
    levels = {f.name: f.level for f in report.features}
    assert levels == {"tenure": "ok", "spend": "alert", "logins": "ok", "plan": "alert"}
    plan = next(f for f in report.features if f.name == "plan")
    assert plan.unseen == pytest.approx((current["plan"] == "enterprise").mean())
    assert plan.js_distance > 0.3 and plan.bins[-2:] == ["unseen", "missing"]
    assert report.prediction is not None and report.prediction.level == "alert"
    assert report.verdict == "alert" and report.share_drifted == 0.5 and report.dataset_drift
    assert list(report.table()["name"])[:2] == [f.name for f in report.drifted()]


def test_bad_input_is_a_clear_result_not_a_crash(reference) -> None:
    empty = drift_report(reference, batch(5_000, seed=4).head(0))
    assert empty.verdict == "alert" and empty.problems == ["the batch is empty: nothing to compare"]
    broken = batch(5_000, seed=4).drop(columns=["logins"]).assign(spend=np.nan, tenure=3.0)
    report = drift_report(reference, broken)
    assert report.verdict == "alert"
    assert report.problems == [
        "features missing from the batch: logins",
        "tenure: constant (3)",
        "spend: every value is null",
    ]
    few = drift_report(reference, batch(10, seed=4))
    assert few.verdict == "alert" and "fewer than the 50" in few.problems[0]


def test_the_reference_survives_json(reference) -> None:
    again = ReferenceProfile.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference
    current = batch(5_000, seed=11, spend_shift=20.0)
    assert drift_report(again, current).table().equals(drift_report(reference, current).table())


def test_thresholds_are_configuration(reference) -> None:
    current = batch(5_000, seed=12, spend_shift=8.0)
    default = drift_report(reference, current)
    strict = drift_report(
        reference, current, thresholds=DriftThresholds(psi_warn=0.01, psi_alert=0.02)
    )
    assert default.verdict in ("ok", "warn") and strict.verdict == "alert"


def test_thresholds_come_from_the_environment_and_are_validated() -> None:
    from churn_assets.ml.config import load_model_settings

    settings = load_model_settings({"CHURN_DRIFT_PSI_WARN": "0.05", "CHURN_DRIFT_ALPHA": "0.01"})
    assert settings.drift == DriftThresholds(psi_warn=0.05, alpha=0.01)
    with pytest.raises(ValueError, match="CHURN_DRIFT_PSI_WARN"):
        load_model_settings({"CHURN_DRIFT_PSI_WARN": "0.5", "CHURN_DRIFT_PSI_ALERT": "0.2"})


def test_many_rare_categories_on_a_small_reference_are_not_drift() -> None:
    """The reference is a sample too: 48 signup cohorts seen in 650 rows differ from
    3,000 more rows of the same distribution by chance, not by drift (a one-sample test
    against the reference shares alarmed here, p about 1e-50)."""
    rng = np.random.default_rng(5)
    months = [f"2022-{m:02d}" for m in range(1, 13)] + [
        f"{y}-{m:02d}" for y in (2023, 2024, 2025) for m in range(1, 13)
    ]
    weights = rng.dirichlet(np.ones(len(months)))

    def cohorts(n: int, seed: int) -> pd.DataFrame:
        picks = np.random.default_rng(seed).choice(months, n, p=weights)
        return pd.DataFrame({"cohort": picks})

    reference = build_reference(cohorts(650, 6), ["cohort"], [])
    alarms = [drift_report(reference, cohorts(3_000, seed)).verdict for seed in range(7, 27)]
    assert alarms.count("ok") >= 19, alarms
    # a real shift of the same size still is one
    shifted = cohorts(3_000, 30).assign(cohort=lambda f: f["cohort"].where(
        np.random.default_rng(31).random(3_000) < 0.6, "2025-12"))  # fmt: skip
    assert drift_report(reference, shifted).verdict == "alert"


def test_a_sparse_count_may_be_constant_in_a_small_batch() -> None:
    rng = np.random.default_rng(8)
    counts = np.where(rng.random(20_000) < 0.985, 0.0, rng.integers(1, 4, 20_000))
    reference = build_reference(pd.DataFrame({"failures_7d": counts}), [], ["failures_7d"])
    assert len(reference.features[0].grid) > 1  # not constant in the reference
    # 0.985 ** 100 = 0.22: all zero by chance is plausible
    quiet = drift_report(reference, pd.DataFrame({"failures_7d": np.zeros(100)}))
    assert quiet.problems == [] and quiet.verdict == "ok"
    # 0.985 ** 2000 ~ 1e-13 is not chance any more
    stuck = drift_report(reference, pd.DataFrame({"failures_7d": np.zeros(2_000)}))
    assert stuck.problems == ["failures_7d: constant (0)"]


def test_ignored_features_are_shown_but_not_counted(reference) -> None:
    current = batch(5_000, seed=12, plans=("basic", "pro", "enterprise"))
    counted = drift_report(reference, current, thresholds=DriftThresholds(ignore=frozenset()))
    assert counted.verdict == "alert" and "plan" in [f.name for f in counted.drifted()]
    ignoring = drift_report(reference, current, thresholds=DriftThresholds(ignore={"plan"}))
    plan = next(f for f in ignoring.features if f.name == "plan")
    assert plan.ignored and plan.level == "alert"  # measured as before...
    assert "plan" not in [f.name for f in ignoring.drifted()]  # ...but not counted
    assert ignoring.verdict == "ok" and ignoring.share_drifted == 0.0
    assert bool(ignoring.table().set_index("name").loc["plan", "ignored"])
