import os
from pathlib import Path

import pytest

from warehouse.settings import load_settings


def test_defaults_are_local_duckdb_under_home():
    s = load_settings({})
    assert s.env == "local"
    assert s.warehouse_url == f"duckdb:///{Path('var').resolve() / 'warehouse.duckdb'}"
    assert s.dbt_target == "local"
    assert s.churn.kind == "contractual" and s.churn.horizon_days == 30


def test_postgres_url_picks_prod_target_and_connection_env():
    s = load_settings({"CHURN_WAREHOUSE_URL": "postgresql://alice:s%40cret@db.example:5433/wh"})
    assert s.dbt_target == "prod"
    env = s.dbt_env()
    assert env["CHURN_PG_HOST"] == "db.example"
    assert env["CHURN_PG_PORT"] == "5433"
    assert env["CHURN_PG_PASSWORD"] == "s@cret"
    assert env["CHURN_PG_DBNAME"] == "wh"


def test_churn_definition_reaches_dbt_vars():
    s = load_settings(
        {
            "CHURN_DEFINITION": "inactivity",
            "CHURN_HORIZON_DAYS": "14",
            "CHURN_ACTIVITY_EVENT_TYPES": "purchase, visit",
            "CHURN_EVENT_FAMILIES": '{"visit": "login"}',
        }
    )
    v = s.dbt_vars()
    assert v["churn_definition"] == "inactivity"
    assert v["horizon_days"] == 14
    assert v["activity_event_types"] == ["purchase", "visit"]
    assert v["event_families"]["visit"] == "login"


def test_churn_env_prod_picks_the_prod_target_and_needs_postgres():
    s = load_settings({"CHURN_ENV": "prod", "CHURN_WAREHOUSE_URL": "postgresql://u@h/db"})
    assert s.dbt_target == "prod"
    with pytest.raises(ValueError, match="CHURN_ENV=prod"):
        load_settings({"CHURN_ENV": "prod"})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CHURN_DEFINITION": "vibes"}, "contractual"),
        ({"CHURN_ENV": "staging"}, "CHURN_ENV"),
        ({"CHURN_WAREHOUSE_URL": "mysql://x"}, "CHURN_WAREHOUSE_URL"),
        ({"CHURN_HORIZON_DAYS": "0"}, "horizon_days"),
    ],
)
def test_bad_configuration_is_a_clear_error(env, message):
    with pytest.raises(ValueError, match=message):
        load_settings(env)


def test_relative_paths_are_pinned_when_settings_load(tmp_path, monkeypatch):
    # dbt chdirs into its project in-process; a relative home must not follow it
    monkeypatch.chdir(tmp_path)
    s = load_settings({"CHURN_HOME": "var", "CHURN_WAREHOUSE_URL": "duckdb:///data/wh.duckdb"})
    os.chdir("/")
    assert s.home == tmp_path / "var"
    assert s.duckdb_path == tmp_path / "data" / "wh.duckdb"
