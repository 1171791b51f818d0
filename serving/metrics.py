"""Prometheus metrics of one service process, served at GET /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# fine below 2 ms, where the latency budget lives (p50 0.5 ms, p99 2 ms)
LATENCY_BUCKETS = (
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.01, 0.025, 0.1, 0.5, 2.0,
)  # fmt: skip
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
AGE_BUCKETS = (3600, 6 * 3600, 86_400, 2 * 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "churn_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "churn_http_request_duration_seconds",
            "Server-side request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "churn_predictions", "Predictions served", ["model_version", "variant"], registry=r
        )
        self.probability = Histogram(
            "churn_prediction_probability",
            "Predicted churn probabilities",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.feature_age = Histogram(
            "churn_feature_age_seconds",
            "Age of the online features used for a prediction",
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter("churn_redis_errors", "Failed Redis calls", registry=r)
        self.breaker_state = Gauge(
            "churn_redis_circuit_state", "Redis circuit breaker: 0 closed, 1 half open, 2 open",
            registry=r,
        )  # fmt: skip

    def watch_breaker(self, state: Callable[[], str]) -> None:
        self.breaker_state.set_function(lambda: BREAKER_STATES[state()])

    def render(self) -> bytes:
        return generate_latest(self.registry)


def request_metrics(metrics: ServiceMetrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware counting requests and timing them by route template and status."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            except Exception as exc:
                status = getattr(exc, "status_code", 500)
                raise
            finally:
                route = scope.get("path_template") or "unmatched"
                metrics.latency.labels(route).observe(time.perf_counter() - started)
                metrics.requests.labels(route, scope["method"], str(status)).inc()

        return timed

    return middleware
