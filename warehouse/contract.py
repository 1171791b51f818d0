"""The raw data contract: table layouts in the warehouse and the pandera schemas
that every landing file (per file) and every raw table (as a whole) must satisfy."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

RAW_SCHEMA = "raw"
TABLES = ("customers", "subscriptions", "events", "labels")
REQUIRED_TABLES = ("customers",)

# Columns each raw table stores, in order, as (name, SQL type); the same text works on
# DuckDB and Postgres. Customer attributes are stored long so any number of them fit.
RAW_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "customers": [("customer_id", "VARCHAR"), ("signup_at", "TIMESTAMP")],
    "customer_attributes": [
        ("customer_id", "VARCHAR"),
        ("attribute_name", "VARCHAR"),
        ("value_text", "VARCHAR"),
        ("value_number", "DOUBLE PRECISION"),
    ],
    "subscriptions": [
        ("customer_id", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
        ("ended_at", "TIMESTAMP"),
        ("plan", "VARCHAR"),
        ("monthly_revenue", "DOUBLE PRECISION"),
    ],
    "events": [
        ("customer_id", "VARCHAR"),
        ("occurred_at", "TIMESTAMP"),
        ("event_type", "VARCHAR"),
        ("value", "DOUBLE PRECISION"),
    ],
    "labels": [("customer_id", "VARCHAR"), ("as_of_date", "DATE"), ("churned", "INTEGER")],
}
# Every raw row remembers the landing file it came from (lineage, and what rollback deletes).
SOURCE_FILE_COLUMN = ("_source_file", "VARCHAR")
# Keys unique over a whole raw table (events have none).
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "subscriptions": ("customer_id", "started_at"),
    "labels": ("customer_id", "as_of_date"),
}
# Upsert keys: a later file may restate a subscription (for example, to set ended_at).
UPSERT_KEYS: dict[str, tuple[str, ...]] = {"subscriptions": UNIQUE_KEYS["subscriptions"]}
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("signup_at",),
    "subscriptions": ("started_at", "ended_at"),
    "events": ("occurred_at",),
    "labels": ("as_of_date",),
}


# Limits every file meets, whoever wrote it (README, "Bring your own data").
ID_PATTERN = r"[A-Za-z0-9_.:@-]{1,64}"
ID_RULE = "id_format (1-64 characters of A-Z a-z 0-9 _ . : @ -)"
EVENT_TYPE_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
EVENT_TYPE_RULE = "event_type_format (1-64 characters of A-Z a-z 0-9 _ . : -)"
# Attribute columns become feature names (attr_<name>): identifiers only.
ATTRIBUTE_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
MAX_TEXT_CHARS = 1000
TEXT_RULE = f"text_format (at most {MAX_TEXT_CHARS} characters, no control characters)"
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
EARLIEST = dt.datetime(1970, 1, 1)
# One format for text timestamps: ISO 8601 with a 4-digit year, optional time and
# offset (naive = UTC). No day/month guessing, no 2-digit years, no epoch numbers.
ISO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
ISO_RULE = "timestamp_format (ISO 8601: YYYY-MM-DD[Thh:mm[:ss[.ffffff]]][Z|+hh:mm])"
FINITE_RULE = "finite_number (a number; not NaN, inf or beyond +-1.8e308)"


def utc_now() -> dt.datetime:
    """Now as a naive UTC timestamp: raw timestamps are stored as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _in_time_range(now: dt.datetime) -> pa.Check:
    return pa.Check(
        lambda s: s.isna() | ((s >= EARLIEST) & (s <= now)),
        name="in_time_range",
        error=f"in_time_range (from 1970-01-01 to now, {now:%Y-%m-%d %H:%M} UTC)",
    )


def _arrow_text(values: pd.Series) -> pd.Series:
    """Text in Arrow: its regex engine (RE2) checks millions of rows a second."""
    return values.astype("string[pyarrow]")


def _matches(pattern: str, rule: str) -> pa.Check:
    return pa.Check(
        lambda s: _arrow_text(s).str.fullmatch(pattern).fillna(False).astype(bool),
        name=rule.split()[0],
        error=rule,
    )


def _is_text() -> pa.Check:
    def check(values: pd.Series) -> pd.Series:
        text = _arrow_text(values)
        ok = (text.str.len() <= MAX_TEXT_CHARS) & ~text.str.contains(CONTROL_CHARACTERS)
        return ok.fillna(False).astype(bool)

    return pa.Check(check, name="text_format", error=TEXT_RULE)


