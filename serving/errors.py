"""One error hierarchy for the service, mapped to HTTP status codes with a JSON body
`{"status_code", "detail", "request_id"}`.

A 4xx detail is written for the caller (what to fix). A 5xx detail is generic: the
reason behind it (a Redis reply, an exception's text, a path or a host) goes to the
log under the same request id, never into the body."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

log = logging.getLogger("serving")

UNAVAILABLE_DETAIL = "service temporarily unavailable; retry later"
INTERNAL_DETAIL = "internal error"
# a dead Redis fails every request the same way: one log line per reason this often
REPEAT_LOG_SECONDS = 10.0


class ServingError(Exception):
    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ServingError):
    status_code = 400


class NotFound(ServingError):
    status_code = 404


class Conflict(ServingError):
    """The action contradicts the current state (a refused version, nothing to roll back)."""

    status_code = 409


class RateLimited(ServingError):
    status_code = 429

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"rate limit exceeded; retry in {retry_after_seconds} s",
            {"Retry-After": str(retry_after_seconds)},
        )


class Unavailable(ServingError):
    """No model loaded, or the online store cannot be reached (circuit open). The
    detail is for the log; the caller is told only to retry."""

    status_code = 503


def request_id(request: Request) -> str:
    """The id the request middleware stamped (a new one for requests that never
    reached it, such as an unknown route)."""
    return str(request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex)


def error_body(status: int, detail: str, request_id: str) -> dict[str, object]:
    return {"status_code": status, "detail": detail, "request_id": request_id}


def public_detail(status: int, detail: str) -> str:
    if status < 500:
        return detail
    return UNAVAILABLE_DETAIL if status == 503 else INTERNAL_DETAIL


class RepeatFilter:
    """Lets the first log line of each reason through, then one per `seconds` with
    the number of repeats held back in between."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[str, tuple[float, int]] = {}

    def admit(self, reason: str) -> int | None:
        """None to stay quiet; else how many repeats went unlogged since the last line."""
        now = time.monotonic()
        last, held = self._last.get(reason, (float("-inf"), 0))
        if now - last < self.seconds:
            self._last[reason] = (last, held + 1)
            return None
        if len(self._last) > 1_000:  # reasons are few; this only bounds the map
            self._last.clear()
        self._last[reason] = (now, 0)
        return held


def exception_handlers() -> dict[type[Exception], Callable[[Request, Any], Response]]:
    """The app's handlers, with a log throttle of their own."""
    repeats = RepeatFilter(REPEAT_LOG_SECONDS)

    def respond(
        request: Request, status: int, detail: str, headers: dict[str, str] | None
    ) -> Response:
        rid = request_id(request)
        if status >= 500:
            held = repeats.admit(f"{status} {detail}")
            if held is not None:
                log.warning(
                    "%s %s answered %d (request %s): %s%s",
                    request.method, request.url.path, status, rid, detail,
                    f" [{held} more like it since the last report]" if held else "",
                )  # fmt: skip
        return Response(
            error_body(status, public_detail(status, detail), rid),
            status_code=status,
            headers=headers,
        )

    def serving_error(request: Request, exc: ServingError) -> Response:
        return respond(request, exc.status_code, exc.detail, exc.headers)

    def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if exc.extra:  # validation errors: say which field and why
            detail = f"{detail}: {exc.extra}"
        return respond(request, exc.status_code, detail, exc.headers)

    def unexpected_error(request: Request, exc: Exception) -> Response:
        rid = request_id(request)
        log.exception(
            "unhandled error on %s %s (request %s)", request.method, request.url.path, rid,
            exc_info=exc,
        )  # fmt: skip
        return Response(error_body(500, INTERNAL_DETAIL, rid), status_code=500)

    return {ServingError: serving_error, HTTPException: http_error, Exception: unexpected_error}
