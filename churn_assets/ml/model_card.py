"""The model card: one document per registered model version saying what it was trained
on, how it was chosen, how well it does (with intervals), for whom, what it is worth and
where it should not be trusted. Built as a JSON-able dict (logged with the model) and
rendered as Markdown (shown in Dagster and MLflow)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_assets.ml.fairness import MIN_GROUP_ROWS
from churn_assets.ml.metrics import METRIC_ORDER

CARD_VERSION = 1
MIN_HOLDOUT_CHURNERS = 100  # below this, bootstrap intervals are too wide to compare models
WIDE_INTERVAL = 0.1  # a 95% interval wider than this is called out
# Metrics not on a 0..1 scale: their interval width is judged relative to the value.
RELATIVE_WIDTH_METRICS = frozenset({"top_decile_lift"})
MIN_CALIBRATION_ROWS = 1_000  # isotonic steps on fewer rows are coarse and noisy
NA = "n/a"


@dataclass(frozen=True)
class ModelCardInputs:
    """Everything the card states, gathered by the training and evaluation assets."""

    model_name: str
    version: str
    created_at: str
    training: dict[str, Any]  # fingerprint, rows, churners, customers, as_of_from, as_of_to
    churn_definition: dict[str, Any]
    features: list[str]
    feature_docs: dict[str, str]  # column -> description, from the dbt manifest
    dbt_docs_url: str
    dbt_manifest_hash: str
    code_version: str
    search: dict[str, Any]  # families, trials, search_space, best_per_family, chosen, parsimony
    selection: dict[str, Any]  # kept, dropped, stability
    calibration: dict[str, Any]  # method, fold rows
    evaluation: dict[str, Any]  # holdout, metrics, threshold, business, fairness, oracle, gates
    synthetic: bool


# --------------------------------------------------------------------------- values


def finite_number(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / inf / non-numeric values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """Recursively turn a value into strict JSON: NaN/inf become None (JSON has no NaN),
    numpy scalars and arrays become Python numbers and lists, dates become ISO strings and
    anything else unknown its str(), so json.dumps(..., allow_nan=False) always succeeds."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else []


# --------------------------------------------------------------------------- known limits


def _synthetic_limits(inputs: ModelCardInputs) -> list[str]:
    if not inputs.synthetic:
        return []
    return [
        "Trained and evaluated on synthetic data from the built-in generator: the metrics "
        "describe the generator, not real customers, until the model is evaluated on them."
    ]


def _period_limits(training: Mapping[str, Any]) -> list[str]:
    start, end = training.get("as_of_from"), training.get("as_of_to")
    if not start or not end:
        return ["The training period (as_of range) was not recorded."]
    return [
        f"Training examples cover as_of dates {start} to {end}; scoring later dates is "
        "extrapolation, and changes in product, pricing or customer mix after that period "
        "are not in the data."
    ]


def _holdout_limits(holdout: Mapping[str, Any]) -> list[str]:
    rows, churners = finite_number(holdout.get("rows")), finite_number(holdout.get("churners"))
    if rows is None or churners is None:
        return ["The holdout size was not recorded, so the metrics' reliability is unknown."]
    limits = [
        f"Metrics come from a time-later holdout of {rows:,.0f} rows with {churners:,.0f} "
        f"churners (as_of {holdout.get('as_of_from', NA)} to {holdout.get('as_of_to', NA)})."
    ]
    if churners < MIN_HOLDOUT_CHURNERS:
        limits.append(
            f"Only {churners:,.0f} churners in the holdout (fewer than {MIN_HOLDOUT_CHURNERS}): "
            "intervals are wide and small differences between models are not meaningful."
        )
    return limits


def _interval_width(name: str, metric: Mapping[str, Any]) -> float | None:
    low, high = finite_number(metric.get("ci_low")), finite_number(metric.get("ci_high"))
    if low is None or high is None:
        return None
    width = high - low
    if name in RELATIVE_WIDTH_METRICS:
        value = finite_number(metric.get("value"))
        return width / abs(value) if value else None
    return width


def _interval_limits(metrics: Mapping[str, Any]) -> list[str]:
    limits = []
    for name, metric in metrics.items():
        metric = _mapping(metric)
        width = _interval_width(name, metric)
        if width is not None and width > WIDE_INTERVAL:
            scale = " (relative to the value)" if name in RELATIVE_WIDTH_METRICS else ""
            limits.append(
                f"{name} is uncertain: 95% interval [{_fmt(metric.get('ci_low'))}, "
                f"{_fmt(metric.get('ci_high'))}] is wider than {WIDE_INTERVAL}{scale}."
            )
    return limits