def _event_types(allowed: Iterable[str]) -> list[pa.Check]:
    vocabulary = sorted(set(allowed))
    if not vocabulary:
        return []
    shown = ", ".join(vocabulary[:20]) + (" ..." if len(vocabulary) > 20 else "")
    return [
        pa.Check(
            lambda s: s.isin(vocabulary),
            name="event_type_vocabulary",
            error=f"event_type_vocabulary (CHURN_EVENT_TYPES: {shown})",
        )
    ]


def file_schema(
    table: str, now: dt.datetime | None = None, event_types: Iterable[str] = ()
) -> pa.DataFrameSchema:
    """Rules one landing file must meet on its own (types, keys, ranges, formats).

    event_types, when given, is the only vocabulary events may use."""
    now = now or utc_now()
    in_range = _in_time_range(now)
    customer_id = pa.Column(str, _matches(ID_PATTERN, ID_RULE), nullable=False)
    if table == "customers":
        return pa.DataFrameSchema(
            {
                "customer_id": pa.Column(
                    str, _matches(ID_PATTERN, ID_RULE), nullable=False, unique=True
                ),
                "signup_at": pa.Column("datetime64[us]", in_range, nullable=False),
            },
            strict=False,
            name="customers",
        )
    if table == "subscriptions":
        return pa.DataFrameSchema(
            {
                "customer_id": customer_id,
                "started_at": pa.Column("datetime64[us]", in_range, nullable=False),
                "ended_at": pa.Column("datetime64[us]", in_range, nullable=True),
                "plan": pa.Column(str, _is_text(), nullable=True),
                "monthly_revenue": pa.Column(float, pa.Check.ge(0), nullable=False),
            },
            checks=[
                pa.Check(
                    lambda df: df["ended_at"].isna() | (df["ended_at"] >= df["started_at"]),
                    name="ended_at_not_before_started_at",
                )
            ],
            unique=list(UNIQUE_KEYS["subscriptions"]),
            strict=True,
            name="subscriptions",
        )
    if table == "events":
        return pa.DataFrameSchema(
            {
                "customer_id": customer_id,
                "occurred_at": pa.Column("datetime64[us]", in_range, nullable=False),
                "event_type": pa.Column(
                    str,
                    [_matches(EVENT_TYPE_PATTERN, EVENT_TYPE_RULE), *_event_types(event_types)],
                    nullable=False,
                ),
                "value": pa.Column(float, nullable=True),
            },
            strict=True,
            name="events",
        )
    if table == "labels":
        return pa.DataFrameSchema(
            {
                "customer_id": customer_id,
                "as_of_date": pa.Column("datetime64[us]", in_range, nullable=False),
                "churned": pa.Column(int, pa.Check.isin([0, 1]), nullable=False),
            },
            unique=list(UNIQUE_KEYS["labels"]),
            strict=True,
            name="labels",
        )
    raise ValueError(f"unknown raw table {table!r}; expected one of {', '.join(TABLES)}")


def table_schema(
    table: str,
    known_customers: Iterable[str] | None = None,
    now: dt.datetime | None = None,
    event_types: Iterable[str] = (),
) -> pa.DataFrameSchema:
    """Rules a whole raw table must meet: the file rules plus cross-file ones
    (keys unique over all batches, every row's customer exists)."""
    schema = file_schema(table, now, event_types)
    if table != "customers" and known_customers is not None:
        known = pd.Index(list(known_customers))
        schema = schema.update_column(
            "customer_id",
            checks=[
                _matches(ID_PATTERN, ID_RULE),
                pa.Check(lambda s: s.isin(known), name="customer_exists", error="unknown customer"),
            ],
        )
    return schema


FILE_LEVEL = "(file)"  # a violation of the whole file rather than of one column


@dataclass(frozen=True)
class ContractViolation:
    column: str
    check: str
    rows: list[int]
    examples: list[str]

    def describe(self) -> str:
        rows = ", ".join(str(r) for r in self.rows[:10])
        more = f" and {len(self.rows) - 10} more" if len(self.rows) > 10 else ""
        values = ", ".join(self.examples[:5])
        subject = "the file" if self.column == FILE_LEVEL else f"column '{self.column}'"
        where = f" at rows {rows}{more}" if self.rows else ""
        return f"{subject} fails {self.check}{where}" + (f" (values: {values})" if values else "")


