"""`churn import` refuses bad files whole, naming the file, the column and the rows."""

import pandas as pd
import pytest

from warehouse.contract import ContractError
from warehouse.importer import import_files

GOOD_CUSTOMERS = "customer_id,signup_at,plan\nA,2024-01-01,basic\nB,2024-02-01 10:00:00,pro\n"
GOOD_EVENTS = (
    "customer_id,occurred_at,event_type,value\nA,2024-03-01,purchase,10\nB,2024-03-02,purchase,\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_files_land_with_a_content_hash_in_their_name(tmp_path):
    placed = import_files(
        {
            "customers": _write(tmp_path, "customers.csv", GOOD_CUSTOMERS),
            "events": _write(tmp_path, "events.csv", GOOD_EVENTS),
        },
        tmp_path / "landing",
    )
    assert {p.table for p in placed} == {"customers", "events"}
    assert all(
        p.destination.exists() and p.destination.parent.parent == tmp_path / "landing"
        for p in placed
    )


@pytest.mark.parametrize(
    "table, text, column, rows",
    [
        ("customers", "customer_id,signup_at\nA,2024-01-01\nA,2024-01-02\n", "customer_id", "1, 2"),
        (
            "subscriptions",
            "customer_id,started_at,ended_at,plan,monthly_revenue\nA,2024-01-01,,basic,5\nA,2024-01-01,,pro,9\n",
            "customer_id, started_at",
            "1, 2",
        ),
        ("customers", "customer_id,signup_at\nA,2024-01-01\n,2024-01-02\n", "customer_id", "2"),
        ("customers", "customer_id,signup_at\nA,not a date\n", "signup_at", "1"),
        ("customers", "customer_id,signup_at\nA,2999-01-01\n", "signup_at", "1"),
        (
            "events",
            "customer_id,occurred_at,event_type,value\nA,2024-01-01,login,x\n",
            "value",
            "1",
        ),
        (
            "events",
            "customer_id,occurred_at,event_type\nA,2024-01-01,login\nZ,2024-01-01,login\n",
            "customer_id",
            "2",
        ),
        (
            "subscriptions",
            "customer_id,started_at,ended_at,plan,monthly_revenue\nA,2024-01-01,,basic,-5\n",
            "monthly_revenue",
            "1",
        ),
        (
            "subscriptions",
            "customer_id,started_at,ended_at,plan,monthly_revenue\nA,2024-02-01,2024-01-01,basic,5\n",
            "row",
            "1",
        ),
        ("labels", "customer_id,as_of_date,churned\nA,2024-05-01,2\n", "churned", "1"),
        ("events", "customer_id,event_type\nA,login\n", "occurred_at", ""),
    ],
)
def test_bad_file_is_rejected_whole_with_file_column_and_rows(tmp_path, table, text, column, rows):
    files = {"customers": _write(tmp_path, "customers.csv", GOOD_CUSTOMERS)}
    files[table] = _write(tmp_path, "bad.csv", text)
    with pytest.raises(ContractError) as info:
        import_files(files, tmp_path / "landing")
    message = str(info.value)
    assert "bad.csv" in message
    assert f"column '{column}'" in message
    if rows:
        assert f"at rows {rows}" in message
    assert not (tmp_path / "landing").exists(), "nothing may be placed when a file is refused"


def test_parquet_with_timezones_is_normalized_to_utc(tmp_path):
    path = tmp_path / "customers.parquet"
    pd.DataFrame(
        {
            "customer_id": ["A"],
            "signup_at": pd.to_datetime(["2024-01-01 12:00"]).tz_localize("Europe/Berlin"),
        }
    ).to_parquet(path)
    placed = import_files({"customers": path}, tmp_path / "landing")
    assert placed[0].rows == 1


def test_missing_customers_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--customers"):
        import_files({"events": _write(tmp_path, "e.csv", GOOD_EVENTS)}, tmp_path / "landing")


def test_unreadable_file_is_refused_with_the_reason(tmp_path):
    broken = tmp_path / "customers.parquet"
    broken.write_bytes(b"this is not parquet")
    with pytest.raises(
        ContractError,
        match=r"(?s)customers.parquet breaks .*the file fails readable_file \(not a \.parquet file",
    ):
        import_files({"customers": broken}, tmp_path / "landing")
