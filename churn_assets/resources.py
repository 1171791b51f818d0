"""Typed Dagster resources. Their defaults come from the CHURN_* environment (see
warehouse.settings), so the same definitions run locally and in production."""

import os
from pathlib import Path

import dagster as dg
import redis

from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.config import ModelSettings, load_model_settings
from churn_assets.ml.registry import CHAMPION, Registry
from warehouse.connection import Warehouse
from warehouse.redis_server import connect
from warehouse.settings import Settings, load_settings


def _environ(**overrides: str) -> dict[str, str]:
    """The process environment with a resource's non-empty fields laid over it."""
    return {**os.environ, **{name: value for name, value in overrides.items() if value}}


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse, the landing zone and the churn definition, as one resource.

    Every field left empty falls back to the environment variable of the same meaning."""

    warehouse_url: str = ""
    home: str = ""

    def settings(self) -> Settings:
        return load_settings(_environ(CHURN_HOME=self.home, CHURN_WAREHOUSE_URL=self.warehouse_url))

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings())

    @property
    def landing_dir(self) -> Path:
        return self.settings().landing_dir


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry plus the model-lifecycle settings (search budget,
    gates, campaign economics). Empty fields fall back to MLFLOW_* / CHURN_* variables."""

    tracking_uri: str = ""
    home: str = ""

    def settings(self) -> ModelSettings:
        return load_model_settings(
            _environ(CHURN_HOME=self.home, MLFLOW_TRACKING_URI=self.tracking_uri)
        )

    def registry(self) -> Registry:
        s = self.settings()
        return Registry(s.tracking_uri, s.model_name, s.experiment, s.artifact_root)

    def champion(self, before: str) -> tuple[str, ModelBundle]:
        """The champion's version and native bundle; a Failure saying what has to
        happen first when there is none (`before`: e.g. "syncing features")."""
        registry = self.registry()
        version = registry.alias(CHAMPION)
        if version is None:
            raise dg.Failure(f"No champion model yet: promote a model before {before}.")
        return version, registry.load_bundle(version, self.settings().model_cache)


class RedisResource(dg.ConfigurableResource):
    """The online store's Redis: `url` or REDIS_URL, else the embedded server under
    CHURN_HOME (see warehouse.redis_server)."""

    url: str = ""
    home: str = ""

    def client(self) -> redis.Redis:
        return connect(load_settings(_environ(CHURN_HOME=self.home, REDIS_URL=self.url)))
