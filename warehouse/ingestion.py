"""Landing zone -> raw tables, once per file; bad files are set aside, good ones load.

Each complete landing file (see warehouse.landing) whose content (by hash) is not in
the ingestion ledger is read, normalized and validated against the raw contract. A
file that breaks it is moved to `landing/_rejected/<table>/` with a report naming the
file, the column, the rows and the rule, and the run goes on with the other files: a
bad file is rejected whole and never blocks the good ones, nor stays to fail every
run. Good files load in one transaction together with their ledger rows, so a failure
mid-run changes nothing and re-ingesting a file is a no-op. On Postgres the run holds
an advisory lock per table for that transaction and the ledger has a unique key on the
content hash, so concurrent runs never load a file twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from psycopg.errors import DataError

from warehouse.connection import LEDGER_TABLE, Session, Warehouse
from warehouse.contract import (
    FILE_LEVEL,
    RAW_COLUMNS,
    RAW_SCHEMA,
    TABLES,
    UNIQUE_KEYS,
    UPSERT_KEYS,
    ContractError,
    ContractViolation,
    file_schema,
    normalize,
    shown,
    utc_now,
    validate,
)
from warehouse.landing import REJECTED_DIR, landing_files, read_content, write_bytes

CHECKS_FAILED = "checkable_file"
# Keys a new file may not repeat from rows already loaded (subscriptions upsert instead).
INSERT_ONLY_KEYS = {t: k for t, k in UNIQUE_KEYS.items() if t not in UPSERT_KEYS}


@dataclass(frozen=True)
class RejectedFile:
    name: str
    report: Path
    reason: str  # the first violation, for one-line summaries


@dataclass
class TableIngestReport:
    table: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped_files: int = 0
    rejected: list[RejectedFile] = field(default_factory=list)

    def rejected_line(self, landing_dir: Path) -> str:
        """One line for the run log: what was set aside, where, and that the rest loaded."""
        names = ", ".join(r.name for r in self.rejected[:5])
        more = f" and {len(self.rejected) - 5} more" if len(self.rejected) > 5 else ""
        return (
            f"{self.table}: {len(self.rejected)} file(s) REJECTED and moved to "
            f"{landing_dir / REJECTED_DIR / self.table} ({names}{more}; the reason is in "
            f"<file>.error.txt, e.g. {self.rejected[0].reason}); "
            f"{len(self.files)} good file(s) ingested"
        )


def valid_frame(
    table: str,
    content: bytes,
    suffix: str,
    source: str,
    now: dt.datetime | None = None,
    event_types: Iterable[str] = (),
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """A file's content checked against the contract; raises ContractError naming the
    file, the column, the rows and the rule."""
    frame = read_content(content, suffix, source)
    try:
        frame = normalize(table, frame, source, timestamp_format)
        validate(file_schema(table, now, event_types), frame, source)
    except ContractError:
        raise
    except Exception as exc:
        # A file the checks themselves stumble on is still rejected with a report,
        # never left to fail every run (the fuzz tests make sure this stays unused).
        failure = f"{CHECKS_FAILED} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        raise ContractError(source, [ContractViolation(FILE_LEVEL, failure, [], [])]) from exc
    return frame


def split_customers(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers file -> (customers, long attributes); every extra column is an attribute."""
    base = frame[["customer_id", "signup_at"]]
    attribute_columns = [c for c in frame.columns if c not in ("customer_id", "signup_at")]
    parts = []
    for column in attribute_columns:
        values = frame[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": frame["customer_id"],
                    "attribute_name": column,
                    "value_text": None if numeric else values.astype("string").astype(object),
                    "value_number": values.astype("float64") if numeric else None,
                }
            )
        )
    columns = [c for c, _ in RAW_COLUMNS["customer_attributes"]]
    attributes = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return base, attributes


