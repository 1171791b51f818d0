"""The code location loads as `make ui` loads it, and the landing-zone sensor requests
one ingestion run per new batch, remembering what it has seen in a JSON cursor."""

import json
import shutil

import dagster as dg

from churn_assets.definitions import defs
from churn_assets.resources import WarehouseResource
from sensors.landing import landing_zone_sensor


def test_definitions_load_with_checks_groups_and_freshness():
    dg.Definitions.validate_loadable(defs)
    # UI, sensor and job runs execute in one process: DuckDB has one writer per file.
    assert defs.resolve_job_def("churn_pipeline").executor_def is dg.in_process_executor
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw/customers",
        "raw/events",
        "customer_features",
        "training_examples",
        "scoring_features",
    } <= keys
    groups = {
        graph.get(dg.AssetKey(["training_examples"])).group_name,
        graph.get(dg.AssetKey(["raw", "events"])).group_name,
    }
    assert groups == {"features", "raw"}
    for key in (dg.AssetKey(["raw", "events"]), dg.AssetKey(["customer_features"])):
        assert graph.get(key).freshness_policy is not None
    check_names = {c.name for c in graph.asset_check_keys}
    assert {"meets_raw_contract", "point_in_time_recomputation"} <= check_names
    assert any(n.startswith("unique_combination_customer_features") for n in check_names), (
        "dbt tests are checks"
    )
    # customer_features depends, through dbt lineage, on the raw ingestion assets
    upstream = graph.get(dg.AssetKey(["stg_events"])).parent_keys
    assert dg.AssetKey(["raw", "events"]) in upstream


def test_sensor_requests_a_run_per_new_batch(home):
    resources = {"warehouse": WarehouseResource()}
    first = landing_zone_sensor(dg.build_sensor_context(cursor=None, resources=resources))
    assert len(first.run_requests) == 1 and first.run_requests[0].run_key
    cursor = first.cursor
    assert set(json.loads(cursor)) == {"customers", "subscriptions", "events"}

    again = landing_zone_sensor(dg.build_sensor_context(cursor=cursor, resources=resources))
    assert isinstance(again, dg.SkipReason)

    events = sorted((home / "landing" / "events").iterdir())
    shutil.copy(events[0], events[0].with_name("2099-new-batch.parquet"))
    fresh = landing_zone_sensor(dg.build_sensor_context(cursor=cursor, resources=resources))
    request = fresh.run_requests[0]
    assert request.run_key != first.run_requests[0].run_key
    assert request.tags["churn/new_files"] == "1 events"


def test_sensor_does_not_rerun_files_the_cli_already_ingested(ingested_settings):
    resources = {"warehouse": WarehouseResource()}
    result = landing_zone_sensor(dg.build_sensor_context(cursor=None, resources=resources))
    assert not result.run_requests
    assert set(json.loads(result.cursor)) == {"customers", "subscriptions", "events"}
