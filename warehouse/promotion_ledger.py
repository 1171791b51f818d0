"""The promotion ledger: an append-only warehouse table of every promotion, refusal and
rollback of a model version, with who or what triggered it and the evidence.

An alias change is written ledger first: an intent row (state `pending`) before the
alias moves, then a row confirming it (state `confirmed`, `intent_id` naming the
intent). A run that dies in between leaves an intent without a resolution; the next
promotion, rollback or `churn status` resolves it from where the alias really points
(churn_assets.ml.promotion.repair) by appending `confirmed` or `abandoned`. A refusal
moves no alias and is one `confirmed` row. Rows written before intents existed have
no state and count as confirmed.

Only appends write; nothing here updates or deletes a row, and on Postgres a trigger
refuses UPDATE and DELETE so the history cannot be rewritten by accident."""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg

from warehouse.connection import Warehouse

LEDGER_SCHEMA = "ops"
PROMOTION_LEDGER = f"{LEDGER_SCHEMA}.promotion_ledger"
ACTIONS = ("promote", "challenger", "refuse", "rollback")
PENDING, CONFIRMED, ABANDONED = "pending", "confirmed", "abandoned"
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
    # added with intents; ledgers created before have them added empty by ensure()
    ("state", "VARCHAR"),  # pending (an intent) | confirmed | abandoned
    ("intent_id", "BIGINT"),  # on a confirmed/abandoned row: the intent it resolves
]
_ADDED_COLUMNS = _COLUMNS[-2:]
_APPEND_ONLY_TRIGGER = f"""
CREATE OR REPLACE FUNCTION {LEDGER_SCHEMA}.promotion_ledger_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the promotion ledger is append-only'; END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS append_only ON {PROMOTION_LEDGER};
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {PROMOTION_LEDGER}
FOR EACH ROW EXECUTE FUNCTION {LEDGER_SCHEMA}.promotion_ledger_append_only();
"""
# pg_advisory_lock key of alias changes: any fixed 32-bit number of our own
_ADVISORY_LOCK_KEY = zlib.crc32(PROMOTION_LEDGER.encode())


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
        """The table, with the state and intent_id columns added to a ledger created
        before they existed (its rows keep a null state: confirmed)."""
        with self.warehouse.transaction() as s:
            s.execute(f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}")
            cols = ", ".join(f"{n} {t}" for n, t in _COLUMNS)
            s.execute(f"CREATE TABLE IF NOT EXISTS {PROMOTION_LEDGER} ({cols})")
            for name, kind in _ADDED_COLUMNS:
                s.execute(f"ALTER TABLE {PROMOTION_LEDGER} ADD COLUMN IF NOT EXISTS {name} {kind}")
            if s.is_postgres:
                s.execute(_APPEND_ONLY_TRIGGER)

    def append(self, entry: LedgerEntry) -> int:
        """Record an action that moves no alias (a refusal) as done; returns its id."""
        return self._insert(entry, CONFIRMED, None)

    def intend(self, entry: LedgerEntry) -> int:
        """Record an alias change about to be made (state pending); returns its id,
        which the confirmation names."""
        return self._insert(entry, PENDING, None)

    def resolve(self, intent_id: int, state: str, by: str, evidence: dict[str, Any]) -> int:
        """Append the outcome of an intent: confirmed (the alias moved) or abandoned
        (it did not). The row repeats the intent's action, alias and versions so it
        reads on its own."""
        if state not in (CONFIRMED, ABANDONED):
            raise ValueError(f"an intent resolves to {CONFIRMED} or {ABANDONED}, not {state!r}")
        found = self.records()
        intent = found[found["entry_id"] == intent_id]
        if intent.empty:
            raise LookupError(f"the promotion ledger has no entry {intent_id}")
        row = intent.iloc[0]
        entry = LedgerEntry(
            str(row["action"]), str(row["model_name"]), str(row["alias"]),
            _text(row["version_before"]), _text(row["version_after"]), by, [], evidence,
        )  # fmt: skip
        return self._insert(entry, state, intent_id)

    def _insert(self, entry: LedgerEntry, state: str, intent_id: int | None) -> int:
        """Add one row; ids increase by one per row."""
        self.ensure()
        names = ", ".join(n for n, _ in _COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        with self.warehouse.transaction() as s:
            if s.is_postgres:  # serialize writers so ids stay gap-free and ordered
                s.execute(f"LOCK TABLE {PROMOTION_LEDGER} IN EXCLUSIVE MODE")
            last = s.query_df(f"SELECT max(entry_id) AS n FROM {PROMOTION_LEDGER}")["n"].iloc[0]
            entry_id = 1 if pd.isna(last) else int(last) + 1
            s.execute(
                f"INSERT INTO {PROMOTION_LEDGER} ({names}) VALUES ({marks})",
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
                    state,
                    intent_id,
                ),
            )
        return entry_id

    def records(self, model_name: str | None = None) -> pd.DataFrame:
        """Every row as written (intents, confirmations, abandonments), oldest first."""
        if not self.warehouse.table_exists(PROMOTION_LEDGER):
            return pd.DataFrame(columns=[n for n, _ in _COLUMNS])
        where = "WHERE model_name = ?" if model_name else ""
        found = self.warehouse.query_df(
            f"SELECT * FROM {PROMOTION_LEDGER} {where} ORDER BY entry_id",
            (model_name,) if model_name else None,
        )
        for name, _ in _ADDED_COLUMNS:  # a ledger from before intents, not written since
            if name not in found.columns:
                found[name] = None
        return found

    def history(self, model_name: str | None = None) -> pd.DataFrame:
        """The actions that took effect, oldest first, one row each: the intent's row
        (its id, time, evidence) with state confirmed. Pending and abandoned intents
        and the confirmation rows themselves are left out (see `records`)."""
        outcome = _outcomes(self.records(model_name))
        actions = outcome[outcome["state"] == CONFIRMED]
        return actions.reset_index(drop=True)

    def pending(self, model_name: str | None = None) -> pd.DataFrame:
        """Intents nothing has resolved yet: a run died between its steps (or is
        between them now; see `exclusive`)."""
        outcome = _outcomes(self.records(model_name))
        return outcome[outcome["state"] == PENDING].reset_index(drop=True)

    @contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lock that serializes alias changes and their repair across
        processes, so a repair never judges an intent whose run is still moving the
        alias. Yields True when held; with wait=False, False at once when another
        process holds it. A process that dies releases it (its connection or file
        descriptor closes)."""
        if self.warehouse.is_postgres:
            with psycopg.connect(self.warehouse.settings.warehouse_url, autocommit=True) as conn:
                if wait:
                    conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
                    yield True
                    return
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
                row = got.fetchone()
                yield bool(row and row[0])
            return
        database = self.warehouse.settings.duckdb_path
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(database.with_name(database.name + ".promotion.lock"), "a") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True  # the lock goes with the file descriptor


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _outcomes(records: pd.DataFrame) -> pd.DataFrame:
    """One row per action (intents, refusals, rows from before intents) whose state is
    its outcome: an intent takes the state of the first row resolving it."""
    resolutions = records[records["intent_id"].notna()].drop_duplicates("intent_id")
    outcome_of = dict(
        zip(resolutions["intent_id"].astype("int64"), resolutions["state"], strict=True)
    )
    actions = records[records["intent_id"].isna()].copy()
    actions["state"] = [
        outcome_of.get(int(entry_id), PENDING)
        if state == PENDING
        else (state if isinstance(state, str) else CONFIRMED)
        for entry_id, state in zip(actions["entry_id"], actions["state"], strict=True)
    ]
    return actions
