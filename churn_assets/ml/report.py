"""Evaluation report for a churn model: diagnostic plots, a markdown summary for the
Dagster materialization and a self-contained HTML report for people without Dagster.

Pure library (numpy, scikit-learn, matplotlib). Figures are built with
`matplotlib.figure.Figure` directly instead of pyplot: they never enter pyplot's global
figure registry, so nothing can leak in a long-running Dagster process even when a plot
raises, and the module does not switch the backend of whoever imports it. The SHAP
summary is drawn here from the LightGBM contributions rather than with
`shap.summary_plot`, which needs pyplot and costs ~10 s of imports (numba, llvmlite).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from churn_assets.ml.metrics import METRIC_ORDER
from churn_assets.ml.model_card import finite_number

PLOT_KEYS = (
    "roc",
    "precision_recall",
    "calibration",
    "lift_gain",
    "shap_summary",
    "shap_dependence",
)
FAIRNESS_COLUMNS = ("rows", "churn_rate", "auc", "selection_rate", "true_positive_rate")
GAP_METRICS = ("auc", "selection_rate", "true_positive_rate")

FIGSIZE = (6.0, 4.0)
DPI = 90  # keeps each PNG well under 100 KB while staying legible
TOP_FEATURES = 15
CALIBRATION_BINS = 10
NA = "n/a"


# --------------------------------------------------------------------------- plots


def render_plots(
    y: np.ndarray,
    p: np.ndarray,
    contributions: np.ndarray,
    x: np.ndarray,
    feature_names: list[str],
    max_rows: int = 5000,
    seed: int = 0,
) -> dict[str, bytes]:
    """PNG bytes for every key in PLOT_KEYS.

    `contributions` is LightGBM `pred_contrib` output without the bias column, aligned
    with `x` and `feature_names`. Curves use every row; the SHAP scatter plots use a
    seeded subsample of at most `max_rows` rows because beyond that the points only
    overdraw each other and slow rendering down.
    """
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    contributions = np.asarray(contributions, dtype=float)
    x = np.asarray(x, dtype=float)
    n = len(y)
    if len(p) != n:
        raise ValueError(f"y has {n} rows but p has {len(p)}")
    if contributions.ndim != 2 or contributions.shape != (n, len(feature_names)):
        raise ValueError(
            f"contributions must be (rows, features) = ({n}, {len(feature_names)}), "
            f"got {contributions.shape}"
        )
    if x.shape != contributions.shape:
        raise ValueError(f"x shape {x.shape} differs from contributions {contributions.shape}")
    if n == 0:
        raise ValueError("cannot plot an empty holdout")

    sample = _subsample(n, max_rows, seed)
    # most important first: the ranking the summary and the dependence plot share
    importance = np.nan_to_num(np.abs(contributions).mean(axis=0))
    ranked = np.argsort(-importance, kind="stable")
    return {
        "roc": png_bytes(_roc_figure(y, p)),
        "precision_recall": png_bytes(_precision_recall_figure(y, p)),
        "calibration": png_bytes(_calibration_figure(y, p)),
        "lift_gain": png_bytes(_lift_gain_figure(y, p)),
        "shap_summary": png_bytes(
            _shap_summary_figure(
                contributions[sample], x[sample], feature_names, ranked[:TOP_FEATURES]
            )
        ),
        "shap_dependence": png_bytes(
            _shap_dependence_figure(contributions[sample], x[sample], feature_names, ranked)
        ),
    }


def _subsample(n: int, max_rows: int, seed: int) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    # sorted so the subsample keeps the input order (stable, deterministic plots)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    # no Software/date metadata so the same input gives byte-identical PNGs
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    return Figure(figsize=figsize, dpi=DPI)


def _both_classes(y: np.ndarray) -> bool:
    return bool(np.any(y == 1) and np.any(y == 0))


def _undefined(ax: Any, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)


def _roc_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    if _both_classes(y):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color="C0", label=f"model (AUC {roc_auc_score(y, p):.3f})")
    else:
        _undefined(ax, "ROC undefined: holdout has one class")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return fig


def _precision_recall_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    base_rate = float(y.mean())
    ax.axhline(base_rate, linestyle="--", color="grey", linewidth=1, label="churn rate")
    if _both_classes(y):
        precision, recall, _ = precision_recall_curve(y, p)
        ap = average_precision_score(y, p)
        ax.plot(recall, precision, color="C0", drawstyle="steps-post", label=f"model (AP {ap:.3f})")
    else:
        _undefined(ax, "precision-recall undefined: holdout has one class")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    return fig


def _calibration_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    """Reliability curve over quantile bins: equal-count bins keep every point backed
    by the same number of customers, which matters when most scores sit near zero."""
    fig = new_figure()
    ax = fig.add_subplot()
    bins = [b for b in np.array_split(np.argsort(p, kind="stable"), CALIBRATION_BINS) if len(b)]
    predicted = [float(p[b].mean()) for b in bins]
    observed = [float(y[b].mean()) for b in bins]
    top = max(max(predicted), max(observed), 1e-3) * 1.05
    ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.plot(predicted, observed, marker="o", color="C0", label="model")
    ax.set(xlim=(0, top), ylim=(0, top))
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title=f"Calibration ({len(bins)} quantile bins)",
    )
    ax.legend(loc="upper left")
    return fig


def _lift_gain_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    """Cumulative gain (share of churners reached vs share contacted) and lift per
    decile: the two questions a retention team asks of a ranking."""
    fig = new_figure((9.0, 4.0))
    gain_ax, lift_ax = fig.subplots(1, 2)
    order = np.argsort(-p, kind="stable")
    ranked = y[order]
    churners = ranked.sum()
    contacted = np.arange(len(ranked) + 1) / len(ranked)
    gain_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    if churners > 0:
        gain = np.concatenate([[0.0], np.cumsum(ranked) / churners])
        gain_ax.plot(contacted, gain, color="C0", label="model")
        rate = ranked.mean()
        deciles = np.array_split(ranked, 10)
        lift = [float(d.mean() / rate) if len(d) else 0.0 for d in deciles]
        lift_ax.bar(np.arange(1, len(deciles) + 1), lift, color="C0")
        lift_ax.axhline(1.0, linestyle="--", color="grey", linewidth=1)
    else:
        _undefined(gain_ax, "no churners")
        _undefined(lift_ax, "no churners")
    gain_ax.set(
        xlabel="share contacted (highest scores first)",
        ylabel="share of churners reached",
        title="Cumulative gain",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    gain_ax.legend(loc="lower right")
    lift_ax.set(xlabel="score decile (1 = highest)", ylabel="lift", title="Lift by decile")
    lift_ax.set_xticks(np.arange(1, 11))
    return fig


def _shap_summary_figure(
    contributions: np.ndarray, x: np.ndarray, feature_names: list[str], top: np.ndarray
) -> Figure:
    """Beeswarm: one row per feature (most important on top), one dot per customer at
    its contribution, coloured by the feature's value (grey when missing)."""
    fig = new_figure((6.0, 1.0 + 0.3 * max(len(top), 1)))
    ax = fig.add_subplot()
    cmap = colormaps["coolwarm"]
    for row, feature in enumerate(top[::-1]):  # y=0 at the bottom, so least important first
        values = contributions[:, feature]
        offsets = _swarm_offsets(values)
        colours = _value_colours(x[:, feature])
        missing = np.isnan(colours)
        ax.scatter(values[missing], row + offsets[missing], s=4, color="#aaaaaa", linewidths=0)
        ax.scatter(
            values[~missing],
            row + offsets[~missing],
            s=4,
            c=colours[~missing],
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            linewidths=0,
        )
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(np.arange(len(top)), [feature_names[f] for f in top[::-1]], fontsize=8)
    ax.set_ylim(-0.6, len(top) - 0.4)
    ax.set(xlabel="contribution to log-odds of churn", title="Feature contributions")
    colourbar = fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap), ax=ax, ticks=[0, 1], aspect=40
    )
    colourbar.ax.set_yticklabels(["low", "high"])
    colourbar.set_label("feature value")
    return fig


