"""Values that look like SQL stay data, on DuckDB and on Postgres: attribute values,
landing file names and ledger text full of quotes, backslashes, `?`, `%s` and `;--`,
and customer ids and (configured activity) event types with the SQL-looking characters
the raw contract allows (`--`, `:name`, `@p`, dotted names), go through ingestion, dbt,
the point-in-time recomputation, the feature lookups and the ledgers without breaking
anything or matching any other row."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.runner import materialize
from tests.conftest import FEATURE_GRAPH
from warehouse.connection import Warehouse
from warehouse.point_in_time import check_training_examples
from warehouse.promotion_ledger import LedgerEntry, PromotionLedger
from warehouse.settings import Settings, load_settings

HOSTILE = [
    "o'brien",
    "back\\slash\\",
    "what?",
    "100%s",
    "x'); DROP TABLE raw.events;--",
    "' OR '1'='1",
]
# The raw contract refuses quotes, backslashes, `?`, `%` and `;` in ids and event types
# (test_import_validation); what it lets through still includes comment dashes, named
# and numbered parameter markers and qualified names.
HOSTILE_IDS = ["--", "x--", ":id", "@p", "p:1", "raw.events"]
# Event types become activity types through a comma-separated variable: no commas.
LOGIN_TYPE = "log--in:1"
USE_TYPE = "use.--:x"
HOSTILE_REGION = "eu'; DELETE FROM raw.customers;--"


def _rewrite_landing(landing: Path) -> dict[str, str]:
    """Give six customers SQL-looking ids (in every table), rename the activity event
    types, and give one events file a hostile name; returns old id -> new id."""
    first = pd.read_parquet(sorted((landing / "customers").glob("*.parquet"))[0])
    renamed = dict(zip(first["customer_id"].head(len(HOSTILE_IDS)), HOSTILE_IDS, strict=True))
    for table in ("customers", "subscriptions", "events", "labels"):
        for path in sorted((landing / table).glob("*.parquet")):
            frame = pd.read_parquet(path)
            frame["customer_id"] = frame["customer_id"].replace(renamed)
            if table == "events":
                frame["event_type"] = frame["event_type"].replace(
                    {"login": LOGIN_TYPE, "feature_use": USE_TYPE}
                )
            if table == "customers":
                frame.loc[frame["customer_id"].isin(HOSTILE_IDS), "region"] = HOSTILE_REGION
            frame.to_parquet(path, index=False)
    events = sorted((landing / "events").glob("*.parquet"))[0]
    events.rename(events.with_name(f"{events.stem} it's a \\ ?%s;--.parquet"))
    return renamed


@pytest.fixture
def hostile_settings(settings: Settings, home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    _rewrite_landing(home / "landing")
    monkeypatch.setenv("CHURN_DEFINITION", "inactivity")
    monkeypatch.setenv("CHURN_ACTIVITY_EVENT_TYPES", f"{LOGIN_TYPE},{USE_TYPE}")
    families = f'{{"{LOGIN_TYPE}": "login", "{USE_TYPE}": "usage"}}'.replace("\\", "\\\\")
    monkeypatch.setenv("CHURN_EVENT_FAMILIES", families)
    return load_settings()


def test_hostile_ids_event_types_and_file_names_are_data(hostile_settings: Settings) -> None:
    settings = hostile_settings
    assert settings.churn.activity_event_types == (LOGIN_TYPE, USE_TYPE)
    assert settings.event_families[LOGIN_TYPE] == "login"
    summary = materialize(FEATURE_GRAPH)
    assert summary.ok, (summary.failed_steps, summary.not_run, summary.checks)

    wh = Warehouse(settings)
    customers = wh.query_df("SELECT customer_id, _source_file FROM raw.customers")
    assert len(customers) == 300 and set(HOSTILE_IDS) <= set(customers["customer_id"])
    event_files = set(wh.query_df("SELECT DISTINCT _source_file FROM raw.events")["_source_file"])
    ledger = wh.query_df("SELECT file_name FROM raw.ingestion_ledger WHERE table_name = 'events'")
    hostile_file = next(f for f in event_files if "it's a" in f)
    assert hostile_file.endswith(" it's a \\ ?%s;--.parquet")
    assert set(ledger["file_name"]) == event_files and len(event_files) == 200

    features = wh.query_df("SELECT * FROM analytics.customer_features")
    assert set(HOSTILE_IDS) <= set(features["customer_id"])
    assert not features.duplicated(["customer_id", "as_of_date"]).any()
    # the renamed event types landed in their families and count as activity
    assert features["login_count_30d"].sum() > 0 and features["usage_count_30d"].sum() > 0
    assert features["active_days_30d"].sum() > 0
    build = wh.query_df(
        "SELECT churn_definition, activity_event_types FROM analytics.feature_build"
    )
    assert build.iloc[0].tolist() == ["inactivity", f"{LOGIN_TYPE},{USE_TYPE}"]
    examples = wh.query_df(
        "SELECT customer_id, label_source, churned FROM analytics.training_examples"
    )
    assert set(examples["label_source"]) == {"inactivity"}
    assert 0 < examples["churned"].mean() < 1

    # The recomputation fetches the raw rows of its sampled customers by bound ids;
    # keeping only the hostile customers' examples makes it sample exactly those (and
    # a bound DELETE that leaked would leave other customers or none).
    hostile_examples = examples[examples["customer_id"].isin(HOSTILE_IDS)]
    placeholders = ", ".join("?" * len(HOSTILE_IDS))
    with wh.transaction() as session:
        session.execute(
            f"DELETE FROM analytics.training_examples WHERE customer_id NOT IN ({placeholders})",
            HOSTILE_IDS,
        )
    kept = wh.query_df("SELECT customer_id FROM analytics.training_examples")
    assert sorted(kept["customer_id"]) == sorted(hostile_examples["customer_id"])
    assert set(kept["customer_id"]) == set(HOSTILE_IDS)
    report = check_training_examples(wh, settings, sample_size=len(kept))
    assert report.sampled == len(kept) and report.passed, report.mismatches.head()

    # Lookups by id return exactly that customer, or nothing when it is not live.
    live = set(wh.query_df("SELECT customer_id FROM analytics.scoring_features")["customer_id"])
    assert live & set(HOSTILE_IDS), "some hostile customers must be live at data_end"
    for customer_id in HOSTILE_IDS:
        frame = load_scoring_frame(wh, [customer_id])
        expected = [customer_id] if customer_id in live else []
        assert frame["customer_id"].tolist() == expected
        assert frame["attr_region"].tolist() == [HOSTILE_REGION] * len(expected)
    assert load_scoring_frame(wh, ["nobody' OR '1'='1"]).empty
    assert load_scoring_frame(wh, ["%", "?", "\\"]).empty


def test_ledgers_store_hostile_text_verbatim(settings: Settings) -> None:
    ledger = PromotionLedger(Warehouse(settings))
    for i, name in enumerate(HOSTILE):
        entry_id = ledger.append(
            LedgerEntry(
                action="promote",
                model_name=name,
                alias="champion",
                version_before=None,
                version_after=str(i),
                triggered_by=f"api:{name}",
                reasons=[name, "%s %s ?"],
                evidence={"note": name},
            )
        )
        assert entry_id == i + 1
    for i, name in enumerate(HOSTILE):
        (row,) = ledger.history(name).itertuples()
        assert (row.model_name, row.version_after, row.triggered_by) == (
            name,
            str(i),
            f"api:{name}",
        )
        assert row.reasons == f"{name}; %s %s ?"
    assert ledger.history("' OR '1'='1' --").empty
    assert len(ledger.history()) == len(HOSTILE)
    assert isinstance(ledger.history()["recorded_at"].iloc[0], pd.Timestamp | dt.datetime)
