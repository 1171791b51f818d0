"""The online feature store in Redis.

Layout, per feature-set version (the model's feature order and category codes):
- `churn:fv:<sync>:<customer_id>` one key per customer and sync: the as_of time
  (float64 epoch seconds) followed by the float32 vector in model feature order, so a
  lookup is a single MGET with no field maps to parse;
- `churn:online:<fs_version>:live` the pointer naming the live sync, flipped in one
  command after a complete write, so readers never see a half-written version;
- `churn:online:<fs_version>:info` a hash describing the live sync (size, times).

The pointer only moves forward: a sync staged before the live one is refused. After a
flip every other sync staged before it expires: earlier syncs of the same feature set
and syncs a killed run left half-written after `grace_seconds` (readers mid-request
finish), the previous champion's feature set (pointer, info and vectors) after
`superseded_grace_seconds` (services still on it have time to reload). A key already
counting down keeps its deadline, so frequent syncs never postpone it.

Reads go through one Lua script that resolves the pointer and fetches every key
atomically, optionally counting the caller against a rate limit in the same round trip.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import redis

PREFIX = "churn"
EVENTS_CHANNEL = f"{PREFIX}:events"
# model_performance publishes the latest business and live metrics here for /metrics
LIVE_METRICS_KEY = f"{PREFIX}:monitoring:live"
HEADER_BYTES = 8  # float64 as_of epoch seconds
WRITE_CHUNK = 5_000

# KEYS[1] pointer, KEYS[2] rate-limit counter (or "" for none)
# ARGV[1] limit, ARGV[2] window in ms, ARGV[3..] customer ids
# -> {allowed: 1, or -milliseconds until the window resets; sync id or false; blobs...}
# A lookup costs one unit per customer id (a lookup of none costs one), so a batch
# cannot score more customers than single calls could. A refused lookup costs nothing.
FETCH_SCRIPT = """
if KEYS[2] ~= '' then
  local cost = math.max(#ARGV - 2, 1)
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + cost > tonumber(ARGV[1]) then
    local wait = redis.call('PTTL', KEYS[2])
    if wait < 1 then wait = 1 end
    return {-wait}
  end
  if used == 0 then
    redis.call('SET', KEYS[2], cost, 'PX', ARGV[2])
  else
    redis.call('INCRBY', KEYS[2], cost)
  end
end
local sync = redis.call('GET', KEYS[1])
if not sync or #ARGV < 3 then return {1, sync} end
local keys = {}
for i = 3, #ARGV do keys[#keys + 1] = 'churn:fv:' .. sync .. ':' .. ARGV[i] end
local reply = redis.call('MGET', unpack(keys))
table.insert(reply, 1, sync)
table.insert(reply, 1, 1)
return reply
"""


# KEYS[1] pointer, KEYS[2] info, KEYS[3] the sync's staged count; ARGV[1] sync id,
# ARGV[2] its stamp, ARGV[3] vectors it must hold, ARGV[4..] info field/value pairs
# -> {1, previous sync or false} when flipped; {0, live sync} when the live sync was
# staged after this one (it stays; stamps sort by time); else {-1, vectors Redis holds}
# when that is not ARGV[3] (a Redis restart lost staged writes)
FLIP_SCRIPT = """
local live = redis.call('GET', KEYS[1])
if live then
  local stamp = string.match(live, '%.([^.]+)%.[^.]+$')
  if stamp and stamp > ARGV[2] then return {0, live} end
end
local staged = tonumber(redis.call('GET', KEYS[3]) or '0')
if staged ~= tonumber(ARGV[3]) then return {-1, staged} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
return {1, live or false}
"""

# KEYS: keys to retire; ARGV[1]: seconds until they go (0: now) -> how many were retired.
# Keys already counting down keep their deadline.
RETIRE_SCRIPT = """
local grace = tonumber(ARGV[1])
local retired = 0
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) == -1 then
    if grace > 0 then redis.call('EXPIRE', key, grace) else redis.call('UNLINK', key) end
    retired = retired + 1
  end
