"""Hypothesis strategies for landing files (CSV and Parquet, well-formed or not) and
an oracle, written apart from warehouse.contract, that says whether rows meet the
raw contract. The fuzz tests use both: whatever the input, the importer and the
ingestion either reject it cleanly or let through only what the oracle accepts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

COLUMNS = {
    "customers": ["customer_id", "signup_at"],
    "subscriptions": ["customer_id", "started_at", "ended_at", "plan", "monthly_revenue"],
    "events": ["customer_id", "occurred_at", "event_type", "value"],
    "labels": ["customer_id", "as_of_date", "churned"],
}
OPTIONAL = {"ended_at", "plan", "value"}
TIMESTAMPS = {"signup_at", "started_at", "ended_at", "occurred_at", "as_of_date"}
NUMBERS = {"monthly_revenue", "value", "churned"}
KEYS = {
    "customers": ("customer_id",),
    "subscriptions": ("customer_id", "started_at"),
    "labels": ("customer_id", "as_of_date"),
}

# Text that files carry, good and bad, per kind of column.
IDS = ["C1", "C2", "C3", "a" * 64, "a" * 65, "", " C1", "c/1", "ä", "C\x00", "C\n1", "1", "x@y.io"]
TIMES = [
    "2024-01-01",
    "2024-01-01T10:00:00",
    "2024-01-01 10:00:00.123456",
    "2024-01-01T10:00:00Z",
    "2024-01-01T10:00:00+05:30",
    "1970-01-01",
    "1969-12-31T23:59:59",
    "0001-01-01",
    "9999-12-31",
    "01/02/2024",
    "2024-02-30",
    "1700000000",
    "0",
    "",
    "2024-1-1",
    "24-01-01",
    "2024-01-01T25:00",
    "2999-01-01",
]
NUMS = ["0", "1", "-1", "0.5", "1e400", "-1e400", "inf", "NaN", "1e308", "", "abc", "0x10", "2"]
TYPES = ["login", "purchase", "Plan.Upgrade", "", "page view", "e" * 64, "e" * 65, "x\x00"]
TEXTS = ["basic", "", "a,b", 'q"uote', "line\nbreak", "\x00", "x" * 1001, "ünï"]
POOLS = {"customer_id": IDS, "event_type": TYPES, "plan": TEXTS}
# Values that meet the contract, so that part of the files are good ones.
GOOD_POOLS = {
    "customer_id": ["C1", "C2", "C3"],
    "event_type": ["login", "purchase", "Plan.Upgrade"],
    "plan": ["basic", "pro", ""],
    "churned": ["0", "1"],
}
GOOD_TIMES = ["2024-01-01", "2024-01-02T10:00:00", "2024-01-03 10:00:00.5", "2024-01-04T10:00Z"]
GOOD_NUMS = ["0", "1", "2.5", "1e3"]


def _pool(column: str, good: bool) -> list[str]:
    if good:
        default = GOOD_TIMES if column in TIMESTAMPS else GOOD_NUMS
        return GOOD_POOLS.get(column, default if column in TIMESTAMPS | NUMBERS else ["x", "1"])
    if column in TIMESTAMPS:
        return TIMES
    if column in NUMBERS:
        return NUMS
    return POOLS.get(column, TEXTS + NUMS)


@st.composite
def header(draw: st.DrawFn, table: str) -> list[str]:
    """The table's columns, sometimes one short, sometimes with extra or repeated ones."""
    columns = list(COLUMNS[table])
    if draw(st.booleans()):
        columns.remove(draw(st.sampled_from(columns)))
    extra = st.sampled_from(["segment", "seats", "Company Size", "", "value", "x" * 70])
    columns += draw(st.lists(st.one_of(extra, st.text(max_size=8)), max_size=2))
    return columns


MODES = ("good", "one_bad", "one_bad", "chaos")


def cell(column: str, good: bool) -> st.SearchStrategy[str]:
    if good:
        return st.sampled_from(_pool(column, good))
    return st.one_of(st.sampled_from(_pool(column, good)), st.text(max_size=12))


@st.composite
def csv_file(draw: st.DrawFn, table: str) -> bytes:
    """A CSV file: good values only, good but for one cell, or anything."""
    mode = draw(st.sampled_from(MODES))
    good = mode != "chaos"
    columns = COLUMNS[table] + (["segment"] if table == "customers" else [])
    if not good:
        columns = draw(header(table))
    size = 1 if mode == "one_bad" else 0
    rows = draw(st.lists(st.tuples(*(cell(c, good) for c in columns)), min_size=size, max_size=6))
    if mode == "one_bad":
        rows = [list(r) for r in rows]
        at = draw(st.integers(0, len(rows) - 1))
        # numbers and timestamps carry the subtle cases: pick them more often
        typed = [i for i, c in enumerate(columns) if c in NUMBERS | TIMESTAMPS]
        column = draw(st.sampled_from(typed * 2 + list(range(len(columns)))))
        rows[at][column] = draw(st.sampled_from(_pool(columns[column], good=False)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if good:
        return text.encode()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    content = text.encode(encoding, errors="replace")
    if draw(st.booleans()) and content:  # a damaged copy: one byte changed
        at = draw(st.integers(0, len(content) - 1))
        content = content[:at] + bytes([draw(st.integers(0, 255))]) + content[at + 1 :]
    return content


ARROW_VALUES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "text": (pa.string(), st.one_of(st.sampled_from(IDS + TIMES + NUMS + TYPES), st.text())),
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": (pa.bool_(), st.booleans()),
    "timestamp": (
        pa.timestamp("us"),
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    ),
    "timestamp_tz": (
        pa.timestamp("us", tz="Europe/Berlin"),
        st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
            lambda d: d.replace(tzinfo=dt.UTC)
        ),
    ),
    "date": (pa.date32(), st.dates()),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(0, 9), max_size=2)),
}


