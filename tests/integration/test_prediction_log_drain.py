"""The prediction stream drained into the warehouse exactly once, on DuckDB and
Postgres, including runs that died before or after their commit (real subprocesses
killed with SIGKILL), client resends with the same idempotency key, and a table from
before idempotency keys."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import redis

from warehouse.connection import Warehouse
from warehouse.crash_points import FAULT_VARIABLE
from warehouse.prediction_log import (
    GROUP,
    PREDICTION_LOG,
    STREAM,
    drain,
    ensure_group,
    ensure_table,
    insert_new,
    to_frame,
)

# what the prediction_log asset runs, in a process of its own
DRIVER = """
import sys

import redis

from warehouse.connection import Warehouse
from warehouse.prediction_log import drain
from warehouse.settings import load_settings

drain(redis.Redis.from_url(sys.argv[1]), Warehouse(load_settings()), batch=int(sys.argv[2]))
print("finished")
"""


def _append(client: redis.Redis, n: int, start: int = 0) -> None:
    """n entries laid out as the service writes them (two customers per request)."""
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + n):
        pipe.xadd(
            STREAM,
            {
                "idempotency_key": f"r{i // 2}",
                "request_id": f"r{i // 2}",
                "subject": "svc",
                "customer_id": f"C{i:07d}",
                "model_version": "3",
                "variant": "champion",
                "probability": "0.25",
                "features_as_of": "2025-06-01T00:00:00+00:00",
                "latency_ms": "0.4",
                "reasons": "",
                "degraded": "0",
                "logged_at": "1750000000.5",
            },
        )
    pipe.execute()


def _rows(wh: Warehouse) -> list[str]:
    return wh.query_df(f"SELECT customer_id FROM {PREDICTION_LOG} ORDER BY 1")[
        "customer_id"
    ].tolist()


def test_drain_moves_everything_once(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    _append(client, 2_500)
    report = drain(client, wh, batch=1_000)
    assert (report.entries, report.inserted, report.batches) == (2_500, 2_500, 3)
    assert client.xlen(STREAM) == 0
    assert _rows(wh) == [f"C{i:07d}" for i in range(2_500)]
    row = wh.query_df(f"SELECT * FROM {PREDICTION_LOG} LIMIT 1").iloc[0]
    assert row["probability"] == 0.25 and row["model_version"] == "3" and not row["degraded"]
    assert str(row["features_as_of"]) == "2025-06-01 00:00:00"

    _append(client, 10, start=2_500)
    assert drain(client, wh).inserted == 10
    assert drain(client, wh).entries == 0


def test_a_run_that_died_after_its_commit_inserts_nothing_twice(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    ensure_table(wh)
    ensure_group(client)
    _append(client, 300)
    # the dead run: it read 200 entries and committed them, but never acknowledged
    delivered = client.xreadgroup(GROUP, "dagster", {STREAM: ">"}, count=200)[0][1]
    assert insert_new(wh, to_frame(delivered)) == 200
    # another dead run read the next 100 but died before its commit
    client.xreadgroup(GROUP, "dagster", {STREAM: ">"}, count=100)

    report = drain(client, wh)
    assert report.entries == 300 and report.inserted == 100
    assert _rows(wh) == [f"C{i:07d}" for i in range(300)]
    assert client.xpending(STREAM, GROUP)["pending"] == 0


def test_entries_with_missing_or_bad_fields_become_nulls(duckdb_settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd(STREAM, {"customer_id": "C1", "probability": "not a number"})
    wh = Warehouse(duckdb_settings)
    assert drain(client, wh).inserted == 1
    row = wh.query_df(f"SELECT * FROM {PREDICTION_LOG}").iloc[0]
    assert row["customer_id"] == "C1"
    assert row["probability"] != row["probability"]  # NaN / NULL


def test_the_asset_drains_and_reports_its_rate(duckdb_settings, redis_url) -> None:
    import dagster as dg

    from churn_assets.defs.prediction_log import prediction_log
    from churn_assets.resources import RedisResource, WarehouseResource

    _append(redis.Redis.from_url(redis_url), 50)
    result = dg.materialize(
        [prediction_log],
        resources={
            "warehouse": WarehouseResource(home=str(duckdb_settings.home)),
            "redis_store": RedisResource(url=redis_url),
        },
    )
    metadata = result.asset_materializations_for_node("prediction_log")[0].metadata
    assert metadata["entries_drained"].value == 50 and metadata["rows_inserted"].value == 50
    assert metadata["entries_per_minute"].value > 0


def test_a_drain_under_steady_traffic_finishes(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    _append(client, 1_000)
    written = [1_000]

    def traffic(_: int) -> None:  # the service keeps logging while the drain runs
        _append(client, 500, start=written[0])
        written[0] += 500

    report = drain(client, wh, batch=200, progress=traffic)
    assert report.entries == 1_000 and _rows(wh) == [f"C{i:07d}" for i in range(1_000)]
    assert client.xlen(STREAM) == written[0] - 1_000  # the rest waits for the next drain
    assert drain(client, wh, batch=10_000).entries == written[0] - 1_000


def _logged(wh: Warehouse) -> list[tuple]:
    return [
        tuple(row)
        for row in wh.query_df(
            f"SELECT stream_id, idempotency_key, request_id, subject, customer_id "
            f"FROM {PREDICTION_LOG} ORDER BY stream_id"
        ).itertuples(index=False)
    ]


def _as_drained(client: redis.Redis) -> list[tuple]:
    """The rows an uninterrupted drain of the stream as it is now inserts."""
    frame = to_frame(client.xrange(STREAM))
    columns = ["stream_id", "idempotency_key", "request_id", "subject", "customer_id"]
    return sorted(tuple(row) for row in frame[columns].itertuples(index=False))


def _drain_in_subprocess(redis_url: str, batch: int, crash_after: str) -> subprocess.Popen:
    env = {**os.environ, FAULT_VARIABLE: crash_after}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, redis_url, str(batch)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("step", ["drain:read", "drain:commit"])
def test_a_drain_killed_mid_way_loses_nothing_and_doubles_nothing(
    settings, redis_url, step
) -> None:
    """SIGKILL after the third batch was read (not committed) or committed (not
    acknowledged); the rerun leaves exactly the rows of an uninterrupted drain."""
    client = redis.Redis.from_url(redis_url)
    n, batch = 50_000, 5_000
    _append(client, n)
    expected = _as_drained(client)

    dead = _drain_in_subprocess(redis_url, batch, f"{step}#3")
    out, err = dead.communicate()
    assert dead.returncode == -signal.SIGKILL, out + err
    wh = Warehouse(settings)
    committed = 3 * batch if step == "drain:commit" else 2 * batch
    assert len(_logged(wh)) == committed
    assert client.xpending(STREAM, GROUP)["pending"] == batch  # the third batch
    assert client.xlen(STREAM) == n - 2 * batch  # the first two were acknowledged

    report = drain(client, wh, batch=batch)
    assert (report.entries, report.inserted) == (n - 2 * batch, n - committed)
    assert _logged(wh) == expected
    assert client.xlen(STREAM) == 0 and client.xpending(STREAM, GROUP)["pending"] == 0


def test_a_drain_killed_from_outside_at_any_moment_on_postgres(pg_url, redis_url, monkeypatch):
    """`kill -9` from outside once the drain has committed something, wherever it is."""
    from warehouse.settings import load_settings

    monkeypatch.setenv("CHURN_WAREHOUSE_URL", pg_url)
    client = redis.Redis.from_url(redis_url)
    n, batch = 200_000, 5_000
    _append(client, n)
    expected = _as_drained(client)

    running = _drain_in_subprocess(redis_url, batch, "")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while running.poll() is None:  # until the first batch is in the table
            try:
                rows = conn.execute(f"SELECT count(*) FROM {PREDICTION_LOG}").fetchone()
            except psycopg.errors.UndefinedTable:
                rows = (0,)
            if rows and rows[0] > 0:
                break
            time.sleep(0.05)
    os.kill(running.pid, signal.SIGKILL)
    out, err = running.communicate()
    assert running.returncode == -signal.SIGKILL, out + err
    wh = Warehouse(load_settings())
    assert 0 < len(_logged(wh)) < n, "the drain finished before it was killed"

    drain(client, wh, batch=batch)
    assert _logged(wh) == expected
    assert client.xlen(STREAM) == 0 and client.xpending(STREAM, GROUP)["pending"] == 0


def test_a_resend_with_the_same_idempotency_key_lands_once(settings, redis_url) -> None:
    """A client resends after a timeout with its Idempotency-Key: the service logs the
    predictions again (new request ids), the warehouse keeps the first ones. The same
    key from another token subject is another client's request."""
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)

    def log(request_id: str, subject: str, probability: str) -> None:
        for customer in ("C1", "C2"):
            client.xadd(
                STREAM,
                {"idempotency_key": "retry-me", "request_id": request_id,
                 "subject": subject, "customer_id": customer, "probability": probability},
            )  # fmt: skip

    log("first", "app", "0.1")
    log("resent", "app", "0.2")  # in the same drain batch as the first
    assert drain(client, wh).inserted == 2
    log("resent-later", "app", "0.3")  # in a later drain
    log("other", "another-app", "0.4")
    report = drain(client, wh)
    assert (report.entries, report.inserted) == (4, 2)
    rows = wh.query_df(
        f"SELECT subject, customer_id, request_id, probability FROM {PREDICTION_LOG} "
        "ORDER BY subject DESC, customer_id"
    )
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        ("app", "C1", "first", 0.1), ("app", "C2", "first", 0.1),
        ("another-app", "C1", "other", 0.4), ("another-app", "C2", "other", 0.4),
    ]  # fmt: skip


