"""Monitoring assets: drift of the current feature build (and of the champion's scores
on it), and of the live traffic the service scored, against the reference frozen with
the champion at training time."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from churn_assets.defs.automation import FOLLOW_UPSTREAM
from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.drift import DriftReport, FeatureDrift, drift_report
from churn_assets.ml.drift_render import drift_markdown
from churn_assets.ml.feature_matrix import MARTS, load_scoring_frame
from churn_assets.resources import MlflowResource, WarehouseResource
from warehouse.prediction_log import PREDICTION_LOG

MONITORING_GROUP = "monitoring"
DRIFT_KEY = dg.AssetKey("feature_drift_report")
FEATURE_DRIFT_CHECK = "feature_drift"
PREDICTION_DRIFT_CHECK = "prediction_drift"
SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "alert": dg.AssetCheckSeverity.ERROR}


@dg.asset(
    key=DRIFT_KEY,
    group_name=MONITORING_GROUP,
    owners=["team:ml-platform"],
    kinds={"python"},
    deps=["scoring_features", "customer_attributes", "churn_model_promotion"],
    automation_condition=FOLLOW_UPSTREAM,
    check_specs=[
        dg.AssetCheckSpec(
            FEATURE_DRIFT_CHECK,
            asset=DRIFT_KEY,
            description="WARN when a feature drifted moderately (significant after "
            "Benjamini-Hochberg and PSI >= CHURN_DRIFT_PSI_WARN), ERROR on severe drift "
            "(PSI >= CHURN_DRIFT_PSI_ALERT, or the drifted share reaching "
            "CHURN_DRIFT_SHARE_ALERT) and on a batch that cannot be judged.",
        ),
        dg.AssetCheckSpec(
            PREDICTION_DRIFT_CHECK,
            asset=DRIFT_KEY,
            description="The champion's score distribution on the current features "
            "against its scores on the validation fold, with the same PSI thresholds.",
        ),
    ],
    description=(
        "Drift of scoring_features (the latest snapshot of every customer) against the "
        "reference frozen in the champion's bundle: PSI, Kolmogorov-Smirnov or "
        "chi-square and Jensen-Shannon per feature, with noise control."
    ),
)
def feature_drift_report(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
):
    def current_build(champion: str, bundle: ModelBundle) -> Batch:
        frame = load_scoring_frame(warehouse.warehouse())
        return frame, bundle.predict(bundle.spec.transform(frame)) if len(frame) else None

    yield from measure_drift(context, mlflow_registry, current_build, "customers")


LIVE_DRIFT_KEY = dg.AssetKey("live_drift_report")
# the customers the champion scored on the current feature build, with what it served
SERVED_ON_CURRENT_BUILD = f"""
SELECT p.customer_id, avg(p.probability) AS probability
FROM {PREDICTION_LOG} p
JOIN {MARTS}.scoring_features s
  ON s.customer_id = p.customer_id AND s.as_of_date = cast(p.features_as_of AS date)
