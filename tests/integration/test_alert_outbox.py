"""Alerts survive a webhook outage and a restart, on DuckDB and Postgres: they wait in
the warehouse outbox, are retried with backoff against a real webhook answering 500s,
and are delivered exactly once when it answers 200, by whichever process is running
then. A 4xx rejects an alert for good; a tick evaluated twice queues its alerts once."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from sensors import freshness as freshness_module
from sensors.alerts import Alert, AlertDispatcher, WebhookNotifier
from tests.unit.test_freshness_alerts import EightDaysLater, tick
from warehouse.alert_outbox import DELIVERED, PENDING, REJECTED, AlertOutbox
from warehouse.connection import Warehouse
from warehouse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DRIFT = Alert("ChurnFeatureDrift", "critical", "attr_region drifted", "PSI 0.9", {"incident": "x"})
# A process of its own (a restarted code server): deliver whatever is due, then exit.
DELIVER = """
from sensors.alerts import AlertDispatcher
from warehouse.connection import Warehouse
from warehouse.settings import load_settings

report = AlertDispatcher.from_env(Warehouse(load_settings()), "freshness_alerts").deliver_due()
print(report.describe())
"""


def deliver_in_a_new_process() -> str:
    done = subprocess.run(
        [sys.executable, "-c", DELIVER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_freshness_alert_outlives_an_outage_and_a_restart(
    settings: Settings, webhook, monkeypatch
) -> None:
    url, received, statuses = webhook
    statuses.extend([500, 500])
    monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("CHURN_ALERT_RETRY_SECONDS", "0")  # due again at once
    monkeypatch.setattr(freshness_module, "time", EightDaysLater)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(["raw", "customers"]))
        first = tick(instance, None)  # raised, queued, posted: 500
        assert "1 queued, 0 delivered, 1 waiting" in first.skip_reason.skip_message
        assert "0 delivered, 1 waiting" in deliver_in_a_new_process()  # 500 again
        assert "1 delivered" in deliver_in_a_new_process()  # 200
        later = tick(instance, first.cursor)  # nothing new, nothing due
        assert "0 queued, 0 delivered, 0 waiting" in later.skip_reason.skip_message
        # the first tick evaluated again (same cursor) queues nothing new
        again = tick(instance, None)
        assert "0 queued, 0 delivered" in again.skip_reason.skip_message

    assert len(received) == 3 and not statuses  # 500, 500, then the one 200
    ids = {body[0]["annotations"]["alert_id"] for body in received}
    assert len(ids) == 1 and all(len(body) == 1 for body in received)
    assert received[0][0]["labels"]["asset"] == "raw/customers"
    (row,) = AlertOutbox(Warehouse(settings)).rows().itertuples()
    assert (row.alert_id, row.state, row.attempts) == (ids.pop(), DELIVERED, 3)
    assert row.last_error is None and row.delivered_at is not None


def test_backoff_rejection_and_dedup(settings: Settings, webhook) -> None:
    url, received, statuses = webhook
    dispatcher = AlertDispatcher(Warehouse(settings), WebhookNotifier(url), retry_seconds=30)
    statuses.extend([503, 503])
    assert dispatcher.raise_alerts([DRIFT], basis="cursor-1").waiting == 1
    assert dispatcher.raise_alerts([DRIFT], basis="cursor-1").queued == 0  # same tick again
    assert len(received) == 1  # the second call found nothing due: 30 s backoff

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=29)).waiting == 0
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=31)).waiting == 1  # 503
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=89)).delivered == 0  # 60 s now
    assert dispatcher.deliver_due(now + dt.timedelta(seconds=95)).delivered == 1
    assert len(received) == 3

    statuses.append(400)  # the receiver refuses the alert itself: not retried
    refused = Alert("ChurnChampionStale", "warning", "v3 is 40 days old")
    report = dispatcher.raise_alerts([refused], basis="cursor-2")
    assert report.rejected == 1 and report.problem == "HTTP 400"
    assert dispatcher.deliver_due(now + dt.timedelta(days=1)).delivered == 0
    states = AlertOutbox(Warehouse(settings)).rows().set_index("state")["attempts"].to_dict()
    assert states == {DELIVERED: 3, REJECTED: 1} and PENDING not in states
    assert len(received) == 4
