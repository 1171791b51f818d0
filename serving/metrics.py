"""Prometheus metrics of one service process, served at GET /metrics."""

from __future__ import annotations

import bisect
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from serving.live_metrics import LiveMetrics
from serving.schemas import Prediction
from warehouse.prediction_log import STREAM

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from serving.prediction_log import PredictionLog

log = logging.getLogger("serving")

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
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "churn_predictions", "Predictions served", ["model_version", "variant"], registry=r
        )
        self.probability = BatchHistogram(
            "churn_prediction_probability", "Predicted churn probabilities", PROBABILITY_BUCKETS
        )
        self.feature_age = BatchHistogram(
            "churn_feature_age_seconds",
            "Age of the online features used for a prediction",
            AGE_BUCKETS,
        )
        r.register(self.probability)
        r.register(self.feature_age)
        self.redis_errors = Counter("churn_redis_errors", "Failed Redis calls", registry=r)
        self.live = LiveMetrics()  # business and live-performance gauges
        r.register(self.live)
        self.requests_shed = Counter(
            "churn_http_requests_shed",
            "Requests refused with 503 because CHURN_MAX_IN_FLIGHT were in flight",
            registry=r,
        )
        self.requests_in_flight = Gauge(
            "churn_http_requests_in_flight", "Requests this worker is handling", registry=r
        )
        self.breaker_state = Gauge(
            "churn_redis_circuit_state", "Redis circuit breaker: 0 closed, 1 half open, 2 open",
            registry=r,
        )  # fmt: skip
        self.stream_backlog = Gauge(
            "churn_prediction_log_stream_backlog",
            "Prediction-log entries in the Redis stream not yet drained into the warehouse "
            "(the same stream for every worker)",
            registry=r,
        )

    def record(self, predictions: Sequence[Prediction]) -> None:
        """Count scored predictions by model version and variant, and add their
        probabilities and feature ages to the histograms (one call per request)."""
        scored = [p for p in predictions if p.churn_probability is not None]
        served: dict[tuple[str | None, str | None], int] = {}
        for p in scored:
            key = (p.model_version, p.variant)
            served[key] = served.get(key, 0) + 1
        for (version, variant), n in served.items():
            self.predictions.labels(version, variant).inc(n)
        self.probability.observe_many([p.churn_probability or 0.0 for p in scored])
        self.feature_age.observe_many([p.feature_age_seconds or 0.0 for p in scored])

    def watch_breaker(self, state: Callable[[], str]) -> None:
        self.breaker_state.set_function(lambda: BREAKER_STATES[state()])

    def watch_prediction_log(self, log: PredictionLog) -> None:
        """Entries lost (pushed out while Redis was down, or refused) and waiting."""
        lost = Gauge(
            "churn_prediction_log_lost",
            "Prediction-log entries lost since start",
            ["reason"],
            registry=self.registry,
        )
        lost.labels("buffer_full").set_function(lambda: log.dropped)
        lost.labels("refused").set_function(lambda: log.rejected)
        waiting = Gauge(
            "churn_prediction_log_waiting",
            "Prediction-log entries waiting in memory for Redis",
            registry=self.registry,
        )
        waiting.set_function(lambda: len(log.buffer))
        cap = Gauge(
            "churn_prediction_log_stream_max_entries",
            "Cap of the prediction-log stream: beyond it the oldest undrained entries are trimmed",
            registry=self.registry,
        )
        cap.set(log.stream_cap)

    async def refresh_stream_backlog(self, client: aioredis.Redis) -> None:
        """XLEN at scrape time (the drain deletes what it moved, so the length is the
        backlog); on a Redis error the last value stays."""
        try:
            backlog = await client.xlen(STREAM)
        except (RedisError, OSError) as exc:
            log.info("prediction-log backlog not refreshed: %s", type(exc).__name__)
            return
        self.stream_backlog.set(backlog)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BatchHistogram(Collector):
    """A histogram fed a whole batch of values at once: a 1,000-id batch costs one
    numpy call instead of 1,000 `Histogram.observe` calls (each takes a lock)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [float(b) for b in buckets]
        self.counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.total = 0.0

    def observe_many(self, values: Sequence[float]) -> None:
        # a value equal to a bound belongs to that bucket (le semantics): bisect_left
        if len(values) < 32:  # numpy's call overhead outweighs a few bisections
            for value in values:
                self.counts[bisect.bisect_left(self.bounds, value)] += 1
                self.total += value
            return
        v = np.asarray(values, dtype=float)
        slots = np.bincount(np.searchsorted(self.bounds, v), minlength=len(self.counts))
        for i, n in enumerate(slots.tolist()):
            self.counts[i] += n
        self.total += float(v.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = itertools.accumulate(self.counts)
        labels = [*(repr(b) for b in self.bounds), "+Inf"]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], list(zip(labels, cumulative, strict=True)), sum_value=self.total)
        yield family


def request_metrics(metrics: ServiceMetrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware counting requests and timing them by route template and status.
    It also stamps the request id and start time into the connection state (what
    `request.state` reads), cheaper than a before_request hook."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            state = scope.setdefault("state", {})
            state["request_id"] = uuid.uuid4().hex
            state["started"] = started
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
                metrics.latency.labels(route, str(status)).observe(time.perf_counter() - started)
                metrics.requests.labels(route, scope["method"], str(status)).inc()

        return timed

    return middleware
