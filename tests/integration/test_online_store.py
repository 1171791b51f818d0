"""The Redis online store against the real Redis service: staged syncs are invisible,
the pointer flips atomically, old syncs expire, and parity finds a corrupted vector."""

import threading

import numpy as np
import pytest
import redis

from churn_assets.defs.online import parity_problems
from churn_assets.ml.feature_matrix import FeatureSpec, as_of_seconds, load_scoring_frame
from warehouse.connection import Warehouse
from warehouse.online_store import OnlineStore, mismatches, pointer_key, vector_key
from warehouse.redis_server import connect, redis_url
from warehouse.settings import load_settings

IDS = [f"c{i:04d}" for i in range(300)]
AS_OF = np.full(len(IDS), 1_750_000_000.0)


def _matrix(value: float, width: int = 7) -> np.ndarray:
    m = np.full((len(IDS), width), value, dtype=np.float32)
    m[::10, 3] = np.nan  # missing values survive the round trip
    return m


@pytest.fixture
def store(redis_url: str) -> OnlineStore:
    return OnlineStore(redis.Redis.from_url(redis_url), grace_seconds=30)


def test_a_staged_sync_is_invisible_until_published(store: OnlineStore) -> None:
    sync = store.stage("fs-test", IDS, AS_OF, _matrix(1.0))
    assert store.fetch("fs-test", IDS[:3]) == (None, [None, None, None])
    assert mismatches(IDS, store.read_sync(sync, IDS), AS_OF, _matrix(1.0)) == []

    result = store.publish("fs-test", sync, len(IDS), {"model_version": "1"})
    live, blobs = store.fetch("fs-test", [*IDS[:5], "nobody"])
    assert live == sync and result.previous_sync_id is None
    assert blobs[-1] is None
    assert mismatches(IDS[:5], blobs[:5], AS_OF[:5], _matrix(1.0)[:5]) == []
    assert store.info("fs-test")["customers"] == len(IDS)


def test_the_previous_sync_expires_after_a_flip(store: OnlineStore) -> None:
    first = store.stage("fs-test", IDS, AS_OF, _matrix(1.0))
    store.publish("fs-test", first, len(IDS), {})
    orphan = store.stage("fs-test", IDS[:10], AS_OF[:10], _matrix(9.0)[:10])  # a crashed run
    second = store.stage("fs-test", IDS, AS_OF, _matrix(2.0))
    later = "fs-test.99991231T000000.abcdef"  # staged by a concurrent run, after this one
    store.client.set(vector_key(later, IDS[0]), b"x")
    result = store.publish("fs-test", second, len(IDS), {})
    assert store.client.ttl(vector_key(later, IDS[0])) == -1

    assert result.previous_sync_id == first
    assert 0 < store.client.ttl(vector_key(first, IDS[0])) <= 30
    assert 0 < store.client.ttl(vector_key(orphan, IDS[0])) <= 30
    assert store.client.ttl(vector_key(second, IDS[0])) == -1  # live data never expires
    assert store.client.get(pointer_key("fs-test")).decode() == second


def test_readers_never_see_a_mix_of_versions_during_flips(
    store: OnlineStore, redis_url: str
) -> None:
    syncs = [store.stage("fs-test", IDS, AS_OF, _matrix(float(v))) for v in range(1, 6)]
    store.publish("fs-test", syncs[0], len(IDS), {})
    reader = OnlineStore(redis.Redis.from_url(redis_url))
    seen: list[set[float]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            _, blobs = reader.fetch("fs-test", IDS)
            assert all(b is not None for b in blobs)
            seen.append({float(np.frombuffer(b, "<f4", offset=8)[0]) for b in blobs})

    thread = threading.Thread(target=read)
    thread.start()
    for sync in syncs[1:]:
        store.publish("fs-test", sync, len(IDS), {})
    stop.set()
    thread.join()
    assert seen and all(len(values) == 1 for values in seen)


def test_the_fetch_script_counts_a_rate_limit_in_the_same_round_trip(store: OnlineStore) -> None:
    keys = [pointer_key("fs-test"), "churn:rate:test"]
    replies = [store._fetch(keys=keys, args=[3, 60_000, IDS[0]])[0] for _ in range(4)]
    assert replies[:3] == [1, 1, 1]
    assert -60_000 <= replies[3] < 0  # minus the milliseconds until the window resets


def test_parity_finds_a_vector_that_differs_from_the_warehouse(
    built_settings, redis_url: str
) -> None:
    wh = Warehouse(built_settings)
    frame = load_scoring_frame(wh)
    spec = FeatureSpec.fit(frame)
    ids = frame["customer_id"].astype(str).tolist()
    store = OnlineStore(redis.Redis.from_url(redis_url))
    sync = store.stage(spec.version, ids, as_of_seconds(frame), spec.transform(frame))
    sample = ids[:50]
    assert parity_problems(store, sync, spec, load_scoring_frame(wh, sample)) == []

    corrupted = bytearray(store.client.get(vector_key(sync, sample[7])))
    corrupted[-1] ^= 0xFF
    store.client.set(vector_key(sync, sample[7]), bytes(corrupted))
    store.client.delete(vector_key(sync, sample[9]))
    problems = parity_problems(store, sync, spec, load_scoring_frame(wh, sample))
    assert problems == [
        f"{sample[7]}: features at positions [{len(spec.names) - 1}] differ",
        f"{sample[9]}: missing from Redis",
    ]


def test_without_redis_url_an_embedded_server_runs_under_churn_home(tmp_path) -> None:
    settings = load_settings({"CHURN_HOME": str(tmp_path)})
    assert redis_url(settings).startswith("unix://")
    client = connect(settings)
    client.set("hello", "world")
    assert client.get("hello") == b"world"
    assert (tmp_path / "redis").is_dir()
