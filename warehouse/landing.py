"""The landing zone's file conventions, shared by its writers and its reader.

`landing/<table>/<name>.parquet|.csv` holds complete, immutable batches. A writer
writes `<name>.<suffix>.tmp` (or any name starting with '.') and renames it into
place when it is complete, so ingestion never reads a half-written file: the rename
is atomic, and names ending in `.tmp` or starting with '.' are never ingested."""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.contract import FILE_LEVEL, FINITE_RULE, ContractError, ContractViolation

SUFFIXES = (".parquet", ".csv")
TEMP_SUFFIX = ".tmp"
REJECTED_DIR = "_rejected"


def is_landing_file(path: Path) -> bool:
    """A complete batch: a Parquet or CSV file, not in flight (`.tmp`), not hidden."""
    name = path.name
    return (
        not name.startswith(".")
        and not name.lower().endswith(TEMP_SUFFIX)
        and path.suffix.lower() in SUFFIXES
        and path.is_file()
    )


def landing_files(landing_dir: Path, table: str) -> list[Path]:
    folder = landing_dir / table
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_landing_file(p))


@contextmanager
def placing(destination: Path) -> Iterator[Path]:
    """Yield a temporary path beside destination; when the block completes, the file
    written there is synced and renamed onto destination in one step. On error the
    temporary file is removed and destination is untouched."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + TEMP_SUFFIX)
    try:
        yield temporary
        with temporary.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def write_parquet(table: pa.Table, destination: Path, **options: object) -> None:
    with placing(destination) as temporary:
        pq.write_table(table, temporary, **options)


def write_bytes(content: bytes, destination: Path) -> None:
    with placing(destination) as temporary:
        temporary.write_bytes(content)


def read_file(path: Path) -> pd.DataFrame:
    return read_content(path.read_bytes(), path.suffix, str(path))


def read_content(content: bytes, suffix: str, source: str) -> pd.DataFrame:
    """A landing file's bytes as a DataFrame: CSV as text columns, Parquet as typed
    columns. Anything that is not a well-formed file of its kind raises ContractError."""
    try:
        if suffix.lower() == ".parquet":
            return _read_parquet(content, source)
        return _read_csv(content, source)
    except ContractError:
        raise
    except Exception as exc:  # an unreadable file is rejected like a contract breach
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ContractError(
            source, [_file_violation(f"readable_file (not a {suffix} file: {reason})")]
        ) from exc


def _file_violation(rule: str, row: int | None = None) -> ContractViolation:
    return ContractViolation(FILE_LEVEL, rule, [row] if row is not None else [], [])


def _row_of(content: bytes, offset: int) -> int:
    """The data row (the header is row 0) holding byte offset, counting line breaks."""
    return content.count(b"\n", 0, offset)


def _read_csv(content: bytes, source: str) -> pd.DataFrame:
    nul = content.find(b"\x00")
    if nul >= 0:
        raise ContractError(
            source, [_file_violation("no_nul_bytes (found one)", _row_of(content, nul))]
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = content[exc.start : exc.start + 1].hex()
        rule = f"utf8_text (byte 0x{bad} is not UTF-8)"
        raise ContractError(source, [_file_violation(rule, _row_of(content, exc.start))]) from None
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or any(not name for name in header):
        raise ContractError(source, [_file_violation("header_row (every column named)", 0)])
    with warnings.catch_warnings():
        # more fields in a row than in the header: pandas warns and drops data; refuse
        warnings.simplefilter("error", pd.errors.ParserWarning)
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], index_col=False
        )
    if list(frame.columns) != header:  # pandas renames repeated names (a, a.1)
        frame.columns = pd.Index(header)
    return frame


# Parquet column types a landing file may use; anything else (lists, structs, binary)
# has no meaning in the contract.
def _supported(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_null(kind)
    )


def _read_parquet(content: bytes, source: str) -> pd.DataFrame:
    table = pq.read_table(io.BytesIO(content))
    violations = []
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):  # categorical: its values are what count
            column = column.cast(column.type.value_type)
        if not _supported(column.type):
            violations.append(
                ContractViolation(
                    name,
                    f"column_type (text, numbers, booleans, timestamps or dates; got {column.type})",
                    [],
                    [],
                )
            )
        elif pa.types.is_floating(column.type):
            # NaN in a Parquet float column is a value, not a missing one (that is null).
            nan = pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False)
            if nan.any():
                rows = [int(i) + 1 for i in nan.nonzero()[0]]
                violations.append(ContractViolation(name, FINITE_RULE, rows, ["nan"]))
        columns.append(column)
    if violations:
        raise ContractError(source, violations)
    table = pa.Table.from_arrays(columns, names=table.column_names)
    return table.to_pandas(date_as_object=False)
