"""Prediction-log drain rate: `warehouse.prediction_log.drain()` moving N stream entries
shaped like the scoring service's (same fields, same encodings as
serving/prediction_log.py) from Redis into ops.prediction_log, on an embedded DuckDB
file and on Postgres. Target (the requirement): 1,000,000 entries a minute or more.

    uv run python bench/drain.py [--entries 1000000] [--batch 20000]
        [--backends duckdb,postgres] [--redis-url redis://127.0.0.1:6379/13]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Baselines measured in the same run, over the same entries:
- the Redis floor: XREADGROUP of every entry plus its XACK and XDEL, in the drain's
  batches, with no warehouse at all (what any drain must pay);
- a naive drain: a sample of entries read, decoded in Python and inserted with one
  parameterised INSERT ... ON CONFLICT per entry (one transaction), then acknowledged;
  its time per entry is scaled to N.

Each drain is split into where its time goes (XREADGROUP, decoding into a frame,
staging, the INSERT, connection and commit, XACK+XDEL) by timing wrappers installed
around those calls for the drain only. After each drain the table must hold exactly N
rows, the oldest row must match the first entry written, and the stream must be empty
with nothing pending (the script exits non-zero otherwise).

Uses (and empties) the given Redis database only; creates the Postgres database
`bench_drain` (dropping it first and again at the end) and a DuckDB file in a temporary
directory. The warehouse settings are built here, not read from CHURN_WAREHOUSE_URL.
Progress goes to stderr; one JSON object to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
import redis

from warehouse import prediction_log
from warehouse.connection import Session, Warehouse
from warehouse.prediction_log import (
    COLUMNS,
    DEFAULT_STREAM_CAP,
    LOG_SCHEMA,
    PREDICTION_LOG,
    STREAM,
    UNIQUE_KEY,
    drain,
)
from warehouse.settings import Settings

TARGET_PER_MINUTE = 1_000_000
PG_DATABASE = "bench_drain"
NAIVE_TABLE = f"{LOG_SCHEMA}.prediction_log_naive"
FILL_PIPELINE = 10_000  # XADD commands per round trip while filling
# what the service's reasons look like: [[feature, contribution], ...], top 3
REASON_FEATURES = (
    "login_days_since_last",
    "usage_count_trend_30d",
    "seats_value_30d",
    "payment_failure_count_90d",
    "ticket_count_30d",
    "login_count_30d",
)
FEATURE_DATES = tuple(dt.datetime(2026, 11, d, tzinfo=dt.UTC).isoformat() for d in (1, 8, 15, 22))


def log(message: str) -> None:
    print(f"[drain bench] {message}", file=sys.stderr, flush=True)


def service_entries(n: int, explained: float, seed: int = 0) -> Iterator[tuple[str, ...]]:
    """XADD commands laid out exactly as serving.prediction_log.PredictionLog.append
    builds them: one request per prediction, reasons on an `explained` share of them
    (the service adds them only when the request asks for an explanation), 1 % degraded.
    The same seed gives the same entries (ids aside, which Redis assigns)."""
    rng = random.Random(seed)
    now = time.time()
    for i in range(n):
        reasons = ""
        if rng.random() < explained:
            picked = rng.sample(REASON_FEATURES, 3)
            reasons = json.dumps([[f, round(rng.gauss(0, 0.5), 6)] for f in picked])
        request_id = f"{rng.getrandbits(128):032x}"
        yield (
            "XADD", STREAM, "MAXLEN", "~", str(DEFAULT_STREAM_CAP), "*",
            "idempotency_key", request_id,
            "request_id", request_id,
            "subject", "svc-scoring",
            "latency_ms", f"{rng.uniform(0.3, 4.0):.3f}",
            "logged_at", repr(now + i * 1e-4),
            "customer_id", f"C{rng.randrange(1, 50_001):07d}",
            "model_version", "7",
            "variant", "champion",
            "probability", repr(round(rng.random(), 6)),
            "features_as_of", FEATURE_DATES[i % len(FEATURE_DATES)],
            "reasons", reasons,
            "degraded", "1" if rng.random() < 0.01 else "0",
        )  # fmt: skip


def fill(client: redis.Redis, n: int, explained: float) -> float:
    """An empty database, then the stream holding n service-shaped entries."""
    client.flushdb()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, command in enumerate(service_entries(n, explained), start=1):
        pipe.execute_command(*command)
        if i % FILL_PIPELINE == 0:
            pipe.execute()
        if i % 250_000 == 0:
            log(f"  filled {i:,} entries")
    pipe.execute()
    assert client.xlen(STREAM) == n
    return time.perf_counter() - started


def redis_floor(client: redis.Redis, batch: int) -> dict[str, float]:
    """Every entry through XREADGROUP, XACK and XDEL in the drain's batches: no decoding,
    no warehouse."""
    client.xgroup_create(STREAM, "floor", id="0")
    read = ack = 0.0
    total = 0
    while True:
        t0 = time.perf_counter()
        reply = cast(list, client.xreadgroup("floor", "bench", {STREAM: ">"}, count=batch))
        t1 = time.perf_counter()
        read += t1 - t0
        got = reply[0][1] if reply else []
        if not got:
            break
        ids = [sid for sid, _ in got]
        pipe = client.pipeline(transaction=True)
        pipe.xack(STREAM, "floor", *ids)
        pipe.xdel(STREAM, *ids)
        pipe.execute()
        ack += time.perf_counter() - t1
        total += len(got)
    assert client.xlen(STREAM) == 0
    return {"entries": total, "xreadgroup_seconds": read, "xack_xdel_seconds": ack}


def _number(raw: bytes) -> float | None:
    return float(raw) if raw else None


def naive_row(sid: bytes, fields: dict[bytes, bytes]) -> tuple[Any, ...]:
    """One entry decoded field by field in Python, as a first attempt would."""
    get = fields.get
    as_of = get(b"features_as_of", b"").decode()
    logged = _number(get(b"logged_at", b""))
    return (
        sid.decode(),
        get(b"idempotency_key", b"").decode() or sid.decode(),
        get(b"request_id", b"").decode(),
        get(b"subject", b"").decode(),
        get(b"customer_id", b"").decode(),
        get(b"model_version", b"").decode(),
        get(b"variant", b"").decode(),
        _number(get(b"probability", b"")),
        dt.datetime.fromisoformat(as_of).astimezone(dt.UTC).replace(tzinfo=None) if as_of else None,
        _number(get(b"latency_ms", b"")),
        get(b"reasons", b"").decode(),
        get(b"degraded", b"") == b"1",
        dt.datetime.fromtimestamp(logged, dt.UTC).replace(tzinfo=None) if logged else None,
    )


def naive_drain(client: redis.Redis, warehouse: Warehouse, sample: int) -> float:
    """Seconds per entry for a sample read through a group of its own (the real drain's
    group still sees every entry), inserted one INSERT per entry, then acknowledged."""
    with warehouse.transaction() as s:
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {LOG_SCHEMA}")
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        s.execute(f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} ({cols})")
        s.execute(f"CREATE UNIQUE INDEX naive_key ON {NAIVE_TABLE} ({', '.join(UNIQUE_KEY)})")
    client.xgroup_create(STREAM, "naive", id="0")
    marks = ", ".join("?" for _ in COLUMNS)
    insert = f"INSERT INTO {NAIVE_TABLE} VALUES ({marks}) ON CONFLICT DO NOTHING"
    started = time.perf_counter()
    reply = cast(list, client.xreadgroup("naive", "bench", {STREAM: ">"}, count=sample))
    got = reply[0][1]
    with warehouse.transaction() as s:
        for sid, fields in got:
            s.execute(insert, naive_row(sid, fields))
    client.xack(STREAM, "naive", *[sid for sid, _ in got])
    elapsed = time.perf_counter() - started
    client.xgroup_destroy(STREAM, "naive")
    stored = int(warehouse.query_df(f"SELECT count(*) AS n FROM {NAIVE_TABLE}")["n"].iloc[0])
    assert stored == len(got) == sample, (stored, len(got))
    with warehouse.transaction() as s:
        s.execute(f"DROP TABLE {NAIVE_TABLE}")
    return elapsed / sample


class Splits:
    """Accumulated seconds per named call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


