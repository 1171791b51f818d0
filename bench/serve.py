"""Scoring-service latency and throughput: the real server (uvicorn, one worker, real
Redis) driven by wrk from a separate process, against a naive baseline on the same
model and data (a pandas row and the MLflow pyfunc per request) measured in the same run.

    uv run python bench/serve.py [--home DIR] [--duration 10] [--redis-url URL]

Without --home it builds a small world first (3,000 synthetic customers, the whole
pipeline with a 4-trial search: a few minutes). Needs `wrk` (Debian package wrk).
Prints one JSON object; server-side percentiles come from the service's own latency
histogram (/metrics), client-side ones from wrk."""

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-bench-secret-bench-secret"
WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": %d, "timeouts": %d, "non_2xx": %d, '
    .. '"client_p50_ms": %.3f, "client_p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.timeout, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_world(home: Path, redis_url: str) -> None:
    """Synthetic data, the whole pipeline with a tiny search: a champion with its
    features online."""
    from churn_assets import cli

    os.environ.update(
        CHURN_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        REDIS_URL=redis_url,
        CHURN_SEARCH_TRIALS="4",
        CHURN_SEARCH_FAMILIES="lightgbm",
        CHURN_GATE_FAIRNESS_GAP="1",
    )
    start = (dt.date.today() - dt.timedelta(days=240)).isoformat()
    args = ["generate", "--customers", "3000", "--days", "240", "--seed", "5", "--start", start]
    assert cli.main(args) == 0
    assert cli.main(["materialize"]) == 0, "the pipeline failed; see above"


def bench_home(home: Path | None, redis_url: str) -> Path:
    """`home` when given, else the small world under var/bench/serve (built once)."""
    if home is not None:
        return home
    home = ROOT / "var" / "bench" / "serve"
    if not (home / "mlflow.db").exists():
        redis.Redis.from_url(redis_url).flushdb()
        build_world(home, redis_url)
    return home


