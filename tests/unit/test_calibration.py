import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from churn_assets.ml.calibration import Calibrator


def _overconfident(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    true_p = rng.beta(1, 12, n)  # a few percent churn, like the real data
    y = (rng.random(n) < true_p).astype(int)
    scores = np.clip(true_p * 3.0, 0, 1)  # a model that triples every probability
    return scores, y, true_p


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_fixes_overconfident_scores_on_a_later_fold(method):
    fit_scores, fit_y, _ = _overconfident(seed=1)
    scores, y, _ = _overconfident(seed=2)  # evaluated on data it was not fitted on
    calibrator = Calibrator.fit(fit_scores, fit_y, method)
    calibrated = calibrator.transform(scores)
    assert brier_score_loss(y, calibrated) < 0.97 * brier_score_loss(y, scores)
    assert abs(calibrated.mean() - y.mean()) < 0.01
    assert np.all((calibrated >= 0) & (calibrated <= 1))


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_round_trip_keeps_predictions(method):
    scores, y, _ = _overconfident(n=2000)
    calibrator = Calibrator.fit(scores, y, method)
    again = Calibrator.from_dict(calibrator.to_dict())
    assert np.array_equal(again.transform(scores), calibrator.transform(scores))


def test_single_class_fold_is_refused():
    with pytest.raises(ValueError, match="both churners"):
        Calibrator.fit(np.array([0.1, 0.2]), np.array([0, 0]))


def test_isotonic_keeps_the_ranking_of_distinct_scores():
    # A step function would tie every score inside a block; the map must keep them apart.
    rng = np.random.default_rng(1)
    scores = rng.random(3000)
    labels = (rng.random(3000) < scores**3).astype(int)
    cal = Calibrator.fit(scores, labels, "isotonic")
    inner = np.sort(scores[(scores > cal.x[1]) & (scores < cal.x[-2])])
    out = cal.transform(inner)
    assert np.all(np.diff(out) > 0)
    assert np.all(np.diff(cal.transform(np.sort(scores))) >= 0)
