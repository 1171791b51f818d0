import numpy as np
import pytest

from churn_assets.ml.metrics import (
    bootstrap,
    evaluate,
    expected_calibration_error,
    threshold_metrics,
    top_decile_capture,
    top_decile_lift,
)


def test_calibration_error_of_known_cases():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(y, np.array([0.0, 0.0, 1.0, 1.0])) == 0.0
    # everyone predicted 0.5 in one bin, observed rate 0.5: calibrated
    assert expected_calibration_error(y, np.full(4, 0.5)) == pytest.approx(0.0)
    # everyone predicted 0.9, observed 0.5: off by 0.4
    assert expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)


def test_lift_and_capture_on_a_hand_made_ranking():
    y = np.array([1] + [0] * 9 + [1] + [0] * 9)  # 2 churners in 20, rate 0.1
    p = np.linspace(1, 0, 20)  # the first churner ranks top, the second 11th
    # top decile = 2 rows, holding 1 churner: rate 0.5 -> lift 5, capture 0.5
    assert top_decile_lift(y, p) == pytest.approx(5.0)
    assert top_decile_capture(y, p) == pytest.approx(0.5)


def test_threshold_metrics():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.8, 0.1, 0.7])
    m = threshold_metrics(y, p, 0.5)  # flagged: rows 0, 2, 4 -> tp 2
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 2000), 0, 1)
    first = evaluate(y, p, threshold=0.5, rounds=100, seed=3)
    assert first == evaluate(y, p, threshold=0.5, rounds=100, seed=3)
    auc = first["roc_auc"]
    assert auc["ci_low"] < auc["value"] < auc["ci_high"]
    assert 0.8 < auc["value"] < 0.95
    assert set(first) >= {
        "pr_auc",
        "brier",
        "log_loss",
        "ece",
        "top_decile_lift",
        "f1_at_threshold",
    }
    single_class = bootstrap(np.zeros(10), np.linspace(0, 1, 10), lambda a, b: 0.0, rounds=5)
    assert np.isnan(single_class.low)
