"""`churn import` refuses bad files whole, naming the file, the column and the rows."""

import pandas as pd
import pytest

from warehouse.contract import ContractError
from warehouse.importer import import_files
from warehouse.ingestion import valid_frame

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


# --- timestamps: one format per file, nothing guessed ---

CUSTOMERS_HEAD = "customer_id,signup_at\n"


@pytest.mark.parametrize(
    "text, rule",
    [
        ("03/04/2024", "timestamp_format (ISO 8601"),  # 3 April or 4 March? not guessed
        ("2024-13-01", "timestamp_value"),  # no month 13, no day/month swap
        ("2024-02-30", "timestamp_value"),
        ("1-01-01", "timestamp_format (ISO 8601"),  # not year 2001
        ("01-01-01", "timestamp_format (ISO 8601"),
        ("0001-01-01", "in_time_range"),  # a real year 1 is out of range, not 2001
        ("1700000000", "timestamp_format (ISO 8601"),  # epoch seconds as text
        ("20240101", "timestamp_format (ISO 8601"),
        ("2024-01-01 10", "timestamp_format (ISO 8601"),
        (" 2024-01-01", "timestamp_format (ISO 8601"),
        ("Jan 5 2024", "timestamp_format (ISO 8601"),
        ("1969-12-31T23:59:59Z", "in_time_range"),
    ],
)
def test_ambiguous_or_out_of_range_timestamps_are_refused(tmp_path, text, rule):
    path = _write(tmp_path, "customers.csv", f"{CUSTOMERS_HEAD}A,2024-01-01\nB,{text}\n")
    with pytest.raises(ContractError) as info:
        import_files({"customers": path}, tmp_path / "landing")
    assert f"column 'signup_at' fails {rule}" in str(info.value)
    assert "at rows 2" in str(info.value)


def test_iso_variants_are_read_as_utc(tmp_path):
    path = _write(
        tmp_path,
        "customers.csv",
        CUSTOMERS_HEAD + "A,2024-01-01\nB,2024-01-01T10:30\nC,2024-01-01 10:30:15.5\n"
        "D,2024-01-01T12:00:00+02:00\nE,2024-01-01T10:00:00Z\nF,2024-01-01T05:00:00-0500\n",
    )
    frame = valid_frame("customers", path.read_bytes(), ".csv", str(path))
    assert frame["signup_at"].tolist() == [
        pd.Timestamp(t)
        for t in (
            "2024-01-01 00:00",
            "2024-01-01 10:30",
            "2024-01-01 10:30:15.5",
            "2024-01-01 10:00",
            "2024-01-01 10:00",
            "2024-01-01 10:00",
        )
    ]


def test_epoch_numbers_in_a_parquet_timestamp_column_are_refused(tmp_path):
    path = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": ["A"], "signup_at": [1_700_000_000]}).to_parquet(path)
    with pytest.raises(ContractError, match=r"column 'signup_at' fails timestamp_format \(numbers"):
        import_files({"customers": path}, tmp_path / "landing")


def test_a_declared_format_reads_day_first_and_lands_as_parquet(tmp_path):
    path = _write(tmp_path, "customers.csv", f"{CUSTOMERS_HEAD}A,03/04/2024 10:00\n")
    placed = import_files(
        {"customers": path}, tmp_path / "landing", timestamp_format="%d/%m/%Y %H:%M"
    )
    assert placed[0].destination.suffix == ".parquet"
    landed = pd.read_parquet(placed[0].destination)
    assert landed["signup_at"].tolist() == [pd.Timestamp("2024-04-03 10:00")]
    # ISO text does not sneak past a declared format: one format per file
    mixed = _write(tmp_path, "mixed.csv", f"{CUSTOMERS_HEAD}A,03/04/2024 10:00\nB,2024-04-03\n")
    with pytest.raises(
        ContractError, match=r"fails timestamp_format \(declared: %d/%m/%Y %H:%M\) at rows 2"
    ):
        import_files({"customers": mixed}, tmp_path / "landing2", timestamp_format="%d/%m/%Y %H:%M")


# --- contract limits ---