end
return retired
"""


class SyncSuperseded(RuntimeError):
    """A newer sync went live while this one was being written; this one was dropped."""


class SyncIncomplete(RuntimeError):
    """Redis holds fewer vectors of a sync than were staged (it restarted without
    persistence, or lost writes); the sync was dropped and never went live."""


def announce(client: redis.Redis, event: dict[str, object]) -> str | None:
    """Publish an event for the scoring services (a new champion, a new sync). Never
    fails the caller: services also poll, so a lost event only delays a reload.
    Returns why it could not be published, or None."""
    try:
        client.publish(EVENTS_CHANNEL, json.dumps(event, default=str))
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def pointer_key(fs_version: str) -> str:
    return f"{PREFIX}:online:{fs_version}:live"


def info_key(fs_version: str) -> str:
    return f"{PREFIX}:online:{fs_version}:info"


def vector_key(sync_id: str, customer_id: str) -> str:
    return f"{PREFIX}:fv:{sync_id}:{customer_id}"


def staged_count_key(sync_id: str) -> str:
    """How many vectors a sync has written, counted with each chunk in the same
    transaction: in the sync's key space, so it expires with the sync, under a name no
    customer id can take ('#' is outside the id contract)."""
    return vector_key(sync_id, "#staged")


def record_dtype(width: int) -> np.dtype:
    return np.dtype([("as_of", "<f8"), ("values", "<f4", (width,))])


def pack(as_of_seconds: np.ndarray, matrix: np.ndarray) -> list[bytes]:
    """One blob per row: as_of then the float32 vector (NaN = missing)."""
    records = np.empty(len(matrix), dtype=record_dtype(matrix.shape[1]))
    records["as_of"] = as_of_seconds
    records["values"] = matrix
    raw = records.view(np.uint8).reshape(len(matrix), records.dtype.itemsize)
    return [row.tobytes() for row in raw]


def unpack(blobs: Sequence[bytes], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of one width -> (as_of seconds, float32 matrix)."""
    dtype = record_dtype(width)
    bad = [len(b) for b in blobs if len(b) != dtype.itemsize]
    if bad:
        raise ValueError(
            f"online vector of {bad[0]} bytes, expected {dtype.itemsize} for {width} features"
        )
    records = np.frombuffer(b"".join(blobs), dtype=dtype)
    return records["as_of"], records["values"]


def mismatches(
    customer_ids: Sequence[str],
    blobs: Sequence[bytes | None],
    as_of_seconds: np.ndarray,
    matrix: np.ndarray,
) -> list[str]:
    """Where stored vectors differ from the expected rows, bit for bit (NaN equals NaN):
    one line per customer, empty when everything matches."""
    problems = []
    width = matrix.shape[1]
    expected = pack(np.asarray(as_of_seconds, dtype="<f8"), matrix.astype("<f4", copy=False))
    for cid, blob, want in zip(customer_ids, blobs, expected, strict=True):
        if blob is None:
            problems.append(f"{cid}: missing from Redis")
        elif len(blob) != len(want):
            problems.append(f"{cid}: {len(blob)} bytes stored, expected {len(want)}")
        elif blob != want:
            (got_as_of, got), (want_as_of, want_values) = (
                unpack([blob], width),
                unpack([want], width),
            )
            if got_as_of[0] != want_as_of[0]:
                problems.append(f"{cid}: as_of {got_as_of[0]} stored, {want_as_of[0]} expected")
            diff = np.flatnonzero(got[0].view("<u4") != want_values[0].view("<u4"))
            if len(diff):
                problems.append(f"{cid}: features at positions {diff[:5].tolist()} differ")
    return problems


def _staged_at(sync_id: str) -> str:
    """The UTC stamp inside `<fs_version>.<YYYYmmddTHHMMSS>.<hex>`; sorts by time."""
    return sync_id.rsplit(".", 2)[1]


def _feature_set(sync_id: str) -> str:
    return sync_id.rsplit(".", 2)[0]


@dataclass(frozen=True)
class SyncResult:
    fs_version: str
    sync_id: str
    customers: int
    previous_sync_id: str | None
    seconds: float


