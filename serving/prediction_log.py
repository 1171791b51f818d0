"""Every prediction appended to a Redis stream without blocking the response: requests
add entries to an in-memory buffer, a background task writes them with one pipelined
XADD batch every few milliseconds over a connection of its own. The `prediction_log` asset drains the stream into
the warehouse; together they are the audit trail from data to each prediction.

Each entry carries an idempotency key: the client's `Idempotency-Key` header, or the
request id the service gave the request. The warehouse keeps one row per (key, token
subject, customer), so a client that resends a request after a timeout with the same
header is logged once. Every XADD caps the stream (MAXLEN ~ CHURN_PREDICTION_LOG_MAX_ENTRIES):
the drain deletes what it moved, so the cap only bites when the drain stops for long."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque

import hiredis
from litestar import Request
from redis.exceptions import DataError, RedisError

from serving.errors import BadRequest
from serving.redis_wire import PackedCommand, WireConnection, pack
from serving.schemas import Prediction
from warehouse.prediction_log import DEFAULT_STREAM_CAP, STREAM

log = logging.getLogger("serving")
IDEMPOTENCY_HEADER = b"idempotency-key"  # ASGI header names arrive lowercased
MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: Request) -> str:
    """The request's `Idempotency-Key` header (1 to 255 visible ASCII characters; 400
    otherwise), or its request id when the client sent none."""
    for name, value in request.scope["headers"]:
        if name == IDEMPOTENCY_HEADER:
            if 0 < len(value) <= MAX_IDEMPOTENCY_KEY and all(0x21 <= b <= 0x7E for b in value):
                return value.decode("ascii")
            raise BadRequest(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )
    return str(request.state.request_id)


class PredictionLog:
    def __init__(
        self,
        client: WireConnection,
        max_buffer: int = 200_000,
        interval: float = 0.005,
        max_batch: int = 256,
        stream_cap: int = DEFAULT_STREAM_CAP,
    ) -> None:
        """Entries wait about `interval` seconds. A flush writes at most `max_batch`
        entries: reading their replies is work on the event loop, and a long pause there
        would make concurrent requests miss their Redis timeout. Redis trims the stream to
        about `stream_cap` entries, the oldest first (approximate trimming is cheap)."""
        self.client = client
        self.stream_cap = stream_cap
        self.interval = interval
        self.max_batch = max_batch
        # bounded: while Redis is down the oldest entries go first, and are counted
        # each entry is its XADD command, packed when appended: an entry that cannot be
        # encoded is refused alone instead of failing every flush of its batch
        self.buffer: deque[PackedCommand] = deque(maxlen=max_buffer)
        self.dropped = 0  # pushed out of a full buffer while Redis was down
        self.rejected = 0  # refused by Redis, or not encodable
        self.written = 0
        self.failing = False
        self._task: asyncio.Task | None = None
        self._flushing = asyncio.Lock()

    def append(
        self, request: Request, predictions: list[Prediction], key: str | None = None
    ) -> None:
        """Buffer one entry per scored prediction; `key` is the request's idempotency
        key (default: its request id)."""
        state = request.state
        latency_ms = f"{(time.perf_counter() - state.started) * 1000:.3f}"
        head = (
            "XADD", STREAM, "MAXLEN", "~", str(self.stream_cap), "*",
            "idempotency_key", key or state.request_id,
            "request_id", state.request_id,
            "subject", request.user.subject,
            "latency_ms", latency_ms,
            "logged_at", repr(time.time()),
        )  # fmt: skip
        for p in predictions:
            if p.churn_probability is None:
                continue
            reasons = [[r.feature, r.contribution] for r in p.reasons] if p.reasons else None
            command = (
                *head,
                "customer_id", p.customer_id,
                "model_version", p.model_version or "",
                "variant", p.variant or "",
                "probability", repr(p.churn_probability),
                "features_as_of", p.features_as_of or "",
                "reasons", json.dumps(reasons) if reasons else "",
                "degraded", "1" if p.degraded else "0",
            )  # fmt: skip
            try:
                entry = pack(command)
            except DataError as exc:
                self.rejected += 1
                log.warning("prediction log: an entry cannot be encoded (%s)", exc)
                continue
            if len(self.buffer) == self.buffer.maxlen:
                self.dropped += 1
            self.buffer.append(entry)

    async def flush(self) -> int:
        # one flush at a time: the writer task and stop() would otherwise both send and
        # then both remove the same entries
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        if not self.buffer:
            return 0
        batch = list(itertools.islice(self.buffer, self.max_batch))
        try:
            replies = await self.client.send(batch)
        except (RedisError, OSError) as exc:
            if not self.failing:  # once per outage, not every few milliseconds
                log.warning("prediction log: entries wait in memory for Redis (%s)", exc)
            self.failing = True
            return 0
        if self.failing:
            log.info("prediction log: Redis is back; %d entries waiting", len(self.buffer))
            self.failing = False
        for _ in batch:
            self.buffer.popleft()
        refused = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if refused:  # e.g. Redis out of memory: such entries would fail again
            self.rejected += len(refused)
            log.warning("prediction log: Redis refused %d entries: %s", len(refused), refused[0])
        self.written += len(batch) - len(refused)
        return len(batch)

    async def run(self) -> None:
        while True:
            written = await self.flush()
            # a full batch means a backlog: go on after letting requests run
            await asyncio.sleep(0 if written == self.max_batch else self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop the writer, then write what is left."""
        if self._task:
            self._task.cancel()
        while self.buffer and await self.flush():
            pass
