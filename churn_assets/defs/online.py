"""online_features: the champion's feature vector of every customer in Redis. A sync is
written under a new id, checked against the warehouse, and only then made live by
flipping the pointer; a sync that fails the parity check never reaches serving."""

import time
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from churn_assets.defs.freshness import ONLINE_FRESHNESS
from churn_assets.ml.feature_matrix import FeatureSpec, as_of_seconds, load_scoring_frame
from churn_assets.resources import MlflowResource, RedisResource, WarehouseResource
from warehouse.online_store import (
    WRITE_CHUNK,
    OnlineStore,
    SyncIncomplete,
    SyncSuperseded,
    mismatches,
)

SERVING_GROUP = "serving"
ONLINE_KEY = dg.AssetKey("online_features")
PARITY_CHECK = "online_offline_parity"
PARITY_SAMPLE = 1_000


def parity_problems(
    store: OnlineStore, sync_id: str, spec: FeatureSpec, warehouse_rows: pd.DataFrame
) -> list[str]:
    """Read the sampled customers back from Redis and compare them, bit for bit, with
    the same customers freshly queried from the warehouse."""
    ids = warehouse_rows["customer_id"].astype(str).tolist()
    return mismatches(
        ids,
        store.read_sync(sync_id, ids),
        as_of_seconds(warehouse_rows),
        spec.transform(warehouse_rows),
    )


@dg.asset(
    key=ONLINE_KEY,
    group_name=SERVING_GROUP,
    freshness_policy=ONLINE_FRESHNESS,
    owners=["team:ml-platform"],
    kinds={"redis"},
    deps=["scoring_features", "customer_attributes", "churn_model_promotion"],
    check_specs=[
        dg.AssetCheckSpec(
            PARITY_CHECK,
            asset=ONLINE_KEY,
            blocking=True,
            description="A random sample of customers read back from Redis equals "
            "scoring_features queried from the warehouse, bit for bit; otherwise the "
            "sync is dropped and never goes live.",
        )
    ],
    description=(
        "The latest feature vector of every customer, in the champion's feature order, "
        "written to Redis as a new sync per feature-set version; the live pointer flips "
        "only after the parity check passes; the previous sync, syncs a crashed run left "
        "half-written and the previous champion's feature set then expire."
    ),
)
def online_features(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
    redis_store: RedisResource,
):
    champion, bundle = mlflow_registry.champion(before="syncing features")
    spec = bundle.spec
    wh = warehouse.warehouse()
    started = time.perf_counter()
    frame = load_scoring_frame(wh)
    if frame.empty:
        raise dg.Failure("scoring_features is empty: nothing to sync.")
    customer_ids = frame["customer_id"].astype(str).tolist()
    matrix = spec.transform(frame)
    store = OnlineStore(redis_store.client())
    total = len(customer_ids)

    def log_progress(written: int) -> None:
        if written == total or written % (WRITE_CHUNK * 20) == 0:
            context.log.info(f"staged {written:,}/{total:,} vectors")

    sync_id = store.stage(spec.version, customer_ids, as_of_seconds(frame), matrix, log_progress)
    context.log.info(f"staged {len(customer_ids):,} vectors as {sync_id}")

    rng = np.random.default_rng()
    sample = sorted(rng.choice(customer_ids, min(PARITY_SAMPLE, len(customer_ids)), False))
    problems = parity_problems(store, sync_id, spec, load_scoring_frame(wh, sample))
    metadata: dict[str, Any] = {
        "fs_version": spec.version,
        "model_version": champion,
        "sync_id": sync_id,
        "customers": len(customer_ids),
        "features": len(spec.names),
        "features_as_of": str(pd.to_datetime(frame["as_of_date"]).max().date()),
    }
    if problems:
        store.discard(sync_id)
        yield dg.Output(None, metadata={**metadata, "published": False})
        yield dg.AssetCheckResult(
            check_name=PARITY_CHECK,
            passed=False,
            description=f"{len(problems)} of {len(sample)} sampled customers differ; "
            "the sync was dropped and the previous one stays live.",
            metadata={"sample": len(sample), "mismatches": "\n".join(problems[:20])},
        )
        return
    try:
        result = store.publish(
            spec.version,
            sync_id,
            len(customer_ids),
            {"model_version": champion, "features_as_of": metadata["features_as_of"]},
        )
    except SyncSuperseded as exc:  # a run that started later already published
        raise dg.Failure(f"{exc}; the newer sync stays live.") from exc
    except SyncIncomplete as exc:
        raise dg.Failure(str(exc)) from exc
    seconds = time.perf_counter() - started
    yield dg.Output(
        None,
        metadata={
            **metadata,
            "published": True,
            "previous_sync_id": result.previous_sync_id or "none",
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
        },
    )
    yield dg.AssetCheckResult(
        check_name=PARITY_CHECK,
        passed=True,
        metadata={"sample": len(sample), "mismatches": 0},
    )
