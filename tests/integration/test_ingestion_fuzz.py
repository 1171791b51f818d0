"""Property: whatever lands, ingestion (DuckDB and Postgres) never fails on a file's
content, accounts for every file (ingested or set aside) and lets into the raw
tables only rows that meet the contract."""

import datetime as dt
import shutil
import uuid

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.landing_fuzz import (
    ATTRIBUTE,
    COLUMNS,
    breaches,
    csv_file,
    landing_file,
    parquet_file,
)
from warehouse.connection import LEDGER_TABLE, Session, Warehouse
from warehouse.ingestion import CHECKS_FAILED, Ingestor
from warehouse.landing import REJECTED_DIR

TABLES = ("customers", "subscriptions", "events", "labels")
NUMBER_COLUMNS = {
    "subscriptions": ["monthly_revenue"],
    "events": ["value"],
    "labels": ["churned"],
    "customer_attributes": ["value_number"],
}


@st.composite
def landing_batch(draw: st.DrawFn) -> list[tuple[str, str, bytes]]:
    """A few files for random tables: (table, suffix, content)."""
    batch = []
    for _ in range(draw(st.integers(1, 3))):
        table = draw(st.sampled_from(TABLES))
        suffix, content = draw(
            st.one_of(
                st.tuples(st.just(".csv"), csv_file(table)),
                st.tuples(st.just(".parquet"), parquet_file(table)),
                landing_file(table),
            )
        )
        batch.append((table, suffix, content))
    return batch


def _records(wh: Session, table: str, columns: list[str]) -> list[dict]:
    frame = wh.query_df(f"SELECT {', '.join(columns)} FROM raw.{table}")
    frame = frame.astype(object).where(frame.notna(), None)  # drivers differ on NULL
    return frame.to_dict("records")


def _non_finite(wh: Session, table: str, column: str) -> int:
    text = f"lower(CAST({column} AS VARCHAR))"
    sql = (
        f"SELECT count(*) AS n FROM raw.{table} "
        f"WHERE {text} IN ('nan', 'inf', '-inf', 'infinity', '-infinity')"
    )
    return int(wh.query_df(sql)["n"].iloc[0])


def _assert_raw_tables_meet_the_contract(warehouse: Warehouse) -> None:
    with warehouse.session() as session:
        _assert_tables_meet_the_contract(session)


def _assert_tables_meet_the_contract(wh: Session) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for table in TABLES:
        rows = _records(wh, table, COLUMNS[table])
        assert breaches(table, COLUMNS[table], rows, now) == [], table
    for table, columns in NUMBER_COLUMNS.items():
        for column in columns:
            assert _non_finite(wh, table, column) == 0, (table, column)
    attributes = _records(wh, "customer_attributes", ["attribute_name", "value_text"])
    assert all(ATTRIBUTE.fullmatch(r["attribute_name"]) for r in attributes)
    texts = [r["value_text"] for r in attributes if r["value_text"] is not None]
    assert all(len(t) <= 1000 and "\x00" not in t for t in texts)
    ledger = set(wh.query_df(f"SELECT file_name FROM {LEDGER_TABLE}")["file_name"])
    for table in (*TABLES, "customer_attributes"):
        sources = set(wh.query_df(f"SELECT DISTINCT _source_file FROM raw.{table}")["_source_file"])
        assert sources <= ledger, f"rows of {table} from files the ledger does not hold"


def test_any_landing_content_is_ingested_or_set_aside_never_a_crash(settings):
    landing = settings.landing_dir
    shutil.rmtree(landing)
    wh = Warehouse(settings)
    ingestor = Ingestor(wh, landing)
    outcomes = {"ingested": 0, "set aside": 0}

    @hypothesis_settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(landing_batch())
    def check(batch: list[tuple[str, str, bytes]]) -> None:
        written = []
        for table, suffix, content in batch:
            path = landing / table / f"{uuid.uuid4().hex}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            written.append((table, path))
        reports = {table: ingestor.ingest(table) for table in TABLES}
        ledger = wh.query_df(f"SELECT table_name, file_name FROM {LEDGER_TABLE}")
        ingested = set(zip(ledger["table_name"], ledger["file_name"], strict=True))
        for table, path in written:
            rejected = landing / REJECTED_DIR / table / path.name
            skipped = path.exists() and (table, path.name) not in ingested
            if rejected.exists():
                outcomes["set aside"] += 1
                event("set aside")
                report = (rejected.parent / f"{path.name}.error.txt").read_text()
                assert CHECKS_FAILED not in report, "the checks crashed on this file"
                assert not path.exists()
            elif (table, path.name) in ingested:
                outcomes["ingested"] += 1
                event("ingested")
            else:
                # same content as a file already ingested: loads once, under the first name
                assert skipped and reports[table].skipped_files > 0
        _assert_raw_tables_meet_the_contract(wh)

    check()
    assert outcomes["ingested"] > 0 and outcomes["set aside"] > 0, outcomes


def test_the_oracle_sees_a_contract_breach_in_the_raw_tables(duckdb_settings):
    """The property above is only as good as its oracle: a bad row is noticed."""
    wh = Warehouse(duckdb_settings)
    wh.ensure_raw_tables()
    _assert_raw_tables_meet_the_contract(wh)
    with wh.transaction() as session:
        session.execute(
            "INSERT INTO raw.events VALUES ('C1', TIMESTAMP '2024-01-01', 'login', ?, 'f')",
            (float("inf"),),
        )
    try:
        _assert_raw_tables_meet_the_contract(wh)
    except AssertionError:
        return
    raise AssertionError("an infinite value in raw.events went unnoticed")