def _fairness_limits(fairness: Mapping[str, Any]) -> list[str]:
    limits = []
    for segment, report in fairness.items():
        groups = [_mapping(group) for group in _sequence(_mapping(report).get("groups"))]
        small = [g for g in groups if (finite_number(g.get("rows")) or 0) < MIN_GROUP_ROWS]
        if small:
            listed = ", ".join(f"{g.get('group')} ({_fmt(g.get('rows'))} rows)" for g in small)
            limits.append(
                f"Fairness by {segment}: groups below {MIN_GROUP_ROWS} rows are reported but "
                f"not covered by the gap checks: {listed}."
            )
        if len(groups) - len(small) < 2:
            limits.append(
                f"Fairness by {segment}: fewer than two groups have {MIN_GROUP_ROWS}+ rows, "
                "so no gap between groups is checked."
            )
    return limits


def _calibration_rows(calibration: Mapping[str, Any]) -> float | None:
    """Rows the calibrator was fitted on; with several folds, the smallest one."""
    for key in ("fold_rows", "rows", "fold rows"):
        value = calibration.get(key)
        if isinstance(value, list | tuple):
            sizes = [n for n in (finite_number(v) for v in value) if n is not None]
            return min(sizes) if sizes else None
        if finite_number(value) is not None:
            return finite_number(value)
    return None


def _calibration_limits(calibration: Mapping[str, Any]) -> list[str]:
    method = calibration.get("method") or "unknown method"
    rows = _calibration_rows(calibration)
    if rows is None:
        return [f"Calibration ({method}): the fold size was not recorded."]
    limit = f"Probabilities are calibrated ({method}) on a fold of {rows:,.0f} rows"
    if rows < MIN_CALIBRATION_ROWS:
        return [f"{limit}, fewer than {MIN_CALIBRATION_ROWS:,}: calibrated values are coarse."]
    return [f"{limit}; calibration holds only while the churn rate stays near that fold's."]


def _oracle_limits(oracle: Mapping[str, Any]) -> list[str]:
    if not oracle:
        return []
    return [
        f"The true churn probabilities reach ROC AUC {_fmt(oracle.get('roc_auc'))} and Brier "
        f"{_fmt(oracle.get('brier'))}; the model trails by {_fmt(oracle.get('auc_gap'))} AUC "
        f"and {_fmt(oracle.get('brier_gap'))} Brier: room that better features or models "
        "could still take."
    ]


def _gate_limits(gates: Sequence[Any]) -> list[str]:
    limits = []
    for gate in (_mapping(g) for g in gates):
        if _gate_failed(gate):
            limits.append(
                f"Quality gate '{gate.get('name')}' failed: value {_fmt(gate.get('value'))} "
                f"against limit {_fmt(gate.get('limit'))}"
                + (f" ({gate['detail']})." if gate.get("detail") else ".")
            )
    return limits


def _documentation_limits(features: Sequence[str], docs: Mapping[str, str]) -> list[str]:
    undocumented = [name for name in features if not docs.get(name)]
    if not undocumented:
        return []
    shown = ", ".join(undocumented[:10]) + (" ..." if len(undocumented) > 10 else "")
    return [f"{len(undocumented)} feature(s) have no description in the dbt docs: {shown}."]


def _threshold_limits(evaluation: Mapping[str, Any]) -> list[str]:
    threshold = finite_number(evaluation.get("threshold"))
    economics = _mapping(_mapping(evaluation.get("business")).get("economics"))
    if threshold is None or not economics:
        return []
    terms = ", ".join(f"{key} {_fmt(value)}" for key, value in economics.items())
    return [
        f"The decision threshold {_fmt(threshold)} is tuned to the campaign economics "
        f"({terms}); other offers or costs need a different threshold."
    ]


def _search_limits(search: Mapping[str, Any]) -> list[str]:
    if search.get("stopped_by") != "time budget":
        return []
    budget = _mapping(search.get("budget"))
    return [
        f"The search stopped at its time budget ({_fmt(budget.get('timeout_seconds'))} s) "
        f"after {_fmt(search.get('trials'))} of {_fmt(budget.get('trials'))} trials, so "
        "searching again may choose another model; `churn reproduce` retrains this one "
        "from its recorded choice."
    ]


