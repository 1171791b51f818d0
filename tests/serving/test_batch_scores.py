"""batch_scores: every customer scored by the champion into the warehouse, agreeing
with the online service customer for customer."""

import json

import dagster as dg
import numpy as np

from churn_assets.defs.scoring import BATCH_SCORES, batch_scores
from churn_assets.ml.batch_scoring import score_frame
from churn_assets.ml.explain import risk_bands, top_k
from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.ml.registry import Registry
from churn_assets.resources import MlflowResource, WarehouseResource
from serving.predictor import LoadedModel
from tests.serving.conftest import TEST_REDIS_URL
from warehouse.connection import Warehouse
from warehouse.online_store import OnlineStore, unpack
from warehouse.settings import load_settings


def test_top_k_and_risk_bands() -> None:
    contrib = np.array([[0.1, -0.5, 0.3, 0.0], [0.2, 0.2, -0.2, 0.9]])
    assert top_k(contrib, 2).tolist() == [[1, 2], [3, 0]]  # ties keep feature order
    bands = risk_bands(np.array([0.05, 0.2, 0.3, 0.9]), threshold=0.3)
    assert bands.tolist() == ["low", "medium", "high", "high"]


def test_every_customer_scored_as_the_service_would(served_home, tmp_path) -> None:
    import shutil

    import redis

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "warehouse.duckdb", home / "warehouse.duckdb")
    tracking_uri = f"sqlite:///{served_home / 'mlflow.db'}"
    result = dg.materialize(
        [batch_scores],
        resources={
            "warehouse": WarehouseResource(home=str(home)),
            "mlflow_registry": MlflowResource(home=str(served_home), tracking_uri=tracking_uri),
        },
    )
    assert result.success
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    scores = wh.query_df(f"SELECT * FROM {BATCH_SCORES} ORDER BY customer_id")
    assert len(scores) == len(load_scoring_frame(wh)) and scores["customer_id"].is_unique
    assert set(scores["model_version"]) == {"1"}
    assert set(scores["risk_band"]) <= {"low", "medium", "high"}
    reasons = json.loads(scores["reasons"].iloc[0])
    assert len(reasons) == 3 and all(isinstance(name, str) for name, _ in reasons)

    registry = Registry(tracking_uri, "churn-model", "churn-model", served_home / "mlartifacts")
    model = LoadedModel("1", registry.load_bundle("1", tmp_path / "cache"))
    ids = scores["customer_id"].head(20).tolist()
    _, blobs = OnlineStore(redis.Redis.from_url(TEST_REDIS_URL)).fetch(model.fs_version, ids)
    online = model.probabilities(unpack(blobs, model.width)[1])
    np.testing.assert_allclose(scores["churn_probability"].head(20), online, rtol=1e-12)
    metadata = result.asset_materializations_for_node("batch_scores")[0].metadata
    assert metadata["dagster/row_count"].value == len(scores)


def test_reasons_for_every_customer_only_the_at_risk_or_none(served_home, tmp_path) -> None:
    tracking_uri = f"sqlite:///{served_home / 'mlflow.db'}"
    registry = Registry(tracking_uri, "churn-model", "churn-model", served_home / "mlartifacts")
    bundle = registry.load_bundle("1", tmp_path / "cache")
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(served_home)})))
    every = score_frame(bundle, frame, "1", reasons_for="all")
    at_risk = score_frame(bundle, frame, "1", reasons_for="at_risk")
    none = score_frame(bundle, frame, "1", reasons_for="none")
    low = (every["risk_band"] == "low").to_numpy()
    assert 0 < low.sum() < len(frame)  # both kinds present, or the test proves nothing
    assert every["reasons"].notna().all() and none["reasons"].isna().all()
    assert at_risk["reasons"][low].isna().all()
    assert at_risk["reasons"][~low].tolist() == every["reasons"][~low].tolist()
    for other in (at_risk, none):
        assert other["churn_probability"].tolist() == every["churn_probability"].tolist()
