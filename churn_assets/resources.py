"""Typed Dagster resources. Their defaults come from the CHURN_* environment (see
warehouse.settings), so the same definitions run locally and in production."""

import os
from pathlib import Path

import dagster as dg

from warehouse.connection import Warehouse
from warehouse.settings import Settings, load_settings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse, the landing zone and the churn definition, as one resource.

    Every field left empty falls back to the environment variable of the same meaning."""

    warehouse_url: str = ""
    home: str = ""

    def settings(self) -> Settings:
        environ = dict(os.environ)
        if self.home:
            environ["CHURN_HOME"] = self.home
        if self.warehouse_url:
            environ["CHURN_WAREHOUSE_URL"] = self.warehouse_url
        return load_settings(environ)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings())

    @property
    def landing_dir(self) -> Path:
        return self.settings().landing_dir
