"""feature_drift_report on real feature tables: a champion trained with a frozen
reference, judged against the current feature build; then a region the model never
saw lands on half the customers and the check fails with ERROR severity, saying so."""

import dagster as dg

from churn_assets.defs.monitoring import (
    FEATURE_DRIFT_CHECK,
    PREDICTION_DRIFT_CHECK,
)
from tests.serving.conftest import run_drift_report
from warehouse.connection import Warehouse
from warehouse.settings import load_settings


def checks(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def regions_nobody_saw(home) -> None:
    """Half the customers move to a region the model never saw."""
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    with wh.transaction() as s:
        s.execute(
            "UPDATE analytics.customer_attributes SET value_text = 'atlantis' "
            "WHERE attribute_name = 'region' AND hash(customer_id) % 2 = 0"
        )


def test_drift_report_against_the_frozen_reference(drift_world) -> None:
    home, registry, version = drift_world
    result = run_drift_report(home, registry)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("feature_drift_report")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["model_version"] == version and metadata["rows"] > 100
    assert "validation rows" in metadata["reference"]
    assert "| feature | kind | level | PSI |" in metadata["report"]
    assert set(checks(result)) == {FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK}
    assert "attr_region" not in metadata["drifted_features"]

    regions_nobody_saw(home)
    drifted = run_drift_report(home, registry)
    check = checks(drifted)[FEATURE_DRIFT_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "attr_region alert" in check.description
    assert "in categories the model never saw" in check.description
