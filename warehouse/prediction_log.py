"""Draining the service's prediction stream into the warehouse, exactly once.

The scoring service appends one entry per prediction to the Redis stream
`churn:predictions`, each with an idempotency key (the client's Idempotency-Key
header, or the service's request id). A consumer group reads it in batches; each
batch is inserted in one warehouse transaction, and a row whose (idempotency key, token
subject, customer) is already in the table is skipped (a unique index and ON CONFLICT
DO NOTHING: a per-row index probe, not a scan of the table). Only after the commit are
the entries acknowledged and deleted from the stream. A run that dies before its
commit leaves its entries pending and the next run reads them again; one that dies
between commit and acknowledgement re-reads them and inserts nothing twice; a client's
resend with the same key lands once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pandas as pd
import redis

from warehouse.connection import Warehouse
from warehouse.crash_points import crash_point

STREAM = "churn:predictions"
GROUP = "warehouse"
# the service's XADD MAXLEN ~: about 200 bytes of Redis memory an entry, so ~1 GB full;
# 75 minutes of 1,000 predictions a second, five missed drains at the default cron
DEFAULT_STREAM_CAP = 5_000_000
LOG_SCHEMA = "ops"
PREDICTION_LOG = f"{LOG_SCHEMA}.prediction_log"
# one row per (key, subject, customer): a resend of a request with the same key is one
UNIQUE_KEY = ("idempotency_key", "subject", "customer_id")
UNIQUE_INDEX = "prediction_log_idempotency"
COLUMNS = [
    # a table created before idempotency keys keeps this column its primary key
    ("stream_id", "VARCHAR"),
    ("idempotency_key", "VARCHAR"),
    ("request_id", "VARCHAR"),
    ("subject", "VARCHAR"),
    ("customer_id", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("variant", "VARCHAR"),
    ("probability", "DOUBLE PRECISION"),
    ("features_as_of", "TIMESTAMP"),
    ("latency_ms", "DOUBLE PRECISION"),
    ("reasons", "VARCHAR"),
    ("degraded", "BOOLEAN"),
    ("logged_at", "TIMESTAMP"),
]
FIELDS = [name for name, _ in COLUMNS[1:]]


@dataclass(frozen=True)
class DrainReport:
    entries: int
    inserted: int
    batches: int
    seconds: float


def ensure_table(warehouse: Warehouse) -> None:
    """The table and its unique key. A table from before idempotency keys gets the
    column, filled with each row's stream id (unique, and never a key the service
    writes), before the index is built."""
    with warehouse.transaction() as s:
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {LOG_SCHEMA}")
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        s.execute(f"CREATE TABLE IF NOT EXISTS {PREDICTION_LOG} ({cols})")
        found = s.query_df(
            "SELECT count(*) AS n FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? AND column_name = 'idempotency_key'",
            (LOG_SCHEMA, PREDICTION_LOG.split(".")[1]),
        )
        if int(found["n"].iloc[0]) == 0:
            s.execute(f"ALTER TABLE {PREDICTION_LOG} ADD COLUMN idempotency_key VARCHAR")
            s.execute(f"UPDATE {PREDICTION_LOG} SET idempotency_key = stream_id")
    # a transaction of its own: DuckDB builds no index over uncommitted updates
    with warehouse.transaction() as s:
        s.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_INDEX} "
            f"ON {PREDICTION_LOG} ({', '.join(UNIQUE_KEY)})"
        )


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def to_frame(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> pd.DataFrame:
    """Stream entries -> typed rows (missing fields become nulls, never a crash)."""
    rows = [
        {"stream_id": sid.decode(), **{f: fields.get(f.encode(), b"").decode() for f in FIELDS}}
        for sid, fields in entries
    ]
    frame = pd.DataFrame(rows, columns=["stream_id", *FIELDS])
    # an entry from a service older than idempotency keys: its stream id is its key
    key = frame["idempotency_key"]
    frame["idempotency_key"] = key.where(key != "", frame["stream_id"])
    for name in ("probability", "latency_ms"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    frame["features_as_of"] = pd.to_datetime(
        frame["features_as_of"], errors="coerce", utc=True
    ).dt.tz_localize(None)
    logged = pd.to_numeric(frame["logged_at"], errors="coerce")
    frame["logged_at"] = pd.to_datetime(logged, unit="s", errors="coerce")
    frame["degraded"] = frame["degraded"] == "1"
    return frame


def insert_new(warehouse: Warehouse, frame: pd.DataFrame) -> int:
    """Insert rows whose unique key (or, in a table from before idempotency keys, whose
    stream id) is not in the table yet, in one transaction; the first of two rows with
    one key in a batch wins. Returns how many were new (from RETURNING: counting the
    table would cost O(table) a batch)."""
    columns = ", ".join(frame.columns)
    with warehouse.transaction() as s:
        staged = s.stage(frame, PREDICTION_LOG)
        inserted = s.query_df(
            f"INSERT INTO {PREDICTION_LOG} ({columns}) SELECT {columns} FROM {staged} "
            "ON CONFLICT DO NOTHING RETURNING stream_id"
        )
    return len(inserted)


def drain(
    client: redis.Redis,
    warehouse: Warehouse,
    consumer: str = "dagster",
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> DrainReport:
    """Move the stream into the warehouse: this consumer's pending entries first (left
    by a run that died), then new ones, up to as many as the stream held when the drain
    began, so a drain under steady traffic finishes (the next one takes the rest)."""
    started = time.perf_counter()
    ensure_table(warehouse)
    ensure_group(client)
    budget = int(cast(int, client.xlen(STREAM)))
    entries = inserted = batches = 0
    for start_id in ("0", ">"):
        while entries < budget:
            count = min(batch, budget - entries)
            reply = cast(list, client.xreadgroup(GROUP, consumer, {STREAM: start_id}, count=count))
            delivered = reply[0][1] if reply else []
            # an entry deleted from the stream while pending comes back without fields
            gone = [sid for sid, fields in delivered if not fields]
            if gone:
                client.xack(STREAM, GROUP, *gone)
            got = [(sid, fields) for sid, fields in delivered if fields]
            if not got:
                if gone:
                    continue
                break
            crash_point("drain:read")
            inserted += insert_new(warehouse, to_frame(got))
            crash_point("drain:commit")
            # acknowledged only now: a run killed before this line leaves the batch
            # pending, and the next run's inserts of it are all skipped
            ids = [sid for sid, _ in got]
            pipe = client.pipeline(transaction=True)
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            pipe.execute()
            entries += len(got)
            batches += 1
            if progress:
                progress(entries)
    return DrainReport(entries, inserted, batches, time.perf_counter() - started)