GOOD_ARROW: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "customer_id": (pa.string(), st.sampled_from(["C1", "C2", "C3"])),
    "event_type": (pa.string(), st.sampled_from(["login", "purchase"])),
    "plan": (pa.string(), st.sampled_from(["basic", "pro"])),
    "churned": (pa.int64(), st.sampled_from([0, 1])),
    "timestamp": (
        pa.timestamp("us"),
        st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2025, 1, 1)),
    ),
    "number": (pa.float64(), st.floats(0, 1e6)),
}


def _good_arrow(column: str) -> tuple[pa.DataType, st.SearchStrategy[Any]]:
    if column in TIMESTAMPS:
        return GOOD_ARROW["timestamp"]
    return GOOD_ARROW.get(column, GOOD_ARROW["number"])


@st.composite
def parquet_file(draw: st.DrawFn, table: str) -> bytes:
    """A Parquet file: good columns only, good but for one column, or anything."""
    mode = draw(st.sampled_from(MODES))
    good = mode != "chaos"
    columns = COLUMNS[table] if good else draw(header(table))
    bad_column = draw(st.sampled_from(columns)) if mode == "one_bad" else None
    n = draw(st.integers(1 if bad_column else 0, 6))
    arrays, names = [], []
    for column in dict.fromkeys(columns):  # Parquet via pyarrow: names once each
        if good and column != bad_column:
            arrow_type, values = _good_arrow(column)
        else:
            arrow_type, values = ARROW_VALUES[draw(st.sampled_from(sorted(ARROW_VALUES)))]
            values = st.one_of(st.none(), values)
        cells = draw(st.lists(values, min_size=n, max_size=n))
        arrays.append(pa.array(cells, arrow_type, from_pandas=False))
        names.append(column)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), sink)
    return sink.getvalue()


def landing_file(table: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """(suffix, content): a CSV or Parquet file of table, or random bytes."""
    return st.one_of(
        st.tuples(st.just(".csv"), csv_file(table)),
        st.tuples(st.just(".parquet"), parquet_file(table)),
        st.tuples(st.sampled_from([".csv", ".parquet"]), st.binary(max_size=300)),
    )


# --- the oracle ---

ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _timestamp(value: Any) -> dt.datetime | None:
    """A stored or landed timestamp as naive UTC; None when it is not one."""
    if isinstance(value, str):
        match = ISO.fullmatch(value)
        if not match:
            return None
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        try:
            value = dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0")[:6].ljust(6, "0")),
            )
        except ValueError:
            return None
        if offset and offset != "Z":
            sign = 1 if offset[0] == "+" else -1
            digits = offset[1:].replace(":", "")
            shift = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            try:
                value = value - sign * shift
            except OverflowError:
                return None
        return value
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _text_ok(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) <= 1000 and not re.search(r"[\x00-\x1f\x7f]", value)
    )


def _cell_ok(column: str, value: Any, attribute: bool, now: dt.datetime) -> bool:
    if column == "customer_id":
        return value is not None and bool(ID.fullmatch(str(value)))
    if column == "event_type":
        return value is not None and bool(EVENT_TYPE.fullmatch(str(value)))
    if column in TIMESTAMPS:
        if value is None and column == "ended_at":
            return True
        stamp = _timestamp(value)
        return stamp is not None and dt.datetime(1970, 1, 1) <= stamp <= now
    if column in NUMBERS:
        if value is None and column == "value":
            return True
        number = _number(value)
        if column == "churned":
            return number in (0, 1)
        return number is not None and (column != "monthly_revenue" or number >= 0)
    if column == "plan" or (attribute and isinstance(value, str)):
        return value is None or _text_ok(str(value))
    if attribute and isinstance(value, float):
        return math.isfinite(value)
    return True


def breaches(
    table: str, columns: list[str], rows: list[dict[str, Any]], now: dt.datetime
) -> list[str]:
    """Why rows (dicts of column -> value, None for missing) break the contract."""
    found: list[str] = []
    expected = COLUMNS[table]
    if len(set(columns)) != len(columns):
        found.append("repeated column")
    for column in expected:
        if column not in columns and column not in OPTIONAL:
            found.append(f"missing {column}")
    for column in set(columns) - set(expected):
        if table != "customers" or not ATTRIBUTE.fullmatch(column):
            found.append(f"extra column {column!r}")
    for i, row in enumerate(rows, start=1):
        for column, value in row.items():
            if not _cell_ok(column, value, column not in expected, now):
                found.append(f"row {i} {column}={value!r}")
    if table in KEYS:
        keys = [tuple(str(row.get(k)) for k in KEYS[table]) for row in rows]
        if len(set(keys)) != len(keys):
            found.append(f"repeated key {KEYS[table]}")
    return found


def read_landed(suffix: str, content: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """A landed file's header and rows, read plainly (csv module, pyarrow)."""
    if suffix == ".parquet":
        table = pq.read_table(io.BytesIO(content))
        return table.column_names, table.to_pylist()
    reader = csv.reader(io.StringIO(content.decode("utf-8-sig")))
    columns = next(reader)
    return columns, [
        {c: (v if v != "" else None) for c, v in zip(columns, r, strict=False)} for r in reader
    ]
