"""Liveness, readiness and Prometheus metrics: no JWT; /metrics takes a static bearer
token of its own when CHURN_METRICS_TOKEN is set."""

from __future__ import annotations

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from serving.auth import bearer_matches
from serving.schemas import Health


class HealthController(Controller):
    path = "/"
    tags = ["health"]

    @get("/health/live")
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/health/ready")
    async def ready(self, request: Request) -> Response[Health]:
        """Ready when a model is loaded, Redis answers and its features are fresh."""
        state = request.app.state
        checks: dict[str, str] = {}
        model = state.holder.current
        checks["model"] = f"v{model.version}" if model else f"none ({state.holder.last_error})"
        reachable = await state.reader.ping()
        checks["redis"] = "ok" if reachable else f"unreachable (circuit {state.breaker.state})"
        fresh = False
        if model and reachable:
            age = await state.reader.feature_age_seconds(model.fs_version)
            limit = state.settings.max_feature_age_seconds
            fresh = age is not None and age <= limit
            checks["features"] = (
                "not synced" if age is None else f"{age:.0f} s old (limit {limit} s)"
            )
        ok = model is not None and reachable and fresh
        return Response(
            Health(status="ok" if ok else "unavailable", checks=checks),
            status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE,
        )

    @get("/metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, request: Request) -> bytes:
        """Prometheus text format; with CHURN_METRICS_TOKEN set, only for
        `Authorization: Bearer <that token>`."""
        token = request.app.state.settings.metrics_token
        if token and not bearer_matches(request.headers.get("authorization", ""), token):
            raise NotAuthorizedException(
                "/metrics needs the metrics bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        metrics = request.app.state.metrics
        await metrics.live.refresh(request.app.state.redis)
        await metrics.refresh_stream_backlog(request.app.state.redis)
        return metrics.render()
