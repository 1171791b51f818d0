"""feature_drift_report on real feature tables: a champion trained with a frozen
reference, judged against the current feature build; then a region the model never
saw lands on half the customers and the check fails with ERROR severity, saying so."""

import shutil

import dagster as dg
import numpy as np
import pytest

from churn_assets.defs.monitoring import (
    FEATURE_DRIFT_CHECK,
    PREDICTION_DRIFT_CHECK,
    feature_drift_report,
)
from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.calibration import Calibrator
from churn_assets.ml.feature_matrix import load_training_frame
from churn_assets.ml.registry import CHAMPION
from churn_assets.ml.training import prepare_training_set, training_reference
from churn_assets.resources import MlflowResource, WarehouseResource
from warehouse.connection import Warehouse
from warehouse.settings import load_settings


@pytest.fixture
def drift_world(served_home, own_registry, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "warehouse.duckdb", home / "warehouse.duckdb")
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    ts = prepare_training_set(load_training_frame(wh))
    train, valid = ts.rows("train"), ts.rows("validation")
    booster = train_booster(ts.x[train], ts.y[train], {"num_leaves": 8}, 30, seed=1)
    raw_valid = np.asarray(booster.predict(ts.x[valid]), dtype=float)
    calibrator = Calibrator.fit(raw_valid, ts.y[valid], "isotonic")
    reference = training_reference(ts, ts.spec, valid, calibrator.transform(raw_valid), 0)
    bundle = ModelBundle(booster, ts.spec, calibrator, {"threshold": 0.3}, reference)
    version = str(own_registry.log_model(bundle, ts.frame.head(20), {"seed": "1"}).version)
    own_registry.set_alias(CHAMPION, version)
    return home, own_registry, version


def run_report(home, registry) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [feature_drift_report],
        resources={
            "warehouse": WarehouseResource(home=str(home)),
            "mlflow_registry": MlflowResource(home=str(home), tracking_uri=registry.tracking_uri),
        },
    )


def checks(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_drift_report_against_the_frozen_reference(drift_world) -> None:
    home, registry, version = drift_world
    result = run_report(home, registry)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("feature_drift_report")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["model_version"] == version and metadata["rows"] > 100
    assert "validation rows" in metadata["reference"]
    assert "| feature | kind | level | PSI |" in metadata["report"]
    assert set(checks(result)) == {FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK}
    assert "attr_region" not in metadata["drifted_features"]

    # half the customers move to a region the model never saw
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    with wh.transaction() as s:
        s.execute(
            "UPDATE analytics.customer_attributes SET value_text = 'atlantis' "
            "WHERE attribute_name = 'region' AND hash(customer_id) % 2 = 0"
        )
    drifted = run_report(home, registry)
    check = checks(drifted)[FEATURE_DRIFT_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "attr_region alert" in check.description
    assert "in categories the model never saw" in check.description