def service_env(home: Path, redis_url: str) -> dict[str, str]:
    """The scoring service's environment for a bench: no rate limit, features never
    too old, the bench secret; MLflow found in `home`."""
    env = {
        **os.environ,
        "CHURN_HOME": str(home),
        "REDIS_URL": redis_url,
        "CHURN_JWT_SECRET": SECRET,
        "CHURN_RATE_LIMIT": "1000000000",
        "CHURN_FEATURE_MAX_AGE_SECONDS": str(10 * 365 * 86_400),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def customer_ids(home: Path, n: int) -> list[str]:
    from churn_assets.ml.feature_matrix import load_scoring_frame
    from warehouse.connection import Warehouse
    from warehouse.settings import load_settings

    frame = load_scoring_frame(Warehouse(load_settings({"CHURN_HOME": str(home)})))
    return frame["customer_id"].astype(str).head(n).tolist()


def start_server(app: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def wrk_script(path: str, bodies: list[str], token: str, pace_ms: float | None) -> str:
    lua = [
        f"local bodies = {{{', '.join(json.dumps(b) for b in bodies)}}}",
        "local i = 0",
        'wrk.method = "POST"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        'wrk.headers["Content-Type"] = "application/json"',
        "request = function()",
        "  i = i % #bodies + 1",
        f'  return wrk.format(nil, "{path}", nil, bodies[i])',
        "end",
    ]
    if pace_ms:
        # exponential think times: arrivals close to a Poisson stream, so connections do
        # not fall into step and queue behind each other (wrk truncates to whole ms)
        lua += [
            "delay = function()",
            f"  return -math.log(1 - math.random()) * {pace_ms + 0.5}",
            "end",
        ]
    return "\n".join(lua) + WRK_DONE


def run_wrk(url: str, script: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    result = json.loads(out.strip().splitlines()[-1])
    result["requests_per_second"] = round(result["requests"] / result["seconds"])
    return result


def histogram(url: str, route: str | None, status: str = "200") -> list[tuple[float, float]]:
    """Cumulative (le, count) pairs of the service's latency histogram for the answers
    with `status` on `route` (None: on every route, summed)."""
    counts: dict[float, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("churn_http_request_duration_seconds_bucket") and (
            (route is None or f'route="{route}"' in line) and f'status="{status}"' in line
        ):
            le_text = line.split('le="')[1].split('"')[0]
            le = float("inf") if le_text == "+Inf" else float(le_text)
            counts[le] = counts.get(le, 0.0) + float(line.split()[-1])
    return sorted(counts.items())


def quantile(before: list, after: list, q: float) -> float | None:
    """q-quantile in ms from the histogram delta, linear inside the bucket."""
    delta = [(le, a - (dict(before).get(le, 0.0))) for le, a in after]
    total = delta[-1][1] if delta else 0
    if not total:
        return None
    target, lower, below = q * total, 0.0, 0.0
    for le, count in delta:
        if count >= target:
            if le == float("inf"):
                return lower * 1000
            return (lower + (le - lower) * (target - below) / max(count - below, 1e-9)) * 1000
        lower, below = le, count
    return None


def scenario(url: str, route: str, script: str, seconds: int, connections: int) -> dict:
    before = histogram(url, route)
    result = run_wrk(url, script, seconds, connections)
    after = histogram(url, route)
    if after:
        result["server_p50_ms"] = round(quantile(before, after, 0.50) or 0, 3)
        result["server_p99_ms"] = round(quantile(before, after, 0.99) or 0, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="a CHURN_HOME with a promoted champion")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/serve.py needs wrk: apt-get install wrk")

    home = bench_home(args.home, args.redis_url)
    env = service_env(home, args.redis_url)
    from serving.auth import mint_token

    scorer = mint_token("bench", "scorer", 3600, SECRET, "HS256", "churn-lakehouse")
    analyst = mint_token("bench", "analyst", 3600, SECRET, "HS256", "churn-lakehouse")
    ids = customer_ids(home, 2_000)
    single = [json.dumps({"customer_id": c}) for c in ids[:500]]
    batches = [json.dumps({"customer_ids": ids[i : i + 100]}) for i in range(0, 1_000, 100)]
    explain = [json.dumps({"customer_ids": [c], "top_k": 3}) for c in ids[:500]]
    s = args.duration
    results: dict = {"customers": len(ids), "duration_seconds_per_scenario": s}

    proc, url = start_server("serving.app:create_app", env)
    try:
        run_wrk(url, wrk_script("/v1/predict", single, scorer, None), 2, 4)  # warm-up
        results["predict_saturated"] = scenario(
            url, "/v1/predict", wrk_script("/v1/predict", single, scorer, None), s, 8
        )
        # four connections, each waiting 3 ms after a response: about 1,000 requests/s
        results["predict_at_1000_rps"] = scenario(
            url, "/v1/predict", wrk_script("/v1/predict", single, scorer, 3), s, 4
        )
        results["predict_top3_at_1000_rps"] = scenario(
            url, "/v1/predict", wrk_script("/v1/predict?explain=3", single, scorer, 3), s, 4
        )
        results["explain_at_500_rps"] = scenario(
            url, "/v1/explain", wrk_script("/v1/explain", explain, analyst, 4), s, 2
        )
        results["batch_100_saturated"] = scenario(
            url,
            "/v1/predict/batch",
            wrk_script("/v1/predict/batch", batches, analyst, None),
            s,
            4,
        )
    finally:
        proc.terminate()
        proc.wait()

    proc, url = start_server("bench.naive_app:create_naive_app", env)
    try:
        run_wrk(url, wrk_script("/predict", single, scorer, None), 2, 4)
        results["naive_predict_saturated"] = run_wrk(
            url, wrk_script("/predict", single, scorer, None), s, 8
        )
    finally:
        proc.terminate()
        proc.wait()

    fast = results["predict_saturated"]
    naive = results["naive_predict_saturated"]
    results["throughput_ratio_vs_naive"] = round(
        fast["requests_per_second"] / max(naive["requests_per_second"], 1), 1
    )
    results["p50_ratio_naive_over_service"] = round(
        naive["client_p50_ms"] / max(fast["client_p50_ms"], 1e-6), 1
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
