"""Landing zone -> raw tables on DuckDB and Postgres: idempotent, atomic, strict, and a
bad file is set aside while the good ones load in the same run."""

import datetime as dt
import io
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import ingestion
from warehouse.connection import LEDGER_TABLE, Warehouse
from warehouse.ingestion import Ingestor
from warehouse.landing import landing_files

TABLES = ("customers", "subscriptions", "events", "labels")


def _counts(wh: Warehouse) -> dict[str, int]:
    tables = ("customers", "customer_attributes", "subscriptions", "events", "labels")
    return {
        t: int(wh.query_df(f"SELECT count(*) AS n FROM raw.{t}")["n"].iloc[0]) for t in tables
    } | {"ledger": int(wh.query_df(f"SELECT count(*) AS n FROM {LEDGER_TABLE}")["n"].iloc[0])}


def _ingest_all(wh: Warehouse, landing) -> None:
    ingestor = Ingestor(wh, landing)
    for table in TABLES:
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
    real_insert = ingestion._insert_staged
    calls = {"n": 0}

    def failing_insert(session, table, staged):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("disk full")
        real_insert(session, table, staged)

    monkeypatch.setattr(ingestion, "_insert_staged", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        ingestor.ingest("events")
    assert _counts(wh) == before
    assert not (settings.landing_dir / "_rejected").exists(), "a warehouse failure rejects nothing"
    monkeypatch.setattr(ingestion, "_insert_staged", real_insert)
    assert ingestor.ingest("events").rows > 0


def test_bad_file_is_set_aside_and_the_good_files_load_in_the_same_run(settings):
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, settings.landing_dir)
    ingestor.ingest("customers")
    bad = settings.landing_dir / "events" / "zz-bad.csv"
    pd.DataFrame(
        {
            "customer_id": ["C0000001", None],
            "occurred_at": ["2025-03-01", "2025-03-02"],
            "event_type": ["login"] * 2,
        }
    ).to_csv(bad, index=False)
    good = len(landing_files(settings.landing_dir, "events")) - 1

    report = ingestor.ingest("events")

    assert [r.name for r in report.rejected] == ["zz-bad.csv"]
    assert len(report.files) == good and report.rows == _counts(wh)["events"] > 0
    assert "1 file(s) REJECTED" in report.rejected_line(settings.landing_dir)
    rejected = settings.landing_dir / "_rejected" / "events"
    assert (rejected / "zz-bad.csv").exists() and not bad.exists()
    error = (rejected / "zz-bad.csv.error.txt").read_text()
    assert "zz-bad.csv" in error and "column 'customer_id' fails not_nullable at rows 2" in error
    again = ingestor.ingest("events")
    assert again.rejected == [] and again.files == [], "the bad file fails no later run"


def test_new_content_under_an_ingested_name_is_refused(settings):
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, settings.landing_dir)
    ingestor.ingest("customers")
    ingestor.ingest("events")
    before = _counts(wh)
    first = landing_files(settings.landing_dir, "events")[0]
    frame = pd.read_parquet(first)
    frame.assign(value=frame["value"].fillna(0) + 1).to_parquet(first, index=False)
    report = ingestor.ingest("events")
    assert [r.name for r in report.rejected] == [first.name]
    assert "already ingested with other content" in report.rejected[0].reason
    assert _counts(wh) == before
    assert (settings.landing_dir / "_rejected" / "events" / first.name).exists()


def test_files_in_flight_and_hidden_files_are_never_read(settings):
    """Writers write <name>.tmp and rename: a half-written file is not a batch yet."""
    wh = Warehouse(settings)
    folder = settings.landing_dir / "customers"
    shutil.rmtree(settings.landing_dir)
    folder.mkdir(parents=True)
    (folder / "2025-01-01.csv").write_text("customer_id,signup_at\nA,2024-01-01\n")
    # a writer still copying: truncated mid-row, under its temporary name
    (folder / "2025-01-02.csv.tmp").write_text("customer_id,signup_at\nB,2024-01-0")
    (folder / ".2025-01-03.csv").write_text("customer_id,signup_at\nC,2024-01-01\n")
    report = Ingestor(wh, settings.landing_dir).ingest("customers")
    assert report.files == ["2025-01-01.csv"] and report.rejected == []
    assert (folder / "2025-01-02.csv.tmp").exists(), "in-flight files are left alone"
    (folder / "2025-01-02.csv.tmp").write_text("customer_id,signup_at\nB,2024-01-02\n")
    (folder / "2025-01-02.csv.tmp").rename(folder / "2025-01-02.csv")
    assert Ingestor(wh, settings.landing_dir).ingest("customers").files == ["2025-01-02.csv"]
    assert sorted(wh.query_df("SELECT customer_id FROM raw.customers")["customer_id"]) == ["A", "B"]


