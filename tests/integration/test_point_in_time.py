"""The point-in-time contract on the real feature build (DuckDB + dbt):
data at or after as_of_date never changes a row, and the recomputation check
catches a feature or label that does not match the raw data."""

import datetime as dt

import numpy as np
import pandas as pd

from churn_assets.runner import materialize
from tests.conftest import FEATURE_GRAPH
from warehouse.connection import Warehouse
from warehouse.feature_catalog import behavioural_features
from warehouse.point_in_time import check_training_examples

FEATURES = [f.name for f in behavioural_features()]


def _features(wh: Warehouse) -> pd.DataFrame:
    frame = wh.query_df("SELECT * FROM analytics.customer_features")
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    return frame.set_index(["customer_id", "as_of_date"]).sort_index()


def test_events_on_or_after_as_of_never_change_that_row(built_settings):
    wh = Warehouse(built_settings)
    before = _features(wh)
    data_end = pd.Timestamp(
        wh.query_df("SELECT data_end FROM analytics.int_data_bounds")["data_end"].iloc[0]
    )
    rng = np.random.default_rng(42)
    candidates = before[
        before.index.get_level_values("as_of_date") < data_end - pd.Timedelta(days=2)
    ]
    picked = candidates.index[rng.choice(len(candidates), size=25, replace=False)]
    inserted = []
    for customer_id, as_of in picked:
        # Random moments from as_of_date 00:00:00 itself up to the end of the data.
        offset = rng.integers(0, int((data_end - as_of).total_seconds()) - 1)
        for event_type in ("login", "invoice_paid", "payment_failed", "ticket_opened"):
            inserted.append(
                (customer_id, as_of + pd.Timedelta(seconds=int(offset)), event_type, 3.0)
            )
    # ...and one event at exactly midnight of each picked as_of_date: the boundary itself.
    inserted += [(customer_id, as_of, "login", 1.0) for customer_id, as_of in picked]
    with wh.transaction() as session:
        for row in inserted:
            session.execute("INSERT INTO raw.events VALUES (?, ?, ?, ?, 'property-test')", row)

    assert materialize(FEATURE_GRAPH).ok
    after = _features(wh)
    assert after.index.equals(before.index)
    earliest = (
        pd.DataFrame(inserted, columns=["customer_id", "at", "type", "value"])
        .groupby("customer_id")["at"]
        .min()
    )
    changed_later = 0
    for customer_id, first_event in earliest.items():
        rows = before.loc[customer_id].index
        untouched = rows[rows <= first_event]
        pd.testing.assert_frame_equal(
            before.loc[customer_id].loc[untouched, FEATURES],
            after.loc[customer_id].loc[untouched, FEATURES],
            check_dtype=False,
        )
        later = rows[rows > first_event]
        if len(later):
            changed_later += int(
                before.loc[(customer_id, later[0]), "login_count_180d"]
                != after.loc[(customer_id, later[0]), "login_count_180d"]
            )
    assert changed_later > 0, "the inserted events must reach the snapshots after them"


def test_recomputation_check_catches_leaks_and_wrong_labels(built_settings):
    wh = Warehouse(built_settings)
    clean = check_training_examples(wh, built_settings, sample_size=100)
    assert clean.passed and clean.sampled == 100

    with wh.transaction() as session:  # a feature that counted the as_of day itself
        session.execute(
            "UPDATE analytics.training_examples SET login_count_30d = login_count_30d + 1"
        )
    leaky = check_training_examples(wh, built_settings, sample_size=50)
    assert not leaky.passed
    assert set(leaky.mismatches["column"]) == {"login_count_30d"}

    with wh.transaction() as session:
        session.execute(
            "UPDATE analytics.training_examples SET login_count_30d = login_count_30d - 1"
        )
        session.execute("UPDATE analytics.training_examples SET churned = 1 - churned")
    wrong_labels = check_training_examples(wh, built_settings, sample_size=50)
    assert set(wrong_labels.mismatches["column"]) == {"churned"}


def test_open_label_windows_fail_the_check(built_settings):
    wh = Warehouse(built_settings)
    data_end = wh.query_df("SELECT data_end FROM analytics.int_data_bounds")["data_end"].iloc[0]
    late = pd.Timestamp(data_end) - pd.Timedelta(days=5)
    with wh.transaction() as session:
        session.execute(
            "UPDATE analytics.training_examples SET as_of_date = ? WHERE customer_id = "
            "(SELECT min(customer_id) FROM analytics.training_examples)",
            (late.date(),),
        )
    report = check_training_examples(wh, built_settings, sample_size=10)
    assert report.open_windows >= 1 and not report.passed
    assert isinstance(data_end, dt.date)


def test_dbt_docs_build_a_feature_catalog(built_settings):
    import json

    from churn_assets import cli
    from churn_assets.runner import DBT_PROJECT_DIR

    assert cli.main(["dbt", "docs", "generate"]) == 0
    target = DBT_PROJECT_DIR / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    node = manifest["nodes"]["model.churn_lakehouse.customer_features"]
    documented = {name for name, col in node["columns"].items() if col["description"]}
    built = set(catalog["nodes"]["model.churn_lakehouse.customer_features"]["columns"])
    assert len(built) >= 62 and built == documented
