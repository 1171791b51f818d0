"""dbt feature tables as Dagster assets; dbt tests surface as asset checks."""

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from churn_assets.defs.automation import FOLLOW_UPSTREAM
from churn_assets.defs.freshness import FEATURE_FRESHNESS
from churn_assets.resources import WarehouseResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` (make ui) this re-parses the project so edits show up at once;
# elsewhere the manifest comes from `dbt parse` (make setup, churn CLI, tests).
dbt_project.prepare_if_dev()

GROUP_BY_FOLDER = {
    "staging": "staging",
    "intermediate": "feature_engineering",
    "marts": "features",
    "monitoring": "monitoring",
}
# dbt sources that are tables a Dagster asset of ours writes, not raw ingestion
SOURCE_ASSETS = {("ops", "prediction_log"): dg.AssetKey("prediction_log")}


class ChurnDbtTranslator(DagsterDbtTranslator):
    """Sources map onto the raw ingestion assets (and the prediction log); models group
    by dbt layer; marts carry a freshness policy."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            name = (dbt_resource_props["source_name"], dbt_resource_props["name"])
            return SOURCE_ASSETS.get(name, dg.AssetKey(list(name)))
        return dg.AssetKey([dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        folder = dbt_resource_props.get("fqn", ["", ""])[1]
        return GROUP_BY_FOLDER.get(folder, "features")

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "model":
            spec = spec.replace_attributes(
                owners=["team:ml-platform"], automation_condition=FOLLOW_UPSTREAM
            )
            if spec.group_name == "features":
                spec = spec.replace_attributes(freshness_policy=FEATURE_FRESHNESS)
        return spec


translator = ChurnDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="dbt_feature_models",
)
def dbt_feature_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    settings = warehouse.settings()
    # profiles.yml reads the connection from these variables (DuckDB file or Postgres).
    os.environ.update(settings.dbt_env())
    dbt_vars = settings.dbt_vars()
    context.log.info(f"dbt target {settings.dbt_target}, churn definition {json.dumps(dbt_vars)}")
    # dbt's in-process adapter (row counts, column metadata) chdirs into the project;
    # relative paths in later steps (CHURN_HOME=var) must keep meaning the same thing.
    cwd = os.getcwd()
    try:
        # cautious: a subset (`churn materialize --select group:staging`) runs only the
        # tests whose models it builds; dbt's eager default also ran a relationships
        # test of a mart outside the subset, which fails when the mart does not exist
        build = ["build", "--indirect-selection", "cautious", "--vars", json.dumps(dbt_vars)]
        invocation = dbt.cli(build, context=context)
        for event in invocation.stream().fetch_row_counts().fetch_column_metadata():
            if isinstance(event, dg.Output | dg.AssetMaterialization):
                event = event.with_metadata(
                    {
                        **event.metadata,
                        "churn_definition": dg.MetadataValue.json(settings.churn.as_dict()),
                    }
                )
            yield event
    finally:
        os.chdir(cwd)
    if not settings.is_postgres:
        _release_duckdb_adapter()


def _release_duckdb_adapter() -> None:
    """Close the DuckDB handle dbt's adapter keeps open in this process after fetching
    row counts: DuckDB refuses a second in-process handle on the file with another
    configuration, which the checks downstream need."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    if DuckDBConnectionManager._ENV is not None:
        DuckDBConnectionManager._ENV.close()
        DuckDBConnectionManager._ENV = None


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project)
