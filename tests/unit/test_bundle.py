import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.calibration import Calibrator
from churn_assets.ml.drift import build_reference
from churn_assets.ml.feature_matrix import FeatureSpec

PARAMS = {"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20}


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    logit = -3 + 1.5 * x[:, 0] - x[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def test_training_is_deterministic():
    x, y = _data()
    first = train_booster(x, y, PARAMS, num_rounds=30, seed=5)
    second = train_booster(x, y, PARAMS, num_rounds=30, seed=5)
    assert first.model_to_string() == second.model_to_string()


def test_bundle_round_trip_predicts_the_same(tmp_path):
    x, y = _data()
    booster = train_booster(x, y, PARAMS, num_rounds=30)
    calibrator = Calibrator.fit(booster.predict(x), y, "isotonic")
    bundle = ModelBundle(booster, FeatureSpec(("a", "b", "c", "d")), calibrator, {"version": 3})
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"))
    assert np.array_equal(loaded.predict(x), bundle.predict(x))
    assert loaded.metadata == {"version": 3}
    assert np.all((loaded.predict(x) >= 0) & (loaded.predict(x) <= 1))
    assert loaded.reference is None  # a bundle made without one loads without one

    frame = pd.DataFrame(x, columns=list("abcd"))
    bundle.reference = build_reference(frame, [], list("abcd"), bundle.predict(x), "test")
    again = ModelBundle.load(bundle.save(tmp_path / "with_reference"))
    assert again.reference == bundle.reference and again.reference.score is not None


def test_wrong_shapes_and_missing_files_are_clear_errors(tmp_path):
    x, y = _data(n=500)
    bundle = ModelBundle(
        train_booster(x, y, PARAMS, num_rounds=5), FeatureSpec(("a", "b", "c", "d"))
    )
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        bundle.predict(x[:, :3])
    with pytest.raises(FileNotFoundError, match="not a model bundle"):
        ModelBundle.load(tmp_path)
