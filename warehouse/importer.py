"""`churn import`: validate a user's files against the raw contract, then place them
in the landing zone. Either every file is placed or none is, and each appears there
complete (written under a `.tmp` name, then renamed)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from warehouse.contract import REQUIRED_TABLES, ContractError, ContractViolation, shown
from warehouse.ingestion import valid_frame
from warehouse.landing import SUFFIXES, placing


@dataclass(frozen=True)
class ImportedFile:
    table: str
    source: Path
    destination: Path
    rows: int


def _unknown_customers(table: str, path: Path, frame: pd.DataFrame, known: set[str]) -> None:
    unknown = ~frame["customer_id"].isin(known)
    if unknown.any():
        rows = [int(i) + 1 for i in frame.index[unknown]]
        examples = [shown(v) for v in frame.loc[unknown, "customer_id"].head(5)]
        raise ContractError(
            str(path),
            [
                ContractViolation(
                    "customer_id", "customer_exists (not in the customers file)", rows, examples
                )
            ],
        )


def import_files(
    files: dict[str, Path],
    landing_dir: Path,
    event_types: Iterable[str] = (),
    timestamp_format: str | None = None,
) -> list[ImportedFile]:
    """Validate every file (and that every row's customer is in the customers file),
    then place them as landing/<table>/<name>-<hash8><suffix>.

    With timestamp_format (a strptime format such as %d/%m/%Y %H:%M) the files'
    text timestamps are read in that one format instead of ISO 8601, and the files land
    as Parquet with typed timestamps, so the landing zone holds no ambiguous text."""
    for table in REQUIRED_TABLES:
        if table not in files:
            raise ValueError(f"--{table} is required")
    contents: dict[str, bytes] = {}
    frames: dict[str, pd.DataFrame] = {}
    for table, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{path}: expected a .parquet or .csv file")
        # Read once: what lands is exactly what was validated.
        contents[table] = path.read_bytes()
        frames[table] = valid_frame(
            table,
            contents[table],
            path.suffix,
            str(path),
            event_types=event_types,
            timestamp_format=timestamp_format,
        )
    known = set(frames["customers"]["customer_id"])
    for table, frame in frames.items():
        if table != "customers":
            _unknown_customers(table, files[table], frame, known)
    placed = []
    with ExitStack() as renames:  # every file is written before any is renamed into place
        for table, path in files.items():
            content, suffix = contents[table], path.suffix.lower()
            if timestamp_format is not None:
                content, suffix = _as_parquet(frames[table]), ".parquet"
            name = f"{path.stem}-{hashlib.sha256(content).hexdigest()[:8]}{suffix}"
            destination = landing_dir / table / name
            renames.enter_context(placing(destination)).write_bytes(content)
            placed.append(ImportedFile(table, path, destination, len(frames[table])))
    return placed


def _as_parquet(frame: pd.DataFrame) -> bytes:
    return frame.to_parquet(index=False)