def known_limits(inputs: ModelCardInputs) -> list[str]:
    """Where this particular model should not be trusted, derived from its own numbers."""
    evaluation = _mapping(inputs.evaluation)
    return [
        *_synthetic_limits(inputs),
        *_period_limits(_mapping(inputs.training)),
        *_holdout_limits(_mapping(evaluation.get("holdout"))),
        *_interval_limits(_mapping(evaluation.get("metrics"))),
        *_fairness_limits(_mapping(evaluation.get("fairness"))),
        *_calibration_limits(_mapping(inputs.calibration)),
        *_oracle_limits(_mapping(evaluation.get("oracle"))),
        *_threshold_limits(evaluation),
        *_documentation_limits(inputs.features, inputs.feature_docs),
        *_gate_limits(_sequence(evaluation.get("gates"))),
        *_search_limits(_mapping(inputs.search)),
    ]


# --------------------------------------------------------------------------- card


def _intended_use(churn_definition: Mapping[str, Any]) -> dict[str, Any]:
    kind = churn_definition.get("kind", "configured")
    horizon = churn_definition.get("horizon_days", NA)
    return {
        "primary": (
            f"Rank current customers by the probability that they churn ({kind} definition) "
            f"within {horizon} days after an as_of date, to choose whom to offer a "
            "retention incentive."
        ),
        "users": "Retention and customer-success teams, through batch scores and the API.",
        "out_of_scope": [
            "Decisions that deny service or change an individual's price or credit.",
            "Customers or markets unlike the training population, or dates far past it.",
            "Explaining why a given customer will churn (scores are associations, not causes).",
        ],
    }


def build_model_card(inputs: ModelCardInputs) -> dict[str, Any]:
    """The card as a strictly JSON-able dict (NaN already replaced by None)."""
    features = [
        {
            "name": name,
            "description": inputs.feature_docs.get(name) or None,
            "dbt_docs_url": inputs.dbt_docs_url or None,
        }
        for name in inputs.features
    ]
    card = {
        "card_version": CARD_VERSION,
        "model_details": {
            "name": inputs.model_name,
            "version": inputs.version,
            "created_at": inputs.created_at,
            "code_version": inputs.code_version,
            "dbt_manifest_hash": inputs.dbt_manifest_hash,
            "synthetic_data": inputs.synthetic,
        },
        "intended_use": _intended_use(_mapping(inputs.churn_definition)),
        "training_data": {**inputs.training, "churn_definition": inputs.churn_definition},
        "features": features,
        "dbt_docs_url": inputs.dbt_docs_url,
        "search": inputs.search,
        "selection": inputs.selection,
        "calibration": inputs.calibration,
        "evaluation": inputs.evaluation,
        "known_limits": known_limits(inputs),
    }
    safe: dict[str, Any] = json_safe(card)
    return safe


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any) -> str:
    """Human-readable value; missing, NaN and inf all read "n/a"."""
    if value is None:
        return NA
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return NA
        return f"{number:,.0f}" if abs(number) >= 1_000 else f"{number:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return f"`{json.dumps(json_safe(value), sort_keys=True, default=str)}`"
    text = str(value)
    return text if text else NA


def _money(value: Any) -> str:
    number = finite_number(value)
    return NA if number is None else f"{number:,.2f}"