WHERE p.model_version = ? AND p.probability IS NOT NULL
GROUP BY p.customer_id
"""


@dg.asset(
    key=LIVE_DRIFT_KEY,
    group_name=MONITORING_GROUP,
    owners=["team:ml-platform"],
    kinds={"python"},
    deps=["prediction_log", "scoring_features", "customer_attributes", "churn_model_promotion"],
    automation_condition=FOLLOW_UPSTREAM,
    check_specs=[
        dg.AssetCheckSpec(
            FEATURE_DRIFT_CHECK,
            asset=LIVE_DRIFT_KEY,
            description="As feature_drift_report's, on the customers the "
            "service actually scored (WARN while too few were scored).",
        ),
        dg.AssetCheckSpec(
            PREDICTION_DRIFT_CHECK,
            asset=LIVE_DRIFT_KEY,
            description="The probabilities the service returned against "
            "the champion's scores on its validation fold.",
        ),
    ],
    description=(
        "Drift of live traffic: the customers the champion scored on the current feature "
        "build (from the drained prediction log), with the features it was served (the "
        "scoring_features rows the online store holds, checked equal by the parity gate) "
        "and the probabilities it returned, against the champion's frozen reference."
    ),
)
def live_drift_report(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_registry: MlflowResource,
):
    min_rows = mlflow_registry.settings().drift.min_rows

    def scored_traffic(champion: str, bundle: ModelBundle) -> Batch | str:
        wh = warehouse.warehouse()
        if not wh.table_exists(PREDICTION_LOG):
            return f"v{champion} scored nobody yet: no prediction log"
        served = wh.query_df(SERVED_ON_CURRENT_BUILD, [champion])
        if len(served) < min_rows:
            # no traffic is no evidence of drift: a warning, never a retrain
            return (
                f"v{champion} scored {len(served)} customers on the current feature build; "
                f"a live drift verdict needs {min_rows} (CHURN_DRIFT_MIN_ROWS)"
            )
        frame = load_scoring_frame(wh)
        frame = frame.assign(customer_id=frame["customer_id"].astype(str)).merge(
            served.assign(customer_id=served["customer_id"].astype(str)), on="customer_id"
        )
        return frame, frame["probability"].to_numpy(dtype=float)

    yield from measure_drift(context, mlflow_registry, scored_traffic, "scored customers")


Batch = tuple[pd.DataFrame, np.ndarray | None]  # features, and scores when there are any


def measure_drift(
    context: dg.AssetExecutionContext,
    mlflow_registry: MlflowResource,
    batch: Callable[[str, ModelBundle], Batch | str],
    rows_are: str,
):
    """Both drift reports: the champion's reference against `batch`, which returns the
    features and scores to judge, or why there is nothing to judge (both checks WARN)."""
    champion, bundle = mlflow_registry.champion(before="measuring drift against it")
    if bundle.reference is None:
        yield from not_judged(
            champion, "no reference",
            f"v{champion} has no drift reference (trained before drift monitoring): retrain it",
        )  # fmt: skip
        return
    found = batch(champion, bundle)
    if isinstance(found, str):
        yield from not_judged(champion, "not judged", found)
        return
    frame, scores = found
    report = drift_report(bundle.reference, frame, scores, mlflow_registry.settings().drift)
    context.log.info(
        f"drift of {report.rows:,} {rows_are} against v{champion}: {report.verdict}, "
        f"{report.share_drifted:.0%} of features drifted"
    )
    yield from report_outputs(report, champion, bundle, f"Drift of {rows_are} against v{champion}")


def report_outputs(report: DriftReport, champion: str, bundle: ModelBundle, title: str):
    """The report's materialization (metadata, table, charts) and its two checks."""
    assert bundle.reference is not None
    yield dg.Output(
        None,
        metadata={
            "model_version": champion,
            "reference": bundle.reference.description,
            "rows": report.rows,
            "verdict": report.verdict,
            "share_drifted": dg.MetadataValue.float(round(report.share_drifted, 4)),
            "drifted_features": ", ".join(f.name for f in report.drifted()) or "none",
            "report": dg.MetadataValue.md(drift_markdown(report, title)),
        },
    )
    yield feature_check(report, champion)
    yield prediction_check(report, champion)


def not_judged(champion: str, verdict: str, why: str):
    """Outputs of a report with nothing to judge: both checks WARN and say why."""
    yield dg.Output(None, metadata={"model_version": champion, "verdict": verdict, "why": why})
    for name in (FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK):
        yield dg.AssetCheckResult(check_name=name, passed=False, description=why,
                                  severity=dg.AssetCheckSeverity.WARN)  # fmt: skip


def feature_check(report: DriftReport, champion: str) -> dg.AssetCheckResult:
    drifted = report.drifted()
    metadata: dict[str, Any] = {
        "model_version": champion,
        "verdict": report.verdict,
        "share_drifted": dg.MetadataValue.float(round(report.share_drifted, 4)),
        "drifted": dg.MetadataValue.json(
            [{"feature": f.name, "level": f.level, "psi": round(f.psi, 4)} for f in drifted]
        ),
        "problems": dg.MetadataValue.json(report.problems),
    }
    if report.verdict == "ok":
        return dg.AssetCheckResult(
            check_name=FEATURE_DRIFT_CHECK, passed=True, metadata=metadata,
            description="no feature drifted beyond noise",
        )  # fmt: skip
    parts = report.problems + [describe(f) for f in drifted[:10]]
    return dg.AssetCheckResult(
        check_name=FEATURE_DRIFT_CHECK,
        passed=False,
        severity=SEVERITY[report.verdict],
        description="; ".join(parts)[:2000],
        metadata=metadata,
    )


def describe(f: FeatureDrift) -> str:
    unseen = f", {f.unseen:.0%} in categories the model never saw" if f.unseen >= 0.005 else ""
    missing = (
        f", missing {f.missing_reference:.0%} -> {f.missing_current:.0%}"
        if abs(f.missing_current - f.missing_reference) >= 0.05
        else ""
    )
    return f"{f.name} {f.level} (PSI {f.psi:.3f}{unseen}{missing})"


def prediction_check(report: DriftReport, champion: str) -> dg.AssetCheckResult:
    p = report.prediction
    if p is None:
        return dg.AssetCheckResult(
            check_name=PREDICTION_DRIFT_CHECK, passed=False,
            severity=dg.AssetCheckSeverity.WARN, description="no scores to compare",
        )  # fmt: skip
    metadata: dict[str, Any] = {
        "model_version": champion,
        "psi": dg.MetadataValue.float(round(p.psi, 4)),
        "ks": dg.MetadataValue.float(round(p.statistic, 4)),
    }
    if p.level == "ok":
        return dg.AssetCheckResult(
            check_name=PREDICTION_DRIFT_CHECK, passed=True, metadata=metadata
        )
    return dg.AssetCheckResult(
        check_name=PREDICTION_DRIFT_CHECK,
        passed=False,
        severity=SEVERITY[p.level],
        description=f"the score distribution moved: PSI {p.psi:.3f}, KS {p.statistic:.3f}",
        metadata=metadata,
    )
