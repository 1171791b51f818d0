"""model_performance on real services: predictions written to the Redis stream by the
service's own writer, drained by the prediction_log asset, outcomes derived by the dbt
model prediction_outcomes, and the live_performance check. A good champion passes and
its figures reach /metrics; a champion made worse on purpose fails the check and the
retraining sensor launches a retrain for it."""

import asyncio
import json

import dagster as dg
import numpy as np
import redis
from litestar.testing import AsyncTestClient
from sklearn.metrics import roc_auc_score

from churn_assets.definitions import default_resources
from churn_assets.defs.performance import LIVE_PERFORMANCE_CHECK, PERFORMANCE_KEY
from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.feature_matrix import MARTS, load_training_frame
from churn_assets.ml.registry import CHAMPION
from churn_assets.ml.training import prepare_training_set
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from churn_assets.runner import materialize
from serving.app import create_app
from tests.serving.conftest import TEST_REDIS_URL, serve
from tests.serving.test_retraining_sensor import tick
from warehouse.connection import Warehouse
from warehouse.online_store import LIVE_METRICS_KEY
from warehouse.prediction_log import STREAM
from warehouse.settings import load_settings

MONITORED = "key:prediction_log or key:prediction_outcomes or key:model_performance"


def resources(home, registry) -> dict:
    return {
        **default_resources(),
        "warehouse": WarehouseResource(home=str(home)),
        "mlflow_registry": MlflowResource(home=str(home), tracking_uri=registry.tracking_uri),
        "redis_store": RedisResource(url=TEST_REDIS_URL),
    }


def labelled_snapshot(home):
    """The latest as_of whose label window has closed: its customers, labels and rows."""
    ts = prepare_training_set(
        load_training_frame(Warehouse(load_settings({"CHURN_HOME": str(home)})))
    )
    dates = ts.frame["as_of_date"].dt.date
    rows = np.flatnonzero(dates.to_numpy() == dates.max())
    return ts, rows, dates.max()


def check_of(summary) -> tuple[bool, str]:
    """(passed, description) of the live_performance check in a run summary."""
    (finding,) = [f for f in summary.findings if f[1] == LIVE_PERFORMANCE_CHECK]
    return finding[2], finding[3]


def test_served_predictions_meet_their_outcomes(drift_world, monkeypatch) -> None:
    home, registry, version = drift_world
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.delete(STREAM, LIVE_METRICS_KEY)
    ts, rows, as_of = labelled_snapshot(home)
    bundle = registry.load_bundle(version, home / "models")
    customers = ts.frame["customer_id"].iloc[rows].astype(str).tolist()
    p = bundle.predict(ts.x[rows])
    y = ts.y[rows]
    # the champion's holdout figures, as the evaluation tags them
    registry.tag(version, {"metrics": json.dumps({"roc_auc": roc_auc_score(y, p),
                                                  "brier": float(np.mean((p - y) ** 2)),
                                                  "roc_auc_se": 0.02, "brier_se": 0.01})})  # fmt: skip
    serve(version, customers, as_of, p)
    serve(version, customers[:10], as_of, p[:10])  # scored twice: still one outcome each
    # the tiny test model is judged against its holdout, not the production floor
    monkeypatch.setenv("CHURN_PERFORMANCE_AUC_FLOOR", "0.3")
    monkeypatch.setenv("CHURN_PERFORMANCE_MIN_LABELLED", "50")
    monkeypatch.setenv("CHURN_PERFORMANCE_MIN_PER_CLASS", "3")
    summary = materialize(MONITORED, resources=resources(home, registry))
    assert summary.ok, summary.failures

    # outcomes are the very labels training uses for that snapshot
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    outcomes = wh.query_df(f"SELECT customer_id, churned FROM {MARTS}.prediction_outcomes")
    assert len(outcomes) == len(customers)
    got = outcomes.set_index("customer_id")["churned"].loc[customers].to_numpy()
    assert np.array_equal(got, y)

    # its column lineage reaches the Dagster UI, back to the drained log
    lineage = summary.materialized["prediction_outcomes"]["dagster/column_lineage"]
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage.deps_by_column["as_of_date"]} == {("prediction_log", "features_as_of")}  # fmt: skip

    meta = summary.materialized["model_performance"]
    assert meta["predictions"] == len(customers) and meta["labelled"] == len(customers)
    (day,) = meta["performance_by_day"]
    assert day["model_version"] == version and day["day"] == str(as_of)
    assert day["roc_auc"] == round(roc_auc_score(y, p), 6)
    (business,) = meta["business_by_day"]
    assert business["realized_churn_rate"] == round(float(y.mean()), 6)
    passed, description = check_of(summary)
    assert passed and "performs as on its holdout" in description, description

    # the service's /metrics exports what the asset published
    snapshot = json.loads(client.get(LIVE_METRICS_KEY))
    assert snapshot["versions"][version]["roc_auc"] == day["roc_auc"]
    monkeypatch.setenv("CHURN_HOME", str(home))
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)

    async def scrape() -> str:
        async with AsyncTestClient(app=create_app()) as http:
            return (await http.get("/metrics")).text

    text = asyncio.run(scrape())
    assert f'churn_live_roc_auc{{model_version="{version}"}} {day["roc_auc"]}' in text
    assert f"churn_business_revenue_at_risk {business['revenue_at_risk']}" in text


def test_a_worse_model_fails_live_and_launches_a_retrain(drift_world, monkeypatch) -> None:
    home, registry, good = drift_world
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.delete(STREAM)
    ts, rows, as_of = labelled_snapshot(home)
    # made worse on purpose: trained on shuffled labels, tagged with the good model's
    # holdout figures as if it had passed evaluation
    shuffled = np.random.default_rng(0).permutation(ts.y)
    worse = ModelBundle(train_booster(ts.x, shuffled, {"num_leaves": 8}, 30, seed=2), ts.spec,
                        metadata={"threshold": 0.3})  # fmt: skip
    version = str(registry.log_model(worse, ts.frame.head(20), {"seed": "2"}).version)
    registry.tag(version, {"metrics": json.dumps({"roc_auc": 0.85, "brier": 0.05})})
    registry.set_alias(CHAMPION, version)
    customers = ts.frame["customer_id"].iloc[rows].astype(str).tolist()
    serve(version, customers, as_of, worse.predict(ts.x[rows]))
    monkeypatch.setenv("CHURN_PERFORMANCE_MIN_LABELLED", "50")
    monkeypatch.setenv("CHURN_PERFORMANCE_MIN_PER_CLASS", "3")
    with dg.DagsterInstance.ephemeral() as instance:
        summary = materialize(MONITORED, instance, resources(home, registry))
        passed, description = check_of(summary)
        assert not passed and "below the floor" in description
        record = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(PERFORMANCE_KEY, LIVE_PERFORMANCE_CHECK)
        )
        assert record.event.asset_check_evaluation.severity == dg.AssetCheckSeverity.ERROR
        (request,) = tick(instance, home, registry, None).run_requests
    assert request.tags["churn/incident"] == f"{LIVE_PERFORMANCE_CHECK}:v{version}"
    assert "below the floor" in json.loads(request.tags["churn/evidence"])["description"]
    assert good != version
