"""Property: whatever bytes a user's file holds, `churn import` either refuses it with a
ContractError or lands a file whose every row meets the raw contract."""

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.landing_fuzz import breaches, csv_file, parquet_file, read_landed
from warehouse.contract import ContractError
from warehouse.importer import import_files
from warehouse.ingestion import CHECKS_FAILED

KNOWN_CUSTOMERS = "customer_id,signup_at\nC1,2024-01-01\nC2,2024-01-02\nC3,2024-01-03\n"
TABLES = ("customers", "subscriptions", "events", "labels")
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _import_refuses_or_lands_good_rows(table: str, suffix: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = {"customers": root / "known.csv"}
        files["customers"].write_text(KNOWN_CUSTOMERS)
        files[table] = root / f"{table}{suffix}"
        files[table].write_bytes(content)
        try:
            placed = import_files(files, root / "landing")
        except ContractError as refused:
            assert CHECKS_FAILED not in str(refused), "the checks crashed on this file"
            event("refused")
            assert not (root / "landing").exists(), "a refused import places nothing"
            return
        event("landed")
        landed = next(p.destination for p in placed if p.table == table)
        assert landed.read_bytes() == content, "what lands is what was validated"
        columns, rows = read_landed(suffix, content)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert breaches(table, columns, rows, now) == []
        if table != "customers":
            assert {str(r["customer_id"]) for r in rows} <= {"C1", "C2", "C3"}


# 4 tables x 2 formats x 25 examples: about 200 files, well under 30 s.
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_import_refuses_cleanly_or_lands_only_rows_that_meet_the_contract(table, suffix):
    files = csv_file(table) if suffix == ".csv" else parquet_file(table)

    @FUZZ
    @given(files)
    def check(content: bytes) -> None:
        _import_refuses_or_lands_good_rows(table, suffix, content)

    check()


@FUZZ
@given(st.sampled_from(TABLES), st.sampled_from([".csv", ".parquet"]), st.binary(max_size=300))
def test_random_bytes_are_refused_cleanly(table, suffix, content):
    _import_refuses_or_lands_good_rows(table, suffix, content)
