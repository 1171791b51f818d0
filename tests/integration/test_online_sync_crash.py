"""The online sync under kill -9, in a Redis server of the test's own: a writer killed
mid-write never shows readers anything but the previous complete sync; a rerun leaves
exactly what an uninterrupted run leaves; and after a successful sync the store holds
one complete version, with half-written, earlier and superseded feature sets expiring
(or gone, with no grace)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from tests.servers import own_redis
from warehouse.online_store import (
    WRITE_CHUNK,
    OnlineStore,
    SyncSuperseded,
    info_key,
    pointer_key,
    vector_key,
)

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 4 * WRITE_CHUNK
FS = "fs-test"
# The online sync in a process of its own: stage every customer's vector (all equal to
# `value`), then publish. With a pause file it stops after the first chunk, having said
# so by creating the file, and waits there until the file is removed (or it is killed).
WRITER = """
import sys, time
from pathlib import Path
import numpy as np, redis
from warehouse.online_store import OnlineStore

url, fs, value, customers, grace, pause = sys.argv[1:7]
customers, value = int(customers), float(value)
ids = [f"c{i:06d}" for i in range(customers)]
matrix = np.full((customers, 7), value, dtype=np.float32)
matrix[::10, 3] = np.nan
as_of = np.full(customers, 1_750_000_000.0 + value)
store = OnlineStore(redis.Redis.from_url(url), grace_seconds=int(grace))

first_chunk = True

def stop_after_first_chunk(written: int) -> None:
    global first_chunk
    if pause and first_chunk and written < customers:
        first_chunk = False
        Path(pause).touch()
        while Path(pause).exists():
            time.sleep(0.01)