# --- poison files: each kind is set aside with a report; the good files still load ---

GOOD = {
    "customers": "customer_id,signup_at,plan\nC1,2024-01-01,basic\nC2,2024-01-02T10:00:00Z,pro\n",
    "subscriptions": (
        "customer_id,started_at,ended_at,plan,monthly_revenue\n"
        "C1,2024-01-01,,basic,10\nC2,2024-01-02,2024-02-01,pro,20.5\n"
    ),
    "events": (
        "customer_id,occurred_at,event_type,value\n"
        "C1,2024-03-01T10:00:00,login,\nC2,2024-03-01 11:00:00+02:00,purchase,12.5\n"
    ),
    "labels": "customer_id,as_of_date,churned\nC1,2024-04-01,0\nC2,2024-04-01,1\n",
}


def _parquet(columns: dict[str, pa.Array]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def _tomorrow_plus_one() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")


EVENTS_HEAD = "customer_id,occurred_at,event_type,value\n"
# kind -> (table, file name, content, column, rule, rows as the report shows them)
POISON = {
    "churned_half": (
        "labels",
        "bad.csv",
        b"customer_id,as_of_date,churned\nC1,2024-05-01,1\nC2,2024-05-01,0.5\n",
        "churned",
        "label_value",
        "2",
    ),
    "number_1e400": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD}C1,2024-03-02,purchase,1e400\n".encode(),
        "value",
        "finite_number",
        "1",
    ),
    "number_inf": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD}C1,2024-03-02,purchase,5\nC1,2024-03-02,purchase,-inf\n".encode(),
        "value",
        "finite_number",
        "2",
    ),
    "number_nan_text": (
        "subscriptions",
        "bad.csv",
        b"customer_id,started_at,ended_at,plan,monthly_revenue\nC3,2024-01-01,,basic,NaN\n",
        "monthly_revenue",
        "finite_number",
        "1",
    ),
    "number_nan_parquet": (
        "events",
        "bad.parquet",
        _parquet(
            {
                "customer_id": pa.array(["C1", "C2"]),
                "occurred_at": pa.array([dt.datetime(2024, 3, 2)] * 2, pa.timestamp("us")),
                "event_type": pa.array(["purchase"] * 2),
                "value": pa.array([1.0, float("nan")], pa.float64()),
            }
        ),
        "value",
        "finite_number",
        "2",
    ),
    "attribute_inf_parquet": (
        "customers",
        "bad.parquet",
        _parquet(
            {
                "customer_id": pa.array(["C7"]),
                "signup_at": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
                "seats": pa.array([np.inf]),
            }
        ),
        "seats",
        "finite_number",
        "1",
    ),
    "nul_byte": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD}C1,2024-03-02,login,\nC2,2024-03-02,log\x00in,\n".encode(),
        "(file)",
        "no_nul_bytes",
        "2",
    ),
    "broken_encoding": (
        "customers",
        "bad.csv",
        "customer_id,signup_at,city\nC8,2024-01-01,Köln\n".encode("latin-1"),
        "(file)",
        "utf8_text",
        "1",
    ),
    "missing_column": (
        "events",
        "bad.csv",
        b"customer_id,event_type,value\nC1,login,\n",
        "occurred_at",
        "required_column",
        "",
    ),
    "extra_column": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD[:-1]},channel\nC1,2024-03-02,login,,web\n".encode(),
        "channel",
        "known_column",
        "",
    ),
    "duplicate_key_in_file": (
        "customers",
        "bad.csv",
        b"customer_id,signup_at\nC9,2024-01-01\nC9,2024-01-02\n",
        "customer_id",
        "field_uniqueness",
        "1, 2",
    ),
    "duplicate_key_across_files": (
        "customers",
        "zz-again.csv",
        b"customer_id,signup_at\nC9,2024-01-01\nC2,2024-01-02\n",
        "customer_id",
        "unique_over_table",
        "2",
    ),
    "duplicate_label_key": (
        "labels",
        "bad.csv",
        b"customer_id,as_of_date,churned\nC1,2024-05-01,1\nC1,2024-05-01,0\n",
        "as_of_date, customer_id",
        "multiple_fields_uniqueness",
        "1, 2",
    ),
    "before_1970": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD}C1,1969-12-31T23:59:59,login,\n".encode(),
        "occurred_at",
        "in_time_range",
        "1",
    ),
    "after_tomorrow": (
        "events",
        "bad.csv",
        f"{EVENTS_HEAD}C1,2024-03-02,login,\nC1,{_tomorrow_plus_one()},login,\n".encode(),
        "occurred_at",
        "in_time_range",
        "2",
    ),
}


