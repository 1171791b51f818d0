"""Draining the service's prediction stream into the warehouse, exactly once.

The scoring service appends one entry per prediction to the Redis stream
`churn:predictions`. A consumer group reads it in batches; each batch is inserted in
one warehouse transaction keyed by the stream entry id (a re-delivered entry is
ignored), and only after the commit are the entries acknowledged and deleted from the
stream. A run that dies between commit and acknowledgement re-reads its pending
entries next time and inserts nothing twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pandas as pd
import redis

from warehouse.connection import Warehouse

STREAM = "churn:predictions"
GROUP = "warehouse"
LOG_SCHEMA = "ops"
PREDICTION_LOG = f"{LOG_SCHEMA}.prediction_log"
COLUMNS = [
    ("stream_id", "VARCHAR PRIMARY KEY"),
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
    with warehouse.transaction() as s:
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {LOG_SCHEMA}")
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        s.execute(f"CREATE TABLE IF NOT EXISTS {PREDICTION_LOG} ({cols})")


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
    """Insert rows whose stream_id is not in the table yet, in one transaction; returns
    how many were new (from RETURNING: counting the table would cost O(table) a batch)."""
    columns = ", ".join(frame.columns)
    with warehouse.transaction() as s:
        staged = s.stage(frame, PREDICTION_LOG)
        inserted = s.query_df(
            f"INSERT INTO {PREDICTION_LOG} ({columns}) SELECT {columns} FROM {staged} "
            "ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id"
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
            inserted += insert_new(warehouse, to_frame(got))
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