@contextmanager
def instrumented(splits: Splits, client: redis.Redis) -> Iterator[None]:
    """Timing wrappers around the calls drain() makes, removed afterwards. drain() looks
    to_frame and insert_new up in its module at call time, so wrapping the module
    attributes times its real calls."""
    make_pipeline = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        pipe.__dict__["execute"] = splits.wrap("xack_xdel", pipe.execute)
        return pipe

    # (owner, attribute, split name); inside insert_new, Session.query_df is the
    # INSERT ... ON CONFLICT ... RETURNING
    targets: list[tuple[Any, str, str]] = [
        (prediction_log, "to_frame", "to_frame"),
        (prediction_log, "insert_new", "insert_new"),
        (Session, "stage", "stage"),
        (Session, "query_df", "insert_statement"),
        (client, "xreadgroup", "xreadgroup"),
    ]
    saved = [(owner, attr, owner.__dict__[attr]) for owner, attr, _ in targets[:4]]
    for owner, attr, split in targets:
        setattr(owner, attr, splits.wrap(split, getattr(owner, attr)))
    client.__dict__["pipeline"] = pipeline
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
        for attr in ("xreadgroup", "pipeline"):
            del client.__dict__[attr]  # back to the class's methods


def first_entry_matches(warehouse: Warehouse, explained: float) -> bool:
    """The oldest row holds the first entry written (stream ids of one millisecond
    differ only in the sequence, so the smallest id sorts first as text too)."""
    command = next(service_entries(1, explained))
    fields = command[command.index("*") + 1 :]
    sent = dict(zip(fields[0::2], fields[1::2], strict=True))
    row = warehouse.query_df(
        f"SELECT request_id, customer_id, probability, features_as_of, degraded "
        f"FROM {PREDICTION_LOG} ORDER BY stream_id LIMIT 1"
    ).iloc[0]
    as_of = dt.datetime.fromisoformat(sent["features_as_of"]).replace(tzinfo=None)
    return bool(
        row["request_id"] == sent["request_id"]
        and row["customer_id"] == sent["customer_id"]
        and row["probability"] == float(sent["probability"])
        and row["features_as_of"] == as_of
        and bool(row["degraded"]) == (sent["degraded"] == "1")
    )


