"""The single-row C-API path gives exactly what Booster.predict gives, for the
probabilities and the contributions, on the served model and real feature vectors
(missing values included)."""

import numpy as np
import pytest

from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.ml.registry import CHAMPION, Registry
from serving.row_predictor import RowPredictor
from warehouse.connection import Warehouse
from warehouse.settings import load_settings


def test_single_rows_match_booster_predict(served_home, tmp_path) -> None:
    registry = Registry(
        f"sqlite:///{served_home / 'mlflow.db'}", "churn-model", "churn-model",
        served_home / "mlartifacts",
    )  # fmt: skip
    bundle = registry.load_bundle(registry.alias(CHAMPION), tmp_path / "cache")
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(served_home)})))
    x = bundle.spec.transform(frame.head(300)).astype(np.float32)
    x[::7, 3] = np.nan
    rows = RowPredictor(bundle.booster, x.shape[1])
    fast = np.array([rows.probability(row) for row in x])
    fast_contrib = np.stack([rows.contributions(row) for row in x])
    np.testing.assert_array_equal(fast, bundle.booster.predict(x, num_threads=1))
    np.testing.assert_array_equal(
        fast_contrib, bundle.booster.predict(x, num_threads=1, pred_contrib=True)
    )
    with pytest.raises(ValueError, match="one row of"):
        rows.probability(x[:2])