def _cell(value: Any) -> str:
    """A table cell: a pipe or a line break in the text would end the cell or the row."""
    text = value if isinstance(value, str) else _fmt(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines if len(lines) > 2 else ["_none recorded_"]


def _key_values(mapping: Mapping[str, Any]) -> list[str]:
    return _table(["", "value"], [(str(key), value) for key, value in mapping.items()])


def _model_details(card: Mapping[str, Any]) -> list[str]:
    details = _mapping(card.get("model_details"))
    return [
        "## Model details",
        "",
        *_table(
            ["", "value"],
            [
                ("name", details.get("name")),
                ("version", details.get("version")),
                ("created", details.get("created_at")),
                ("code version", details.get("code_version")),
                ("dbt manifest hash", details.get("dbt_manifest_hash")),
                ("synthetic data", details.get("synthetic_data")),
            ],
        ),
    ]


def _intended_use_section(card: Mapping[str, Any]) -> list[str]:
    use = _mapping(card.get("intended_use"))
    lines = ["## Intended use", "", _fmt(use.get("primary"))]
    if use.get("users"):
        lines += ["", f"Users: {_fmt(use.get('users'))}"]
    out_of_scope = _sequence(use.get("out_of_scope"))
    if out_of_scope:
        lines += ["", "Out of scope:", "", *(f"- {_fmt(item)}" for item in out_of_scope)]
    return lines


def _training_data(card: Mapping[str, Any]) -> list[str]:
    training = _mapping(card.get("training_data"))
    rows = [
        ("fingerprint", training.get("fingerprint")),
        ("rows", training.get("rows")),
        ("churners", training.get("churners")),
        ("customers", training.get("customers")),
        ("as_of from", training.get("as_of_from")),
        ("as_of to", training.get("as_of_to")),
    ]
    definition = _mapping(training.get("churn_definition"))
    rows += [(f"churn definition: {key}", value) for key, value in definition.items()]
    return ["## Training data", "", *_table(["", "value"], rows)]


def _features(card: Mapping[str, Any]) -> list[str]:
    rows = []
    for feature in (_mapping(f) for f in _sequence(card.get("features"))):
        url = feature.get("dbt_docs_url")
        link = f"[dbt docs]({url})" if url else NA
        rows.append((feature.get("name"), feature.get("description") or NA, link))
    return ["## Features", "", *_table(["feature", "description", "documentation"], rows)]


def _search(card: Mapping[str, Any]) -> list[str]:
    search = _mapping(card.get("search"))
    families = _sequence(search.get("families"))
    lines = [
        "## Search",
        "",
        f"Families: {', '.join(map(str, families)) or NA}; trials: {_fmt(search.get('trials'))}.",
        "",
        "Search space:",
        "",
    ]
    space = search.get("search_space")
    if isinstance(space, Mapping) and space:
        lines += [f"- {family}: {_fmt(spec)}" for family, spec in space.items()]
    else:
        lines.append(f"- {_fmt(space)}")
    # training's leaderboard: one row per family, best first
    best = [_mapping(row) for row in _sequence(search.get("best_per_family"))]
    lines += ["", "Best trial per family:", ""]
    lines += _table(
        ["family", "trial", "validation AUC", "servable", "params"],
        [
            (
                r.get("family"),
                r.get("trial"),
                r.get("validation_auc"),
                r.get("servable"),
                r.get("params"),
            )
            for r in best
        ],
    )
    chosen = _mapping(search.get("chosen"))
    parsimony = _mapping(search.get("parsimony"))
    lines += [
        "",
        f"Chosen: **{_fmt(chosen.get('family'))}** with validation AUC "
        f"{_fmt(chosen.get('validation_auc'))}, params {_fmt(chosen.get('params'))}.",
        "",
        f"Parsimony: rule {_fmt(parsimony.get('rule'))}, tolerance "
        f"{_fmt(parsimony.get('tolerance'))}; decision: {_fmt(parsimony.get('decision'))}.",
    ]
    return lines


def _named_rows(value: Any) -> list[tuple[Any, Any]]:
    """Rows for a name -> detail table from a dict, a list of names or a list of dicts."""
    if isinstance(value, Mapping):
        return list(value.items())
    rows: list[tuple[Any, Any]] = []
    for item in _sequence(value):
        if isinstance(item, Mapping):
            detail = {k: v for k, v in item.items() if k not in ("name", "feature")}
            rows.append((item.get("name", item.get("feature")), detail or None))
        else:
            rows.append((item, None))
    return rows


def _selection(card: Mapping[str, Any]) -> list[str]:
    selection = _mapping(card.get("selection"))
    kept = _named_rows(selection.get("kept"))
    dropped = _named_rows(selection.get("dropped"))
    kept_names = ", ".join(_fmt(name) for name, _ in kept) or NA
    lines = ["## Feature selection", "", f"Kept {len(kept)}: {kept_names}.", ""]
    lines += [f"Dropped {len(dropped)}:", "", *_table(["feature", "reason"], dropped)]
    stability = selection.get("stability")
    if isinstance(stability, Mapping):
        lines += ["", "Stability:", "", *_key_values(stability)]
    elif stability is not None:
        lines += ["", f"Stability: {_fmt(stability)}"]
    return lines


def _calibration(card: Mapping[str, Any]) -> list[str]:
    return ["## Calibration", "", *_key_values(_mapping(card.get("calibration")))]


def _metrics(evaluation: Mapping[str, Any]) -> list[str]:
    metrics = _mapping(evaluation.get("metrics"))
    names = [m for m in METRIC_ORDER if m in metrics] + [
        m for m in metrics if m not in METRIC_ORDER
    ]
    rows = []
    for name in names:
        metric = _mapping(metrics[name])
        rows.append((name, metric.get("value"), metric.get("ci_low"), metric.get("ci_high")))
    holdout = _mapping(evaluation.get("holdout"))
    return [
        "## Metrics",
        "",
        f"Holdout: {_fmt(holdout.get('rows'))} rows, {_fmt(holdout.get('churners'))} churners, "
        f"as_of {_fmt(holdout.get('as_of_from'))} to {_fmt(holdout.get('as_of_to'))}; "
        f"threshold {_fmt(evaluation.get('threshold'))}.",
        "",
        *_table(["metric", "value", "95% low", "95% high"], rows),
    ]


def _business(evaluation: Mapping[str, Any]) -> list[str]:
    business = _mapping(evaluation.get("business"))
    economics = _mapping(business.get("economics"))
    rows: list[tuple[str, Any]] = [("revenue at risk", _money(business.get("revenue_at_risk")))]
    for label, key in (
        ("at the operating threshold", "operating_campaign"),
        ("best in hindsight (upper bound)", "campaign"),
    ):
        campaign = _mapping(business.get(key))
        rows += [
            (f"campaign threshold, {label}", campaign.get("threshold")),
            (f"customers contacted, {label}", campaign.get("contacted")),
            (f"saved revenue, {label}", _money(campaign.get("saved_revenue"))),
            (f"campaign cost, {label}", _money(campaign.get("campaign_cost"))),
            (f"net value, {label}", _money(campaign.get("net_value"))),
        ]
    rows += [(f"assumed {key}", value) for key, value in economics.items()]
    return ["## Business value", "", *_table(["", "value"], rows)]


def _fairness(evaluation: Mapping[str, Any]) -> list[str]:
    fairness = _mapping(evaluation.get("fairness"))
    lines = ["## Fairness", ""]
    if not fairness:
        return [*lines, "_no segments evaluated_"]
    headers = ["group", "rows", "churn rate", "AUC", "selection rate", "true positive rate"]
    for segment, report in fairness.items():
        groups = [_mapping(g) for g in _sequence(_mapping(report).get("groups"))]
        rows = [
            (
                g.get("group"),
                g.get("rows"),
                g.get("churn_rate"),
                g.get("auc"),
                g.get("selection_rate"),
                g.get("true_positive_rate"),
            )
            for g in groups
        ]
        gaps = _mapping(_mapping(report).get("gaps"))
        gap_text = ", ".join(f"{k} {_fmt(v)}" for k, v in gaps.items()) or NA
        lines += [f"### By {segment}", "", *_table(headers, rows), ""]
        lines += [f"Largest gaps (groups with {MIN_GROUP_ROWS}+ rows): {gap_text}.", ""]
    return lines[:-1]


def _oracle(evaluation: Mapping[str, Any]) -> list[str]:
    oracle = _mapping(evaluation.get("oracle"))
    if not oracle:
        return ["## Oracle comparison", "", "No oracle: the true churn probabilities are unknown."]
    return [
        "## Oracle comparison",
        "",
        "The oracle scores with the true churn probabilities (known for synthetic data).",
        "",
        *_key_values(oracle),
    ]


def _gate_failed(gate: Mapping[str, Any]) -> bool:
    """Only an explicit False fails (numpy bools included); a missing result is n/a."""
    passed = gate.get("passed")
    return passed is not None and not bool(passed)


def _gate_result(gate: Mapping[str, Any]) -> str:
    if gate.get("passed") is None:
        return NA
    return "FAIL" if _gate_failed(gate) else "pass"


def _gates(evaluation: Mapping[str, Any]) -> list[str]:
    rows = [
        (
            gate.get("name"),
            _gate_result(gate),
            gate.get("value"),
            gate.get("limit"),
            gate.get("detail"),
        )
        for gate in (_mapping(g) for g in _sequence(evaluation.get("gates")))
    ]
    return ["## Quality gates", "", *_table(["gate", "result", "value", "limit", "detail"], rows)]


def _limits(card: Mapping[str, Any]) -> list[str]:
    limits = _sequence(card.get("known_limits"))
    return ["## Known limits", "", *([f"- {_fmt(item)}" for item in limits] or ["_none_"])]


def render_model_card_markdown(card: Mapping[str, Any]) -> str:
    """Markdown for people; tolerant of missing keys, None and NaN (shown as n/a)."""
    details = _mapping(card.get("model_details"))
    evaluation = _mapping(card.get("evaluation"))
    sections = [
        [f"# Model card: {_fmt(details.get('name'))} version {_fmt(details.get('version'))}"],
        _model_details(card),
        _intended_use_section(card),
        _training_data(card),
        _features(card),
        _search(card),
        _selection(card),
        _calibration(card),
        _metrics(evaluation),
        _business(evaluation),
        _fairness(evaluation),
        _oracle(evaluation),
        _gates(evaluation),
        _limits(card),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write_model_card(
    card: Mapping[str, Any], directory: Path, stem: str = "model_card"
) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.json` (strict JSON: NaN/inf as null)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    markdown_path = directory / f"{stem}.md"
    json_path = directory / f"{stem}.json"
    markdown_path.write_text(render_model_card_markdown(card))
    json_path.write_text(json.dumps(json_safe(card), indent=2, allow_nan=False) + "\n")
    return markdown_path, json_path
