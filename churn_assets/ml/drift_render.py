"""A drift report for people: the verdict, a table of every feature's statistics and,
for the most drifted features, reference and current shares bin by bin side by side
(PNG via matplotlib's object API, embedded in markdown)."""

from __future__ import annotations

import numpy as np

from churn_assets.ml.drift import DriftReport, FeatureDrift
from churn_assets.ml.report import data_uri, new_figure, png_bytes

PLOTTED = 4


def drift_plot(feature: FeatureDrift) -> bytes:
    fig = new_figure((6.0, 3.2))
    ax = fig.add_subplot()
    positions = np.arange(len(feature.bins))
    ax.bar(positions - 0.2, feature.reference, width=0.4, label="reference (training)")
    ax.bar(positions + 0.2, feature.current, width=0.4, label="current")
    ax.set_xticks(positions, feature.bins, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(f"{feature.name}: PSI {feature.psi:.3f} ({feature.level})", fontsize=9)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def drift_markdown(report: DriftReport, title: str) -> str:
    t = report.thresholds
    lines = [
        f"## {title}",
        "",
        f"**Verdict: {report.verdict}** over {report.rows:,} rows; "
        f"{report.share_drifted:.0%} of features drifted "
        f"(data-set drift at {t.share_alert:.0%}: {'yes' if report.dataset_drift else 'no'}). "
        f"A feature drifts when its Benjamini-Hochberg adjusted p-value is below {t.alpha} "
        f"and its PSI reaches {t.psi_warn} (warn) or {t.psi_alert} (alert).",
        "",
    ]
    if report.problems:
        lines += ["**Problems with the batch:**", *(f"- {p}" for p in report.problems), ""]
    if report.prediction is not None:
        p = report.prediction
        lines += [
            f"Prediction drift: PSI {p.psi:.3f}, KS {p.statistic:.3f} "
            f"(p {p.p_value:.2g}): **{p.level}**",
            "",
        ]
    lines += [
        "| feature | kind | level | PSI | KS / chi-square | p adjusted | JS | missing (ref -> now) | unseen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(report.features, key=lambda f: -f.psi):
        js = "" if f.js_distance is None else f"{f.js_distance:.3f}"
        lines.append(
            f"| {f.name} | {f.kind} | {f.level}{' (ignored)' if f.ignored else ''} | {f.psi:.3f} | {f.statistic:.3g} | "
            f"{f.p_adjusted:.2g} | {js} | {f.missing_reference:.1%} -> {f.missing_current:.1%} | "
            f"{f.unseen:.1%} |"
        )
    drifted = report.drifted()[:PLOTTED]
    if drifted:
        lines += ["", "### Most drifted features", ""]
        lines += [f"![{f.name}]({data_uri(drift_plot(f))})" for f in drifted]
    return "\n".join(lines)