class ContractError(ValueError):
    """A landing file or a raw table breaks the raw data contract."""

    def __init__(self, source: str, violations: list[ContractViolation]) -> None:
        self.source = source
        self.violations = violations
        lines = "\n  ".join(v.describe() for v in violations)
        super().__init__(f"{source} breaks the raw data contract:\n  {lines}")


OPTIONAL_COLUMNS = {"subscriptions": {"ended_at", "plan"}, "events": {"value"}}
NUMBER_COLUMNS = {
    "subscriptions": ("monthly_revenue",),
    "events": ("value",),
    "labels": ("churned",),
}
TEXT_COLUMNS = ("customer_id", "event_type", "plan")


def normalize(
    table: str, frame: pd.DataFrame, source: str, timestamp_format: str | None = None
) -> pd.DataFrame:
    """Bring a file's columns to the contract's types: text timestamps (ISO 8601, or
    timestamp_format when the file declares one) and timestamp columns to naive UTC,
    numbers to finite floats, ids to text.

    Values that cannot be read become violations naming the column, the rows and the
    rule; nothing is guessed (no day/month swaps, no epoch numbers as dates)."""
    _check_columns(table, frame, source)
    frame = frame.copy()
    violations: list[ContractViolation] = []
    for column in OPTIONAL_COLUMNS.get(table, set()) - set(frame.columns):
        frame[column] = None
    for column in TIMESTAMP_COLUMNS.get(table, ()):
        frame[column], found = _timestamps(column, frame[column], timestamp_format)
        violations += found
    for column in NUMBER_COLUMNS.get(table, ()):
        frame[column], found = _numbers(column, frame[column])
        violations += found
    if table == "labels":
        churned = frame["churned"]
        not_a_label = churned.notna() & ~churned.isin([0.0, 1.0])
        if not_a_label.any():
            violations.append(
                _violation(
                    "churned",
                    "label_value (0 or 1)",
                    frame.index[not_a_label],
                    churned[not_a_label],
                )
            )
    if table == "customers":
        violations += _attribute_violations(frame)
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = _text(frame[column])
    if violations:
        raise ContractError(source, violations)
    if table == "labels":
        frame["churned"] = frame["churned"].astype("Int64")
        if frame["churned"].notna().all():
            frame["churned"] = frame["churned"].astype("int64")
    return frame


def _check_columns(table: str, frame: pd.DataFrame, source: str) -> None:
    """The header: names unique, required columns present, nothing extra (customers:
    extra columns are attributes, named like identifiers)."""
    names = [str(c) for c in frame.columns]
    expected = [c for c, _ in RAW_COLUMNS[table]]
    optional = OPTIONAL_COLUMNS.get(table, set())
    violations = [
        ContractViolation(name, "unique_column_name (appears more than once in the header)", [], [])
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    violations += [
        ContractViolation(c, "required_column (missing)", [], [])
        for c in expected
        if c not in names and c not in optional
    ]
    extra = [n for n in names if n not in expected]
    if table == "customers":
        violations += [
            ContractViolation(
                n, "attribute_name (an identifier: A-Z a-z 0-9 _, at most 64 characters)", [], []
            )
            for n in extra
            if not re.fullmatch(ATTRIBUTE_NAME_PATTERN, n)
        ]
    else:
        violations += [
            ContractViolation(
                n, f"known_column (not a {table} column; expected {', '.join(expected)})", [], []
            )
            for n in extra
        ]
    if violations:
        raise ContractError(source, violations)


def _timestamps(
    column: str, raw: pd.Series, declared_format: str | None
) -> tuple[pd.Series, list[ContractViolation]]:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]"), []
    if pd.api.types.is_datetime64_dtype(raw):
        return raw.astype("datetime64[us]"), []
    present = raw.notna()
    empty = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        rule = "timestamp_format (numbers are not timestamps: epoch seconds are ambiguous)"
        return empty, (
            [_violation(column, rule, raw.index[present], raw[present])] if present.any() else []
        )
    is_text = raw.map(lambda v: isinstance(v, str)).astype(bool)
    text = raw.where(is_text & present)
    violations: list[ContractViolation] = []
    if declared_format is None:
        rule = ISO_RULE
        well_formed = is_text & text.fillna("").str.fullmatch(ISO_TIMESTAMP)
        parsed = pd.to_datetime(
            text.where(well_formed), format="ISO8601", utc=True, errors="coerce"
        )
    else:
        rule = f"timestamp_format (declared: {declared_format})"
        parsed = pd.to_datetime(text, format=declared_format, exact=True, utc=True, errors="coerce")
        well_formed = is_text & parsed.notna()
    # date and datetime objects: what database drivers return for stored rows
    typed = raw.map(lambda v: isinstance(v, dt.date)).astype(bool)
    if typed.any():
        parsed = parsed.where(~typed, pd.to_datetime(raw.where(typed), utc=True, errors="coerce"))
        well_formed |= typed
    malformed = present & ~well_formed
    if malformed.any():
        violations.append(_violation(column, rule, raw.index[malformed], raw[malformed]))
    impossible = well_formed & parsed.isna()  # the shape of a date, but not one (2024-02-30)
    if impossible.any():
        violations.append(
            _violation(
                column,
                "timestamp_value (no such date or time)",
                raw.index[impossible],
                raw[impossible],
            )
        )
    return parsed.dt.tz_convert(None).astype("datetime64[us]"), violations