@pytest.mark.parametrize(
    "table, text, column, rule",
    [
        ("customers", f"{CUSTOMERS_HEAD}{'x' * 65},2024-01-01\n", "customer_id", "id_format"),
        ("customers", f"{CUSTOMERS_HEAD}a b,2024-01-01\n", "customer_id", "id_format"),
        ("customers", f"{CUSTOMERS_HEAD}ä1,2024-01-01\n", "customer_id", "id_format"),
        ("customers", f"{CUSTOMERS_HEAD}a/b,2024-01-01\n", "customer_id", "id_format"),
        (
            "events",
            "customer_id,occurred_at,event_type\nA,2024-03-01,page view\n",
            "event_type",
            "event_type_format",
        ),
        (
            "events",
            f"customer_id,occurred_at,event_type\nA,2024-03-01,{'e' * 65}\n",
            "event_type",
            "event_type_format",
        ),
        (
            "customers",
            "customer_id,signup_at,Company Size\nA,2024-01-01,5\n",
            "Company Size",
            "attribute_name",
        ),
        (
            "customers",
            f"customer_id,signup_at,note\nA,2024-01-01,{'n' * 1001}\n",
            "note",
            "text_format",
        ),
        ("customers", 'customer_id,signup_at,note\nA,2024-01-01,"a\x07b"\n', "note", "text_format"),
        (
            "subscriptions",
            "customer_id,started_at,ended_at,plan,monthly_revenue\nA,2024-01-01,,basic,1e400\n",
            "monthly_revenue",
            "finite_number",
        ),
        ("labels", "customer_id,as_of_date,churned\nA,2024-05-01,0.5\n", "churned", "label_value"),
        (
            "customers",
            "customer_id,signup_at,signup_at\nA,2024-01-01,2024-01-01\n",
            "signup_at",
            "unique_column_name",
        ),
    ],
)
def test_contract_limits(tmp_path, table, text, column, rule):
    files = {"customers": _write(tmp_path, "customers.csv", GOOD_CUSTOMERS)}
    files[table] = _write(tmp_path, "bad.csv", text)
    with pytest.raises(ContractError) as info:
        import_files(files, tmp_path / "landing")
    assert f"column '{column}' fails {rule}" in str(info.value)


def test_ids_and_event_types_at_the_limits_are_accepted(tmp_path):
    longest = "aZ09_.:@-" + "x" * 55
    customers = _write(tmp_path, "customers.csv", f"{CUSTOMERS_HEAD}{longest},2024-01-01\n")
    events = _write(
        tmp_path,
        "events.csv",
        f"customer_id,occurred_at,event_type\n{longest},2024-03-01,Plan.Upgrade:v2-{'e' * 48}\n",
    )
    placed = import_files({"customers": customers, "events": events}, tmp_path / "landing")
    assert [p.rows for p in placed] == [1, 1]


def test_a_configured_event_vocabulary_is_enforced(tmp_path):
    files = {
        "customers": _write(tmp_path, "customers.csv", GOOD_CUSTOMERS),
        "events": _write(
            tmp_path,
            "events.csv",
            GOOD_EVENTS.replace("A,2024-03-01,purchase", "A,2024-03-01,login"),
        ),
    }
    with pytest.raises(
        ContractError, match=r"event_type_vocabulary \(CHURN_EVENT_TYPES: purchase\) at rows 1"
    ):
        import_files(files, tmp_path / "landing", event_types=["purchase"])
    assert import_files(files, tmp_path / "landing", event_types=["login", "purchase"])


# --- placement: complete files only ---


def test_import_leaves_no_temporary_files_and_a_refused_import_places_nothing(tmp_path):
    landing = tmp_path / "landing"
    files = {
        "customers": _write(tmp_path, "customers.csv", GOOD_CUSTOMERS),
        "events": _write(tmp_path, "events.csv", GOOD_EVENTS),
    }
    placed = import_files(files, landing)
    on_disk = sorted(p.relative_to(landing) for p in landing.rglob("*") if p.is_file())
    assert on_disk == sorted(p.destination.relative_to(landing) for p in placed)
    assert placed[0].destination.read_bytes() == files["customers"].read_bytes()
    files["labels"] = _write(
        tmp_path, "labels.csv", "customer_id,as_of_date,churned\nA,2024-05-01,3\n"
    )
    with pytest.raises(ContractError):
        import_files(files, tmp_path / "other")
    assert not (tmp_path / "other").exists()