sync = store.stage(fs, ids, as_of, matrix, stop_after_first_chunk)
store.publish(fs, sync, customers, {"model_version": str(value)})
print(sync)
"""


def sync(url: str, value: float, grace: int = 0, fs: str = FS, customers: int = CUSTOMERS) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, url, fs, str(value), str(customers), str(grace), ""],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def start_paused_sync(url: str, value: float, pause: Path, **popen: Any) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, FS, str(value), str(CUSTOMERS), "0", str(pause)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **popen,
    )
    deadline = time.monotonic() + 120
    while not pause.exists():
        assert writer.poll() is None, "the writer exited before it paused"
        assert time.monotonic() < deadline, "the writer never reached its pause"
        time.sleep(0.01)
    return writer


def read_all(url: str) -> tuple[set[str | None], set[float]]:
    """The live syncs readers resolve, and every value they get, for all customers (in
    lookups of WRITE_CHUNK ids: the script unpacks the keys onto Lua's stack)."""
    store = OnlineStore(redis.Redis.from_url(url))
    ids = [f"c{i:06d}" for i in range(CUSTOMERS)]
    syncs: set[str | None] = set()
    values: set[float] = set()
    for start in range(0, len(ids), WRITE_CHUNK):
        live, blobs = store.fetch(FS, ids[start : start + WRITE_CHUNK])
        syncs.add(live)
        values |= {float(np.frombuffer(b, "<f4", offset=8)[0]) if b else np.nan for b in blobs}
    store.client.close()
    return syncs, values


def state(url: str) -> dict[str, tuple[object, int]]:
    """Every key with its value and TTL, the live sync id written as <live>, so two
    runs with different sync ids compare equal when they leave the same data."""
    client = redis.Redis.from_url(url)
    live = client.get(pointer_key(FS)).decode()
    out: dict[str, tuple[object, int]] = {}
    for key in client.scan_iter("*"):
        if client.type(key) == b"hash":
            value: object = {
                f.decode(): v.decode().replace(live, "<live>")
                for f, v in client.hgetall(key).items()
            }
        else:
            value = client.get(key)
            if value == live.encode():
                value = "<live>"
        out[key.decode().replace(live, "<live>")] = (value, client.ttl(key))
    client.close()
    return out


def test_a_sync_killed_mid_write_is_invisible_and_a_rerun_equals_a_clean_run(tmp_path) -> None:
    with own_redis(tmp_path) as server:
        url = server.url
        first = sync(url, 1.0)
        assert read_all(url) == ({first}, {1.0})

        writer = start_paused_sync(url, 9.0, tmp_path / "paused")
        client = redis.Redis.from_url(url)
        mine = f"churn:fv:{first}:".encode()
        staged = [k for k in client.scan_iter("churn:fv:*") if not k.startswith(mine)]
        # exactly one chunk written, three to go (and the sync's staged count)
        assert len(staged) == WRITE_CHUNK + 1
        assert read_all(url) == ({first}, {1.0})  # readers meanwhile: the previous sync
        writer.send_signal(signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL
        assert read_all(url) == ({first}, {1.0})
        assert client.get(pointer_key(FS)).decode() == first

        second = sync(url, 2.0)
        assert read_all(url) == ({second}, {2.0})
        # one complete version: the killed run's chunk and the first sync are gone
        remaining = {k.decode().split(":")[2] for k in client.scan_iter("churn:fv:*")}
        assert remaining == {second}
        assert client.dbsize() == CUSTOMERS + 2  # vectors, pointer, info
        rerun = state(url)
        client.close()

    (tmp_path / "clean").mkdir()
    with own_redis(tmp_path / "clean") as server:
        url = server.url
        sync(url, 1.0)
        sync(url, 2.0)
        assert state(url) == rerun


def test_redis_restarted_mid_sync_with_persistence_ends_with_one_complete_version(
    tmp_path,
) -> None:
    """Redis with an append-only file killed and restarted while a sync writes: the
    writer reconnects and finishes, and the store holds exactly the new sync, complete."""
    with own_redis(tmp_path, persistent=True) as server:
        url = server.url
        sync(url, 1.0)
        pause = tmp_path / "paused"
        writer = start_paused_sync(url, 9.0, pause)
        server.kill()
        server.start()
        pause.unlink()
        assert writer.wait(timeout=120) == 0
        syncs, values = read_all(url)
        assert len(syncs) == 1 and None not in syncs and values == {9.0}
        client = redis.Redis.from_url(url)
        assert client.dbsize() == CUSTOMERS + 2  # vectors, pointer, info: nothing else
        client.close()


def test_redis_restarted_mid_sync_without_persistence_never_publishes_a_partial_sync(
    tmp_path,
) -> None:
    """Redis without persistence restarted while a sync writes: the chunk written before
    the restart is gone (and the previous sync with it). The writer reconnects and writes
    the rest, but publishing refuses a sync Redis no longer holds whole: nothing partial
    ever goes live, and the next sync is complete."""
    with own_redis(tmp_path) as server:
        url = server.url
        sync(url, 1.0)
        pause = tmp_path / "paused"
        writer = start_paused_sync(url, 9.0, pause, stderr=subprocess.PIPE, text=True)
        server.kill()
        server.start()
        pause.unlink()
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode != 0
        missing = f"Redis holds {CUSTOMERS - WRITE_CHUNK:,} of the {CUSTOMERS:,} vectors"
        assert missing in stderr and "never went live" in stderr
        client = redis.Redis.from_url(url)
        assert client.dbsize() == 0  # the partial sync was dropped, its count with it
        assert read_all(url)[0] == {None}

        sync(url, 2.0)
        syncs, values = read_all(url)
        assert len(syncs) == 1 and None not in syncs and values == {2.0}
        assert client.dbsize() == CUSTOMERS + 2
        client.close()


def test_after_a_sync_everything_it_supersedes_expires(tmp_path) -> None:
    with own_redis(tmp_path) as server:
        url = server.url
        client = redis.Redis.from_url(url)
        store = OnlineStore(client, grace_seconds=30, superseded_grace_seconds=600)
        ids = [f"c{i:06d}" for i in range(100)]
        as_of = np.full(len(ids), 1_750_000_000.0)

        def matrix(value: float) -> np.ndarray:
            return np.full((len(ids), 7), value, dtype=np.float32)

        old_set = store.stage("fs-old", ids, as_of, matrix(1.0))
        store.publish("fs-old", old_set, len(ids), {})
        half_written = store.stage("fs-old", ids[:10], as_of[:10], matrix(5.0)[:10])
        first = store.stage(FS, ids, as_of, matrix(2.0))
        store.publish(FS, first, len(ids), {})
        assert client.ttl(vector_key(half_written, ids[0])) == 30
        # the previous champion's feature set: pointer, info and vectors, given longer
        for key in (pointer_key("fs-old"), info_key("fs-old"), vector_key(old_set, ids[0])):
            assert 30 < client.ttl(key) <= 600
        assert client.ttl(vector_key(first, ids[0])) == -1
        assert client.ttl(pointer_key(FS)) == -1 and client.ttl(info_key(FS)) == -1

        client.expire(vector_key(old_set, ids[1]), 7)  # counting down already
        second = store.stage(FS, ids, as_of, matrix(3.0))
        store.publish(FS, second, len(ids), {})
        assert 0 < client.ttl(vector_key(first, ids[0])) <= 30
        # a key already counting down keeps its deadline: frequent syncs never postpone it
        assert 0 < client.ttl(vector_key(old_set, ids[1])) <= 7
        live = {k for k in client.scan_iter("churn:fv:*") if client.ttl(k) == -1}
        assert live == {vector_key(second, c).encode() for c in ids}

        # a sync staged before the live one is refused and dropped; the live one stays
        stale = f"{FS}.00000101T000000.abcdef"
        client.set(vector_key(stale, ids[0]), b"x")
        with pytest.raises(SyncSuperseded, match=second):
            store.publish(FS, stale, 1, {})
        assert client.get(pointer_key(FS)).decode() == second
        assert not client.exists(vector_key(stale, ids[0]))
        client.close()
