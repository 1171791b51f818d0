"""The webhook notifier against real HTTP servers: Alertmanager-shaped JSON, retries on
5xx and dead endpoints with backoff, no retry on 4xx, and never an exception."""

import socket

from sensors.alerts import Alert, WebhookNotifier

ALERT = Alert("ChurnFeatureDrift", "critical", "attr_region drifted", "PSI 0.9", {"incident": "x"})


def test_alertmanager_payload(webhook) -> None:
    url, received, _ = webhook
    delivery = WebhookNotifier(url).send([ALERT])
    assert delivery.sent and delivery.attempts == 1
    (body,) = received
    (alert,) = body
    assert alert["labels"] == {"alertname": "ChurnFeatureDrift", "severity": "critical",
                               "service": "churn-lakehouse", "incident": "x"}  # fmt: skip
    assert alert["annotations"] == {"summary": "attr_region drifted", "description": "PSI 0.9"}
    assert alert["startsAt"].endswith("+00:00") and alert["generatorURL"] == "churn-lakehouse"


def test_retries_server_errors_but_not_client_errors(webhook) -> None:
    url, received, statuses = webhook
    statuses.extend([503, 502])
    assert WebhookNotifier(url, backoff_seconds=0.01).send([ALERT]).attempts == 3
    statuses.extend([400])
    refused = WebhookNotifier(url, backoff_seconds=0.01).send([ALERT])
    assert not refused.sent and refused.attempts == 1 and refused.problem == "HTTP 400"
    assert len(received) == 4


def test_a_dead_webhook_is_reported_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    delivery = WebhookNotifier(f"http://127.0.0.1:{port}/", backoff_seconds=0.01).send([ALERT])
    assert not delivery.sent and delivery.attempts == 3 and "ConnectError" in delivery.problem
    unset = WebhookNotifier(None).send([ALERT])
    assert not unset.sent and "CHURN_ALERT_WEBHOOK_URL is not set" in unset.problem
