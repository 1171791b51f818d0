"""Drift of live traffic: predictions logged by the service's writer, drained by the
prediction_log asset and joined to the features they were served. Traffic over every
customer reads exactly like the feature build; traffic skewed to one region is drift
the build does not show; too little traffic is a warning, never a retrain."""

import datetime as dt

import redis

from churn_assets.defs.monitoring import FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK
from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.runner import materialize
from tests.serving.conftest import TEST_REDIS_URL, serve
from tests.serving.test_model_performance import resources
from warehouse.connection import Warehouse
from warehouse.prediction_log import STREAM
from warehouse.settings import load_settings

LIVE = "key:prediction_log or key:live_drift_report"
BOTH = "key:prediction_log or key:live_drift_report or key:feature_drift_report"


def scoring(home):
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(home)})))
    return frame.assign(customer_id=frame["customer_id"].astype(str))


def served_scores(registry, home, version, frame):
    bundle = registry.load_bundle(version, home / "models")
    return bundle.predict(bundle.spec.transform(frame))


def findings(summary, asset: str) -> dict[str, tuple[bool, str]]:
    return {f[1]: (f[2], f[3]) for f in summary.findings if f[0] == asset}


def test_traffic_over_every_customer_reads_like_the_build(drift_world) -> None:
    home, registry, version = drift_world
    redis.Redis.from_url(TEST_REDIS_URL).delete(STREAM)
    frame = scoring(home)
    as_of = frame["as_of_date"].max().date()
    p = served_scores(registry, home, version, frame)
    serve(version, frame["customer_id"].tolist(), as_of, p)
    # an older build's traffic is not the current build's
    serve(version, frame["customer_id"].tolist()[:50], as_of - dt.timedelta(days=7), p[:50])
    summary = materialize(BOTH, resources=resources(home, registry))
    assert summary.success, summary.failed_steps
    live = summary.materialized["live_drift_report"]
    build = summary.materialized["feature_drift_report"]
    assert live["rows"] == build["rows"] == len(frame)
    assert live["verdict"] == build["verdict"]
    assert live["drifted_features"] == build["drifted_features"]
    assert findings(summary, "live_drift_report") == findings(summary, "feature_drift_report")


def test_traffic_skewed_to_one_region_is_live_drift(drift_world) -> None:
    home, registry, version = drift_world
    redis.Redis.from_url(TEST_REDIS_URL).delete(STREAM)
    frame = scoring(home)
    region = frame["attr_region"].value_counts().index[0]
    skewed = frame[frame["attr_region"] == region]
    serve(version, skewed["customer_id"].tolist(), frame["as_of_date"].max().date(),
          served_scores(registry, home, version, skewed))  # fmt: skip
    summary = materialize(BOTH, resources=resources(home, registry))
    assert "attr_region" in summary.materialized["live_drift_report"]["drifted_features"]
    assert "attr_region" not in summary.materialized["feature_drift_report"]["drifted_features"]
    passed, description = findings(summary, "live_drift_report")[FEATURE_DRIFT_CHECK]
    assert not passed and "attr_region" in description


def test_too_little_traffic_warns_and_says_why(drift_world) -> None:
    home, registry, version = drift_world
    redis.Redis.from_url(TEST_REDIS_URL).delete(STREAM)
    frame = scoring(home).head(5)
    serve(version, frame["customer_id"].tolist(), frame["as_of_date"].max().date(),
          served_scores(registry, home, version, frame))  # fmt: skip
    summary = materialize(LIVE, resources=resources(home, registry))
    assert summary.materialized["live_drift_report"]["verdict"] == "not judged"
    for check in (FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK):
        passed, description = findings(summary, "live_drift_report")[check]
        assert not passed and "scored 5 customers" in description