def _swarm_offsets(values: np.ndarray, bins: int = 100, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that stack dots with similar values outward from the row centre,
    so density is visible the way a beeswarm shows it."""
    if len(values) == 0:
        return np.zeros(0)
    low, high = float(values.min()), float(values.max())
    span = high - low
    if span == 0:
        which = np.zeros(len(values), dtype=int)
    else:
        which = np.minimum(((values - low) / span * bins).astype(int), bins - 1)
    order = np.argsort(which, kind="stable")
    sorted_bins = which[order]
    first_in_bin = np.searchsorted(sorted_bins, sorted_bins, side="left")
    rank = np.empty(len(values), dtype=int)
    rank[order] = np.arange(len(values)) - first_in_bin
    # 0, +1, -1, +2, -2, ... around the centre line
    layer = np.ceil(rank / 2) * np.where(rank % 2 == 1, 1.0, -1.0)
    deepest = np.abs(layer).max()
    return layer * (width / deepest) if deepest > 0 else layer


def _value_colours(values: np.ndarray) -> np.ndarray:
    """Feature values mapped to [0, 1] between their 5th and 95th percentiles (so one
    outlier does not wash out the colours); NaN stays NaN."""
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return np.full(len(values), np.nan)
    low, high = np.percentile(present, [5, 95])
    if high <= low:
        low, high = float(present.min()), float(present.max())
    if high <= low:
        return np.where(np.isnan(values), np.nan, 0.5)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _shap_dependence_figure(
    contributions: np.ndarray, x: np.ndarray, feature_names: list[str], ranked: np.ndarray
) -> Figure:
    """Value vs contribution of the most important feature, coloured by the second one:
    shows the shape of the learned effect and hints at the strongest interaction."""
    fig = new_figure()
    ax = fig.add_subplot()
    if len(ranked) == 0:
        _undefined(ax, "no features")
        return fig
    top = int(ranked[0])
    values, effect = x[:, top], contributions[:, top]
    shown = ~np.isnan(values)
    if len(ranked) > 1:
        second = int(ranked[1])
        colours = _value_colours(x[:, second])
        colours = np.where(np.isnan(colours), 0.5, colours)
        points = ax.scatter(
            values[shown],
            effect[shown],
            s=5,
            c=colours[shown],
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            linewidths=0,
        )
        colourbar = fig.colorbar(points, ax=ax, ticks=[0, 1], aspect=40)
        colourbar.ax.set_yticklabels(["low", "high"])
        colourbar.set_label(feature_names[second], fontsize=8)
    else:
        ax.scatter(values[shown], effect[shown], s=5, color="C0", linewidths=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    missing = int((~shown).sum())
    title = f"Dependence: {feature_names[top]}"
    if missing:
        title += f" ({missing} missing not shown)"
    ax.set(xlabel=feature_names[top], ylabel="contribution to log-odds", title=title)
    return fig


# --------------------------------------------------------------------------- formatting


def _fmt(value: Any, digits: int = 4) -> str:
    number = finite_number(value)
    if number is None:
        return NA
    if isinstance(value, int | np.integer):
        return f"{int(number):,}"
    return f"{number:.{digits}f}"


def _money(value: Any) -> str:
    number = finite_number(value)
    return NA if number is None else f"{number:,.0f}"


def _md(text: Any) -> str:
    """Data text made safe for a markdown table cell (pipes and raw HTML neutralised)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _ordered_metrics(metrics: Mapping[str, Any]) -> list[str]:
    known = [name for name in METRIC_ORDER if name in metrics]
    return known + sorted(name for name in metrics if name not in METRIC_ORDER)


def _ordered_plots(plots: Mapping[str, bytes]) -> list[str]:
    known = [key for key in PLOT_KEYS if key in plots]
    return known + sorted(key for key in plots if key not in PLOT_KEYS)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _metric_parts(entry: Any) -> tuple[Any, Any, Any]:
    if isinstance(entry, Mapping):
        return entry.get("value"), entry.get("ci_low"), entry.get("ci_high")
    return entry, None, None


def _ci(low: Any, high: Any) -> str:
    if finite_number(low) is None and finite_number(high) is None:
        return NA
    return f"[{_fmt(low)}, {_fmt(high)}]"


def _headline(evaluation: Mapping[str, Any]) -> str:
    holdout = evaluation.get("holdout") or {}
    return (
        f"{evaluation.get('model_name', 'model')} v{evaluation.get('version', '?')}, "
        f"holdout {_fmt(holdout.get('rows'))} rows, {_fmt(holdout.get('churners'))} churners "
        f"({holdout.get('as_of_from', '?')} to {holdout.get('as_of_to', '?')})"
    )


def _campaign_line(title: str, campaign: Mapping[str, Any]) -> str:
    return (
        f"{title}: contact scores at or above {_fmt(campaign.get('threshold'))} "
        f"({_fmt(campaign.get('contacted'))} customers), saved revenue "
        f"{_money(campaign.get('saved_revenue'))}, cost {_money(campaign.get('campaign_cost'))}, "
        f"net value {_money(campaign.get('net_value'))}"
    )


def _business_lines(business: Mapping[str, Any]) -> list[str]:
    economics = business.get("economics") or {}
    return [
        f"Revenue at risk: {_money(business.get('revenue_at_risk'))}",
        _campaign_line(
            "Campaign at the operating threshold (chosen on validation)",
            business.get("operating_campaign") or {},
        ),
        _campaign_line(
            "Best campaign in hindsight (threshold fitted to these labels, an upper bound)",
            business.get("campaign") or {},
        ),
        f"Assumptions: offer cost {_fmt(economics.get('offer_cost'), 2)}, success rate "
        f"{_fmt(economics.get('success_rate'), 2)}, value months "
        f"{_fmt(economics.get('value_months'), 1)}",
    ]


def _oracle_rows(evaluation: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, model, oracle, gap) rows; the oracle is a model that sees the simulator's
    true churn drivers, so the gap says how much signal the features leave on the table."""
    oracle = evaluation.get("oracle")
    if not isinstance(oracle, Mapping):
        return []
    metrics = evaluation.get("metrics") or {}
    rows = []
    for metric, gap in (("roc_auc", "auc_gap"), ("brier", "brier_gap")):
        model_value = _metric_parts(metrics.get(metric))[0]
        rows.append((metric, _fmt(model_value), _fmt(oracle.get(metric)), _fmt(oracle.get(gap))))
    return rows


def _gates(evaluation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [g for g in evaluation.get("gates") or [] if isinstance(g, Mapping)]


def _fairness(evaluation: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    fairness = evaluation.get("fairness") or {}
    return {str(k): v for k, v in fairness.items() if isinstance(v, Mapping)}


# --------------------------------------------------------------------------- markdown


def render_markdown(evaluation: Mapping[str, Any], plots: Mapping[str, bytes]) -> str:
    """Markdown for the evaluation asset's materialization, so the numbers and plots are
    readable in the Dagster UI without opening MLflow."""
    metrics = evaluation.get("metrics") or {}
    lines = [f"**{_md(_headline(evaluation))}**", ""]
    lines += _md_table(
        ["metric", "value", "95% CI"],
        (
            [
                _md(name),
                _fmt(_metric_parts(metrics[name])[0]),
                _ci(*_metric_parts(metrics[name])[1:]),
            ]
            for name in _ordered_metrics(metrics)
        ),
    )
    lines += ["", f"Decision threshold: {_fmt(evaluation.get('threshold'))}"]

    business = evaluation.get("business")
    if isinstance(business, Mapping):
        lines += ["", "**Business value**", ""]
        lines += [f"- {_md(line)}" for line in _business_lines(business)]

    oracle = _oracle_rows(evaluation)
    if oracle:
        lines += ["", "**Oracle comparison**", ""]
        lines += _md_table(["metric", "model", "oracle", "gap"], (list(row) for row in oracle))

    gates = _gates(evaluation)
    if gates:
        lines += ["", "**Gates**", ""]
        lines += _md_table(
            ["gate", "result", "value", "limit", "detail"],
            (
                [
                    _md(g.get("name", "")),
                    "✅ pass" if g.get("passed") else "❌ fail",
                    _fmt(g.get("value")),
                    _fmt(g.get("limit")),
                    _md(g.get("detail", "")),
                ]
                for g in gates
            ),
        )

    fairness = _fairness(evaluation)
    if fairness:
        lines += ["", "**Fairness gaps (max - min over groups)**", ""]
        lines += _md_table(
            ["segment", *GAP_METRICS],
            (
                [_md(segment), *(_fmt((report.get("gaps") or {}).get(m)) for m in GAP_METRICS)]
                for segment, report in fairness.items()
            ),
        )

    for key in _ordered_plots(plots):
        lines += ["", f"![{_md(key)}]({data_uri(plots[key])})"]
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# --------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}
tr.pass td.result{background:#e3f5e1;color:#1e6b1e;font-weight:600}
tr.fail td.result{background:#fbe3e3;color:#a01515;font-weight:600}
.muted{color:#666}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #eee;padding:.5rem}
figure img{max-width:100%;height:auto}
pre{background:#f7f7f7;padding:1rem;overflow-x:auto;white-space:pre-wrap}
"""


def render_html(
    evaluation: Mapping[str, Any],
    plots: Mapping[str, bytes],
    title: str,
    extra_markdown_sections: Mapping[str, str] | None = None,
) -> str:
    """One self-contained HTML file (inline CSS, images as data URIs) that can be mailed
    or archived with the model and still opens years later. Every string that comes from
    data is escaped: segment and group names are customer data."""
    metrics = evaluation.get("metrics") or {}
    body = [f"<h1>{_h(title)}</h1>", f'<p class="muted">{_h(_headline(evaluation))}</p>']

    body.append("<h2>Metrics</h2>")
    body.append(
        _html_table(
            ["metric", "value", "95% CI"],
            (
                (
                    _h(name),
                    _fmt(_metric_parts(metrics[name])[0]),
                    _h(_ci(*_metric_parts(metrics[name])[1:])),
                )
                for name in _ordered_metrics(metrics)
            ),
            numeric=(1, 2),
        )
    )
    body.append(f"<p>Decision threshold: {_fmt(evaluation.get('threshold'))}</p>")

    business = evaluation.get("business")
    if isinstance(business, Mapping):
        body.append("<h2>Business value</h2><ul>")
        body += [f"<li>{_h(line)}</li>" for line in _business_lines(business)]
        body.append("</ul>")

    oracle = _oracle_rows(evaluation)
    if oracle:
        body.append("<h2>Oracle comparison</h2>")
        body.append(_html_table(["metric", "model", "oracle", "gap"], oracle, numeric=(1, 2, 3)))

    gates = _gates(evaluation)
    if gates:
        body.append("<h2>Gates</h2>")
        body.append(_gates_table(gates))

    fairness = _fairness(evaluation)
    if fairness:
        body.append("<h2>Fairness</h2>")
        for segment, report in fairness.items():
            gaps = report.get("gaps") or {}
            body.append(f"<h3>{_h(segment)}</h3>")
            gap_text = ", ".join(f"{m} {_fmt(gaps.get(m))}" for m in GAP_METRICS)
            body.append(f'<p class="muted">largest gaps: {_h(gap_text)}</p>')
            groups = [g for g in report.get("groups") or [] if isinstance(g, Mapping)]
            body.append(
                _html_table(
                    ["group", *FAIRNESS_COLUMNS],
                    (
                        (_h(g.get("group", "")), *(_fmt(g.get(c)) for c in FAIRNESS_COLUMNS))
                        for g in groups
                    ),
                    numeric=tuple(range(1, len(FAIRNESS_COLUMNS) + 1)),
                )
            )

    if plots:
        body.append('<h2>Plots</h2><div class="plots">')
        for key in _ordered_plots(plots):
            body.append(
                f'<figure><img src="{data_uri(plots[key])}" alt="{_h(key)}">'
                f"<figcaption>{_h(key)}</figcaption></figure>"
            )
        body.append("</div>")

    for section_title, text in (extra_markdown_sections or {}).items():
        body.append(f"<h2>{_h(section_title)}</h2><pre>{_h(text)}</pre>")

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_table(
    header: list[str], rows: Iterable[Iterable[str]], numeric: tuple[int, ...] = ()
) -> str:
    """Rows must already be escaped (the formatters only emit digits and n/a)."""
    head = "".join(f"<th>{_h(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gates_table(gates: list[Mapping[str, Any]]) -> str:
    rows = []
    for gate in gates:
        passed = bool(gate.get("passed"))
        rows.append(
            f'<tr class="{"pass" if passed else "fail"}">'
            f"<td>{_h(gate.get('name', ''))}</td>"
            f'<td class="result">{"PASS" if passed else "FAIL"}</td>'
            f'<td class="num">{_fmt(gate.get("value"))}</td>'
            f'<td class="num">{_fmt(gate.get("limit"))}</td>'
            f"<td>{_h(gate.get('detail', ''))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("gate", "result", "value", "limit", "detail"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# --------------------------------------------------------------------------- files


def write_report(directory: Path, name: str, html: str, plots: Mapping[str, bytes]) -> Path:
    """Write `<directory>/<name>.html` and `<directory>/<name>_plots/<key>.png`, so the
    plots can also be logged as separate artifacts (MLflow) next to the report."""
    _check_file_name(name)
    for key in plots:
        _check_file_name(key)
    directory = Path(directory)
    plot_dir = directory / f"{name}_plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for key, png in plots.items():
        (plot_dir / f"{key}.png").write_bytes(png)
    html_path = directory / f"{name}.html"
    html_path.write_text(html, encoding="utf-8")
    return html_path


def _check_file_name(name: str) -> None:
    # names become file names: refuse anything that could escape the report directory
    if not name or name in {".", ".."} or Path(name).name != name or "\\" in name:
        raise ValueError(f"not a plain file name: {name!r}")
