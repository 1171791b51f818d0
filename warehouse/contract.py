"""The raw data contract: table layouts in the warehouse and the pandera schemas
that every landing file (per file) and every raw table (as a whole) must satisfy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

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


def _not_in_future(now: dt.datetime) -> pa.Check:
    return pa.Check(
        lambda s: s.isna() | (s <= now), name="not_in_future", error=f"timestamp after {now}"
    )


def file_schema(table: str, now: dt.datetime | None = None) -> pa.DataFrameSchema:
    """Rules one landing file must meet on its own (types, keys, ranges)."""
    now = now or dt.datetime.now()
    future = _not_in_future(now)
    if table == "customers":
        return pa.DataFrameSchema(
            {
                "customer_id": pa.Column(str, nullable=False, unique=True),
                "signup_at": pa.Column("datetime64[us]", future, nullable=False),
            },
            strict=False,
            name="customers",
        )
    if table == "subscriptions":
        return pa.DataFrameSchema(
            {
                "customer_id": pa.Column(str, nullable=False),
                "started_at": pa.Column("datetime64[us]", future, nullable=False),
                "ended_at": pa.Column("datetime64[us]", future, nullable=True),
                "plan": pa.Column(str, nullable=True),
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
                "customer_id": pa.Column(str, nullable=False),
                "occurred_at": pa.Column("datetime64[us]", future, nullable=False),
                "event_type": pa.Column(str, pa.Check.str_length(min_value=1), nullable=False),
                "value": pa.Column(float, nullable=True),
            },
            strict=True,
            name="events",
        )
    if table == "labels":
        return pa.DataFrameSchema(
            {
                "customer_id": pa.Column(str, nullable=False),
                "as_of_date": pa.Column("datetime64[us]", future, nullable=False),
                "churned": pa.Column(int, pa.Check.isin([0, 1]), nullable=False),
            },
            unique=list(UNIQUE_KEYS["labels"]),
            strict=True,
            name="labels",
        )
    raise ValueError(f"unknown raw table {table!r}; expected one of {', '.join(TABLES)}")


def table_schema(
    table: str, known_customers: Iterable[str] | None = None, now: dt.datetime | None = None
) -> pa.DataFrameSchema:
    """Rules a whole raw table must meet: the file rules plus cross-file ones
    (keys unique over all batches, every row's customer exists)."""
    schema = file_schema(table, now)
    if table != "customers" and known_customers is not None:
        known = pd.Index(list(known_customers))
        schema = schema.update_column(
            "customer_id",
            checks=[
                pa.Check(lambda s: s.isin(known), name="customer_exists", error="unknown customer")
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
        shown = ", ".join(str(r) for r in self.rows[:10])
        more = f" and {len(self.rows) - 10} more" if len(self.rows) > 10 else ""
        values = ", ".join(self.examples[:5])
        subject = "the file" if self.column == FILE_LEVEL else f"column '{self.column}' fails"
        where = f" at rows {shown}{more}" if self.rows else ""
        return f"{subject} {self.check}{where}" + (f" (values: {values})" if values else "")


class ContractError(ValueError):
    """A landing file or a raw table breaks the raw data contract."""

    def __init__(self, source: str, violations: list[ContractViolation]) -> None:
        self.source = source
        self.violations = violations
        lines = "\n  ".join(v.describe() for v in violations)
        super().__init__(f"{source} breaks the raw data contract:\n  {lines}")


def normalize(table: str, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Coerce types the way files commonly carry them (CSV text, tz-aware timestamps).

    Values that cannot be read become violations naming the column and the rows."""
    frame = frame.copy()
    violations: list[ContractViolation] = []
    expected = dict(RAW_COLUMNS[table])
    required = list(expected) if table != "customers" else ["customer_id", "signup_at"]
    optional = {"subscriptions": {"ended_at", "plan"}, "events": {"value"}}.get(table, set())
    missing = [c for c in required if c not in frame.columns and c not in optional]
    if missing:
        raise ContractError(
            source,
            [ContractViolation(c, "is missing (required column)", [], []) for c in missing],
        )
    for column in optional - set(frame.columns):
        frame[column] = None
    for column in TIMESTAMP_COLUMNS.get(table, ()):
        raw = frame[column]
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & raw.notna()
        if bad.any():
            violations.append(_violation(column, "timestamp parsing", frame.index[bad], raw[bad]))
        frame[column] = parsed.dt.tz_convert(None).astype("datetime64[us]")
    numeric = {"subscriptions": ("monthly_revenue",), "events": ("value",), "labels": ("churned",)}
    for column in numeric.get(table, ()):
        raw = frame[column]
        parsed = pd.to_numeric(raw, errors="coerce")
        bad = parsed.isna() & raw.notna()
        if bad.any():
            violations.append(_violation(column, "number parsing", frame.index[bad], raw[bad]))
        frame[column] = parsed.astype("Int64" if column == "churned" else "float64")
    for column in ("customer_id", "event_type", "plan"):
        if column in frame.columns:
            frame[column] = frame[column].astype("string").astype(object)
            frame[column] = frame[column].where(frame[column].notna(), None)
    if violations:
        raise ContractError(source, violations)
    if table == "labels" and frame["churned"].notna().all():
        frame["churned"] = frame["churned"].astype("int64")
    return frame


def _violation(column: str, check: str, index: pd.Index, values: pd.Series) -> ContractViolation:
    return ContractViolation(
        column, check, [int(i) + 1 for i in index], [repr(v) for v in values.head(5).tolist()]
    )


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
    examples = [repr(v) for v in group["failure_case"].dropna().head(5).tolist()]
    return ContractViolation(column, check, rows, examples)
