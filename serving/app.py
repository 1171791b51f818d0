"""The Litestar application factory: `uvicorn --factory serving.app:create_app`.

The lifespan owns everything with a life of its own: the Redis pools, the champion
model, the prediction-log writer and the hot-reload tasks, all on `app.state`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from serving.auth import BEARER_SCHEME, BearerAuthMiddleware, TokenVerifier
from serving.controllers.admin import AdminController
from serving.controllers.explain import ExplainController
from serving.controllers.health import HealthController
from serving.controllers.models import ModelsController
from serving.controllers.predict import PredictController
from serving.errors import exception_handlers
from serving.load_shedding import InFlightLimit
from serving.metrics import ServiceMetrics, request_metrics
from serving.model_holder import ModelHolder
from serving.online import CircuitBreaker, OnlineReader
from serving.prediction_log import PredictionLog
from serving.redis_wire import WireConnection
from serving.reloader import Reloader
from serving.scoring import Scorer
from serving.settings import ServingSettings, load_serving_settings
from warehouse.redis_server import redis_url

log = logging.getLogger("serving")
LOG_WRITE_TIMEOUT_SECONDS = 5.0


def create_app(settings: ServingSettings | None = None) -> Litestar:
    settings = settings or load_serving_settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = redis_url(settings.storage)
        client = aioredis.from_url(
            url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        events_client = aioredis.from_url(url)  # pub/sub: no short timeout
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
        wire = WireConnection(url, settings.redis_timeout_seconds)
        reader = OnlineReader(client, wire, breaker, metrics.redis_errors.inc)
        holder = ModelHolder(settings, reader.has_live_sync)
        metrics.watch_breaker(lambda: breaker.state)
        # not the request-path connection: a 50 ms timeout on a large XADD pipeline
        # would resend entries Redis had already written
        log_wire = WireConnection(url, LOG_WRITE_TIMEOUT_SECONDS)
        prediction_log = PredictionLog(log_wire, stream_cap=settings.prediction_log_max_entries)
        metrics.watch_prediction_log(prediction_log)
        reloader = Reloader(events_client, holder, settings.reload_poll_seconds)
        app.state.update(
            settings=settings,
            metrics=metrics,
            verifier=TokenVerifier(
                settings.jwt_key,
                settings.jwt_algorithm,
                settings.jwt_issuer,
                audience=settings.jwt_audience,
                max_ttl_seconds=settings.jwt_max_ttl_seconds,
                leeway_seconds=settings.jwt_leeway_seconds,
            ),
            breaker=breaker,
            reader=reader,
            holder=holder,
            scorer=Scorer(settings, holder, reader),
            prediction_log=prediction_log,
            events=events_client,
            redis=client,  # short timeouts: for reads off the scoring path (/metrics)
        )
        await holder.refresh()
        if holder.current is None:
            log.warning("%s; /health/ready says so until one is loaded", holder.last_error)
        prediction_log.start()
        reloader.start()
        try:
            yield
        finally:
            await reloader.stop()
            await prediction_log.stop()
            log_wire.close()
            wire.close()
            await client.aclose()
            await events_client.aclose()

    return Litestar(
        route_handlers=[
            PredictController,
            ExplainController,
            ModelsController,
            AdminController,
            HealthController,
        ],
        lifespan=[lifespan],
        middleware=[
            request_metrics(metrics),  # outermost: shed requests are counted and timed too
            InFlightLimit(settings.max_in_flight, metrics),  # before auth and body parsing
            DefineMiddleware(BearerAuthMiddleware, exclude=["^/health", "^/metrics", "^/schema"]),
        ],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="churn-lakehouse scoring service",
            version="1",
            description="Churn probabilities, explanations and model information. "
            "Every /v1 route needs a JWT bearer token (see `churn token`).",
            path="/schema",
            # Swagger's Authorize button: paste a token from `churn token`
            components=Components(
                security_schemes={
                    BEARER_SCHEME: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,  # tracebacks never reach clients
    )