OLD_TABLE = (
    "CREATE TABLE ops.prediction_log (stream_id VARCHAR PRIMARY KEY, request_id VARCHAR, "
    "subject VARCHAR, customer_id VARCHAR, model_version VARCHAR, variant VARCHAR, "
    "probability DOUBLE PRECISION, features_as_of TIMESTAMP, latency_ms DOUBLE PRECISION, "
    "reasons VARCHAR, degraded BOOLEAN, logged_at TIMESTAMP)"
)


def test_a_table_from_before_idempotency_keys_is_migrated(settings, redis_url) -> None:
    """Old rows keep their stream id as key; an old entry the dead run committed but
    never acknowledged (no idempotency key in the stream) is still not inserted twice."""
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    ensure_group(client)
    old_id = client.xadd(STREAM, {"request_id": "r-old", "subject": "svc", "customer_id": "C0"})
    client.xreadgroup(GROUP, "dagster", {STREAM: ">"}, count=1)  # delivered, never acked
    with wh.transaction() as s:
        s.execute("CREATE SCHEMA IF NOT EXISTS ops")
        s.execute(OLD_TABLE)
        s.execute(
            "INSERT INTO ops.prediction_log (stream_id, request_id, subject, customer_id) "
            "VALUES (?, 'r-old', 'svc', 'C0'), ('1-0', 'r-older', 'svc', 'C0')",
            (old_id.decode(),),
        )
    _append(client, 10)

    report = drain(client, wh)
    assert (report.entries, report.inserted) == (11, 10)
    keys = dict(
        wh.query_df(f"SELECT stream_id, idempotency_key FROM {PREDICTION_LOG}").itertuples(
            index=False
        )
    )
    assert keys[old_id.decode()] == old_id.decode() and keys["1-0"] == "1-0"
    assert len(keys) == 12 and drain(client, wh).entries == 0
