"""Landing zone -> raw tables on DuckDB and Postgres: idempotent, atomic, strict."""

import shutil

import pandas as pd
import pytest

from warehouse import ingestion
from warehouse.connection import LEDGER_TABLE, Warehouse
from warehouse.ingestion import IngestionError, Ingestor, landing_files


def _counts(wh: Warehouse) -> dict[str, int]:
    tables = ("customers", "customer_attributes", "subscriptions", "events", "labels")
    return {
        t: int(wh.query_df(f"SELECT count(*) AS n FROM raw.{t}")["n"].iloc[0]) for t in tables
    } | {"ledger": int(wh.query_df(f"SELECT count(*) AS n FROM {LEDGER_TABLE}")["n"].iloc[0])}


def _ingest_all(wh: Warehouse, landing) -> None:
    ingestor = Ingestor(wh, landing)
    for table in ("customers", "subscriptions", "events", "labels"):
        ingestor.ingest(table)


def test_reingesting_changes_nothing(settings):
    wh = Warehouse(settings)
    _ingest_all(wh, settings.landing_dir)
    first = _counts(wh)
    assert first["customers"] == 300 and first["events"] > 10_000
    assert first["customer_attributes"] == 300 * 7
    # The same files again, and a copy of one under another name: nothing changes.
    events = landing_files(settings.landing_dir, "events")
    shutil.copy(events[5], events[5].with_name("copy-of-" + events[5].name))
    _ingest_all(wh, settings.landing_dir)
    assert _counts(wh) == first


def test_subscription_restatements_upsert_on_their_key(settings):
    wh = Warehouse(settings)
    _ingest_all(wh, settings.landing_dir)
    subs = wh.query_df(
        "SELECT customer_id, started_at, count(*) AS n FROM raw.subscriptions GROUP BY 1, 2"
    )
    assert subs["n"].max() == 1
    ended = int(
        wh.query_df("SELECT count(*) AS n FROM raw.subscriptions WHERE ended_at IS NOT NULL")[
            "n"
        ].iloc[0]
    )
    assert ended > 0, "later batches set ended_at on periods that earlier batches opened"


def test_failure_mid_batch_leaves_tables_as_they_were(settings, monkeypatch):
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, settings.landing_dir)
    ingestor.ingest("customers")
    before = _counts(wh)
    real_append = ingestion._append
    calls = {"n": 0}

    def failing_append(session, table, frame, file_name):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("disk full")
        real_append(session, table, frame, file_name)

    monkeypatch.setattr(ingestion, "_append", failing_append)
    with pytest.raises(RuntimeError, match="disk full"):
        ingestor.ingest("events")
    assert _counts(wh) == before
    monkeypatch.setattr(ingestion, "_append", real_append)
    assert ingestor.ingest("events").rows > 0


def test_bad_file_is_moved_aside_and_nothing_is_ingested(settings):
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, settings.landing_dir)
    ingestor.ingest("customers")
    before = _counts(wh)
    bad = settings.landing_dir / "events" / "zz-bad.csv"
    pd.DataFrame(
        {
            "customer_id": ["C0000001", None],
            "occurred_at": ["2025-03-01", "2025-03-02"],
            "event_type": ["login"] * 2,
        }
    ).to_csv(bad, index=False)
    with pytest.raises(IngestionError) as info:
        ingestor.ingest("events")
    assert "zz-bad.csv" in str(info.value) and "customer_id" in str(info.value)
    assert _counts(wh) == before
    rejected = settings.landing_dir / "_rejected" / "events"
    assert (rejected / "zz-bad.csv").exists() and (rejected / "zz-bad.csv.error.txt").exists()
    assert ingestor.ingest("events").rows > 0, "the next run ingests the good files"


def test_new_content_under_an_ingested_name_is_refused(settings):
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, settings.landing_dir)
    ingestor.ingest("customers")
    ingestor.ingest("events")
    before = _counts(wh)
    first = landing_files(settings.landing_dir, "events")[0]
    frame = pd.read_parquet(first)
    frame.assign(value=frame["value"].fillna(0) + 1).to_parquet(first, index=False)
    with pytest.raises(IngestionError, match="already ingested with other content"):
        ingestor.ingest("events")
    assert _counts(wh) == before
    assert (settings.landing_dir / "_rejected" / "events" / first.name).exists()
