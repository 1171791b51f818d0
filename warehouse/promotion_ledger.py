"""The promotion ledger: an append-only warehouse table of every promotion, refusal and
rollback of a model version, with who or what triggered it and the evidence.

Only `append` writes; nothing here updates or deletes a row, and on Postgres a trigger
refuses UPDATE and DELETE so the history cannot be rewritten by accident."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from warehouse.connection import Warehouse

LEDGER_SCHEMA = "ops"
PROMOTION_LEDGER = f"{LEDGER_SCHEMA}.promotion_ledger"
ACTIONS = ("promote", "challenger", "refuse", "rollback")
_COLUMNS = [
    ("entry_id", "BIGINT"),
    ("recorded_at", "TIMESTAMP"),
    ("action", "VARCHAR"),
    ("model_name", "VARCHAR"),
    ("alias", "VARCHAR"),
    ("version_before", "VARCHAR"),
    ("version_after", "VARCHAR"),
    ("triggered_by", "VARCHAR"),
    ("reasons", "VARCHAR"),
    ("evidence", "VARCHAR"),  # JSON text: metrics, gate results, run ids
]
_APPEND_ONLY_TRIGGER = f"""
CREATE OR REPLACE FUNCTION {LEDGER_SCHEMA}.promotion_ledger_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the promotion ledger is append-only'; END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS append_only ON {PROMOTION_LEDGER};
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {PROMOTION_LEDGER}
FOR EACH ROW EXECUTE FUNCTION {LEDGER_SCHEMA}.promotion_ledger_append_only();
"""


def default_actor() -> str:
    """Who triggered an action from the command line: CHURN_ACTOR, else the OS user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.environ.get("CHURN_ACTOR") or f"cli:{user}"


@dataclass(frozen=True)
class LedgerEntry:
    action: str
    model_name: str
    alias: str
    version_before: str | None
    version_after: str | None
    triggered_by: str
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown ledger action {self.action!r}; one of {', '.join(ACTIONS)}")


class PromotionLedger:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        with self.warehouse.transaction() as s:
            s.execute(f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}")
            cols = ", ".join(f"{n} {t}" for n, t in _COLUMNS)
            s.execute(f"CREATE TABLE IF NOT EXISTS {PROMOTION_LEDGER} ({cols})")
            if s.is_postgres:
                s.execute(_APPEND_ONLY_TRIGGER)

    def append(self, entry: LedgerEntry) -> int:
        """Add one entry; returns its id (ids increase by one per entry)."""
        self.ensure()
        with self.warehouse.transaction() as s:
            if s.is_postgres:  # serialize writers so ids stay gap-free and ordered
                s.execute(f"LOCK TABLE {PROMOTION_LEDGER} IN EXCLUSIVE MODE")
            last = s.query_df(f"SELECT max(entry_id) AS n FROM {PROMOTION_LEDGER}")["n"].iloc[0]
            entry_id = 1 if pd.isna(last) else int(last) + 1
            s.execute(
                f"INSERT INTO {PROMOTION_LEDGER} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry_id,
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    entry.action,
                    entry.model_name,
                    entry.alias,
                    entry.version_before,
                    entry.version_after,
                    entry.triggered_by,
                    "; ".join(entry.reasons),
                    json.dumps(entry.evidence, default=str, sort_keys=True),
                ),
            )
        return entry_id

    def history(self, model_name: str | None = None) -> pd.DataFrame:
        """Every entry, oldest first (empty when nothing was ever recorded)."""
        if not self.warehouse.table_exists(PROMOTION_LEDGER):
            return pd.DataFrame(columns=[n for n, _ in _COLUMNS])
        where = "WHERE model_name = ?" if model_name else ""
        return self.warehouse.query_df(
            f"SELECT * FROM {PROMOTION_LEDGER} {where} ORDER BY entry_id",
            (model_name,) if model_name else None,
        )
