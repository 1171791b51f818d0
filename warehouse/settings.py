"""Settings for the storage layer, read from environment variables with local defaults.

One object holds everything the warehouse, ingestion and dbt invocations need, so a
process reads the environment once and passes the result around.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

ChurnKind = Literal["contractual", "inactivity"]

DEFAULT_ACTIVITY_EVENT_TYPES = ("login", "feature_use")

# Event types map onto feature families so that feature columns (and their dbt
# contracts and docs) are fixed while a user's data may name its events freely.
DEFAULT_EVENT_FAMILIES: dict[str, str] = {
    "login": "login",
    "feature_use": "usage",
    "seats_active": "seats",
    "invoice_paid": "invoice",
    "purchase": "invoice",
    "payment_failed": "payment_failure",
    "ticket_opened": "ticket",
    "ticket_rated": "satisfaction",
}


@dataclass(frozen=True)
class ChurnDefinition:
    """What counts as churn; recorded with every feature build and every model."""

    kind: ChurnKind = "contractual"
    horizon_days: int = 30
    cadence_days: int = 30
    activity_event_types: tuple[str, ...] = DEFAULT_ACTIVITY_EVENT_TYPES
    min_history_days: int = 90

    def __post_init__(self) -> None:
        if self.kind not in ("contractual", "inactivity"):
            raise ValueError(
                f"CHURN_DEFINITION must be 'contractual' or 'inactivity', got {self.kind!r}"
            )
        for name in ("horizon_days", "cadence_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.min_history_days < 0:
            raise ValueError(f"min_history_days must be >= 0, got {self.min_history_days}")
        if not self.activity_event_types:
            raise ValueError("activity_event_types must name at least one event type")

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "cadence_days": self.cadence_days,
            "activity_event_types": list(self.activity_event_types),
            "min_history_days": self.min_history_days,
        }


@dataclass(frozen=True)
class PostgresParams:
    host: str
    port: int
    user: str
    password: str
    dbname: str


@dataclass(frozen=True)
class Settings:
    env: Literal["local", "prod"] = "local"
    home: Path = Path("var")
    warehouse_url: str = ""
    # empty: an embedded Redis server under home (see warehouse.redis_server)
    redis_url: str = ""
    churn: ChurnDefinition = field(default_factory=ChurnDefinition)
    event_families: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_FAMILIES))
    # the only event types landing files may use; empty: any name within the contract
    event_types: tuple[str, ...] = ()

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def ground_truth_dir(self) -> Path:
        return self.home / "ground_truth"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def is_postgres(self) -> bool:
        return self.warehouse_url.startswith(("postgresql://", "postgres://"))

    @property
    def duckdb_path(self) -> Path:
        if self.is_postgres:
            raise ValueError("the warehouse is Postgres; there is no DuckDB file")
        return Path(self.warehouse_url.removeprefix("duckdb:///"))

    @property
    def dbt_target(self) -> str:
        return "prod" if self.env == "prod" or self.is_postgres else "local"

    def postgres_params(self) -> PostgresParams:
        parsed = urlparse(self.warehouse_url)
        return PostgresParams(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
            dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        )

    def dbt_vars(self) -> dict[str, object]:
        """Variables passed to every dbt invocation: the churn definition and event families."""
        return {
            "churn_definition": self.churn.kind,
            "horizon_days": self.churn.horizon_days,
            "cadence_days": self.churn.cadence_days,
            "min_history_days": self.churn.min_history_days,
            "activity_event_types": list(self.churn.activity_event_types),
            "event_families": self.event_families,
        }

    def dbt_env(self) -> dict[str, str]:
        """Environment for a dbt subprocess: profiles.yml reads the connection from it."""
        env = {"CHURN_DBT_TARGET": self.dbt_target}
        if self.is_postgres:
            pg = self.postgres_params()
            env |= {
                "CHURN_PG_HOST": pg.host,
                "CHURN_PG_PORT": str(pg.port),
                "CHURN_PG_USER": pg.user,
                "CHURN_PG_PASSWORD": pg.password,
                "CHURN_PG_DBNAME": pg.dbname,
            }
        else:
            env["CHURN_DUCKDB_PATH"] = str(self.duckdb_path)
        return env


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables (see README, "Configuration")."""
    env = dict(os.environ if environ is None else environ)
    churn_env = env.get("CHURN_ENV", "local")
    if churn_env not in ("local", "prod"):
        raise ValueError(f"CHURN_ENV must be 'local' or 'prod', got {churn_env!r}")
    # Absolute from the start: a library may chdir later (dbt does), and a relative
    # home would then point somewhere else.
    home = Path(env.get("CHURN_HOME", "var")).resolve()
    url = env.get("CHURN_WAREHOUSE_URL") or f"duckdb:///{home / 'warehouse.duckdb'}"
    if not url.startswith(("duckdb:///", "postgresql://", "postgres://")):
        raise ValueError(
            f"CHURN_WAREHOUSE_URL must start with duckdb:/// or postgresql://, got {url!r}"
        )
    if url.startswith("duckdb:///"):
        url = f"duckdb:///{Path(url.removeprefix('duckdb:///')).resolve()}"
    if churn_env == "prod" and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("CHURN_ENV=prod needs CHURN_WAREHOUSE_URL=postgresql://...")
    churn = ChurnDefinition(
        kind=env.get("CHURN_DEFINITION", "contractual"),  # type: ignore[arg-type]
        horizon_days=int(env.get("CHURN_HORIZON_DAYS", "30")),
        cadence_days=int(env.get("CHURN_SNAPSHOT_CADENCE_DAYS", "30")),
        activity_event_types=_split_list(
            env.get("CHURN_ACTIVITY_EVENT_TYPES", ",".join(DEFAULT_ACTIVITY_EVENT_TYPES))
        ),
        min_history_days=int(env.get("CHURN_MIN_HISTORY_DAYS", "90")),
    )
    families = dict(DEFAULT_EVENT_FAMILIES)
    if env.get("CHURN_EVENT_FAMILIES"):
        families |= json.loads(env["CHURN_EVENT_FAMILIES"])
    return Settings(
        env=churn_env,  # type: ignore[arg-type]
        home=home,
        warehouse_url=url,
        redis_url=env.get("REDIS_URL", ""),
        churn=churn,
        event_families=families,
        event_types=_split_list(env.get("CHURN_EVENT_TYPES", "")),
    )
