"""One error hierarchy for the service, mapped to HTTP status codes with a JSON body
`{"status_code", "detail"}`; anything unexpected becomes a logged 500 without internals."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException

log = logging.getLogger("serving")


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
    """No model loaded, or the online store cannot be reached (circuit open)."""

    status_code = 503


def _body(status: int, detail: str) -> dict[str, object]:
    return {"status_code": status, "detail": detail}


def serving_error_handler(_: Request, exc: ServingError) -> Response:
    return Response(
        _body(exc.status_code, exc.detail), status_code=exc.status_code, headers=exc.headers
    )


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    detail = exc.detail
    if exc.extra:  # validation errors: say which field and why
        detail = f"{detail}: {exc.extra}"
    return Response(
        _body(exc.status_code, detail), status_code=exc.status_code, headers=exc.headers
    )


def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(_body(500, "internal error"), status_code=500)


EXCEPTION_HANDLERS = {
    ServingError: serving_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
