"""The model card: strict JSON, every section in Markdown, limits derived from the numbers."""

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from churn_assets.ml.lineage import dbt_docs_link
from churn_assets.ml.model_card import (
    ModelCardInputs,
    build_model_card,
    known_limits,
    render_model_card_markdown,
    write_model_card,
)

SECTIONS = (
    "## Model details",
    "## Intended use",
    "## Training data",
    "## Features",
    "## Search",
    "## Feature selection",
    "## Calibration",
    "## Metrics",
    "## Business value",
    "## Fairness",
    "## Oracle comparison",
    "## Quality gates",
    "## Known limits",
)


def _metric(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _evaluation(churners: int = 380) -> dict[str, Any]:
    return {
        "model_name": "churn-model",
        "version": "3",
        "holdout": {
            "rows": 9000,
            "churners": churners,
            "as_of_from": "2025-10-01",
            "as_of_to": "2025-10-31",
        },
        "metrics": {
            "roc_auc": _metric(0.87, 0.85, 0.89),
            "pr_auc": _metric(0.41, 0.30, 0.52),  # wide: 0.22
            "brier": _metric(0.05, 0.045, 0.055),
            "ece": _metric(float("nan"), float("nan"), float("nan")),
            "top_decile_lift": _metric(4.0, 3.9, 4.1),  # narrow relative to its scale
        },
        "threshold": 0.21,
        "business": {
            "revenue_at_risk": 123456.5,
            "economics": {"offer_cost": 20.0, "success_rate": 0.3, "value_months": 12.0},
            "campaign": {
                "threshold": 0.21,
                "contacted": 800,
                "saved_revenue": 50000.0,
                "campaign_cost": 16000.0,
                "net_value": 34000.0,
            },
            "operating_campaign": {
                "threshold": 0.25,
                "contacted": 640,
                "saved_revenue": 40000.0,
                "campaign_cost": 12800.0,
                "net_value": 27200.0,
            },
        },
        "fairness": {
            "plan": {
                "groups": [
                    {
                        "group": "pro",
                        "rows": 5000,
                        "churn_rate": 0.03,
                        "auc": 0.88,
                        "selection_rate": 0.1,
                        "true_positive_rate": 0.6,
                    },
                    {
                        "group": "basic",
                        "rows": 3990,
                        "churn_rate": 0.05,
                        "auc": 0.86,
                        "selection_rate": 0.12,
                        "true_positive_rate": 0.62,
                    },
                    {
                        "group": "legacy",
                        "rows": 10,
                        "churn_rate": 0.0,
                        "auc": float("nan"),
                        "selection_rate": 0.0,
                        "true_positive_rate": float("nan"),
                    },
                ],
                "gaps": {"auc": 0.02, "selection_rate": 0.02, "true_positive_rate": 0.02},
            }
        },
        "oracle": {"roc_auc": 0.9, "brier": 0.045, "auc_gap": 0.03, "brier_gap": 0.005},
        "gates": [
            {"name": "min_roc_auc", "passed": True, "value": 0.87, "limit": 0.7, "detail": ""},
            {
                "name": "max_ece",
                "passed": False,
                "value": float("nan"),
                "limit": 0.05,
                "detail": "ECE undefined",
            },
        ],
    }


def _inputs(**changes: Any) -> ModelCardInputs:
    inputs = ModelCardInputs(
        model_name="churn-model",
        version="3",
        created_at="2025-11-02T10:00:00+00:00",
        training={
            "fingerprint": "ab" * 32,
            "rows": 60000,
            "churners": 2500,
            "customers": 5000,
            "as_of_from": "2025-01-31",
            "as_of_to": "2025-08-31",
        },
        churn_definition={"kind": "contractual", "horizon_days": 30},
        features=["tenure_days", "plan", "logins_30d"],
        feature_docs={"tenure_days": "Days since signup | at as_of.", "plan": "Current plan."},
        dbt_docs_url=dbt_docs_link("customer_features", Path("var/reports")),
        dbt_manifest_hash="cd" * 32,
        code_version="0123abc-dirty",
        search={
            "families": ["logistic", "lightgbm"],
            "trials": 40,
            "search_space": {"lightgbm": {"num_leaves": [8, 128]}, "logistic": {"C": [0.01, 10]}},
            # the shape TrainedCandidate.search_summary() gives
            "best_per_family": [
                {
                    "family": "lightgbm",
                    "trial": 3,
                    "validation_auc": 0.87,
                    "servable": True,
                    "params": {"family": "lightgbm", "num_leaves": 31},
                },
                {
                    "family": "logistic",
                    "trial": 1,
                    "validation_auc": 0.86,
                    "servable": False,
                    "params": {"family": "logistic", "C": 1.0},
                },
            ],
            "chosen": {"family": "logistic", "params": {"C": 1.0}, "validation_auc": 0.86},
            "parsimony": {
                "rule": "simplest within tolerance",
                "tolerance": 0.01,
                "decision": "logistic is within 0.01 AUC of lightgbm",
            },
        },
        selection={
            "kept": ["tenure_days", "plan", "logins_30d"],
            "dropped": {"seats_7d": "unstable across folds"},
            "stability": {"tenure_days": 1.0, "plan": 0.8},
        },
        calibration={"method": "isotonic", "fold_rows": 400},
        evaluation=_evaluation(),
        synthetic=True,
    )
    return dataclasses.replace(inputs, **changes)


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def test_card_json_is_strictly_valid(tmp_path: Path):
    card = build_model_card(_inputs())
    json.loads(json.dumps(card, allow_nan=False), parse_constant=_reject_constant)
    markdown_path, json_path = write_model_card(card, tmp_path / "cards", stem="v3")
    assert markdown_path == tmp_path / "cards" / "v3.md"
    assert json_path == tmp_path / "cards" / "v3.json"
    loaded = json.loads(json_path.read_text(), parse_constant=_reject_constant)
    assert loaded["evaluation"]["metrics"]["ece"]["value"] is None
    assert loaded["model_details"]["dbt_manifest_hash"] == "cd" * 32
    assert markdown_path.read_text() == render_model_card_markdown(card)


def test_write_model_card_scrubs_nan_from_a_hand_made_card(tmp_path: Path):
    _, json_path = write_model_card({"x": [float("inf"), {"y": math.nan}]}, tmp_path)
    assert json.loads(json_path.read_text(), parse_constant=_reject_constant) == {
        "x": [None, {"y": None}]
    }


def test_markdown_has_every_section_and_the_key_facts():
    markdown = render_model_card_markdown(build_model_card(_inputs()))
    positions = [markdown.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    for fact in ("0123abc-dirty", "cd" * 32, "ab" * 32, "2025-01-31", "contractual"):
        assert fact in markdown
    assert "logistic is within 0.01 AUC of lightgbm" in markdown
    leaderboard = markdown[markdown.index("Best trial per family:") :].splitlines()[2:6]
    assert [_cells(line)[:4] for line in leaderboard if line.startswith("| lightgbm")] == [
        [" lightgbm ", " 3 ", " 0.87 ", " yes "]
    ], leaderboard
    assert "#!/model/model.churn_lakehouse.customer_features" in markdown
    assert "| max_ece | FAIL |" in markdown
    assert "123,456.50" in markdown  # revenue at risk
    assert "| net value, at the operating threshold | 27,200.00 |" in markdown
    assert "| net value, best in hindsight (upper bound) | 34,000.00 |" in markdown
    assert "### By plan" in markdown


def _cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_pipes_in_descriptions_do_not_break_tables():
    markdown = render_model_card_markdown(build_model_card(_inputs()))
    row = next(line for line in markdown.splitlines() if line.startswith("| tenure_days |"))
    header = next(line for line in markdown.splitlines() if line.startswith("| feature |"))
    assert len(_cells(row)) == len(_cells(header)) == 3
    assert r"Days since signup \| at as_of." in row


def test_missing_values_render_as_na():
    markdown = render_model_card_markdown(build_model_card(_inputs()))
    ece_row = next(line for line in markdown.splitlines() if line.startswith("| ece |"))
    assert _cells(ece_row)[1:] == [" n/a ", " n/a ", " n/a "]
    logins = next(line for line in markdown.splitlines() if line.startswith("| logins_30d |"))
    assert _cells(logins)[1] == " n/a "  # not documented in dbt
    assert "nan" not in markdown.lower().replace("n/a", "")


@pytest.mark.parametrize("card", [{}, {"evaluation": {"oracle": None, "fairness": {}}}])
def test_markdown_survives_empty_cards(card: dict[str, Any]):
    markdown = render_model_card_markdown(card)
    for section in SECTIONS:
        assert section in markdown
    assert "No oracle" in markdown


def test_markdown_survives_a_card_full_of_nones():
    card = build_model_card(
        _inputs(
            training={},
            search={"best_per_family": None, "chosen": None},
            selection={"kept": None, "dropped": [{"name": "x", "reason": None}]},
            calibration={},
            evaluation={"metrics": {"roc_auc": None}, "gates": [None], "fairness": None},
        )
    )
    markdown = render_model_card_markdown(card)
    assert "## Known limits" in markdown


def test_known_limits_come_from_the_numbers():
    limits = "\n".join(known_limits(_inputs()))
    assert "synthetic" in limits
    assert "2025-01-31 to 2025-08-31" in limits and "extrapolation" in limits
    assert "9,000 rows with 380 churners" in limits
    assert "Only" not in limits  # 380 churners is enough
    assert "pr_auc" in limits and "roc_auc is uncertain" not in limits
    assert "top_decile_lift" not in limits  # 0.2 wide on a value of 4
    assert "legacy (10 rows)" in limits and "basic" not in limits
    assert "400 rows" in limits  # small calibration fold
    assert "0.03 AUC" in limits  # oracle gap
    assert "'max_ece' failed" in limits and "min_roc_auc" not in limits
    assert "logins_30d" in limits  # undocumented feature


def test_numpy_booleans_count_as_gate_results():
    evaluation = _evaluation()
    evaluation["gates"] = [{"name": "np_gate", "passed": np.False_, "value": np.float64(0.5)}]
    inputs = _inputs(evaluation=evaluation)
    assert any("'np_gate' failed" in limit for limit in known_limits(inputs))
    assert "| np_gate | FAIL | 0.5 |" in render_model_card_markdown(build_model_card(inputs))


def test_few_churners_and_no_oracle_change_the_limits():
    evaluation = _evaluation(churners=42)
    evaluation["oracle"] = None
    limits = "\n".join(known_limits(_inputs(evaluation=evaluation, synthetic=False)))
    assert "Only 42 churners" in limits and "wide" in limits
    assert "synthetic" not in limits
    assert "true churn probabilities" not in limits


def test_card_carries_the_limits_and_lineage():
    card = build_model_card(_inputs())
    assert card["known_limits"] == known_limits(_inputs())
    assert card["training_data"]["churn_definition"]["horizon_days"] == 30
    assert card["features"][0] == {
        "name": "tenure_days",
        "description": "Days since signup | at as_of.",
        "dbt_docs_url": _inputs().dbt_docs_url,
    }


def test_a_search_the_clock_stopped_is_a_known_limit():
    search = {"trials": 21, "budget": {"trials": 30, "timeout_seconds": 300.0}}
    stopped = _inputs(search={**search, "stopped_by": "time budget"})
    (limit,) = [x for x in known_limits(stopped) if "time budget" in x]
    assert "after 21 of 30 trials" in limit and "churn reproduce" in limit
    finished = _inputs(search={**search, "trials": 30, "stopped_by": "trial budget"})
    assert not [x for x in known_limits(finished) if "time budget" in x]
