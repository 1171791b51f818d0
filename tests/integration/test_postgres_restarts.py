"""PostgreSQL restarted in the middle of work: the run fails with a clear message, a
retry completes, and the result equals a run that was never interrupted.

Each test starts a PostgreSQL server of its own (tests/servers.py) so it can restart
it; the restart is made to fall inside the work by holding a lock the work needs and
restarting once the work is seen waiting for it in pg_stat_activity."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import FEATURE_GRAPH, ROOT
from tests.servers import PostgresProcess
from warehouse.connection import Warehouse
from warehouse.ingestion import Ingestor
from warehouse.settings import load_settings

RAW_TABLES = ("customers", "subscriptions", "events", "labels")
DBT_GRAPH = f"{FEATURE_GRAPH} and not group:raw"
WAIT_SECONDS = 300


@pytest.fixture
def own_postgres() -> Iterator[PostgresProcess]:
    server = PostgresProcess().start()
    yield server
    server.close()


def create_database(server: PostgresProcess, name: str) -> str:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.admin_url.rsplit("/", 1)[0] + f"/{name}"


def ingest(landing: Path, url: str, home: Path) -> None:
    settings = load_settings({"CHURN_HOME": str(home), "CHURN_WAREHOUSE_URL": url})
    ingestor = Ingestor(Warehouse(settings), landing)
    for table in RAW_TABLES:
        ingestor.ingest(table)


def churn_command(args: list[str], url: str, home: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CHURN_HOME": str(home),
        "CHURN_WAREHOUSE_URL": url,
        "DAGSTER_HOME": str(home / "dagster_home"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "churn_assets.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=WAIT_SECONDS)
    return proc.returncode, output


def table_counts(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY 1",
                (schema,),
            )
        ]
        counts = {}
        for table in tables:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
            assert row is not None
            counts[table] = row[0]
    return counts


def wait_for_blocked_query(url: str, text: str, proc: subprocess.Popen) -> None:
    """Until a backend whose query mentions `text` waits for a lock (a table lock or an
    advisory lock)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            assert proc.poll() is None, finish(proc)[1][-3000:]
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                (f"%{text}%",),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.1)
    raise AssertionError(f"no query on {text} was seen waiting")


@pytest.mark.e2e
def test_a_restart_during_a_dbt_build_fails_clearly_and_a_retry_completes(
    own_postgres: PostgresProcess, small_landing: Path, tmp_path: Path
) -> None:
    clean_url = create_database(own_postgres, "clean")
    faulted_url = create_database(own_postgres, "faulted")
    for name, url in (("clean", clean_url), ("faulted", faulted_url)):
        ingest(small_landing / "landing", url, tmp_path / name)

    code, output = finish(churn_command(["materialize", "--select", DBT_GRAPH], clean_url,
                                        tmp_path / "clean"))  # fmt: skip
    assert code == 0, output[-3000:]

    # dbt's first read of the events waits on this lock; the restart lands right there
    holder = psycopg.connect(faulted_url)
    holder.execute("LOCK TABLE raw.events IN ACCESS EXCLUSIVE MODE")
    build = churn_command(["materialize", "--select", DBT_GRAPH], faulted_url, tmp_path / "faulted")
    wait_for_blocked_query(faulted_url, "raw", build)
    own_postgres.stop()
    own_postgres.start()
    holder.close()

    code, output = finish(build)
    assert code == 1
    assert "Run FAILED" in output
    assert "ERROR step dbt_feature_models failed:" in output, output[-5000:]
    assert "NOT RUN" in output and "Traceback" not in output.split("\nAssets\n")[-1]

    code, output = finish(churn_command(["materialize", "--select", DBT_GRAPH], faulted_url,
                                        tmp_path / "faulted"))  # fmt: skip
    assert code == 0, output[-3000:]
    clean = table_counts(clean_url, "analytics")
    assert clean and table_counts(faulted_url, "analytics") == clean


def test_a_restart_during_ingestion_fails_clearly_and_a_retry_completes(
    own_postgres: PostgresProcess, small_landing: Path, tmp_path: Path
) -> None:
    for name in ("clean", "faulted"):
        shutil.copytree(small_landing / "landing", tmp_path / name / "landing")
    clean_url = create_database(own_postgres, "clean")
    faulted_url = create_database(own_postgres, "faulted")

    code, output = finish(churn_command(["materialize", "--select", "group:raw"], clean_url,
                                        tmp_path / "clean"))  # fmt: skip
    assert code == 0, output[-3000:]

    # the events ingestion queues behind the advisory lock every ingestion of events
    # takes; the restart ends it inside its transaction
    holder = psycopg.connect(faulted_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('churn.ingest.events'))")
    run = churn_command(["materialize", "--select", "group:raw"], faulted_url,
                        tmp_path / "faulted")  # fmt: skip
    wait_for_blocked_query(faulted_url, "pg_advisory_xact_lock", run)
    own_postgres.stop()
    own_postgres.start()
    holder.close()

    code, output = finish(run)
    assert code == 1, output[-3000:]
    assert "ERROR step raw_events failed" in output, output[-5000:]
    assert "the warehouse connection was lost" in output, output[-5000:]

    code, output = finish(churn_command(["materialize", "--select", "group:raw"], faulted_url,
                                        tmp_path / "faulted"))  # fmt: skip
    assert code == 0, output[-3000:]
    clean = table_counts(clean_url, "raw")
    assert clean["events"] > 0 and table_counts(faulted_url, "raw") == clean
