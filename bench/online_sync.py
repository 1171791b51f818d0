"""Online-store sync speed: stage, parity read-back and publish of N customers' vectors
in a real Redis, against a naive baseline measured in the same run (one HSET per
customer with a field per feature, no pipeline), the layout a first attempt uses.

    uv run python bench/online_sync.py [--customers 50000] [--features 77]
                                       [--redis-url redis://127.0.0.1:6379/12]

Prints one JSON object. Uses (and empties) the given Redis database."""

import argparse
import json
import time

import numpy as np
import redis

from warehouse.online_store import OnlineStore, mismatches

NAIVE_SAMPLE = 2_000  # the baseline is slow: time a sample and scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=77)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    rng = np.random.default_rng(0)
    ids = [f"C{i:07d}" for i in range(args.customers)]
    as_of = np.full(args.customers, 1.79e9)
    matrix = rng.random((args.customers, args.features), dtype=np.float32)
    matrix[rng.random(matrix.shape) < 0.05] = np.nan
    store = OnlineStore(client)

    started = time.perf_counter()
    sync_id = store.stage("bench", ids, as_of, matrix)
    staged = time.perf_counter()
    sample = sorted(rng.choice(args.customers, 1_000, replace=False).tolist())
    sample_ids = [ids[i] for i in sample]
    problems = mismatches(
        sample_ids, store.read_sync(sync_id, sample_ids), as_of[sample], matrix[sample]
    )
    checked = time.perf_counter()
    store.publish("bench", sync_id, args.customers, {"model_version": "bench"})
    published = time.perf_counter()
    assert problems == [], problems[:3]

    names = [f"f{j}" for j in range(args.features)]
    naive_started = time.perf_counter()
    for i in range(NAIVE_SAMPLE):
        client.hset(
            f"naive:{ids[i]}",
            mapping={n: float(v) for n, v in zip(names, matrix[i], strict=True)},
        )
    naive_per_customer = (time.perf_counter() - naive_started) / NAIVE_SAMPLE
    client.flushdb()

    total = published - started
    naive_total = naive_per_customer * args.customers
    print(
        json.dumps(
            {
                "customers": args.customers,
                "features": args.features,
                "stage_seconds": round(staged - started, 3),
                "parity_check_seconds": round(checked - staged, 3),
                "publish_seconds": round(published - checked, 3),
                "total_seconds": round(total, 3),
                "customers_per_second": round(args.customers / total),
                "naive_hset_seconds_estimated": round(naive_total, 2),
                "speedup_vs_naive": round(naive_total / total, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
