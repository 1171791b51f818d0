"""Alerts to a webhook in Alertmanager's format (POST a JSON list of alerts, as to
Alertmanager's /api/v2/alerts), for findings that need a person: severe drift, a
retraining launch, a stale champion, a late asset.

Alerts go through the warehouse outbox (warehouse.alert_outbox): queued first, then
posted, marked delivered on a 2xx and retried with exponential backoff on the sensors'
next ticks while the webhook is down, across restarts. Sending never fails or blocks
the caller for long: one attempt per alert per tick, and when the warehouse itself is
out of reach the alerts are sent directly with a few short attempts instead."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from warehouse.alert_outbox import AlertOutbox, QueuedAlert, utcnow
from warehouse.connection import Warehouse

log = logging.getLogger("churn.alerts")
WEBHOOK_ENV = "CHURN_ALERT_WEBHOOK_URL"
RETRY_ENV = "CHURN_ALERT_RETRY_SECONDS"
MAX_RETRY_SECONDS = 3_600.0
# A claimed alert is not offered to another deliverer for this long: longer than one
# attempt takes, short enough that a deliverer that died is soon replaced.
CLAIM_LEASE = dt.timedelta(minutes=2)
RETRYABLE_CLIENT_ERRORS = (408, 429)


@dataclass(frozen=True)
class Alert:
    name: str  # alertname, e.g. ChurnFeatureDrift
    severity: str  # warning | critical
    summary: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def payload(
        self, now: dt.datetime, source: str, alert_id: str | None = None
    ) -> dict[str, object]:
        """The Alertmanager alert object; an outbox alert carries its id in the
        annotations (not a label: Alertmanager then merges a redelivery with the first)."""
        annotations = {"summary": self.summary, "description": self.description}
        if alert_id:
            annotations["alert_id"] = alert_id
        return {
            "labels": {
                "alertname": self.name,
                "severity": self.severity,
                "service": "churn-lakehouse",
                **self.labels,
            },
            "annotations": annotations,
            "startsAt": now.isoformat(),
            "generatorURL": source,
        }

    def alert_id(self, source: str, basis: str) -> str:
        """Stable for the same alert raised from the same sensor state (`basis`: the
        cursor the tick started from), so a tick evaluated twice queues it once."""
        key = json.dumps(
            [source, basis, self.name, self.severity, self.summary, self.labels], sort_keys=True
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class Delivery:
    sent: bool
    attempts: int
    problem: str | None = None
    retryable: bool = True  # False: the receiver refused the alert itself (4xx)


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

    def post(self, body: list[dict[str, object]]) -> Delivery:
        """One POST of Alertmanager alert objects; never raises."""
        if not self.url:
            return Delivery(False, 0, f"{WEBHOOK_ENV} is not set; alerts are only logged")
        try:
            response = httpx.post(self.url, json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Delivery(False, 1, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status < 300:
            return Delivery(True, 1)
        # a client error will not go away, unless it says to come back later
        retryable = status >= 500 or status in RETRYABLE_CLIENT_ERRORS
        return Delivery(False, 1, f"HTTP {status}", retryable)

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """POST the alerts now; retried on connection errors and 5xx, never raises."""
        if not alerts:
            return Delivery(True, 0)
        body = [a.payload(dt.datetime.now(dt.UTC), self.source) for a in alerts]
        delivery = Delivery(False, 0)
        for attempt in range(1, self.attempts + 1):
            delivery = self.post(body)
            delivery.attempts = attempt
            if delivery.sent or not delivery.retryable or not self.url:
                break
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        if not delivery.sent and self.url:
            log.warning("alert webhook failed after %d attempt(s): %s", attempt, delivery.problem)
        return delivery


@dataclass
class OutboxReport:
    queued: int = 0  # new alerts put in the outbox
    delivered: int = 0
    waiting: int = 0  # tried and due again later
    rejected: int = 0
    problem: str | None = None  # the last failure, or why the outbox was bypassed

    def describe(self) -> str:
        text = (
            f"alerts: {self.queued} queued, {self.delivered} delivered, "
            f"{self.waiting} waiting for a retry, {self.rejected} rejected"
        )
        return text + (f" ({self.problem})" if self.problem else "")


class AlertDispatcher:
    """Queue alerts in the warehouse outbox and deliver every due alert, oldest first."""

    def __init__(
        self,
        warehouse: Warehouse,
        notifier: WebhookNotifier,
        retry_seconds: float = 30.0,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        self.outbox = AlertOutbox(warehouse)
        self.notifier = notifier
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds

    @classmethod
    def from_env(cls, warehouse: Warehouse, source: str) -> AlertDispatcher:
        retry = float(os.environ.get(RETRY_ENV) or 30.0)
        return cls(warehouse, WebhookNotifier.from_env(source), retry_seconds=retry)

    def raise_alerts(self, alerts: Sequence[Alert], basis: str) -> OutboxReport:
        """Queue alerts (ids from `basis`, see Alert.alert_id), then deliver what is due.
        Without a webhook they are only logged; when the warehouse cannot be reached
        they are sent directly instead (a few quick attempts)."""
        if not self.notifier.url:
            for unsent in alerts:
                log.warning("alert (no %s): %s", WEBHOOK_ENV, unsent.summary)
            unset = f"{WEBHOOK_ENV} is not set; alerts are only logged"
            return OutboxReport(problem=unset if alerts else None)
        now = utcnow()
        source = self.notifier.source
        queued = []
        for alert in alerts:
            alert_id = alert.alert_id(source, basis)
            payload = alert.payload(now.replace(tzinfo=dt.UTC), source, alert_id)
            queued.append(QueuedAlert(alert_id, source, payload))
        try:
            added = self.outbox.enqueue(queued, now)
            report = self.deliver_due()
        except Exception as exc:  # the warehouse is busy or down: never lose the alert
            unavailable = f"outbox unavailable ({type(exc).__name__}: {exc})"
            if not alerts:
                return OutboxReport(problem=f"{unavailable}; queued alerts wait a tick")
            direct = self.notifier.send(alerts)
            problem = f"{unavailable}; sent directly"
            log.warning("%s: %s", problem, "delivered" if direct.sent else direct.problem)
            return OutboxReport(
                delivered=len(alerts) if direct.sent else 0,
                problem=problem if direct.sent else f"{problem}, failed: {direct.problem}",
            )
        report.queued = added
        return report

    def deliver_due(self, now: dt.datetime | None = None) -> OutboxReport:
        """Post every due alert, one request each; after a failure the webhook is
        taken to be down and the rest wait for their retry without a request."""
        now = now or utcnow()
        report = OutboxReport()
        down: str | None = None
        for alert in self.outbox.claim_due(CLAIM_LEASE, now):
            delivery = Delivery(False, 0, down) if down else self.notifier.post([alert.payload])
            if delivery.sent:
                self.outbox.mark_delivered([alert.alert_id], utcnow())
                report.delivered += 1
                continue
            problem = delivery.problem or "not delivered"
            report.problem = problem
            if not delivery.retryable:
                self.outbox.mark_failed([alert.alert_id], problem, retry_at=None)
                report.rejected += 1
                log.warning("alert %s rejected by the webhook: %s", alert.alert_id, problem)
                continue
            down = problem
            delay = min(self.retry_seconds * 2 ** (alert.attempts - 1), self.max_retry_seconds)
            self.outbox.mark_failed(
                [alert.alert_id], problem, retry_at=now + dt.timedelta(seconds=delay)
            )
            report.waiting += 1
        if report.problem:
            log.warning(report.describe())
        return report
