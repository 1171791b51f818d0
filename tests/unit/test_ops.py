"""ops/: the Grafana dashboard loads and every metric its panels and the Prometheus
alert rules query is one the scoring service exports (CI also runs `promtool check
rules` on the rules file)."""

import json
import re
from pathlib import Path

import pandas as pd
import yaml

from churn_assets.ml.business import CampaignEconomics
from churn_assets.ml.performance import PerformanceLimits, daily_business, judge, live_snapshot
from serving.metrics import ServiceMetrics
from serving.prediction_log import PredictionLog

OPS = Path(__file__).resolve().parents[2] / "ops"
METRIC = re.compile(r"\bchurn_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def exported() -> set[str]:
    """Metric families of a service as its lifespan sets it up, once model_performance
    has published (the snapshot built the way it builds it)."""
    metrics = ServiceMetrics()
    metrics.watch_prediction_log(PredictionLog(None))  # type: ignore[arg-type]  # no writes
    metrics.live.snapshot = published_snapshot()
    text = metrics.render().decode()
    return {family(line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE")}


def published_snapshot() -> dict:
    frame = pd.DataFrame(
        {
            "model_version": ["1", "1"],
            "customer_id": ["a", "b"],
            "day": ["2025-03-01", "2025-03-01"],
            "probability": [0.8, 0.1],
            "churned": [1.0, 0.0],
            "monthly_revenue": [100.0, 50.0],
        }
    )
    business = daily_business(frame, {"1": 0.5}, CampaignEconomics())
    verdict = judge(frame, "1", None, 0.5, PerformanceLimits(min_labelled=1, min_per_class=1))
    return live_snapshot(business, {"1": verdict}, 1.0)


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_dashboard_loads_and_queries_exported_metrics() -> None:
    dashboard = json.loads((OPS / "grafana" / "churn-scoring.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all(p["gridPos"]["w"] > 0 for p in dashboard["panels"])
    used = {family(m) for e in exprs for m in METRIC.findall(e)}
    assert used and used <= exported(), used - exported()


def test_alert_rules_query_exported_metrics() -> None:
    rules = yaml.safe_load((OPS / "prometheus" / "churn-alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert all(r["labels"]["severity"] in ("warning", "critical") for r in alerts)
    used = {family(m) for r in alerts for m in METRIC.findall(r["expr"])}
    assert used and used <= exported(), used - exported()


def test_the_scrape_job_is_the_one_the_alerts_watch_and_keeps_its_token_in_a_file() -> None:
    scrape = yaml.safe_load((OPS / "prometheus" / "churn-scrape.yml").read_text())
    (job,) = scrape["scrape_configs"]
    alerts = (OPS / "prometheus" / "churn-alerts.yml").read_text()
    assert f'up{{job="{job["job_name"]}"}}' in alerts
    assert job["metrics_path"] == "/metrics"
    # a token written inline would end up in every copy of the config
    assert set(job["authorization"]) == {"type", "credentials_file"}
