"""A lean asyncio Redis connection for the request path.

redis-py's asyncio client packs every argument in Python and takes a pooled connection
per command: about 100 µs per call on this hardware, more than the model. Here one
connection is shared by every request: commands are packed by hiredis (C), written at
once, and replies are matched to waiters in order (Redis answers a connection's
commands in the order they arrive), so concurrent requests pipeline naturally.

Every command is packed before its waiter is queued: a command that cannot be encoded
(a lone surrogate in a string, which UTF-8 cannot carry) raises DataError for its own
call and leaves the queue in step with the stream.

A timeout or a lost connection fails every waiting command and drops the connection
(a late reply would otherwise be handed to the wrong waiter); the next call connects
again. Errors are redis-py's exception classes, so callers handle one family."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import NewType
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[str | bytes | int | float]
# one command in Redis's wire format, made by pack(): exactly one reply comes back for it
PackedCommand = NewType("PackedCommand", bytes)


def pack(command: Command) -> PackedCommand:
    """The command in Redis's wire format; raises DataError when an argument cannot be
    encoded (a lone surrogate, a type Redis has no form for) or there is no command,
    which Redis would not answer."""
    if not command:
        raise DataError("an empty Redis command")
    try:
        # hiredis's stub types the argument as a 1-tuple; any length is accepted
        return PackedCommand(hiredis.pack_command(tuple(command)))  # type: ignore[arg-type]
    except (UnicodeError, TypeError) as exc:
        raise DataError(f"a Redis command argument cannot be encoded: {exc}") from exc


class _Waiter:
    """A future for `count` consecutive replies (a pipeline is one waiter)."""

    __slots__ = ("count", "future", "replies")

    def __init__(self, future: asyncio.Future, count: int) -> None:
        self.future = future
        self.count = count
        self.replies: list[object] = []


class _Protocol(asyncio.Protocol):
    def __init__(self, connection: WireConnection) -> None:
        self.connection = connection
        self.reader = hiredis.Reader()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.connection.waiters
        while (reply := self.reader.gets()) is not False:
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self.connection.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            waiter = waiters[0]
            waiter.replies.append(reply)
            if len(waiter.replies) == waiter.count:
                waiters.popleft()
                if not waiter.future.done():
                    waiter.future.set_result(waiter.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        # an old connection dropped after a timeout must not fail its successor
        if self.connection.transport is self.transport:
            self.connection.fail(
                RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
            )


class WireConnection:
    def __init__(self, url: str, timeout_seconds: float) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "unix"):
            raise ValueError(f"the request path supports redis:// and unix:// URLs, not {url}")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.path = parsed.path if parsed.scheme == "unix" else None
        db = parsed.path.strip("/") if parsed.scheme == "redis" else None
        self.db = int(db or parse_qs(parsed.query).get("db", ["0"])[0])
        self.password = unquote(parsed.password) if parsed.password else None
        self.username = unquote(parsed.username) if parsed.username else None
        self.timeout = timeout_seconds
        self.waiters: deque[_Waiter] = deque()
        # counts connection failures: every waiter of one failure sees the same number,
        # so a circuit breaker can count the failure once, not once per waiting request
        self.generation = 0
        self.transport: asyncio.Transport | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: str | bytes | int | float) -> object:
        """One command's reply; a Redis error reply raises ResponseError."""
        (reply,) = await self.pipeline([args])
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def pipeline(self, commands: Sequence[Command]) -> list[object]:
        """Replies of several commands sent in one write; error replies are returned as
        hiredis.ReplyError values, not raised, so one bad entry spoils nothing else. A
        command that cannot be encoded raises DataError and nothing is sent."""
        return await self.send([pack(c) for c in commands])

    async def send(self, packed: Sequence[PackedCommand]) -> list[object]:
        """pipeline() for commands packed beforehand (pack() validated them)."""
        if not packed:
            return []  # a waiter for no reply would never be answered
        transport = self.transport
        if transport is None or transport.is_closing():
            transport = await self._connect()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), len(packed))
        self.waiters.append(waiter)
        transport.write(b"".join(packed))
        timer = loop.call_later(self.timeout, self._expire, waiter)
        try:
            return await waiter.future
        finally:
            timer.cancel()

    def _expire(self, waiter: _Waiter) -> None:
        if not waiter.future.done():
            self.fail(
                RedisTimeoutError(f"Redis did not answer within {self.timeout * 1000:.0f} ms")
            )

    def fail(self, exc: Exception) -> None:
        """Fail every waiting command and drop the connection."""
        self.generation += 1
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    async def _connect(self) -> asyncio.Transport:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # concurrent first calls share one connection
            if self.transport is not None and not self.transport.is_closing():
                return self.transport
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    if self.path:
                        transport, _ = await loop.create_unix_connection(
                            lambda: _Protocol(self), self.path
                        )
                    else:
                        transport, _ = await loop.create_connection(
                            lambda: _Protocol(self), self.host, self.port
                        )
            except (OSError, TimeoutError) as exc:
                self.generation += 1
                raise RedisConnectionError(f"cannot connect to Redis: {exc or 'timeout'}") from exc
            self.transport = transport
            await self._handshake()
            return self.transport

    async def _handshake(self) -> None:
        commands: list[Command] = []
        if self.password:
            commands.append(
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
        if self.db:
            commands.append(("SELECT", self.db))
        if commands:
            for reply in await self.pipeline(commands):
                if isinstance(reply, hiredis.ReplyError):
                    self.fail(RedisConnectionError(f"Redis refused the connection set-up: {reply}"))
                    raise ResponseError(str(reply))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