def per_minute(entries: int, seconds: float) -> int:
    return round(entries / seconds * 60)


def measure_backend(
    name: str,
    client: redis.Redis,
    warehouse: Warehouse,
    args: argparse.Namespace,
    floor_seconds: float,
) -> dict[str, Any]:
    n = args.entries
    log(f"{name}: filling the stream with {n:,} entries")
    fill_seconds = fill(client, n, args.explained)
    log(f"{name}: filled in {fill_seconds:.1f} s; naive drain of {args.naive_sample:,} entries")
    naive_per_entry = naive_drain(client, warehouse, args.naive_sample)
    log(f"{name}: naive {per_minute(1, naive_per_entry):,} entries/min; draining")

    def progress(done: int) -> None:
        if done % (args.batch * 10) == 0 or done == n:
            log(f"  {name}: drained {done:,}")

    splits = Splits()
    with instrumented(splits, client):
        started = time.perf_counter()
        report = drain(client, warehouse, batch=args.batch, progress=progress)
        seconds = time.perf_counter() - started

    rows = int(warehouse.query_df(f"SELECT count(*) AS n FROM {PREDICTION_LOG}")["n"].iloc[0])
    pending = int(cast(dict, client.xpending(STREAM, prediction_log.GROUP))["pending"])
    left = int(cast(int, client.xlen(STREAM)))
    first = first_entry_matches(warehouse, args.explained)
    correct = rows == n and report.entries == n and report.inserted == n
    correct = correct and left == 0 and pending == 0 and first
    rate = per_minute(n, seconds)
    log(f"{name}: {rate:,} entries/min ({seconds:.1f} s); rows {rows:,}, stream {left}")

    s = splits.seconds
    named = {
        "xreadgroup": s.get("xreadgroup", 0.0),
        "to_frame": s.get("to_frame", 0.0),
        "stage": s.get("stage", 0.0),
        "insert_statement": s.get("insert_statement", 0.0),
        # insert_new's remainder: opening the connection, BEGIN/COMMIT, closing
        "connect_commit_close": s.get("insert_new", 0.0)
        - s.get("stage", 0.0)
        - s.get("insert_statement", 0.0),
        "xack_xdel": s.get("xack_xdel", 0.0),
    }
    named["other"] = seconds - sum(named.values())
    naive_seconds = naive_per_entry * n
    return {
        "backend": name,
        "warehouse": warehouse.describe(),
        "drain_seconds": round(seconds, 2),
        "entries_per_minute": rate,
        "meets_target": rate >= TARGET_PER_MINUTE,
        "batches": report.batches,
        "split_seconds": {k: round(v, 2) for k, v in named.items()},
        "split_share": {k: round(v / seconds, 3) for k, v in named.items()},
        "check": {
            "rows_in_table": rows,
            "inserted": report.inserted,
            "stream_left": left,
            "pending": pending,
            "first_entry_matches": first,
            "ok": correct,
        },
        "time_vs_redis_floor": round(seconds / floor_seconds, 2),
        "naive_entries_per_minute": per_minute(1, naive_per_entry),
        "naive_seconds_estimated": round(naive_seconds, 1),
        "speedup_vs_naive": round(naive_seconds / seconds, 1),
        "fill_seconds": round(fill_seconds, 1),
    }


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh `bench_drain` database (dropped first and afterwards); yields its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{PG_DATABASE}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000, help="drain()'s batch size")
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--explained", type=float, default=0.1, help="share with reasons")
    parser.add_argument("--naive-sample", type=int, default=5_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"duckdb", "postgres"}
    if unknown:
        parser.error(f"unknown backends: {sorted(unknown)}")
    args.naive_sample = min(args.naive_sample, args.entries)
    client = redis.Redis.from_url(args.redis_url)
    started = time.perf_counter()

    log(f"Redis floor: filling {args.entries:,} entries")
    fill(client, args.entries, args.explained)
    floor = redis_floor(client, args.batch)
    floor_seconds = floor["xreadgroup_seconds"] + floor["xack_xdel_seconds"]
    log(f"Redis floor: {per_minute(args.entries, floor_seconds):,} entries/min")

    results = []
    try:
        for backend in backends:
            if backend == "duckdb":
                with tempfile.TemporaryDirectory(prefix="bench_drain_") as tmp:
                    url = f"duckdb:///{Path(tmp) / 'warehouse.duckdb'}"
                    warehouse = Warehouse(Settings(warehouse_url=url))
                    results.append(measure_backend(backend, client, warehouse, args, floor_seconds))
            else:
                with postgres_database(args.pg_admin_url) as url:
                    warehouse = Warehouse(Settings(warehouse_url=url))
                    results.append(measure_backend(backend, client, warehouse, args, floor_seconds))
    finally:
        client.flushdb()

    print(
        json.dumps(
            {
                "command": "uv run python " + shlex.join(sys.argv),
                "entries": args.entries,
                "batch": args.batch,
                "explained_share": args.explained,
                "target_entries_per_minute": TARGET_PER_MINUTE,
                "redis_floor": {
                    "xreadgroup_seconds": round(floor["xreadgroup_seconds"], 2),
                    "xack_xdel_seconds": round(floor["xack_xdel_seconds"], 2),
                    "entries_per_minute": per_minute(args.entries, floor_seconds),
                    "read_only_entries_per_minute": per_minute(
                        args.entries, floor["xreadgroup_seconds"]
                    ),
                },
                "backends": results,
                "bench_seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )
    if not all(r["check"]["ok"] for r in results):
        sys.exit("drain bench: a drain lost or duplicated entries (see check)")


if __name__ == "__main__":
    main()
