"""The service's side of the online store: one Lua call per request that counts the
caller's rate limit, resolves the live sync and fetches every vector, behind a circuit
breaker so a dead Redis costs a fast failure instead of a timeout per request."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import DataError, RedisError, ResponseError

from serving.errors import BadRequest, RateLimited, Unavailable
from serving.redis_wire import WireConnection
from warehouse.online_store import FETCH_SCRIPT, PREFIX, info_key, pointer_key

FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode()).hexdigest()


class CircuitBreaker:
    """closed -> open after `failures` consecutive errors; after `reset_seconds` one
    probe is let through (half open) and its outcome closes or re-opens the circuit."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.consecutive = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.probing else "open"

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if not self.probing and time.monotonic() - self.opened_at >= self.reset_seconds:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.consecutive += 1
        if self.probing or self.consecutive >= self.failures:
            self.opened_at = time.monotonic()
            self.probing = False


@dataclass(frozen=True)
class Lookup:
    sync_id: str | None
    blobs: list[bytes | None]


class OnlineReader:
    def __init__(
        self,
        client: aioredis.Redis,
        wire: WireConnection,
        breaker: CircuitBreaker,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        """`wire` carries the per-request lookup; `client` the occasional calls
        (readiness, information) where redis-py's convenience costs nothing."""
        self.client = client
        self.wire = wire
        self.breaker = breaker
        self.on_error = on_error  # e.g. a Prometheus counter's inc
        self.errors = 0
        self._counted_generation = -1

    async def _fetch_script(self, keys: list[str], args: list[str | int]) -> list:
        """EVALSHA, loading the script on the first call and after a Redis restart."""
        command = ("EVALSHA", FETCH_SHA, len(keys), *keys, *args)
        try:
            return await self.wire.call(*command)  # type: ignore[return-value]
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.wire.call("SCRIPT", "LOAD", FETCH_SCRIPT)
        return await self.wire.call(*command)  # type: ignore[return-value]

    async def fetch(
        self,
        fs_version: str,
        customer_ids: Sequence[str],
        subject: str,
        limit: int,
        window_seconds: int,
    ) -> Lookup:
        """Vectors of the live sync (None per unknown customer); raises RateLimited when
        the subject is over its limit, Unavailable when Redis is, and BadRequest when an
        id or the subject cannot be sent to Redis (nothing was sent)."""
        if not self.breaker.allow():
            raise Unavailable("online feature store unavailable (circuit open)")
        try:
            reply = await self._fetch_script(
                [pointer_key(fs_version), f"{PREFIX}:rate:{subject}"],
                [limit, window_seconds * 1000, *customer_ids],
            )
        except DataError as exc:  # the caller's input, not Redis: no verdict on the circuit
            self.breaker.probing = False  # nor may a refused probe hold it open
            raise BadRequest(
                f"customer ids must be valid Unicode text (no lone surrogates): {exc}"
            ) from exc
        except ResponseError as exc:  # Redis answered: not a reason to open the circuit
            self.errors += 1
            self.on_error()
            raise Unavailable(f"online feature store refused the lookup: {exc}") from exc
        except (RedisError, OSError) as exc:
            self.errors += 1
            self.on_error()
            # one broken connection fails every request waiting on it: count it once
            if self.wire.generation != self._counted_generation:
                self._counted_generation = self.wire.generation
                self.breaker.failure()
            raise Unavailable(f"online feature store unavailable: {type(exc).__name__}") from exc
        except asyncio.CancelledError:
            self.breaker.probing = False  # a cancelled probe must not hold the circuit open
            raise
        self.breaker.success()
        if reply[0] < 0:
            raise RateLimited(max(1, math.ceil(-reply[0] / 1000)))
        sync = reply[1].decode() if len(reply) > 1 and reply[1] else None
        blobs = list(reply[2:]) if sync else [None] * len(customer_ids)
        return Lookup(sync, blobs)

    async def ping(self) -> bool:
        if not self.breaker.allow():
            return False
        try:
            await self.client.ping()
        except (RedisError, OSError):
            self.breaker.failure()
            return False
        self.breaker.success()
        return True

    async def info(self, fs_version: str) -> dict[str, object]:
        """The live sync's description (empty when none, or when Redis is unreachable)."""
        try:
            raw = await self.client.hgetall(info_key(fs_version))
        except (RedisError, OSError):
            return {}
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def has_live_sync(self, fs_version: str) -> bool:
        try:
            return bool(await self.client.exists(pointer_key(fs_version)))
        except (RedisError, OSError):
            return False

    async def feature_age_seconds(self, fs_version: str) -> float | None:
        """Age of the live sync's features (from its as_of date), None when not synced."""
        as_of = (await self.info(fs_version)).get("features_as_of")
        if not as_of:
            return None
        start = dt.datetime.fromisoformat(str(as_of)).replace(tzinfo=dt.UTC)
        return (dt.datetime.now(dt.UTC) - start).total_seconds()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