class OnlineStore:
    """Writes syncs and reads vectors with a synchronous client (assets, CLI, tests)."""

    def __init__(
        self,
        client: redis.Redis,
        grace_seconds: int = 60,
        superseded_grace_seconds: int = 3_600,
    ) -> None:
        self.client = client
        self.grace_seconds = grace_seconds
        self.superseded_grace_seconds = superseded_grace_seconds
        self._fetch = client.register_script(FETCH_SCRIPT)
        self._flip = client.register_script(FLIP_SCRIPT)
        self._retire = client.register_script(RETIRE_SCRIPT)

    def stage(
        self,
        fs_version: str,
        customer_ids: Sequence[str],
        as_of_seconds: np.ndarray,
        matrix: np.ndarray,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Write every vector under a new sync id, invisible to readers until publish().
        Written in chunks of WRITE_CHUNK keys; progress(vectors written) after each."""
        if len(customer_ids) != len(matrix) or len(as_of_seconds) != len(matrix):
            raise ValueError("customer_ids, as_of_seconds and matrix differ in length")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        sync_id = f"{fs_version}.{stamp}.{uuid.uuid4().hex[:6]}"
        blobs = pack(np.asarray(as_of_seconds, dtype="<f8"), matrix.astype("<f4", copy=False))
        for start in range(0, len(blobs), WRITE_CHUNK):
            end = start + WRITE_CHUNK
            chunk = {
                vector_key(sync_id, cid): blob
                for cid, blob in zip(customer_ids[start:end], blobs[start:end], strict=True)
            }
            with self.client.pipeline(transaction=True) as writes:
                writes.mset(chunk)
                writes.incrby(staged_count_key(sync_id), len(chunk))
                writes.execute()
            if progress:
                progress(min(end, len(blobs)))
        return sync_id

    def read_sync(self, sync_id: str, customer_ids: Sequence[str]) -> list[bytes | None]:
        """Raw blobs of one sync, staged or live (None where a key is missing)."""
        if not customer_ids:
            return []
        return cast(
            list[bytes | None], self.client.mget([vector_key(sync_id, c) for c in customer_ids])
        )

    def publish(
        self, fs_version: str, sync_id: str, customers: int, info: dict[str, object]
    ) -> SyncResult:
        """Flip the pointer to sync_id in one script, then retire what it supersedes.
        The script first checks that Redis still holds all `customers` staged vectors.
        Raises SyncIncomplete or SyncSuperseded (and drops sync_id) instead of flipping
        to a sync that lost writes or is older than the live one."""
        started = time.perf_counter()
        fields = {
            k: json.dumps(v, default=str)
            for k, v in {**info, "sync_id": sync_id, "customers": customers}.items()
        }
        flipped, reply = self._flip(
            keys=[pointer_key(fs_version), info_key(fs_version), staged_count_key(sync_id)],
            args=[
                sync_id,
                _staged_at(sync_id),
                customers,
                *[x for kv in fields.items() for x in kv],
            ],
        )
        if flipped == -1:
            self.discard(sync_id)
            raise SyncIncomplete(
                f"Redis holds {reply:,} of the {customers:,} vectors staged as {sync_id} "
                "(did it restart without persistence during the sync?); the sync was "
                "dropped and never went live. Run the sync again."
            )
        previous = reply.decode() if reply else None
        if not flipped:
            self.discard(sync_id)
            raise SyncSuperseded(f"{previous} is live and newer; {sync_id} was dropped")
        self.retire_superseded(fs_version, keep=sync_id)
        announce(self.client, {"event": "online_sync", "fs_version": fs_version})
        return SyncResult(
            fs_version=fs_version,
            sync_id=sync_id,
            customers=customers,
            previous_sync_id=previous,
            seconds=time.perf_counter() - started,
        )

    def live_syncs(self) -> dict[str, str]:
        """Feature-set version -> its live sync id, for every pointer in the store."""
        pointers = list(self.client.scan_iter(match=pointer_key("*"), count=1_000))
        values = cast(list[bytes | None], self.client.mget(pointers)) if pointers else []
        head, tail = f"{PREFIX}:online:", ":live"
        return {
            key.decode().removeprefix(head).removesuffix(tail): value.decode()
            for key, value in zip(pointers, values, strict=True)
            if value
        }

    def retire_superseded(self, fs_version: str, keep: str) -> int:
        """Let everything staged before the live sync `keep` expire: earlier and
        half-written syncs after grace_seconds; other feature sets whose live sync is
        older (a previous champion's) after superseded_grace_seconds, pointer and info
        included. Syncs staged after `keep` (a concurrent run) are left alone. Returns
        how many keys started counting down."""
        cutoff = _staged_at(keep)
        live = self.live_syncs()
        superseded = {
            fs: sync for fs, sync in live.items() if fs != fs_version and _staged_at(sync) <= cutoff
        }
        batches: dict[int, list[bytes | str]] = {
            self.grace_seconds: [],
            self.superseded_grace_seconds: [],
        }
        for fs in superseded:
            batches[self.superseded_grace_seconds] += [pointer_key(fs), info_key(fs)]
        retired = 0
        for key in self.client.scan_iter(match=f"{PREFIX}:fv:*", count=WRITE_CHUNK):
            sync = key.decode()[len(f"{PREFIX}:fv:") :].split(":", 1)[0]
            if sync == keep or _staged_at(sync) > cutoff:
                continue
            if live.get(_feature_set(sync)) == sync:
                if _feature_set(sync) not in superseded:
                    continue  # the live sync of a feature set staged after this one
                grace = self.superseded_grace_seconds
            else:
                grace = self.grace_seconds
            batches[grace].append(key)
            if len(batches[grace]) >= WRITE_CHUNK:
                retired += int(self._retire(keys=batches[grace], args=[grace]))
                batches[grace] = []
        for grace, keys in batches.items():
            if keys:
                retired += int(self._retire(keys=keys, args=[grace]))
        return retired

    def discard(self, sync_id: str) -> None:
        """Drop a staged sync that must not go live (a failed parity check)."""
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{PREFIX}:fv:{sync_id}:*", count=5_000):
            batch.append(key)
            if len(batch) >= WRITE_CHUNK:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def live_sync(self, fs_version: str) -> str | None:
        raw = cast(bytes | None, self.client.get(pointer_key(fs_version)))
        return raw.decode() if raw else None

    def info(self, fs_version: str) -> dict[str, object]:
        raw = cast(dict[bytes, bytes], self.client.hgetall(info_key(fs_version)))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def fetch(
        self, fs_version: str, customer_ids: Sequence[str]
    ) -> tuple[str | None, list[bytes | None]]:
        """(live sync id, one blob or None per customer), resolved atomically."""
        reply = self._fetch(keys=[pointer_key(fs_version), ""], args=[0, 0, *customer_ids])
        sync = reply[1].decode() if len(reply) > 1 and reply[1] else None
        return sync, list(reply[2:]) if sync else [None] * len(customer_ids)