def _numbers(column: str, raw: pd.Series) -> tuple[pd.Series, list[ContractViolation]]:
    present = raw.notna()
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        parsed = raw.astype("float64")
    elif pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw):
        parsed = pd.Series(np.nan, index=raw.index)
    else:
        parsed = pd.to_numeric(raw.map(_number_or_nan), errors="coerce").astype("float64")
    bad = present & ~np.isfinite(parsed)
    violations = [_violation(column, FINITE_RULE, raw.index[bad], raw[bad])] if bad.any() else []
    return parsed, violations


def _number_or_nan(value: object) -> object:
    """Text and numbers pass on to to_numeric; anything else (bytes, lists) is no number."""
    return value if isinstance(value, str | int | float | decimal.Decimal) else np.nan


def _attribute_violations(frame: pd.DataFrame) -> list[ContractViolation]:
    """Attribute values: finite numbers, or text within the text limits."""
    violations = []
    for column in frame.columns:
        if column in ("customer_id", "signup_at"):
            continue
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_numeric_dtype(values):
            bad = values.notna() & ~np.isfinite(values.astype("float64"))
            rule = FINITE_RULE
        else:
            text = _text(values)
            bad = text.notna() & (
                (text.str.len() > MAX_TEXT_CHARS) | text.str.contains(CONTROL_CHARACTERS)
            ).fillna(False).astype(bool)
            rule = TEXT_RULE
        if bad.any():
            violations.append(_violation(column, rule, frame.index[bad], values[bad]))
    return violations


def _text(values: pd.Series) -> pd.Series:
    """Text as Python str objects, missing values as None (what pandera and drivers expect)."""
    text = values.astype("string").astype(object)
    return text.where(text.notna(), None)


def _violation(column: str, check: str, index: pd.Index, values: pd.Series) -> ContractViolation:
    return ContractViolation(
        column, check, [int(i) + 1 for i in index], [shown(v) for v in values.head(5).tolist()]
    )


def shown(value: object, limit: int = 60) -> str:
    """A value as a report shows it: repr, cut short (a bad file may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(schema: pa.DataFrameSchema, frame: pd.DataFrame, source: str) -> None:
    """Run a pandera schema lazily and raise one ContractError listing every violation.

    Row numbers are 1-based data rows (a CSV's header is row 0)."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise ContractError(source, _violations(exc.failure_cases)) from None


def _violations(cases: pd.DataFrame) -> list[ContractViolation]:
    """Group pandera's failure cases per column and check. A check over whole rows
    is reported once, under the columns it names (or "row" when it spans them all)."""
    out: list[ContractViolation] = []
    cases = cases.assign(column=cases["column"].fillna("row").astype(str))
    row_level = cases["schema_context"].eq("DataFrameSchema")
    for check, group in cases[row_level].groupby("check", sort=False):
        columns = sorted(set(group["column"]))
        label = ", ".join(columns) if "uniqueness" in str(check) else "row"
        out.append(_case_violation(label, str(check), group))
    for (column, column_check), group in cases[~row_level].groupby(["column", "check"], sort=False):
        out.append(_case_violation(str(column), str(column_check), group))
    return out


def _case_violation(column: str, check: str, group: pd.DataFrame) -> ContractViolation:
    rows = sorted({int(i) + 1 for i in group["index"].dropna()})
    examples = [shown(v) for v in group["failure_case"].dropna().head(5).tolist()]
    return ContractViolation(column, check, rows, examples)
