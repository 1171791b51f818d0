"""Shared fixtures: a small synthetic data set, per-test homes, real Postgres databases."""

import datetime as dt
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest

from tests.servers import pg_admin_url, redis_db_url, stop_session_servers
from warehouse.generator import GeneratorConfig, generate
from warehouse.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
# the feature graph: no training, serving or monitoring (tests of features need no model)
FEATURE_GRAPH = "not group:models and not group:serving and not group:monitoring"
SMALL = GeneratorConfig(customers=300, days=200, seed=3, start=dt.date(2025, 1, 1))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the embedded servers the session started (tests/servers.py)."""
    stop_session_servers()


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> None:
    """The code location needs the dbt manifest before it is imported."""
    subprocess.run(
        ["dbt", "parse", "--quiet", "--profiles-dir", "."], cwd=ROOT / "dbt_project", check=True
    )


MLFLOW_GLOBALS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@pytest.fixture(autouse=True)
def isolated_mlflow() -> Iterator[None]:
    """mlflow.set_tracking_uri / set_experiment write these variables; a test's store
    must not leak into the next test's settings."""
    saved = {name: os.environ.get(name) for name in MLFLOW_GLOBALS}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("small")
    generate(SMALL, home / "landing", home / "ground_truth")
    return home


@pytest.fixture
def home(tmp_path: Path, small_landing: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CHURN_HOME holding a copy of the small data set in its landing zone."""
    shutil.copytree(small_landing / "landing", tmp_path / "landing")
    shutil.copytree(small_landing / "ground_truth", tmp_path / "ground_truth")
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CHURN_WAREHOUSE_URL", raising=False)
    return tmp_path


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for one test, dropped afterwards."""
    name = f"churn_test_{uuid.uuid4().hex[:10]}"
    admin_url = pg_admin_url()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["duckdb", "postgres"])
def settings(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings for each warehouse backend, over the same landing zone."""
    if request.param == "postgres":
        monkeypatch.setenv("CHURN_WAREHOUSE_URL", request.getfixturevalue("pg_url"))
    return load_settings()


@pytest.fixture
def duckdb_settings(home: Path) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def ingested_duckdb(small_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB warehouse with the small data set ingested, built once per session."""
    from warehouse.connection import Warehouse
    from warehouse.ingestion import Ingestor

    home = tmp_path_factory.mktemp("ingested")
    settings = load_settings({"CHURN_HOME": str(home)})
    ingestor = Ingestor(Warehouse(settings), small_landing / "landing")
    for table in ("customers", "subscriptions", "events", "labels"):
        ingestor.ingest(table)
    return settings.duckdb_path


@pytest.fixture
def ingested_settings(duckdb_settings: Settings, ingested_duckdb: Path) -> Settings:
    """duckdb_settings whose warehouse already holds the small data set (every landing
    file is in the ledger, so ingestion assets find nothing new)."""
    shutil.copy(ingested_duckdb, duckdb_settings.duckdb_path)
    return duckdb_settings


@pytest.fixture(scope="session")
def built_duckdb(ingested_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB warehouse with the whole graph materialized on the small data set."""
    from churn_assets.runner import materialize

    home = tmp_path_factory.mktemp("built")
    shutil.copy(ingested_duckdb, home / "warehouse.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_HOME", str(home))
        patch.delenv("CHURN_WAREHOUSE_URL", raising=False)
        patch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
        assert materialize(FEATURE_GRAPH).ok
    return home / "warehouse.duckdb"


@pytest.fixture
def built_settings(duckdb_settings: Settings, built_duckdb: Path) -> Settings:
    """duckdb_settings whose warehouse holds the small data set and every feature table."""
    shutil.copy(built_duckdb, duckdb_settings.duckdb_path)
    return duckdb_settings


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """The tests' Redis (database 9, emptied first), also as REDIS_URL."""
    import redis

    url = redis_db_url(9)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    monkeypatch.setenv("REDIS_URL", url)
    return url


@pytest.fixture
def webhook():
    """A real HTTP server answering with the queued statuses (then 200); yields
    (url, received bodies, queued statuses)."""
    received: list = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/v2/alerts", received, statuses
    server.shutdown()
