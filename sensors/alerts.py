"""Alerts to a webhook in Alertmanager's format (POST a JSON list of alerts, as to
Alertmanager's /api/v2/alerts), for findings that need a person: severe drift, a
retraining launch, a stale champion.

Sending never fails or blocks the caller for long: a few short attempts with backoff,
then the failure is logged and reported back, and the sensor or run goes on."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("churn.alerts")
WEBHOOK_ENV = "CHURN_ALERT_WEBHOOK_URL"


@dataclass(frozen=True)
class Alert:
    name: str  # alertname, e.g. ChurnFeatureDrift
    severity: str  # warning | critical
    summary: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def payload(self, now: dt.datetime, source: str) -> dict[str, object]:
        return {
            "labels": {
                "alertname": self.name,
                "severity": self.severity,
                "service": "churn-lakehouse",
                **self.labels,
            },
            "annotations": {"summary": self.summary, "description": self.description},
            "startsAt": now.isoformat(),
            "generatorURL": source,
        }


@dataclass
class Delivery:
    sent: bool
    attempts: int
    problem: str | None = None


class WebhookNotifier:
    def __init__(
        self,
        url: str | None,
        attempts: int = 3,
        timeout_seconds: float = 2.0,
        backoff_seconds: float = 0.5,
        source: str = "churn-lakehouse",
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.timeout = timeout_seconds
        self.backoff = backoff_seconds
        self.source = source

    @classmethod
    def from_env(cls, source: str = "churn-lakehouse") -> WebhookNotifier:
        return cls(os.environ.get(WEBHOOK_ENV) or None, source=source)

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """POST the alerts; retried on connection errors and 5xx, never raises."""
        if not alerts:
            return Delivery(True, 0)
        if not self.url:
            return Delivery(False, 0, f"{WEBHOOK_ENV} is not set; alerts are only logged")
        body = [a.payload(dt.datetime.now(dt.UTC), self.source) for a in alerts]
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = httpx.post(self.url, json=body, timeout=self.timeout)
                if response.status_code < 300:
                    return Delivery(True, attempt)
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500:  # a client error will not go away
                    break
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning("alert webhook failed after %d attempt(s): %s", attempt, problem)
        return Delivery(False, attempt, problem)
