"""The alert outbox: alerts wait in a warehouse table until the webhook takes them.

A sensor that raises an alert inserts it here first (its id is derived from what the
sensor saw, so a tick evaluated twice inserts it once), then any process delivers due
alerts: it claims them in one UPDATE (the claim pushes their next attempt out by a
lease, so concurrent deliverers never send the same alert twice and a deliverer that
dies mid-send lets the next one retry after the lease), posts them, and marks them
delivered on a 2xx, or schedules the next attempt with exponential backoff. A client
error other than 408/429 will not go away: that alert is marked rejected with the
reason, never retried forever. The table survives restarts; nothing is lost while the
webhook is down."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from warehouse.connection import Warehouse

OUTBOX_SCHEMA = "ops"
ALERT_OUTBOX = f"{OUTBOX_SCHEMA}.alert_outbox"
PENDING, DELIVERED, REJECTED = "pending", "delivered", "rejected"
_COLUMNS = [
    ("alert_id", "VARCHAR PRIMARY KEY"),
    ("source", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("payload", "VARCHAR"),  # JSON: one alert in Alertmanager's format
    ("state", "VARCHAR"),  # pending | delivered | rejected
    ("attempts", "INTEGER"),
    ("next_attempt_at", "TIMESTAMP"),
    ("last_error", "VARCHAR"),
    ("delivered_at", "TIMESTAMP"),
]


@dataclass(frozen=True)
class QueuedAlert:
    alert_id: str
    source: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ClaimedAlert:
    alert_id: str
    payload: dict[str, Any]
    attempts: int  # including the one about to be made


def utcnow() -> dt.datetime:
    """Naive UTC, as the TIMESTAMP columns store it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class AlertOutbox:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        with self.warehouse.transaction() as s:
            s.execute(f"CREATE SCHEMA IF NOT EXISTS {OUTBOX_SCHEMA}")
            cols = ", ".join(f"{n} {t}" for n, t in _COLUMNS)
            s.execute(f"CREATE TABLE IF NOT EXISTS {ALERT_OUTBOX} ({cols})")

    def enqueue(self, alerts: list[QueuedAlert], now: dt.datetime | None = None) -> int:
        """Insert alerts not queued before (by id), due at once; returns how many."""
        if not alerts:
            return 0
        self.ensure()
        now = now or utcnow()
        added = 0
        with self.warehouse.transaction() as s:
            for alert in alerts:
                inserted = s.query_df(
                    f"INSERT INTO {ALERT_OUTBOX} VALUES (?, ?, ?, ?, ?, 0, ?, NULL, NULL) "
                    "ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
                    (alert.alert_id, alert.source, now, json.dumps(alert.payload), PENDING, now),
                )
                added += len(inserted)
        return added

    def claim_due(
        self, lease: dt.timedelta, now: dt.datetime | None = None, limit: int = 100
    ) -> list[ClaimedAlert]:
        """Pending alerts whose next attempt is due, oldest first, claimed for `lease`."""
        if not self.warehouse.table_exists(ALERT_OUTBOX):
            return []
        now = now or utcnow()
        with self.warehouse.transaction() as s:
            claimed = s.query_df(
                f"UPDATE {ALERT_OUTBOX} SET attempts = attempts + 1, next_attempt_at = ? "
                f"WHERE alert_id IN (SELECT alert_id FROM {ALERT_OUTBOX} "
                "  WHERE state = ? AND next_attempt_at <= ? ORDER BY created_at LIMIT ?) "
                "AND state = ? AND next_attempt_at <= ? "
                "RETURNING alert_id, payload, attempts, created_at",
                (now + lease, PENDING, now, limit, PENDING, now),
            )
        records = claimed.sort_values(["created_at", "alert_id"]).to_dict("records")
        return [
            ClaimedAlert(str(r["alert_id"]), json.loads(str(r["payload"])), int(r["attempts"]))
            for r in records
        ]

    def mark_delivered(self, alert_ids: list[str], now: dt.datetime | None = None) -> None:
        self._update(
            "state = ?, delivered_at = ?, last_error = NULL",
            (DELIVERED, now or utcnow()),
            alert_ids,
        )

    def mark_failed(self, alert_ids: list[str], error: str, retry_at: dt.datetime | None) -> None:
        """Schedule the next attempt at retry_at, or reject for good when it is None."""
        if retry_at is None:
            self._update("state = ?, last_error = ?", (REJECTED, error), alert_ids)
        else:
            self._update("next_attempt_at = ?, last_error = ?", (retry_at, error), alert_ids)

    def _update(self, assignments: str, values: tuple, alert_ids: list[str]) -> None:
        if not alert_ids:
            return
        placeholders = ", ".join("?" * len(alert_ids))
        with self.warehouse.transaction() as s:
            s.execute(
                f"UPDATE {ALERT_OUTBOX} SET {assignments} WHERE alert_id IN ({placeholders})",
                (*values, *alert_ids),
            )

    def rows(self) -> pd.DataFrame:
        """Every alert, oldest first (empty before the first one)."""
        if not self.warehouse.table_exists(ALERT_OUTBOX):
            return pd.DataFrame(columns=[n for n, _ in _COLUMNS])
        return self.warehouse.query_df(
            f"SELECT * FROM {ALERT_OUTBOX} ORDER BY created_at, alert_id"
        )