class Ingestor:
    def __init__(
        self,
        warehouse: Warehouse,
        landing_dir: Path,
        progress: Callable[[str], None] | None = None,
        event_types: Iterable[str] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.landing_dir = landing_dir
        self.progress = progress or (lambda _msg: None)
        self.event_types = tuple(
            warehouse.settings.event_types if event_types is None else event_types
        )

    def ingest(self, table: str) -> TableIngestReport:
        """Load every new landing file of table; set aside the ones that break the
        contract. Raises only for failures of the warehouse itself (then nothing of
        this run is loaded, and the next run starts over)."""
        if table not in TABLES:
            raise ValueError(f"unknown raw table {table!r}")
        self.warehouse.ensure_raw_tables()
        report = TableIngestReport(table)
        now = utc_now()
        with self.warehouse.transaction() as session:
            # Concurrent runs queue here; the ledger read below then sees their files.
            session.lock(f"churn.ingest.{table}")
            ledger = session.query_df(
                f"SELECT file_name, file_sha256 FROM {LEDGER_TABLE} WHERE table_name = ?",
                (table,),
            )
            seen = set(ledger["file_sha256"])
            ingested_names = set(ledger["file_name"])
            for path in landing_files(self.landing_dir, table):
                try:
                    content = path.read_bytes()
                except FileNotFoundError:  # set aside meanwhile (by a run without the lock)
                    continue
                sha = hashlib.sha256(content).hexdigest()
                if sha in seen:  # the same content twice (under any name) loads once
                    report.skipped_files += 1
                    continue
                try:
                    if path.name in ingested_names:
                        raise _renamed_content_error(path)
                    frame = valid_frame(
                        table, content, path.suffix, str(path), now, self.event_types
                    )
                    if not self._load(session, table, path, sha, frame):
                        report.skipped_files += 1
                        continue
                except ContractError as exc:
                    rejected = self._reject(table, path, exc, now)
                    report.rejected.append(rejected)
                    self.progress(f"{table}: rejected {path.name}: {rejected.reason}")
                    continue
                seen.add(sha)
                report.files.append(path.name)
                report.rows += len(frame)
                if len(report.files) % 50 == 0:
                    self.progress(f"{table}: {len(report.files)} files, {report.rows:,} rows")
        return report

    def _load(
        self, session: Session, table: str, path: Path, sha: str, frame: pd.DataFrame
    ) -> bool:
        """Stage the file, refuse keys already loaded, claim its ledger row, insert.
        False when the ledger already holds this content (a concurrent run loaded it).

        On Postgres this runs in a savepoint, so a value the database refuses undoes
        only this file, which is then rejected like any other contract breach."""
        try:
            with session.savepoint():
                main, attributes = split_customers(frame) if table == "customers" else (frame, None)
                staged = _stage(session, table, main, path.name)
                _refuse_loaded_keys(session, table, staged, main, str(path))
                claimed = session.query_df(
                    f"INSERT INTO {LEDGER_TABLE} VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (table_name, file_sha256) DO NOTHING RETURNING file_sha256",
                    (table, path.name, sha, len(frame), dt.datetime.now()),
                )
                if claimed.empty:
                    return False
                _insert_staged(session, table, staged)
                if attributes is not None and len(attributes):
                    _insert_staged(
                        session,
                        "customer_attributes",
                        _stage(session, "customer_attributes", attributes, path.name),
                    )
        except DataError as exc:
            refused = ContractViolation(FILE_LEVEL, f"warehouse_accepts ({exc})", [], [])
            raise ContractError(str(path), [refused]) from exc
        return True

    def _reject(
        self, table: str, path: Path, error: ContractError, now: dt.datetime
    ) -> RejectedFile:
        """Move the file aside with its report (written first: a crash in between
        leaves the file where the next run rejects it again)."""
        target = self.landing_dir / REJECTED_DIR / table
        report = target / f"{path.name}.error.txt"
        text = (
            f"{error}\n\nRejected {now:%Y-%m-%d %H:%M:%S} UTC while ingesting "
            f"{RAW_SCHEMA}.{table}: nothing of this file was loaded, and the run went on "
            "with the other files. Fix it and land it again (README, Bring your own data).\n"
        )
        write_bytes(text.encode(), report)
        os.replace(path, target / path.name)
        reason = error.violations[0].describe() if error.violations else "see the report"
        return RejectedFile(path.name, report, reason)


def _renamed_content_error(path: Path) -> ContractError:
    # Landing files are immutable: new content under an old name would duplicate rows
    # (events have no key), so it is refused, not appended.
    return ContractError(
        str(path),
        [
            ContractViolation(
                FILE_LEVEL,
                "immutable_name (was already ingested with other content; give new "
                "batches new names, or `make clean` to start over)",
                [],
                [],
            )
        ],
    )


def _stage(session: Session, table: str, frame: pd.DataFrame, file_name: str) -> str:
    columns = [c for c, _ in RAW_COLUMNS[table]]
    return session.stage(frame[columns].assign(_source_file=file_name), f"{RAW_SCHEMA}.{table}")


def _refuse_loaded_keys(
    session: Session, table: str, staged: str, frame: pd.DataFrame, source: str
) -> None:
    """Keys unique over the whole table may not repeat a row an earlier file loaded."""
    keys = INSERT_ONLY_KEYS.get(table)
    if not keys:
        return
    match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    columns = ", ".join(f"s.{k}" for k in keys)
    loaded = session.query_df(
        f"SELECT {columns}, min(t._source_file) AS earlier FROM {staged} s "
        f"JOIN {RAW_SCHEMA}.{table} t ON {match} GROUP BY {columns}"
    )
    if loaded.empty:
        return
    for key in keys:  # drivers return dates as dates; compare in the frame's types
        loaded[key] = loaded[key].astype(frame[key].dtype)
    repeated = pd.MultiIndex.from_frame(loaded[list(keys)])
    rows = frame.index[pd.MultiIndex.from_frame(frame[list(keys)]).isin(repeated)]
    examples = [shown(v) for v in frame.loc[rows, keys[0]].head(5)]
    rule = (
        f"unique_over_table (already loaded from {loaded['earlier'].iloc[0]}"
        + (" and others" if loaded["earlier"].nunique() > 1 else "")
        + ")"
    )
    raise ContractError(
        source, [ContractViolation(", ".join(keys), rule, [int(i) + 1 for i in rows], examples)]
    )


def _insert_staged(session: Session, table: str, staged: str) -> None:
    qualified = f"{RAW_SCHEMA}.{table}"
    keys = UPSERT_KEYS.get(table)
    if keys:
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        session.execute(f"DELETE FROM {qualified} t USING {staged} s WHERE {match}")
    session.execute(f"INSERT INTO {qualified} SELECT * FROM {staged}")
