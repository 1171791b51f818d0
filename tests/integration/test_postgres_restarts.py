"""PostgreSQL restarted in the middle of work: the run fails with a clear message, a
retry completes, and the result equals a run that was never interrupted.

Each test starts a PostgreSQL server of its own (tests/servers.py) so it can restart
it; the restart is made to fall inside the work by holding a lock the work needs and
restarting once the work is seen waiting for it in pg_stat_activity."""

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from churn_assets import cli
from tests.servers import PostgresProcess
from warehouse.connection import Warehouse
from warehouse.ingestion import Ingestor
from warehouse.settings import load_settings

RAW_TABLES = ("customers", "subscriptions", "events", "labels")
# the part of each step that meets the restart, not the whole graph: the staging views
# and the first table built from the events; the ingestion of the events (and of the
# customers, which the events contract checks them against)
DBT_MODELS = "group:staging or key:int_customer_daily"
EVENTS_INGESTION = "key:raw/customers or key:raw/events"
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


def churn_materialize(
    selection: str, url: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`churn materialize --select <selection>` in this process: its exit code and what
    it printed (the log, then the summary)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_HOME", str(home))
        env.setenv("CHURN_WAREHOUSE_URL", url)
        env.setenv("DAGSTER_HOME", str(home / "dagster_home"))
        capsys.readouterr()
        code = cli.main(["materialize", "--select", selection])
    captured = capsys.readouterr()
    return code, captured.err + captured.out  # the run's log, then its summary


@contextmanager
def restart_once_blocked(server: PostgresProcess, url: str, text: str) -> Iterator[None]:
    """Stop `server` from a thread as soon as a query mentioning `text` waits for a lock,
    while the body runs the work that will wait, and start it again after the body
    (from this thread: a server dies with the thread that started it)."""
    failure: list[BaseException] = []

    def stop() -> None:
        try:
            wait_for_blocked_query(url, text)
            server.stop()
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    yield
    thread.join(timeout=WAIT_SECONDS)
    assert not thread.is_alive() and not failure, failure
    server.start()


def table_counts(url: str, schema: str) -> dict[str, int]:
    """Rows of every table and view in `schema`."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s ORDER BY 1",
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


def wait_for_blocked_query(url: str, text: str) -> None:
    """Until a backend whose query mentions `text` waits for a lock (a table lock or an
    advisory lock)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
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
    own_postgres: PostgresProcess, small_landing: Path, tmp_path: Path, capsys
) -> None:
    clean_url = create_database(own_postgres, "clean")
    faulted_url = create_database(own_postgres, "faulted")
    for name, url in (("clean", clean_url), ("faulted", faulted_url)):
        ingest(small_landing / "landing", url, tmp_path / name)

    code, output = churn_materialize(DBT_MODELS, clean_url, tmp_path / "clean", capsys)
    assert code == 0, output[-3000:]

    # dbt's first read of the events waits on this lock; the restart lands right there
    holder = psycopg.connect(faulted_url)
    holder.execute("LOCK TABLE raw.events IN ACCESS EXCLUSIVE MODE")
    with restart_once_blocked(own_postgres, faulted_url, "raw"):
        code, output = churn_materialize(DBT_MODELS, faulted_url, tmp_path / "faulted", capsys)
    holder.close()
    assert code == 1
    assert "Run FAILED" in output
    assert "ERROR step dbt_feature_models failed:" in output, output[-5000:]
    assert "Traceback" not in output.split("\nAssets\n")[-1]

    code, output = churn_materialize(DBT_MODELS, faulted_url, tmp_path / "faulted", capsys)
    assert code == 0, output[-3000:]
    clean = table_counts(clean_url, "analytics")
    assert clean and table_counts(faulted_url, "analytics") == clean


def test_a_restart_during_ingestion_fails_clearly_and_a_retry_completes(
    own_postgres: PostgresProcess, small_landing: Path, tmp_path: Path, capsys
) -> None:
    for name in ("clean", "faulted"):
        shutil.copytree(small_landing / "landing", tmp_path / name / "landing")
    clean_url = create_database(own_postgres, "clean")
    faulted_url = create_database(own_postgres, "faulted")

    code, output = churn_materialize(EVENTS_INGESTION, clean_url, tmp_path / "clean", capsys)
    assert code == 0, output[-3000:]

    # the events ingestion queues behind the advisory lock every ingestion of events
    # takes; the restart ends it inside its transaction
    holder = psycopg.connect(faulted_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('churn.ingest.events'))")
    with restart_once_blocked(own_postgres, faulted_url, "pg_advisory_xact_lock"):
        code, output = churn_materialize(
            EVENTS_INGESTION, faulted_url, tmp_path / "faulted", capsys
        )
    holder.close()
    assert code == 1, output[-3000:]
    assert "ERROR step raw_events failed" in output, output[-5000:]
    assert "the warehouse connection was lost" in output, output[-5000:]

    code, output = churn_materialize(EVENTS_INGESTION, faulted_url, tmp_path / "faulted", capsys)
    assert code == 0, output[-3000:]
    clean = table_counts(clean_url, "raw")
    assert clean["events"] > 0 and table_counts(faulted_url, "raw") == clean
