"""The feature catalog, the dbt schema file and the dbt vars say the same thing."""

import yaml

from tests.conftest import ROOT
from warehouse.feature_catalog import (
    EWM_FAMILIES,
    EWM_HALF_LIVES,
    FAMILIES,
    MARTS_SCHEMA_PATH,
    PEAK_FAMILIES,
    PEAK_WINDOWS,
    WINDOWS,
    behavioural_features,
    render_marts_schema,
)
from warehouse.settings import DEFAULT_EVENT_FAMILIES, load_settings


def test_committed_marts_schema_is_the_rendered_catalog():
    assert MARTS_SCHEMA_PATH.read_text() == render_marts_schema(), (
        "run `uv run python -m warehouse.feature_catalog` after changing features"
    )


def test_dbt_vars_match_the_catalog_and_the_settings():
    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())
    dbt_vars = project["vars"]
    assert dbt_vars["feature_families"] == list(FAMILIES)
    assert dbt_vars["feature_windows"] == list(WINDOWS)
    assert dbt_vars["ewm_families"] == list(EWM_FAMILIES)
    assert dbt_vars["ewm_half_lives"] == list(EWM_HALF_LIVES)
    assert dbt_vars["peak_families"] == list(PEAK_FAMILIES)
    assert dbt_vars["peak_windows"] == list(PEAK_WINDOWS)
    assert set(EWM_FAMILIES) | set(PEAK_FAMILIES) <= set(FAMILIES)
    assert set(PEAK_WINDOWS) <= set(WINDOWS)
    assert dbt_vars["event_families"] == DEFAULT_EVENT_FAMILIES
    defaults = load_settings({}).dbt_vars()
    for name in (
        "churn_definition",
        "horizon_days",
        "cadence_days",
        "min_history_days",
        "activity_event_types",
    ):
        assert dbt_vars[name] == defaults[name], name


def test_at_least_sixty_documented_features():
    features = behavioural_features()
    assert len(features) >= 60
    assert len({f.name for f in features}) == len(features)
    assert all(len(f.description) > 20 for f in features)
