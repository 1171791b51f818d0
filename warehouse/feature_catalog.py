"""The feature catalog: every feature column of the dbt marts, its type and meaning.

This is the one place feature names and descriptions are written. It renders the
marts' schema file (`dbt_project/models/marts/_marts.yml`, so `dbt docs` shows it as the
catalog) and gives model code the feature order. A test keeps the rendered file, the
dbt vars and this module in step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FAMILIES: dict[str, str] = {
    "login": "logins (value: logins that day)",
    "usage": "product feature usage (value: minutes)",
    "seats": "weekly seat-activity readings (value: seats active)",
    "invoice": "paid invoices or purchases (value: amount paid)",
    "payment_failure": "failed payments (value: amount that failed)",
    "ticket": "support tickets opened (value: severity 1-4)",
    "satisfaction": "ticket satisfaction ratings (value: score 1-5)",
}
WINDOWS: tuple[int, ...] = (7, 30, 90, 180)
WINDOW_RULE = "over the {w} days before as_of_date (as_of_date itself excluded)"
# Exponentially weighted sums of the families carrying the engagement signal: a fixed
# window weighs a day 30 days back as much as yesterday, so it lags an engagement level
# that drifts from week to week; several half-lives let a model weigh recency itself.
EWM_FAMILIES: tuple[str, ...] = ("login", "usage")
EWM_HALF_LIVES: tuple[int, ...] = (3, 7, 14, 30)
EWM_RULE = (
    "over the 180 days before as_of_date, each day weighted 0.5^((age - 1) / {h}) where "
    "age is its distance in days from as_of_date (the day before as_of_date weighs 1)"
)
# Families whose recent mean reading is compared with the customer's own peak, so a
# reading is read against what this customer usually reaches (seats: share in use).
PEAK_FAMILIES: tuple[str, ...] = ("seats",)
PEAK_WINDOWS: tuple[int, ...] = (7, 30)  # each must be one of WINDOWS


@dataclass(frozen=True)
class Feature:
    name: str
    data_type: str  # as declared in the dbt contract
    description: str


def behavioural_features() -> list[Feature]:
    out: list[Feature] = []
    for family, what in FAMILIES.items():
        for w in WINDOWS:
            rule = WINDOW_RULE.format(w=w)
            out.append(Feature(f"{family}_count_{w}d", "bigint", f"Number of {what} {rule}."))
            out.append(
                Feature(
                    f"{family}_value_{w}d",
                    "double precision",
                    f"Sum of the value of {what} {rule}.",
                )
            )
        out.append(
            Feature(
                f"{family}_count_trend_30d",
                "bigint",
                f"Count of {what} in the last 30 days minus the count in the 30 days before those.",
            )
        )
        out.append(
            Feature(
                f"{family}_days_since_last",
                "integer",
                f"Days from the latest of {what} to as_of_date; null when none in the last 180 days.",
            )
        )
    out += [
        Feature(
            "active_days_7d",
            "bigint",
            "Days with any activity event (CHURN_ACTIVITY_EVENT_TYPES) in the last 7 days.",
        ),
        Feature("active_days_30d", "bigint", "Days with any activity event in the last 30 days."),
        Feature("active_days_90d", "bigint", "Days with any activity event in the last 90 days."),
        Feature(
            "activity_trend_30d",
            "bigint",
            "Active days in the last 30 days minus active days in the 30 days before those.",
        ),
    ]
    for h in EWM_HALF_LIVES:
        rule = EWM_RULE.format(h=h)
        for family in EWM_FAMILIES:
            out.append(
                Feature(
                    f"{family}_value_ewm{h}d",
                    "double precision",
                    f"Exponentially weighted sum (half-life {h} days) of the value of "
                    f"{FAMILIES[family]} {rule}.",
                )
            )
        out.append(
            Feature(
                f"active_days_ewm{h}d",
                "double precision",
                f"Exponentially weighted count (half-life {h} days) of days with any activity "
                f"event {rule}.",
            )
        )
    for family in PEAK_FAMILIES:
        for w in PEAK_WINDOWS:
            out.append(
                Feature(
                    f"{family}_mean_vs_peak_{w}d",
                    "double precision",
                    f"Mean value per event of {FAMILIES[family]} over the {w} days before "
                    "as_of_date, divided by the highest daily mean value per event in the 180 "
                    "days before as_of_date; null without events in the window or a positive peak.",
                )
            )
    out += [
        Feature(
            "avg_ticket_severity_90d",
            "double precision",
            "Mean severity of tickets opened in the last 90 days; null without tickets.",
        ),
        Feature(
            "avg_satisfaction_90d",
            "double precision",
            "Mean satisfaction score given in the last 90 days; null without ratings.",
        ),
        Feature(
            "payment_failure_rate_90d",
            "double precision",
            "Failed payments / (paid invoices + failed payments) in the last 90 days.",
        ),
        Feature("tenure_days", "integer", "Days from signup to as_of_date."),
        Feature(
            "current_plan",
            "varchar",
            "Plan of the subscription in force at as_of_date; null without one.",
        ),
        Feature(
            "monthly_revenue",
            "double precision",
            "Monthly revenue of the subscription in force at as_of_date.",
        ),
        Feature(
            "subscriptions_before",
            "bigint",
            "Subscription periods started before as_of_date (plan changes start new periods).",
        ),
        Feature(
            "upgrades_180d",
            "bigint",
            "Plan changes to a higher monthly revenue in the last 180 days.",
        ),
        Feature(
            "downgrades_180d",
            "bigint",
            "Plan changes to a lower monthly revenue in the last 180 days.",
        ),
        Feature(
            "days_since_plan_change",
            "integer",
            "Days since the latest upgrade or downgrade; null when never.",
        ),
    ]
    return out


KEY_COLUMNS = [
    Feature("customer_id", "varchar", "Customer key."),
    Feature(
        "as_of_date",
        "date",
        "Snapshot date: features use only data with timestamps strictly before it.",
    ),
]
LABEL_COLUMNS = [
    Feature(
        "churned",
        "integer",
        "1 when the customer churned in [as_of_date, as_of_date + horizon_days) under the churn definition (or the shipped label).",
    ),
    Feature(
        "label_source",
        "varchar",
        "Where the label comes from: the churn definition (contractual / inactivity) or 'shipped' labels.",
    ),
]


def _columns(features: list[Feature], tests: dict[str, list[Any]]) -> list[dict]:
    cols = []
    for f in features:
        col: dict = {"name": f.name, "data_type": f.data_type, "description": f.description}
        if f.name in tests:
            col["data_tests"] = tests[f.name]
        cols.append(col)
    return cols


def _unique_key() -> list[dict]:
    return [{"unique_combination": {"arguments": {"columns": ["customer_id", "as_of_date"]}}}]


def render_marts_schema() -> str:
    features = behavioural_features()
    key_tests: dict[str, list[Any]] = {
        "customer_id": [
            "not_null",
            {
                "relationships": {
                    "arguments": {"to": "ref('stg_customers')", "field": "customer_id"}
                }
            },
        ],
        "as_of_date": ["not_null"],
    }
    label_tests: dict[str, list[Any]] = {
        "churned": ["not_null", {"accepted_values": {"arguments": {"values": [0, 1]}}}],
        "label_source": [
            {"accepted_values": {"arguments": {"values": ["contractual", "inactivity", "shipped"]}}}
        ],
    }
    plan_tests: dict[str, list[Any]] = {
        "tenure_days": [{"not_null": {"config": {"severity": "warn"}}}]
    }
    models = [
        {
            "name": "customer_features",
            "description": (
                "The feature table: one row per (customer_id, as_of_date) for customers live at "
                "as_of_date under the churn definition. Point in time: a row uses only data with "
                "timestamps strictly before as_of_date. This is the feature catalog."
            ),
            "data_tests": _unique_key(),
            "columns": _columns(KEY_COLUMNS + features, key_tests | plan_tests),
        },
        {
            "name": "training_examples",
            "description": (
                "Features at as_of_date plus the churn label from [as_of_date, as_of_date + "
                "horizon_days); only snapshots whose label window has closed."
            ),
            "data_tests": _unique_key(),
            "columns": _columns(KEY_COLUMNS + LABEL_COLUMNS + features, key_tests | label_tests),
        },
        {
            "name": "scoring_features",
            "description": "Latest features (as_of_date = data_end) of every live customer, for scoring.",
            "data_tests": [*_unique_key(), {"single_as_of_date": {}}],
            "columns": _columns(KEY_COLUMNS + features, key_tests),
        },
        {
            "name": "customer_attributes",
            "description": "Static customer attributes (extra columns of the customers file), one row per customer and attribute.",
            "data_tests": [
                {
                    "unique_combination": {
                        "arguments": {"columns": ["customer_id", "attribute_name"]}
                    }
                }
            ],
            "columns": _columns(
                [
                    KEY_COLUMNS[0],
                    Feature("attribute_name", "varchar", "Column name in the customers file."),
                    Feature("value_text", "varchar", "Value of a text attribute."),
                    Feature("value_number", "double precision", "Value of a numeric attribute."),
                ],
                {"customer_id": ["not_null"], "attribute_name": ["not_null"]},
            ),
        },
        {
            "name": "feature_build",
            "description": "One row describing the build: churn definition, horizon, cadence and observed period.",
            "columns": _columns(
                [
                    Feature("churn_definition", "varchar", "contractual or inactivity."),
                    Feature("horizon_days", "integer", "Label window length in days."),
                    Feature("cadence_days", "integer", "Days between snapshots."),
                    Feature(
                        "min_history_days", "integer", "History required before the first snapshot."
                    ),
                    Feature(
                        "activity_event_types",
                        "varchar",
                        "Event types that count as activity, comma separated.",
                    ),
                    Feature("data_start", "date", "First observed day."),
                    Feature(
                        "data_end",
                        "date",
                        "Day after the last observation (the scoring as_of_date).",
                    ),
                    Feature("built_at", "timestamp", "When the build ran."),
                ],
                {},
            ),
        },
    ]
    header = "# Rendered by warehouse/feature_catalog.py (python -m warehouse.feature_catalog); do not edit.\n"
    return header + yaml.safe_dump({"version": 2, "models": models}, sort_keys=False, width=120)


MARTS_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "dbt_project/models/marts/_marts.yml"


if __name__ == "__main__":
    MARTS_SCHEMA_PATH.write_text(render_marts_schema())
    print(f"wrote {MARTS_SCHEMA_PATH}")
