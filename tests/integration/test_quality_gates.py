"""Each kind of bad raw data fails its blocking pandera check and stops everything
downstream: no dbt model, no feature table is built from it."""

import pytest

from churn_assets.runner import materialize
from warehouse.connection import Warehouse

BAD_ROWS = {
    "duplicate_customer": (
        "customers",
        "INSERT INTO raw.customers SELECT customer_id, signup_at, 'manual' FROM raw.customers LIMIT 1",
    ),
    "null_key": (
        "events",
        "INSERT INTO raw.events VALUES (NULL, TIMESTAMP '2025-03-01 10:00:00', 'login', 1, 'manual')",
    ),
    "future_timestamp": (
        "events",
        "INSERT INTO raw.events SELECT customer_id, TIMESTAMP '2999-01-01 00:00:00', 'login', 1, 'manual' "
        "FROM raw.customers LIMIT 1",
    ),
    "negative_revenue": (
        "subscriptions",
        "INSERT INTO raw.subscriptions SELECT customer_id, TIMESTAMP '2025-02-01 00:00:00', NULL, 'pro', -10, "
        "'manual' FROM raw.customers LIMIT 1",
    ),
    "unknown_customer": (
        "events",
        "INSERT INTO raw.events VALUES ('NOBODY', TIMESTAMP '2025-03-01 10:00:00', 'login', 1, 'manual')",
    ),
    "bad_label": (
        "labels",
        "INSERT INTO raw.labels SELECT customer_id, DATE '2025-04-01', 7, 'manual' FROM raw.customers LIMIT 1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_raw_data_blocks_everything_downstream(ingested_settings, case):
    table, sql = BAD_ROWS[case]
    with Warehouse(ingested_settings).transaction() as session:
        session.execute(sql)

    summary = materialize()

    failed = {(asset, name) for asset, name, passed, _ in summary.checks if not passed}
    assert failed == {(f"raw/{table}", "meets_raw_contract")}
    assert not summary.ok
    for blocked in ("stg_events", "customer_features", "training_examples", "scoring_features"):
        assert blocked in summary.not_run
    assert not Warehouse(ingested_settings).table_exists("analytics.customer_features")
