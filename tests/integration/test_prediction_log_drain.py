"""The prediction stream drained into the warehouse exactly once, on DuckDB and
Postgres, including runs that died before or after their commit."""

import redis

from warehouse.connection import Warehouse
from warehouse.prediction_log import (
    GROUP,
    PREDICTION_LOG,
    STREAM,
    drain,
    ensure_group,
    ensure_table,
    insert_new,
    to_frame,
)


def _append(client: redis.Redis, n: int, start: int = 0) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + n):
        pipe.xadd(
            STREAM,
            {
                "request_id": f"r{i // 2}",
                "subject": "svc",
                "customer_id": f"C{i:07d}",
                "model_version": "3",
                "variant": "champion",
                "probability": "0.25",
                "features_as_of": "2025-06-01T00:00:00+00:00",
                "latency_ms": "0.4",
                "reasons": "",
                "degraded": "0",
                "logged_at": "1750000000.5",
            },
        )
    pipe.execute()


def _rows(wh: Warehouse) -> list[str]:
    return wh.query_df(f"SELECT customer_id FROM {PREDICTION_LOG} ORDER BY 1")[
        "customer_id"
    ].tolist()


def test_drain_moves_everything_once(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    _append(client, 2_500)
    report = drain(client, wh, batch=1_000)
    assert (report.entries, report.inserted, report.batches) == (2_500, 2_500, 3)
    assert client.xlen(STREAM) == 0
    assert _rows(wh) == [f"C{i:07d}" for i in range(2_500)]
    row = wh.query_df(f"SELECT * FROM {PREDICTION_LOG} LIMIT 1").iloc[0]
    assert row["probability"] == 0.25 and row["model_version"] == "3" and not row["degraded"]
    assert str(row["features_as_of"]) == "2025-06-01 00:00:00"

    _append(client, 10, start=2_500)
    assert drain(client, wh).inserted == 10
    assert drain(client, wh).entries == 0


def test_a_run_that_died_after_its_commit_inserts_nothing_twice(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    ensure_table(wh)
    ensure_group(client)
    _append(client, 300)
    # the dead run: it read 200 entries and committed them, but never acknowledged
    delivered = client.xreadgroup(GROUP, "dagster", {STREAM: ">"}, count=200)[0][1]
    assert insert_new(wh, to_frame(delivered)) == 200
    # another dead run read the next 100 but died before its commit
    client.xreadgroup(GROUP, "dagster", {STREAM: ">"}, count=100)

    report = drain(client, wh)
    assert report.entries == 300 and report.inserted == 100
    assert _rows(wh) == [f"C{i:07d}" for i in range(300)]
    assert client.xpending(STREAM, GROUP)["pending"] == 0


def test_entries_with_missing_or_bad_fields_become_nulls(duckdb_settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd(STREAM, {"customer_id": "C1", "probability": "not a number"})
    wh = Warehouse(duckdb_settings)
    assert drain(client, wh).inserted == 1
    row = wh.query_df(f"SELECT * FROM {PREDICTION_LOG}").iloc[0]
    assert row["customer_id"] == "C1"
    assert row["probability"] != row["probability"]  # NaN / NULL


def test_the_asset_drains_and_reports_its_rate(duckdb_settings, redis_url) -> None:
    import dagster as dg

    from churn_assets.defs.prediction_log import prediction_log
    from churn_assets.resources import RedisResource, WarehouseResource

    _append(redis.Redis.from_url(redis_url), 50)
    result = dg.materialize(
        [prediction_log],
        resources={
            "warehouse": WarehouseResource(home=str(duckdb_settings.home)),
            "redis_store": RedisResource(url=redis_url),
        },
    )
    metadata = result.asset_materializations_for_node("prediction_log")[0].metadata
    assert metadata["entries_drained"].value == 50 and metadata["rows_inserted"].value == 50
    assert metadata["entries_per_minute"].value > 0


def test_a_drain_under_steady_traffic_finishes(settings, redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    wh = Warehouse(settings)
    _append(client, 1_000)
    written = [1_000]

    def traffic(_: int) -> None:  # the service keeps logging while the drain runs
        _append(client, 500, start=written[0])
        written[0] += 500

    report = drain(client, wh, batch=200, progress=traffic)
    assert report.entries == 1_000 and _rows(wh) == [f"C{i:07d}" for i in range(1_000)]
    assert client.xlen(STREAM) == written[0] - 1_000  # the rest waits for the next drain
    assert drain(client, wh, batch=10_000).entries == written[0] - 1_000
