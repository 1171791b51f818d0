"""Connections to the warehouse: a DuckDB file locally, Postgres in production.

Connections are short-lived on purpose: DuckDB allows one writing process per file,
and dbt runs in a subprocess that needs the file while Dagster is idle."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import psycopg

from warehouse.contract import RAW_COLUMNS, RAW_SCHEMA, SOURCE_FILE_COLUMN
from warehouse.settings import Settings

LEDGER_TABLE = f"{RAW_SCHEMA}.ingestion_ledger"
# Each connection's own schema for temporary tables.
TEMP_SCHEMA_POSTGRES = "pg_temp"
TEMP_SCHEMA_DUCKDB = "temp.main"
LEDGER_COLUMNS = [
    ("table_name", "VARCHAR"),
    ("file_name", "VARCHAR"),
    ("file_sha256", "VARCHAR"),
    ("row_count", "BIGINT"),
    ("ingested_at", "TIMESTAMP"),
]


class Session:
    """One open connection; inside `Warehouse.transaction()` everything commits together."""

    def __init__(self, raw: Any, is_postgres: bool) -> None:
        self.raw = raw
        self.is_postgres = is_postgres

    def execute(self, sql: str, params: tuple | list | None = None) -> None:
        if self.is_postgres:
            self.raw.execute(sql.replace("?", "%s"), params)
        else:
            self.raw.execute(sql, params)

    def query_df(self, sql: str, params: tuple | list | None = None) -> pd.DataFrame:
        if self.is_postgres:
            with self.raw.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params)
                names = [d.name for d in cur.description or []]
                return pd.DataFrame(cur.fetchall(), columns=names)
        return self.raw.execute(sql, params).df()

    def query_batches(self, sql: str, batch_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        """Stream a large result in DataFrames of at most batch_rows rows."""
        if self.is_postgres:
            # A server-side cursor lives inside a transaction.
            with self.raw.transaction(), self.raw.cursor(name="churn_stream") as cur:
                cur.execute(sql)
                names: list[str] | None = None
                while rows := cur.fetchmany(batch_rows):
                    names = names or [d.name for d in cur.description]
                    yield pd.DataFrame(rows, columns=names)
            return
        reader = self.raw.sql(sql).to_arrow_reader(batch_rows)
        for batch in reader:
            yield batch.to_pandas()

    def lock(self, name: str) -> None:
        """Hold an advisory lock named `name` until the transaction ends (Postgres), so
        concurrent runs of the same work queue up. DuckDB needs none: one process
        writes a DuckDB file at a time."""
        if self.is_postgres:
            self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Postgres: an error inside undoes only the statements inside. DuckDB has no
        savepoints: there an error aborts the whole transaction."""
        if self.is_postgres:
            with self.raw.transaction():
                yield
        else:
            yield

    def stage(self, frame: pd.DataFrame, like_table: str) -> str:
        """Load frame into a temporary table shaped like like_table; returns its
        schema-qualified name. The name always carries the session's temporary schema:
        an unqualified DROP would remove a real table of that name on the search path."""
        name = f"{TEMP_SCHEMA_POSTGRES if self.is_postgres else TEMP_SCHEMA_DUCKDB}._staged"
        self.execute(f"DROP TABLE IF EXISTS {name}")
        if self.is_postgres:
            self.execute(f"CREATE TEMP TABLE {name} (LIKE {like_table})")
            columns = ", ".join(frame.columns)
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")
            with (
                self.raw.cursor() as cur,
                cur.copy(f"COPY {name} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                copy.write(buffer.getvalue())
        else:
            self.raw.register("_frame", frame)
            columns = ", ".join(frame.columns)
            self.raw.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {like_table} WHERE false")
            self.raw.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM _frame")
            self.raw.unregister("_frame")
        return name


class WarehouseUnavailable(ConnectionError):
    """The warehouse cannot be reached, or the connection broke in the middle of work
    (a restart, a network cut). The unfinished transaction was rolled back by the
    server, so running the same work again is safe."""


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Warehouse:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def is_postgres(self) -> bool:
        return self.settings.is_postgres

    def describe(self) -> str:
        if self.is_postgres:
            pg = self.settings.postgres_params()
            return f"Postgres {pg.user}@{pg.host}:{pg.port}/{pg.dbname}"
        return f"DuckDB {self.settings.duckdb_path}"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An autocommit connection. DuckDB connections are always read-write: one
        process may not mix read-only and read-write handles on a file, and dbt's
        adapter (row counts) keeps a read-write one open in the Dagster process."""
        if self.is_postgres:
            with self._postgres(autocommit=True) as conn:
                yield Session(conn, True)
            return
        path = self.settings.duckdb_path
        path.parent.mkdir(parents=True, exist_ok=True)
        duck = duckdb.connect(str(path))
        duck.execute("SET enable_progress_bar = false")  # it would garble run logs
        try:
            yield Session(duck, False)
        finally:
            duck.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """All statements commit together or not at all."""
        if self.is_postgres:
            with self._postgres(autocommit=False) as conn, conn.transaction():
                yield Session(conn, True)
            return
        with self.session() as s:
            s.raw.begin()
            try:
                yield s
            except BaseException:
                s.raw.rollback()
                raise
            s.raw.commit()

    @contextmanager
    def _postgres(self, autocommit: bool) -> Iterator[psycopg.Connection]:
        """A Postgres connection whose loss reads as WarehouseUnavailable, naming the
        server, instead of a driver traceback."""
        try:
            conn = psycopg.connect(self.settings.warehouse_url, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise WarehouseUnavailable(
                f"cannot connect to the warehouse ({self.describe()}): {_first_line(exc)}"
            ) from exc
        try:
            with conn:
                yield conn
        except psycopg.OperationalError as exc:
            if not conn.broken:  # a statement the server refused: not a lost connection
                raise
            raise WarehouseUnavailable(
                f"the warehouse connection was lost ({self.describe()}): {_first_line(exc)}. "
                "Nothing of the unfinished work was committed; run it again once the "
                "warehouse is back."
            ) from exc

    def query_df(self, sql: str, params: tuple | list | None = None) -> pd.DataFrame:
        with self.session() as s:
            return s.query_df(sql, params)

    def table_exists(self, qualified: str) -> bool:
        schema, table = qualified.split(".")
        sql = (
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?"
        )
        if not self.is_postgres and not self.settings.duckdb_path.exists():
            return False
        return int(self.query_df(sql, (schema, table))["n"].iloc[0]) > 0

    def ensure_raw_tables(self) -> None:
        """Create the raw schema, every raw table and the ledger if they are missing.

        All raw tables always exist (possibly empty) so dbt sources resolve even for
        data sets without subscriptions or labels."""
        with self.transaction() as s:
            # Concurrent CREATE ... IF NOT EXISTS can collide on Postgres: one at a time.
            s.lock("churn.ensure_raw_tables")
            s.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
            for table, columns in RAW_COLUMNS.items():
                cols = ", ".join(f"{n} {t}" for n, t in [*columns, SOURCE_FILE_COLUMN])
                s.execute(f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{table} ({cols})")
            cols = ", ".join(f"{n} {t}" for n, t in LEDGER_COLUMNS)
            s.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ({cols})")
            # A file's content loads once per table, even if two runs race (ON CONFLICT).
            s.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS ingestion_ledger_content "
                f"ON {LEDGER_TABLE} (table_name, file_sha256)"
            )
