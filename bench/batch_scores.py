"""Batch scoring speed (warehouse -> scores) for each CHURN_BATCH_REASONS mode, with
the bare model call on the same matrix as the baseline measured in the same run.

    uv run python bench/batch_scores.py [--home var/bench/serve] [--repeat 20]

The scoring frame of --home (a CHURN_HOME with a champion, e.g. the one bench/serve.py
builds) is repeated --repeat times with distinct customer ids, so the run is long
enough to time. Prints one JSON object."""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from churn_assets.ml.batch_scoring import score_frame
from churn_assets.ml.config import load_model_settings
from churn_assets.ml.feature_matrix import load_scoring_frame
from churn_assets.ml.registry import CHAMPION, Registry
from warehouse.connection import Warehouse
from warehouse.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench" / "serve")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    env = {"CHURN_HOME": str(args.home)}
    models = load_model_settings(env)
    registry = Registry(
        models.tracking_uri, models.model_name, models.experiment, models.artifact_root
    )
    version = registry.alias(CHAMPION)
    if version is None:
        raise SystemExit(f"no champion under {args.home}: run bench/serve.py first")
    bundle = registry.load_bundle(version, models.model_cache)
    warehouse = Warehouse(load_settings(env))

    started = time.perf_counter()
    base = load_scoring_frame(warehouse)
    load_seconds = time.perf_counter() - started
    frame = pd.concat(
        [
            base.assign(customer_id=base["customer_id"].astype(str) + f"-{i}")
            for i in range(args.repeat)
        ],
        ignore_index=True,
    )
    x = bundle.spec.transform(frame)
    started = time.perf_counter()
    np.asarray(bundle.booster.predict(x))
    model_seconds = time.perf_counter() - started

    results: dict = {
        "customers": len(frame),
        "features": x.shape[1],
        "trees": bundle.booster.num_trees(),
        "warehouse_read_customers_per_second": round(len(base) / load_seconds),
        "model_only_customers_per_second": round(len(frame) / model_seconds),
    }
    for mode in ("none", "at_risk", "all"):
        started = time.perf_counter()
        scores = score_frame(bundle, frame, version, reasons_for=mode)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        results[f"reasons_{mode}"] = {
            "explained": int(scores["reasons"].notna().sum()),
            "score_seconds": round(seconds, 3),
            "customers_per_second": round(len(frame) / seconds),
            "ratio_to_model_only": round(seconds / model_seconds, 1),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
