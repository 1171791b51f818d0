"""A served world for the API tests: the small data set's feature tables, a champion
trained on them in a real MLflow store, and its features synced into the Redis service
by the real `online_features` asset."""

import asyncio
import datetime as dt
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pytest
import redis
from litestar import Litestar

from churn_assets.defs.monitoring import feature_drift_report
from churn_assets.defs.online import online_features
from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.calibration import Calibrator
from churn_assets.ml.feature_matrix import load_scoring_frame, load_training_frame
from churn_assets.ml.registry import CHAMPION, Registry
from churn_assets.ml.training import prepare_training_set, training_reference
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from serving.auth import mint_token
from serving.prediction_log import PredictionLog
from serving.redis_wire import WireConnection
from serving.schemas import Prediction
from tests.servers import RedisProcess, free_port, redis_db_url
from warehouse.connection import Warehouse
from warehouse.settings import load_settings

SECRET = "test-secret-of-at-least-thirty-two-bytes"
# a database of its own: tests/integration empties the shared test database
TEST_REDIS_URL = redis_db_url(10)


def register_model(registry: Registry, warehouse: Warehouse, seed: int, rounds: int) -> str:
    """Train a small booster on the training examples and register it (real MLflow)."""
    ts = prepare_training_set(load_training_frame(warehouse))
    params = {"num_leaves": 8, "learning_rate": 0.1, "min_data_in_leaf": 5}
    booster = train_booster(ts.x, ts.y, params, rounds, seed)
    raw = np.asarray(booster.predict(ts.x), dtype=float)
    bundle = ModelBundle(
        booster,
        ts.spec,
        Calibrator.fit(raw, ts.y, "isotonic"),
        metadata={"threshold": 0.3, "seed": seed},
    )
    return str(registry.log_model(bundle, ts.frame.head(20), {"seed": str(seed)}).version)


def run_online_features(
    home: Path, tracking_uri: str, redis_url: str = TEST_REDIS_URL
) -> dg.ExecuteInProcessResult:
    """The real online_features asset for this home's champion (failures returned)."""
    return dg.materialize(
        [online_features],
        resources={
            "warehouse": WarehouseResource(home=str(home)),
            "mlflow_registry": MlflowResource(home=str(home), tracking_uri=tracking_uri),
            "redis_store": RedisResource(url=redis_url),
        },
        raise_on_error=False,
    )


def sync_online_features(home: Path, tracking_uri: str, redis_url: str = TEST_REDIS_URL) -> None:
    assert run_online_features(home, tracking_uri, redis_url).success


@pytest.fixture(scope="session")
def served_home(built_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("served")
    shutil.copy(built_duckdb, home / "warehouse.duckdb")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_HOME", str(home))
        registry = Registry(tracking_uri, "churn-model", "churn-model", home / "mlartifacts")
        version = register_model(registry, Warehouse(load_settings()), seed=1, rounds=30)
        registry.set_alias(CHAMPION, version)
        sync_online_features(home, tracking_uri)
    return home


@pytest.fixture
def serving_env(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "CHURN_HOME": str(served_home),
        "REDIS_URL": TEST_REDIS_URL,
        "MLFLOW_TRACKING_URI": f"sqlite:///{served_home / 'mlflow.db'}",
        "CHURN_JWT_SECRET": SECRET,
        # the small data set ends in 2025: its features are old by design
        "CHURN_FEATURE_MAX_AGE_SECONDS": str(10 * 365 * 86_400),
        "CHURN_RELOAD_POLL_SECONDS": "0.2",
    }
    monkeypatch.delenv("CHURN_WAREHOUSE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # each test starts with fresh rate-limit counters and an empty prediction log
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in [*client.scan_iter("churn:rate:*"), b"churn:predictions"]:
        client.delete(key)
    yield env


@pytest.fixture
def own_registry(served_home: Path, tmp_path: Path, monkeypatch) -> Registry:
    """A copy of the served MLflow store this test may change (aliases, new versions)."""
    shutil.copy(served_home / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Registry(uri, "churn-model", "churn-model", served_home / "mlartifacts")


@pytest.fixture
def customers(served_home: Path) -> list[str]:
    """The first five customers of the served warehouse."""
    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(served_home)})))
    return sorted(frame["customer_id"].astype(str))[:5]


@pytest.fixture
def drift_world(served_home: Path, own_registry: Registry, tmp_path: Path):
    """A home of its own whose champion carries a drift reference: (home, registry,
    version)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "warehouse.duckdb", home / "warehouse.duckdb")
    wh = Warehouse(load_settings({"CHURN_HOME": str(home)}))
    ts = prepare_training_set(load_training_frame(wh))
    train, valid = ts.rows("train"), ts.rows("validation")
    booster = train_booster(ts.x[train], ts.y[train], {"num_leaves": 8}, 30, seed=1)
    raw_valid = np.asarray(booster.predict(ts.x[valid]), dtype=float)
    calibrator = Calibrator.fit(raw_valid, ts.y[valid], "isotonic")
    reference = training_reference(ts, ts.spec, valid, calibrator.transform(raw_valid), 0)
    bundle = ModelBundle(booster, ts.spec, calibrator, {"threshold": 0.3}, reference)
    version = str(own_registry.log_model(bundle, ts.frame.head(20), {"seed": "1"}).version)
    own_registry.set_alias(CHAMPION, version)
    return home, own_registry, version


def run_drift_report(home: Path, registry: Registry, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [feature_drift_report],
        resources={
            "warehouse": WarehouseResource(home=str(home)),
            "mlflow_registry": MlflowResource(home=str(home), tracking_uri=registry.tracking_uri),
        },
        instance=instance,
    )


def serve(version: str, customers: list[str], as_of: dt.date, p: np.ndarray) -> None:
    """Log predictions the way the service does: its PredictionLog writer over its wire
    connection, for one request scoring `customers` on features of `as_of`."""

    async def write() -> None:
        log = PredictionLog(WireConnection(TEST_REDIS_URL, 5.0))
        request = SimpleNamespace(
            state=SimpleNamespace(started=time.perf_counter(), request_id="req-perf"),
            user=SimpleNamespace(subject="perf-test"),
        )
        stamp = dt.datetime.combine(as_of, dt.time(), dt.UTC).isoformat()
        log.append(
            request,  # type: ignore[arg-type]
            [
                Prediction(customer_id=c, status="ok", churn_probability=float(q),
                           model_version=version, variant="champion", features_as_of=stamp)
                for c, q in zip(customers, p, strict=True)
            ],
        )  # fmt: skip
        await log.stop()
        log.client.close()

    asyncio.run(write())


def bearer(role: str, subject: str = "tester", ttl: int = 600, key: str = SECRET) -> dict:
    token = mint_token(subject, role, ttl, key, "HS256", "churn-lakehouse")
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def live_server(app: Litestar) -> Iterator[str]:
    """The app under a real uvicorn server on a free port, in a thread of its own, so
    a test can drive it with truly concurrent requests; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def redis_server(port: int, workdir: Path) -> Iterator[subprocess.Popen]:
    """A redis-server of the test's own on `port` (never the shared service), which the
    test may stop and start again on the same port."""
    server = RedisProcess(port, workdir).start()
    assert server.proc is not None
    try:
        yield server.proc
    finally:
        server.close()
