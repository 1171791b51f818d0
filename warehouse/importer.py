"""`churn import`: validate a user's files against the raw contract, then place them
in the landing zone. Either every file is placed or none is."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from warehouse.contract import REQUIRED_TABLES, ContractError, ContractViolation
from warehouse.ingestion import SUFFIXES, file_sha256, load_valid_file


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
        examples = [repr(v) for v in frame.loc[unknown, "customer_id"].head(5)]
        raise ContractError(
            str(path),
            [
                ContractViolation(
                    "customer_id", "customer_exists (not in the customers file)", rows, examples
                )
            ],
        )


def import_files(files: dict[str, Path], landing_dir: Path) -> list[ImportedFile]:
    """Validate every file (and that every row's customer is in the customers file),
    then copy them to landing/<table>/<name>-<hash8><suffix>."""
    for table in REQUIRED_TABLES:
        if table not in files:
            raise ValueError(f"--{table} is required")
    frames: dict[str, pd.DataFrame] = {}
    for table, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{path}: expected a .parquet or .csv file")
        frames[table] = load_valid_file(table, path)
    known = set(frames["customers"]["customer_id"])
    for table, frame in frames.items():
        if table != "customers":
            _unknown_customers(table, files[table], frame, known)
    placed = []
    for table, path in files.items():
        target_dir = landing_dir / table
        target_dir.mkdir(parents=True, exist_ok=True)
        destination = target_dir / f"{path.stem}-{file_sha256(path)[:8]}{path.suffix.lower()}"
        shutil.copyfile(path, destination)
        placed.append(ImportedFile(table, path, destination, len(frames[table])))
    return placed
