"""The whole graph, in-process, on the small data set: DuckDB through the `churn` CLI,
Postgres through the same runner; both builds must agree."""

import json

import pandas as pd
import pytest

from churn_assets import cli
from churn_assets.runner import materialize
from tests.conftest import FEATURE_GRAPH
from warehouse.connection import Warehouse
from warehouse.feature_catalog import behavioural_features
from warehouse.settings import load_settings

MARTS = ("customer_features", "training_examples", "scoring_features", "customer_attributes")
SAMPLE_COLUMNS = [
    "login_count_30d",
    "usage_value_90d",
    "invoice_value_180d",
    "tenure_days",
    "current_plan",
    "monthly_revenue",
    "payment_failure_rate_90d",
]


def _row_counts(wh: Warehouse) -> dict[str, int]:
    return {
        m: int(wh.query_df(f"SELECT count(*) AS n FROM analytics.{m}")["n"].iloc[0]) for m in MARTS
    }


def _sample(wh: Warehouse) -> pd.DataFrame:
    frame = wh.query_df(
        f"SELECT customer_id, as_of_date, churned, {', '.join(SAMPLE_COLUMNS)} "
        "FROM analytics.training_examples ORDER BY customer_id, as_of_date"
    )
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    return frame.iloc[::7].reset_index(drop=True)


@pytest.mark.e2e
def test_whole_graph_on_duckdb_and_postgres_agree(home, pg_url, monkeypatch, capsys):
    assert cli.main(["materialize", "--select", FEATURE_GRAPH]) == 0
    out = capsys.readouterr().out
    assert "Run succeeded" in out and "FAIL" not in out
    assert "pass  training_examples:point_in_time_recomputation" in out
    assert (
        "pass  customer_features:unique_combination_customer_features_customer_id__as_of_date"
        in out
    )

    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    needs_a_model = {
        "churn_model_candidate", "churn_model_evaluation", "churn_model_promotion",
        "online_features", "prediction_log", "batch_scores", "feature_drift_report",
        "live_drift_report", "prediction_outcomes", "model_performance",
    }  # fmt: skip
    assert all(a["materialized_at"] for k, a in status["assets"].items() if k not in needs_a_model)
    feature_checks = {
        v for k, v in status["checks"].items() if k.split(":")[0] not in needs_a_model
    }
    assert feature_checks == {"SUCCEEDED"}
    assert status["models"] is None  # nothing trained in this run
    freshness = status["asset_freshness"]
    assert freshness["scoring_features"]["state"] == "fresh"
    assert freshness["raw/events"]["state"] == "fresh"
    assert freshness["churn_model_promotion"]["state"] == "never"
    assert freshness["online_features"]["fail_after_hours"] == 168
    assert status["freshness"]["customers"]["rows"] == 300

    duck = Warehouse(load_settings())
    duck_counts, duck_sample = _row_counts(duck), _sample(duck)
    assert duck_counts["training_examples"] > 300
    assert duck_counts["scoring_features"] > 100
    features = duck.query_df("SELECT * FROM analytics.customer_features LIMIT 1")
    assert len(features.columns) - 2 >= 60
    assert [c for c in features.columns[2:]] == [f.name for f in behavioural_features()]
    rate = duck.query_df("SELECT avg(churned) AS r FROM analytics.training_examples")["r"].iloc[0]
    assert 0.01 < rate < 0.2

    monkeypatch.setenv("CHURN_WAREHOUSE_URL", pg_url)
    summary = materialize(FEATURE_GRAPH)
    assert summary.ok, summary
    pg = Warehouse(load_settings())
    assert _row_counts(pg) == duck_counts
    pg_sample = _sample(pg)
    pd.testing.assert_frame_equal(
        duck_sample, pg_sample, check_dtype=False, check_exact=False, rtol=1e-9
    )
