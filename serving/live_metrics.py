"""Business and live-performance gauges on /metrics. The model_performance asset
publishes its latest figures to Redis (LIVE_METRICS_KEY); each scrape reads them once
(one GET), so every worker exports the same values and they are as fresh as the last
materialization. Nothing published yet: the gauges are absent. Redis down: the last
figures read stay, and churn_live_metrics_published_timestamp_seconds says how old
they are."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from warehouse.online_store import LIVE_METRICS_KEY

log = logging.getLogger("serving")

# gauge name -> (snapshot section, field, help)
BUSINESS_GAUGES = {
    "churn_business_predicted_churn_rate": (
        "latest", "predicted_churn_rate", "Mean churn probability of the latest served day"),
    "churn_business_revenue_at_risk": (
        "latest", "revenue_at_risk", "Expected revenue lost to churn, latest served day"),
    "churn_business_campaign_cost": (
        "latest", "campaign_cost", "Offer cost of contacting everyone above threshold"),
    "churn_business_expected_revenue_saved": (
        "latest", "expected_revenue_saved", "Revenue the campaign policy is expected to save"),
    "churn_business_realized_churn_rate": (
        "latest_realized", "realized_churn_rate", "Realized churn rate, latest day with outcomes"),
    "churn_business_realized_revenue_saved": (
        "latest_realized", "realized_revenue_saved",
        "Revenue the campaign policy saved, latest day with every outcome known"),
}  # fmt: skip
VERSION_GAUGES = {
    "churn_live_roc_auc": ("roc_auc", "Realized ROC AUC of a model version (verdict window)"),
    "churn_live_brier": ("brier", "Realized Brier score of a model version"),
    "churn_live_ece": ("ece", "Realized expected calibration error of a model version"),
}


class LiveMetrics(Collector):
    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    async def refresh(self, client: aioredis.Redis) -> None:
        """Read the latest published snapshot; keep the previous one on failure."""
        try:
            raw = await client.get(LIVE_METRICS_KEY)
        except (RedisError, OSError) as exc:
            log.info("live metrics not refreshed: %s", type(exc).__name__)
            return
        try:
            self.snapshot = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("live metrics under %s are not JSON; ignored", LIVE_METRICS_KEY)
            self.snapshot = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snapshot
        if not s:
            return
        yield GaugeMetricFamily(
            "churn_live_metrics_published_timestamp_seconds",
            "When model_performance last published these figures",
            value=float(s.get("published_at") or 0),
        )
        for name, (section, key, help_text) in BUSINESS_GAUGES.items():
            value = (s.get(section) or {}).get(key)
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, help_text, value=float(value))
        versions = s.get("versions") or {}
        for name, (key, help_text) in VERSION_GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=["model_version"])
            for version, metrics in sorted(versions.items()):
                value = (metrics or {}).get(key)
                if isinstance(value, int | float):
                    family.add_metric([str(version)], float(value))
            if family.samples:
                yield family
