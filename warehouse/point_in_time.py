"""An independent recomputation of training examples straight from the raw tables.

dbt builds features in SQL; this recomputes a sample of them in pandas from raw rows,
applying the point-in-time rule literally (features: timestamps strictly before
as_of_date; label: [as_of_date, as_of_date + horizon)). Any difference means leakage
or a bug in the feature SQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warehouse.connection import Warehouse
from warehouse.contract import RAW_SCHEMA
from warehouse.settings import Settings

MARTS_SCHEMA = "analytics"
RECOMPUTED = (
    "login_count_30d",
    "invoice_value_90d",
    "payment_failure_count_180d",
    "active_days_30d",
    "active_days_ewm7d",
    "tenure_days",
    "churned",
)


@dataclass(frozen=True)
class PointInTimeReport:
    sampled: int
    mismatches: pd.DataFrame  # customer_id, as_of_date, column, expected, actual
    open_windows: int  # examples whose label window had not closed

    @property
    def passed(self) -> bool:
        return self.mismatches.empty and self.open_windows == 0


def recompute(
    frame: pd.DataFrame, settings: Settings, raw: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """Recompute RECOMPUTED columns for the (customer_id, as_of_date) rows of frame."""
    families = settings.event_families
    events = raw["events"].assign(
        family=lambda e: e["event_type"].map(families),
        is_activity=lambda e: e["event_type"].isin(settings.churn.activity_event_types),
        day=lambda e: e["occurred_at"].dt.normalize(),
    )
    horizon = pd.Timedelta(days=settings.churn.horizon_days)
    out = []
    for customer_id, as_of_date in zip(frame["customer_id"], frame["as_of_date"], strict=True):
        as_of = pd.Timestamp(as_of_date)
        mine = events[events["customer_id"] == customer_id]
        before = mine[mine["occurred_at"] < as_of]
        last_30 = _since(before, as_of, 30)
        signup = raw["customers"].loc[raw["customers"]["customer_id"] == customer_id, "signup_at"]
        out.append(
            {
                "customer_id": customer_id,
                "as_of_date": as_of_date,
                "login_count_30d": int((last_30["family"] == "login").sum()),
                "invoice_value_90d": float(
                    _since(before, as_of, 90).query("family == 'invoice'")["value"].fillna(0).sum()
                ),
                "payment_failure_count_180d": int(
                    (_since(before, as_of, 180)["family"] == "payment_failure").sum()
                ),
                "active_days_30d": last_30.loc[last_30["is_activity"], "day"].nunique(),
                "active_days_ewm7d": _ewm_active_days(_since(before, as_of, 180), as_of, 7),
                "tenure_days": (as_of - signup.iloc[0].normalize()).days,
                "churned": _label(str(customer_id), as_of, horizon, mine, raw, settings),
            }
        )
    return pd.DataFrame(out)


def _since(events: pd.DataFrame, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    return events[events["occurred_at"] >= as_of - pd.Timedelta(days=days)]


def _ewm_active_days(events: pd.DataFrame, as_of: pd.Timestamp, half_life: int) -> float:
    """Active days weighted 0.5^((age - 1) / half_life), age in days before as_of."""
    days = events.loc[events["is_activity"], "day"].drop_duplicates()
    age = (as_of.normalize() - days).dt.days.to_numpy(dtype=float)
    return float(np.power(0.5, (age - 1) / half_life).sum())


def _label(
    customer_id: str,
    as_of: pd.Timestamp,
    horizon: pd.Timedelta,
    events: pd.DataFrame,
    raw: dict[str, pd.DataFrame],
    settings: Settings,
) -> int:
    shipped = raw["labels"]
    shipped = shipped[(shipped["customer_id"] == customer_id) & (shipped["as_of_date"] == as_of)]
    if len(shipped):
        return int(shipped["churned"].iloc[0])
    end = as_of + horizon
    if settings.churn.kind == "contractual":
        subs = raw["subscriptions"]
        subs = subs[subs["customer_id"] == customer_id]
        in_force = (subs["started_at"] < end) & (
            subs["ended_at"].isna() | (subs["ended_at"] >= end)
        )
        return int(not in_force.any())
    active = events[
        events["is_activity"] & (events["occurred_at"] >= as_of) & (events["occurred_at"] < end)
    ]
    return int(active.empty)


def check_training_examples(
    warehouse: Warehouse, settings: Settings, sample_size: int = 200, seed: int = 0
) -> PointInTimeReport:
    """Sample training examples and compare them with the raw-data recomputation."""
    columns = ", ".join(("customer_id", "as_of_date", *RECOMPUTED))
    examples = warehouse.query_df(f"SELECT {columns} FROM {MARTS_SCHEMA}.training_examples")
    data_end = warehouse.query_df(f"SELECT data_end FROM {MARTS_SCHEMA}.int_data_bounds")[
        "data_end"
    ].iloc[0]
    labels = warehouse.query_df(f"SELECT customer_id, as_of_date FROM {RAW_SCHEMA}.labels")
    shipped = set(zip(labels["customer_id"], pd.to_datetime(labels["as_of_date"]), strict=True))
    keys = zip(examples["customer_id"], pd.to_datetime(examples["as_of_date"]), strict=True)
    derived = np.array([k not in shipped for k in keys], dtype=bool)
    horizon = dt.timedelta(days=settings.churn.horizon_days)
    closes = pd.to_datetime(examples["as_of_date"]) + horizon
    open_windows = int((derived & (closes > pd.Timestamp(data_end))).sum()) if len(examples) else 0
    sample = examples.sample(n=min(sample_size, len(examples)), random_state=seed)
    if sample.empty:
        return PointInTimeReport(0, pd.DataFrame(), open_windows)
    # Customer ids are data: they travel as bound parameters, one placeholder each.
    ids = sample["customer_id"].unique().tolist()
    placeholders = ", ".join("?" * len(ids))
    raw = {
        table: warehouse.query_df(
            f"SELECT * FROM {RAW_SCHEMA}.{table} WHERE customer_id IN ({placeholders})", ids
        )
        for table in ("customers", "events", "subscriptions", "labels")
    }
    for table, cols in (
        ("events", ["occurred_at"]),
        ("customers", ["signup_at"]),
        ("subscriptions", ["started_at", "ended_at"]),
        ("labels", ["as_of_date"]),
    ):
        for col in cols:
            raw[table][col] = pd.to_datetime(raw[table][col])
    expected = recompute(sample, settings, raw)
    mismatches = []
    for col in RECOMPUTED:
        exp = expected[col].to_numpy(dtype=float)
        act = pd.to_numeric(sample[col]).fillna(0).to_numpy(dtype=float)
        bad = ~np.isclose(exp, act, rtol=1e-9, atol=1e-6)
        for i in np.flatnonzero(bad):
            mismatches.append(
                {
                    "customer_id": sample["customer_id"].iloc[i],
                    "as_of_date": sample["as_of_date"].iloc[i],
                    "column": col,
                    "expected": exp[i],
                    "actual": act[i],
                }
            )
    return PointInTimeReport(len(sample), pd.DataFrame(mismatches), open_windows)
