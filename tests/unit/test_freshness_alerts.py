"""Freshness failures raise an alert: an asset past its fail window is sent to a real
webhook once, not again on the next tick, and an asset fresh again is forgotten."""

import datetime as dt

import dagster as dg

from churn_assets.definitions import defs
from churn_assets.resources import WarehouseResource
from sensors import freshness as freshness_module
from sensors.freshness import freshness_alert_sensor, late_changes


def test_late_changes_once_per_state() -> None:
    changes, late = late_changes({"a": "fail", "b": "fresh", "c": "warn"}, {"c": "warn"})
    assert changes == [("a", "fail")] and late == {"a": "fail", "c": "warn"}
    changes, late = late_changes({"a": "fresh", "c": "fail"}, late)
    assert changes == [("c", "fail")] and late == {"c": "fail"}


class EightDaysLater:
    @staticmethod
    def time() -> float:
        return (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).timestamp()


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        resources={"warehouse": WarehouseResource()},
    )
    return freshness_alert_sensor(context)


def test_a_stale_asset_is_alerted_once(webhook, duckdb_settings, monkeypatch) -> None:
    url, received, _ = webhook
    monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", url)
    monkeypatch.setattr(freshness_module, "time", EightDaysLater)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(["raw", "customers"]))
        first = tick(instance, None)
        second = tick(instance, first.cursor)
    (body,) = received
    (alert,) = body
    assert alert["labels"]["alertname"] == "ChurnAssetStale"
    assert alert["labels"]["asset"] == "raw/customers" and alert["labels"]["severity"] == "critical"
    assert "fails after 168.0 h" in alert["annotations"]["description"]
    assert "none newly" in second.skip_reason.skip_message
    assert "1 queued, 1 delivered" in first.skip_reason.skip_message
