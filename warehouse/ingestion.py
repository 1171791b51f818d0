"""Landing zone -> raw tables, once per file, all-or-nothing.

Each new file (by content hash) is read, normalized and validated against the raw
contract; a bad file is moved to `landing/_rejected/<table>/` with a report and the
whole run stops before anything is written. Good files load in one transaction
together with their ingestion-ledger rows, so a failure mid-batch changes nothing and
re-ingesting a file is a no-op."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from warehouse.connection import LEDGER_TABLE, Session, Warehouse
from warehouse.contract import (
    FILE_LEVEL,
    RAW_COLUMNS,
    RAW_SCHEMA,
    TABLES,
    UPSERT_KEYS,
    ContractError,
    ContractViolation,
    file_schema,
    normalize,
    validate,
)

SUFFIXES = (".parquet", ".csv")
REJECTED_DIR = "_rejected"


@dataclass
class TableIngestReport:
    table: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped_files: int = 0


class IngestionError(RuntimeError):
    """One or more landing files broke the contract; nothing was ingested."""


def landing_files(landing_dir: Path, table: str) -> list[Path]:
    folder = landing_dir / table
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_file(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def load_valid_file(table: str, path: Path, now: dt.datetime | None = None) -> pd.DataFrame:
    """Read one file and check it against the contract; raises ContractError naming
    the file, the column and the offending rows."""
    try:
        frame = read_file(path)
    except Exception as exc:  # unreadable file: same treatment as a contract breach
        unreadable = ContractViolation(
            FILE_LEVEL, f"cannot be read as {path.suffix}: {exc}", [], []
        )
        raise ContractError(str(path), [unreadable]) from exc
    frame = normalize(table, frame, str(path))
    validate(file_schema(table, now), frame, str(path))
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
    ) -> None:
        self.warehouse = warehouse
        self.landing_dir = landing_dir
        self.progress = progress or (lambda _msg: None)

    def pending_files(self, table: str) -> list[tuple[Path, str]]:
        """Landing files of a table whose content has not been ingested yet."""
        self.warehouse.ensure_raw_tables()
        ledger = self.warehouse.query_df(
            f"SELECT file_name, file_sha256 FROM {LEDGER_TABLE} WHERE table_name = ?", (table,)
        )
        seen = set(ledger["file_sha256"])
        ingested_names = set(ledger["file_name"])
        pending = []
        for path in landing_files(self.landing_dir, table):
            sha = file_sha256(path)
            if sha not in seen and path.name in ingested_names:
                # Landing files are immutable: new content under an old name would
                # duplicate rows (events have no key), so it is refused, not appended.
                error = ContractError(
                    str(path),
                    [
                        ContractViolation(
                            FILE_LEVEL,
                            "was already ingested with other content; "
                            "give new batches new names, or `make clean` to start over",
                            [],
                            [],
                        )
                    ],
                )
                self._reject(table, path, error)
                raise IngestionError(f"nothing was ingested:\n{error}")
            if sha not in seen:
                pending.append((path, sha))
                seen.add(sha)  # the same content twice in one folder loads once
        return pending

    def ingest(self, table: str) -> TableIngestReport:
        if table not in TABLES:
            raise ValueError(f"unknown raw table {table!r}")
        report = TableIngestReport(table)
        pending = self.pending_files(table)
        report.skipped_files = len(landing_files(self.landing_dir, table)) - len(pending)
        if not pending:
            return report
        frames: list[tuple[Path, str, pd.DataFrame]] = []
        errors: list[ContractError] = []
        for path, sha in pending:
            try:
                frames.append((path, sha, load_valid_file(table, path)))
            except ContractError as exc:
                errors.append(exc)
                self._reject(table, path, exc)
        if errors:
            details = "\n".join(str(e) for e in errors)
            raise IngestionError(
                f"{len(errors)} {table} file(s) rejected (moved to "
                f"{self.landing_dir / REJECTED_DIR / table}); nothing was ingested:\n{details}"
            )
        self.progress(f"{table}: loading {len(frames)} new file(s)")
        with self.warehouse.transaction() as session:
            for i, (path, sha, frame) in enumerate(frames, start=1):
                self._load(session, table, path.name, frame)
                session.execute(
                    f"INSERT INTO {LEDGER_TABLE} VALUES (?, ?, ?, ?, ?)",
                    (table, path.name, sha, len(frame), dt.datetime.now()),
                )
                report.files.append(path.name)
                report.rows += len(frame)
                if i % 50 == 0:
                    self.progress(f"{table}: {i}/{len(frames)} files, {report.rows:,} rows")
        return report

    def _load(self, session: Session, table: str, file_name: str, frame: pd.DataFrame) -> None:
        if table == "customers":
            customers, attributes = split_customers(frame)
            _append(session, "customers", customers, file_name)
            if len(attributes):
                _append(session, "customer_attributes", attributes, file_name)
            return
        _append(session, table, frame, file_name)

    def _reject(self, table: str, path: Path, error: ContractError) -> None:
        target = self.landing_dir / REJECTED_DIR / table
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target / path.name)
        (target / f"{path.name}.error.txt").write_text(str(error) + "\n")


def _append(session: Session, table: str, frame: pd.DataFrame, file_name: str) -> None:
    columns = [c for c, _ in RAW_COLUMNS[table]]
    frame = frame[columns].assign(_source_file=file_name)
    qualified = f"{RAW_SCHEMA}.{table}"
    staged = session.stage(frame, qualified)
    keys = UPSERT_KEYS.get(table)
    if keys:
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        session.execute(f"DELETE FROM {qualified} t USING {staged} s WHERE {match}")
    session.execute(f"INSERT INTO {qualified} SELECT * FROM {staged}")