def _fresh_landing(landing) -> None:
    shutil.rmtree(landing)
    for table, text in GOOD.items():
        (landing / table).mkdir(parents=True)
        (landing / table / "a-good.csv").write_text(text)


@pytest.mark.parametrize("kind", sorted(POISON))
def test_poison_file_is_set_aside_and_the_good_files_load(settings, kind):
    table, name, content, column, rule, rows = POISON[kind]
    landing = settings.landing_dir
    _fresh_landing(landing)
    (landing / table / name).write_bytes(content)
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, landing)

    report = ingestor.ingest(table)

    assert report.files == ["a-good.csv"], "the good file loads in the same run"
    assert [r.name for r in report.rejected] == [name]
    rejected = landing / "_rejected" / table
    assert (rejected / name).read_bytes() == content and not (landing / table / name).exists()
    error = (rejected / f"{name}.error.txt").read_text()
    subject = "the file" if column == "(file)" else f"column '{column}'"
    assert name in error and f"{subject} fails {rule}" in error, error
    if rows:
        assert f"at rows {rows}" in error, error
    assert _counts(wh)[table] == 2, "only the good file's rows are in the table"
    again = ingestor.ingest(table)
    assert again.rejected == [] and again.files == [] and _counts(wh)[table] == 2


def test_the_raw_asset_warns_about_a_rejected_file_and_the_run_succeeds(duckdb_settings):
    from churn_assets.runner import materialize

    bad = duckdb_settings.landing_dir / "events" / "zz-bad.csv"
    bad.write_text("customer_id,occurred_at,event_type,value\nC0000001,2025-03-01,login,inf\n")

    summary = materialize("group:raw")

    assert summary.ok, "a rejected file is a warning, not a failed run"
    warned = {(asset, name): text for asset, name, _, text in summary.warnings}
    assert "zz-bad.csv" in warned[("raw/events", "landing_files_accepted")]
    assert ("raw/customers", "landing_files_accepted", True) in {c[:3] for c in summary.checks}
    events = summary.materialized["raw/events"]
    assert events["rejected_files"] == 1 and events["new_files"] > 0
    assert events["dagster/row_count"] == events["new_rows"] > 0


def test_ingested_tables_pass_the_blocking_contract_check(settings):
    """The table check reads rows back through each driver (dates as date objects on
    Postgres) and must judge them by the same rules the files met."""
    from churn_assets.defs.raw import check_raw_table

    _fresh_landing(settings.landing_dir)
    wh = Warehouse(settings)
    _ingest_all(wh, settings.landing_dir)
    for table in TABLES:
        result = check_raw_table(wh, table)
        assert result.passed, (table, result.metadata["violations"])
        assert result.metadata["rows_checked"].value == 2
    with wh.transaction() as session:
        session.execute(
            "INSERT INTO raw.events VALUES ('C1', ?, 'login', 1, 'manual')",
            (dt.datetime(1969, 1, 1),),
        )
    assert not check_raw_table(wh, "events").passed
