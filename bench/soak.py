"""Soak test of the scoring service: minutes of mixed traffic (single predictions,
batches of 20, explanations) at a steady 1,000 requests/s over loopback against the real
server (uvicorn, one worker, real Redis), driven by wrk from a separate process.

    uv run python bench/soak.py [--home DIR] [--minutes 10] [--rate 1000]

Per minute it reports requests, errors and non-2xx answers, client p50/p99 (wrk) and the
server's RSS; a healthy service shows no errors, flat memory and a stable p99. Then a
run beyond capacity (many unpaced connections, more than CHURN_MAX_IN_FLIGHT) shows the
overload being shed: fast 503s with Retry-After, and no request timing out.
Without --home it builds the small world of bench/serve.py first. Needs `wrk`. Prints
one JSON object."""

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import httpx
from serve import (
    SECRET,
    WRK_DONE,
    bench_home,
    customer_ids,
    histogram,
    quantile,
    run_wrk,
    service_env,
    start_server,
)

from serving.auth import mint_token

# one request in ten is a batch, one in ten an explanation: the mix a dashboard, a CRM
# hook and an analyst put on the service together
MIX = {"single": 8, "batch": 1, "explain": 1}
BATCH_SIZE = 20
OVERLOAD_CONNECTIONS = 600  # well past the default CHURN_MAX_IN_FLIGHT of 256


def mixed_requests(ids: list[str], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` (path, body) pairs in the proportions of MIX, shuffled so that kinds
    interleave as they would from independent callers."""
    rng = random.Random(seed)
    kinds = [kind for kind, weight in MIX.items() for _ in range(weight)]
    requests = []
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind == "single":
            requests.append(("/v1/predict", json.dumps({"customer_id": rng.choice(ids)})))
        elif kind == "batch":
            batch = rng.sample(ids, BATCH_SIZE)
            requests.append(("/v1/predict/batch", json.dumps({"customer_ids": batch})))
        else:
            body = {"customer_ids": [rng.choice(ids)], "top_k": 3}
            requests.append(("/v1/explain", json.dumps(body)))
    return requests


def mixed_script(requests: list[tuple[str, str]], token: str, pace_ms: float | None) -> str:
    """A wrk script cycling through `requests`; with `pace_ms` each connection waits an
    exponential think time after every response (arrivals close to a Poisson stream)."""
    lua = [
        "local requests = {"
        + ", ".join(f"{{{json.dumps(p)}, {json.dumps(b)}}}" for p, b in requests)
        + "}",
        "local i = 0",
        'wrk.method = "POST"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        'wrk.headers["Content-Type"] = "application/json"',
        "request = function()",
        "  i = i % #requests + 1",
        "  return wrk.format(nil, requests[i][1], nil, requests[i][2])",
        "end",
    ]
    if pace_ms is not None:
        lua += [
            "delay = function()",
            f"  return -math.log(1 - math.random()) * {pace_ms + 0.5}",
            "end",
        ]
    return "\n".join(lua) + WRK_DONE


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def shed_total(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("churn_http_requests_shed_total"):
            return float(line.split()[-1])
    return 0.0


def calibrate_pace(
    url: str, requests: list[tuple[str, str]], token: str, rate: int, connections: int
) -> float:
    """The think time that brings `connections` paced connections to `rate` requests/s:
    each connection does one request per (service time + think time), so two short runs
    estimate the service time and solve for the think time."""
    pace = connections * 1000 / rate
    for _ in range(3):
        measured = run_wrk(url, mixed_script(requests, token, pace), 5, connections)
        service_ms = max(connections * 1000 / measured["requests_per_second"] - pace, 0.0)
        pace = max(connections * 1000 / rate - service_ms, 0.0)
    return round(pace, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="a CHURN_HOME with a promoted champion")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1_000, help="requests per second")
    parser.add_argument("--connections", type=int, default=8, help="paced connections")
    parser.add_argument("--overload-seconds", type=int, default=30)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/soak.py needs wrk: apt-get install wrk")

    home = bench_home(args.home, args.redis_url)
    env = service_env(home, args.redis_url)
    token = mint_token("soak", "analyst", 4 * 3600, SECRET, "HS256", "churn-lakehouse")
    requests = mixed_requests(customer_ids(home, 2_000), 3_000)
    results: dict = {"mix": MIX, "batch_size": BATCH_SIZE, "target_rps": args.rate}

    proc, url = start_server("serving.app:create_app", env)
    try:
        run_wrk(url, mixed_script(requests, token, None), 5, 4)  # warm-up
        pace = calibrate_pace(url, requests, token, args.rate, args.connections)
        results["pace_ms"] = pace
        results["rss_mb_at_start"] = rss_mb(proc.pid)
        minutes = []
        for minute in range(1, args.minutes + 1):
            run = run_wrk(url, mixed_script(requests, token, pace), 60, args.connections)
            run.update(minute=minute, rss_mb=rss_mb(proc.pid))
            print(json.dumps(run), file=sys.stderr, flush=True)  # progress on long runs
            minutes.append(run)
        results["per_minute"] = minutes
        p99s = [m["client_p99_ms"] for m in minutes]
        results["summary"] = {
            "requests": sum(m["requests"] for m in minutes),
            "errors": sum(m["errors"] for m in minutes),
            "non_2xx": sum(m["non_2xx"] for m in minutes),
            "mean_rps": round(sum(m["requests_per_second"] for m in minutes) / len(minutes)),
            "rss_growth_mb": round(minutes[-1]["rss_mb"] - minutes[0]["rss_mb"], 1),
            "p99_max_over_min": round(max(p99s) / max(min(p99s), 1e-6), 2),
        }

        before_503 = histogram(url, None, "503")
        before_200 = histogram(url, None, "200")
        shed_before = shed_total(url)
        overload = run_wrk(
            url, mixed_script(requests, token, None), args.overload_seconds, OVERLOAD_CONNECTIONS
        )
        after_503 = histogram(url, None, "503")
        after_200 = histogram(url, None, "200")
        overload.update(
            connections=OVERLOAD_CONNECTIONS,
            shed_503=int(shed_total(url) - shed_before),
            server_503_p99_ms=round(quantile(before_503, after_503, 0.99) or 0, 3),
            server_200_p99_ms=round(quantile(before_200, after_200, 0.99) or 0, 3),
        )
        results["beyond_capacity"] = overload
    finally:
        proc.terminate()
        proc.wait()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
