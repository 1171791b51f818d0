import numpy as np
import pandas as pd

from churn_assets.ml.config import GateLimits
from churn_assets.ml.evaluation import absent_segments, segments
from churn_assets.ml.gates import leaking_features, paired_auc_test, run_gates


def _scores(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal * 2 - 2)))).astype(int)
    good = signal + rng.normal(scale=0.5, size=n)
    worse = signal + rng.normal(scale=3.0, size=n)
    return y, good, worse


def _evaluation(auc=0.85, brier=0.05, gaps=(0.02, 0.03), oracle=None):
    metric = lambda v: {"value": v, "ci_low": v - 0.01, "ci_high": v + 0.01}  # noqa: E731
    return {
        "metrics": {"roc_auc": metric(auc), "brier": metric(brier)},
        "fairness": {
            f"segment{i}": {"gaps": {"auc": g, "selection_rate": 0.0, "true_positive_rate": 0.0}}
            for i, g in enumerate(gaps)
        },
        "oracle": oracle,
    }


def _by_name(results):
    return {r.name: r for r in results}


def test_paired_test_flags_a_clearly_worse_model_and_not_an_equal_one():
    y, good, worse = _scores()
    against_worse = paired_auc_test(y, worse, good, tolerance=0.01)
    assert against_worse["difference"] < -0.1
    assert against_worse["p_not_worse"] < 0.05
    assert against_worse["ci_high"] < 0
    same = paired_auc_test(y, good, good.copy(), tolerance=0.01)
    assert same["difference"] == 0 and same["p_not_worse"] == 1.0


def test_gates_pass_a_sound_model():
    results = _by_name(run_gates(_evaluation(), GateLimits(), None, {}))
    assert all(r.passed for r in results.values()), results
    assert "no champion yet" in results["not_worse_than_champion"].detail


def test_each_gate_refuses_what_it_guards():
    limits = GateLimits(auc_floor=0.8, brier_ceiling=0.1, fairness_gap=0.1, leakage_auc=0.98)
    y, good, worse = _scores()
    champion = {**paired_auc_test(y, worse, good, tolerance=0.01), "version": "1"}
    results = _by_name(
        run_gates(
            _evaluation(auc=0.75, brier=0.2, gaps=(0.02, 0.25)),
            limits,
            champion,
            {},
        )
    )
    assert not results["auc_floor"].passed
    assert not results["brier_ceiling"].passed
    assert not results["fairness_gap"].passed and "segment1" in results["fairness_gap"].detail
    assert not results["not_worse_than_champion"].passed
    assert "champion v1" in results["not_worse_than_champion"].detail


def test_leakage_alarm_on_high_auc_oracle_beating_or_a_leaking_feature():
    limits = GateLimits()
    high = _by_name(run_gates(_evaluation(auc=0.995), limits, None, {}))["leakage_alarm"]
    assert not high.passed and "implausibly high" in high.detail
    oracle = {"roc_auc": 0.80}
    beats = _by_name(run_gates(_evaluation(auc=0.9, oracle=oracle), limits, None, {}))
    assert not beats["leakage_alarm"].passed and "oracle" in beats["leakage_alarm"].detail

    y, good, _ = _scores()
    x = np.column_stack([good, y + np.random.default_rng(1).normal(scale=0.01, size=len(y))])
    leaks = leaking_features(x, y, ["honest", "churned_copy"], limit=0.98)
    assert list(leaks) == ["churned_copy"]
    flagged = _by_name(run_gates(_evaluation(), limits, None, leaks))["leakage_alarm"]
    assert not flagged.passed and "churned_copy" in flagged.detail


def test_fairness_gate_names_the_segments_it_could_not_judge():
    evaluation = _evaluation(gaps=(0.02, None))
    evaluation["fairness_absent"] = ["region"]
    gate = _by_name(run_gates(evaluation, GateLimits(), None, {}))["fairness_gap"]
    assert gate.passed and gate.value == 0.02
    assert "segment1 (fewer than two groups" in gate.detail
    assert "region (no column in the data)" in gate.detail

    nothing = _evaluation(gaps=())
    nothing["fairness_absent"] = ["plan", "region", "company_size", "tenure_band"]
    gate = _by_name(run_gates(nothing, GateLimits(), None, {}))["fairness_gap"]
    assert gate.passed and gate.value is None
    assert gate.detail.startswith("no segment to compare; not measured: plan (no column")


def test_evaluation_records_the_segments_the_data_lacks():
    frame = pd.DataFrame({"current_plan": ["a", "b"], "tenure_days": [10, 400]})
    assert absent_segments(frame) == ["region", "company_size"]
    assert list(segments(frame)) == ["plan", "tenure_band"]
