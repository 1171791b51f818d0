"""Overload is shed, not queued: past `CHURN_MAX_IN_FLIGHT` requests in flight on a
worker, a new one is answered 503 with `Retry-After` at once, before authentication or
body parsing, instead of waiting behind the others until every caller times out.

Health and metrics routes are never refused (they still count): an overloaded worker
is alive, and its probes and scrapes must say what is happening to it. The request
path pays one comparison and two integer updates on the event loop, no lock."""

from __future__ import annotations

import msgspec
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from serving.errors import UNAVAILABLE_DETAIL, error_body
from serving.metrics import ServiceMetrics

EXEMPT_PREFIXES = ("/health/", "/metrics")
RETRY_AFTER_SECONDS = 1  # in-flight work drains in milliseconds


class InFlightLimit:
    """ASGI middleware factory: one instance wraps every route, so `in_flight` counts
    the worker's requests, whichever route they took."""

    def __init__(self, limit: int, metrics: ServiceMetrics) -> None:
        self.limit = limit
        self.in_flight = 0
        self.shed = metrics.requests_shed
        metrics.requests_in_flight.set_function(lambda: self.in_flight)

    def __call__(self, app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if self.in_flight >= self.limit and not scope["path"].startswith(EXEMPT_PREFIXES):
                await self._refuse(scope, send)
                return
            self.in_flight += 1
            try:
                await app(scope, receive, send)
            finally:
                self.in_flight -= 1

        return limited

    async def _refuse(self, scope: Scope, send: Send) -> None:
        self.shed.inc()
        rid = scope.get("state", {}).get("request_id", "")
        body = msgspec.json.encode(error_body(503, UNAVAILABLE_DETAIL, rid))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
