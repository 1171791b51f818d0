"""Ingestion into Postgres under concurrent runs and under `kill -9`: every landing
file loads exactly once, and an interrupted run leaves nothing a rerun cannot finish."""

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from warehouse.connection import LEDGER_TABLE, Warehouse
from warehouse.generator import GeneratorConfig, generate
from warehouse.ingestion import Ingestor
from warehouse.landing import landing_files
from warehouse.settings import Settings, load_settings

TABLES = ("customers", "subscriptions", "events", "labels")
RAW = ("customers", "customer_attributes", "subscriptions", "events", "labels")


def _state(wh: Warehouse) -> dict[str, object]:
    """Row counts of every raw table and the whole ledger (without its timestamps)."""
    counts = {t: int(wh.query_df(f"SELECT count(*) AS n FROM raw.{t}")["n"].iloc[0]) for t in RAW}
    ledger = wh.query_df(
        f"SELECT table_name, file_name, file_sha256, row_count FROM {LEDGER_TABLE} "
        "ORDER BY table_name, file_name"
    )
    return counts | {"ledger": [tuple(r) for r in ledger.itertuples(index=False)]}


def _ingest_all(settings: Settings) -> None:
    ingestor = Ingestor(Warehouse(settings), settings.landing_dir)
    for table in TABLES:
        ingestor.ingest(table)


@pytest.fixture
def pg_settings(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Postgres, and a landing zone smaller than the shared one (these tests ingest it
    several times)."""
    shutil.rmtree(home / "landing")
    config = GeneratorConfig(customers=60, days=60, seed=5, start=dt.date(2025, 1, 1))
    generate(config, home / "landing", home / "ground_truth")
    monkeypatch.setenv("CHURN_WAREHOUSE_URL", pg_url)
    return load_settings()


def test_concurrent_ingests_load_every_file_once(pg_settings):
    landing = pg_settings.landing_dir
    (landing / "events" / "zz-bad.csv").write_text("customer_id,occurred_at\nC1,yesterday\n")
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            _ingest_all(pg_settings)
        except BaseException as exc:
            failures.append(exc)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()

    assert failures == []
    state = _state(Warehouse(pg_settings))
    files = {t: landing_files(landing, t) for t in TABLES}
    events = sum(len(pd.read_parquet(p)) for p in files["events"])
    subscriptions = pd.concat(pd.read_parquet(p) for p in files["subscriptions"])
    customers = sum(len(pd.read_parquet(p)) for p in files["customers"])
    assert state["customers"] == customers and state["customer_attributes"] == customers * 7
    assert state["events"] == events
    assert state["subscriptions"] == len(
        subscriptions.drop_duplicates(["customer_id", "started_at"])
    )
    ledger = state["ledger"]
    assert len(ledger) == sum(len(f) for f in files.values())
    assert len({(table, sha) for table, _, sha, _ in ledger}) == len(ledger)
    assert sorted(p.name for p in (landing / "_rejected" / "events").iterdir()) == [
        "zz-bad.csv",
        "zz-bad.csv.error.txt",
    ], "set aside once, by whichever run came first"


INGEST_SCRIPT = """
from warehouse.connection import Warehouse
from warehouse.ingestion import Ingestor
from warehouse.settings import load_settings

settings = load_settings()
ingestor = Ingestor(Warehouse(settings), settings.landing_dir, progress=lambda m: print(m, flush=True))
for table in ("customers", "subscriptions", "events", "labels"):
    print(f"start {table}", flush=True)
    ingestor.ingest(table)
print("done", flush=True)
"""


def _ingest_until_killed(settings: Settings, marker: str, delay: float) -> None:
    """Run ingestion in a subprocess; kill -9 it `delay` seconds after it prints marker."""
    env = os.environ | {
        "CHURN_HOME": str(settings.home),
        "CHURN_WAREHOUSE_URL": settings.warehouse_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(marker):
            break
    else:
        pytest.fail(f"ingestion ended without printing {marker!r}")
    threading.Event().wait(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_a_run_killed_mid_ingestion_is_finished_exactly_by_the_next(home, pg_settings):
    wh = Warehouse(pg_settings)
    _ingest_all(pg_settings)
    uninterrupted = _state(wh)
    assert uninterrupted["events"] > 0 and uninterrupted["subscriptions"] > 0

    rng = random.Random(11)
    trials = [
        ("events: 50 files", 0.0),  # inside the events transaction: 50 files loaded, none committed
        ("start subscriptions", rng.uniform(0.0, 0.5)),
        ("start events", rng.uniform(0.0, 0.5)),
    ]
    for marker, delay in trials:
        with wh.transaction() as session:
            session.execute("DROP SCHEMA raw CASCADE")
        _ingest_until_killed(pg_settings, marker, delay)
        interrupted = _state(wh)
        assert interrupted != uninterrupted, "the kill came before the end"
        if marker.startswith("events: 50"):
            assert interrupted["events"] == 0, "an interrupted table transaction leaves nothing"
        _ingest_all(pg_settings)
        assert _state(wh) == uninterrupted, (marker, delay)
        assert not (home / "landing" / "_rejected").exists()
