"""Synthetic SaaS customers whose churn follows a hidden, learnable hazard.

Every day each live customer has a latent engagement level (a slowly mean-reverting
random walk), and may be in a payment-trouble or unhappy state. Those drive what a
model can see (logins, usage, seats, invoices, failed payments, tickets, ratings) and
the daily churn hazard, together with tenure, price pressure and an unobserved frailty.
The hazard itself is written to a ground-truth file that is never ingested, so the best
achievable ("oracle") AUC and Brier can be computed on any holdout.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.landing import write_parquet

DriftKind = Literal["price_increase", "usage_drop", "new_region"]
DRIFT_KINDS: tuple[str, ...] = ("price_increase", "usage_drop", "new_region")

SEGMENTS = np.array(["smb", "mid_market", "enterprise"])
SEGMENT_P = [0.62, 0.28, 0.10]
COMPANY_SIZES = {
    "smb": (np.array(["1-10", "11-50"]), [0.6, 0.4]),
    "mid_market": (np.array(["51-200", "201-1000"]), [0.7, 0.3]),
    "enterprise": (np.array(["201-1000", "1000+"]), [0.4, 0.6]),
}
REGIONS = np.array(["north_america", "europe", "apac", "latam"])
REGION_P = [0.45, 0.30, 0.15, 0.10]
CHANNELS = np.array(["organic", "paid_search", "partner", "sales", "referral"])
CHANNEL_P = [0.35, 0.25, 0.12, 0.18, 0.10]
CHANNEL_ENGAGEMENT = {
    "organic": 0.0,
    "paid_search": -0.25,
    "partner": 0.05,
    "sales": 0.2,
    "referral": 0.15,
}
PLANS = np.array(["basic", "pro", "business"])
PLAN_PRICE = np.array([12.0, 29.0, 49.0])
SEGMENT_PLAN_P = {
    "smb": [0.6, 0.32, 0.08],
    "mid_market": [0.25, 0.5, 0.25],
    "enterprise": [0.05, 0.35, 0.6],
}
SEGMENT_SEATS = {"smb": (1.2, 0.6), "mid_market": (2.9, 0.5), "enterprise": (4.4, 0.5)}
# Expected plan index per segment: a customer on a plan above it feels price pressure.
SEGMENT_EXPECTED_PLAN = {"smb": 0.5, "mid_market": 1.0, "enterprise": 1.55}

SECONDS_PER_DAY = 86_400
# What `generate` shows a hidden-state observer: the simulated day and, for every
# customer live that day, the state its churn hazard was computed from.
HiddenStateObserver = Callable[[dt.date, pd.DataFrame], None]


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int = 50_000
    days: int = 365
    seed: int = 7
    start: dt.date | None = None
    drift: DriftKind | None = None
    drift_start: dt.date | None = None
    # write the daily batches up to this day only: the simulated world is the same, so
    # generating again without it lands the rest (earlier files come out identical)
    through: dt.date | None = None

    def resolved_start(self) -> dt.date:
        # Default: the history ends today, so no timestamp is in the future.
        return self.start or (dt.date.today() - dt.timedelta(days=self.days))

    def resolved_drift_start(self) -> dt.date:
        return self.drift_start or (self.resolved_start() + dt.timedelta(days=self.days // 2))


@dataclass(frozen=True)
class GeneratorSummary:
    customers: int
    subscriptions: int
    events: int
    churned: int
    days: int
    start: dt.date
    end: dt.date
    files: int
    ground_truth: Path


def _draw(rng: np.random.Generator, values: np.ndarray, p: list[float], n: int) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=p)]


class _Population:
    """Static attributes of every customer plus the mutable daily state."""

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator) -> None:
        n = cfg.customers
        self.n = n
        self.ids = np.array([f"C{i:07d}" for i in range(n)])
        initial = int(n * 0.75)
        signup_day = np.empty(n, dtype=np.int64)
        # Existing customers signed up within three years before the start.
        signup_day[:initial] = -rng.integers(1, 3 * 365, size=initial)
        signup_day[initial:] = np.sort(rng.integers(0, max(cfg.days - 1, 1), size=n - initial))
        self.signup_day = signup_day
        self.signup_second = rng.integers(0, SECONDS_PER_DAY, size=n)
        self.segment = _draw(rng, SEGMENTS, SEGMENT_P, n)
        self.region = _draw(rng, REGIONS, REGION_P, n).astype(object)  # room for new names
        self.channel = _draw(rng, CHANNELS, CHANNEL_P, n)
        self.company_size = np.empty(n, dtype=object)
        self.plan = np.empty(n, dtype=np.int64)
        self.seats = np.empty(n, dtype=np.int64)
        expected_plan = np.empty(n)
        for seg in SEGMENTS:
            mask = self.segment == seg
            k = int(mask.sum())
            sizes, p = COMPANY_SIZES[seg]
            self.company_size[mask] = _draw(rng, sizes, p, k)
            self.plan[mask] = rng.choice(3, size=k, p=SEGMENT_PLAN_P[seg])
            mean, sd = SEGMENT_SEATS[seg]
            self.seats[mask] = np.maximum(1, np.round(rng.lognormal(mean, sd, size=k)))
            expected_plan[mask] = SEGMENT_EXPECTED_PLAN[seg]
        self.expected_plan = expected_plan
        self.price_multiplier = np.ones(n)
        channel_effect = np.vectorize(CHANNEL_ENGAGEMENT.get)(self.channel)
        segment_effect = np.select(
            [self.segment == "enterprise", self.segment == "mid_market"], [0.3, 0.15], 0.0
        )
        self.engagement_mean = segment_effect + channel_effect + rng.normal(0.0, 0.7, size=n)
        self.engagement = self.engagement_mean + rng.normal(0.0, 0.3, size=n)
        self.frailty = rng.normal(0.0, 0.15, size=n)  # never observable
        self.payment_trouble = np.zeros(n, dtype=bool)
        self.unhappy = np.zeros(n, dtype=bool)
        self.recent_failures = np.zeros(n)  # exponentially decayed count of failed payments
        self.billing_offset = rng.integers(0, 30, size=n)
        self.seat_offset = rng.integers(0, 7, size=n)
        self.churn_day = np.full(n, -1, dtype=np.int64)
        self.sub_start_day = signup_day.copy()
        self.sub_start_second = self.signup_second.copy()

    @property
    def monthly_revenue(self) -> np.ndarray:
        return np.round(self.seats * PLAN_PRICE[self.plan] * self.price_multiplier, 2)

    @property
    def price_pressure(self) -> np.ndarray:
        return (self.plan - self.expected_plan) + 2.5 * (self.price_multiplier - 1.0)


def _sub_rows(pop: _Population, idx: np.ndarray, start: dt.date, ended: np.ndarray | None) -> dict:
    started = _timestamps(start, pop.sub_start_day[idx], pop.sub_start_second[idx])
    return {
        "customer_id": pop.ids[idx],
        "started_at": started,
        "ended_at": ended
        if ended is not None
        else np.full(len(idx), np.datetime64("NaT"), "M8[s]"),
        "plan": PLANS[pop.plan[idx]],
        "monthly_revenue": pop.monthly_revenue[idx],
    }


def _timestamps(start: dt.date, day: np.ndarray, second: np.ndarray) -> np.ndarray:
    base = np.datetime64(start, "s")
    return base + (day * SECONDS_PER_DAY + second).astype("timedelta64[s]")


SUB_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("started_at", pa.timestamp("us")),
        ("ended_at", pa.timestamp("us")),
        ("plan", pa.string()),
        ("monthly_revenue", pa.float64()),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("occurred_at", pa.timestamp("us")),
        ("event_type", pa.string()),
        ("value", pa.float64()),
    ]
)


def _concat_rows(parts: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {
        name: np.concatenate([p[name] for p in parts]) if parts else np.array([])
        for name in schema.names
    }
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values.astype("M8[us]"), type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def generate(
    cfg: GeneratorConfig,
    landing_dir: Path,
    ground_truth_dir: Path,
    progress: Callable[[str], None] | None = None,
    observe_hidden_state: HiddenStateObserver | None = None,
) -> GeneratorSummary:
    """Simulate cfg.days of the business and write one landing batch per day and table.

    observe_hidden_state, when given, is called every day with the hidden state of the
    live customers (bench/oracle_gap.py uses it to measure how much of the gap to the
    oracle is information the events do not carry); it never changes the world."""
    if cfg.customers < 1 or cfg.days < 1:
        raise ValueError("customers and days must both be at least 1")
    if cfg.drift is not None and cfg.drift not in DRIFT_KINDS:
        raise ValueError(
            f"unknown drift kind {cfg.drift!r}; choose one of {', '.join(DRIFT_KINDS)}"
        )
    rng = np.random.default_rng(cfg.seed)
    start = cfg.resolved_start()
    drift_day = (cfg.resolved_drift_start() - start).days if cfg.drift else None
    pop = _Population(cfg, rng)
    if cfg.drift == "new_region":
        # a stream of its own: the world stays the same as without drift until it starts
        _assign_new_region(pop, np.random.default_rng([cfg.seed, 1]), drift_day)
    for table in ("customers", "subscriptions", "events"):
        shutil.rmtree(landing_dir / table, ignore_errors=True)
        (landing_dir / table).mkdir(parents=True, exist_ok=True)
    ground_truth_dir.mkdir(parents=True, exist_ok=True)

    hazard = np.full((cfg.days, pop.n), np.nan, dtype=np.float32)
    counts = {"subscriptions": 0, "events": 0, "files": 0}
    _write_customers(pop, start, landing_dir, counts, cfg.through)

    for t in range(cfg.days):
        day = start + dt.timedelta(days=t)
        alive = (pop.signup_day <= t) & (pop.churn_day < 0)
        sub_parts: list[dict] = []
        if drift_day is not None and t == drift_day:
            if cfg.drift == "price_increase":
                sub_parts += _reprice(
                    pop, np.flatnonzero(alive & (pop.sub_start_day < t)), start, t
                )
            else:
                _apply_drift(pop, cfg.drift)
        if t == 0:
            sub_parts.append(_sub_rows(pop, np.flatnonzero(alive), start, None))
        else:
            new = np.flatnonzero(pop.signup_day == t)
            if len(new):
                sub_parts.append(_sub_rows(pop, new, start, None))
        idx = np.flatnonzero(alive)
        event_parts = _simulate_day(pop, rng, idx, t, start)
        h = _hazard(pop, idx, t)
        hazard[t, idx] = h
        if observe_hidden_state is not None:
            observe_hidden_state(day, _hidden_state(pop, idx, h))
        churners = idx[rng.random(len(idx)) < h]
        changers, direction = _plan_changes(
            pop, rng, np.setdiff1d(idx, churners, assume_unique=True)
        )
        if len(churners) or len(changers):
            ending = np.concatenate([churners, changers])
            # A period that started today ends after its start second.
            earliest = np.where(pop.sub_start_day[ending] == t, pop.sub_start_second[ending], 0)
            end_second = earliest + (rng.random(len(ending)) * (SECONDS_PER_DAY - earliest)).astype(
                np.int64
            )
            ended_at = _timestamps(start, np.full(len(ending), t), end_second)
            sub_parts.append(_sub_rows(pop, ending, start, ended_at))
            pop.churn_day[churners] = t
            if len(changers):
                k = len(churners)
                pop.plan[changers] = pop.plan[changers] + direction
                pop.sub_start_day[changers] = t
                pop.sub_start_second[changers] = end_second[k:]
                sub_parts.append(_sub_rows(pop, changers, start, None))
        for table, parts, schema in (
            ("subscriptions", sub_parts, SUB_SCHEMA),
            ("events", event_parts, EVENT_SCHEMA),
        ):
            if parts and (cfg.through is None or day <= cfg.through):
                frame = _concat_rows(parts, schema)
                if table == "subscriptions":
                    frame = _latest_state(frame)
                write_parquet(frame, landing_dir / table / f"{day.isoformat()}.parquet")
                counts[table] += frame.num_rows
                counts["files"] += 1
        if progress and (t + 1) % 30 == 0:
            progress(f"simulated {t + 1}/{cfg.days} days, {counts['events']:,} events so far")

    gt_path = ground_truth_dir / "hazard.parquet"
    _write_ground_truth(pop, hazard, start, gt_path)
    return GeneratorSummary(
        customers=pop.n,
        subscriptions=counts["subscriptions"],
        events=counts["events"],
        churned=int((pop.churn_day >= 0).sum()),
        days=cfg.days,
        start=start,
        end=start + dt.timedelta(days=cfg.days),
        files=counts["files"],
        ground_truth=gt_path,
    )


def _latest_state(frame: pa.Table) -> pa.Table:
    """A subscription that starts and ends on the same day appears once, ended."""
    rows = frame.to_pandas().drop_duplicates(["customer_id", "started_at"], keep="last")
    return pa.Table.from_pandas(rows, schema=frame.schema, preserve_index=False)


def _assign_new_region(pop: _Population, rng: np.random.Generator, drift_day: int | None) -> None:
    # From the drift date on, new sign-ups come from a region never seen before,
    # with weaker engagement.
    late = pop.signup_day >= (drift_day or 0)
    pick = late & (rng.random(pop.n) < 0.6)
    pop.region[pick] = "middle_east_africa"
    pop.engagement_mean[pick] -= 0.4


def _reprice(pop: _Population, idx: np.ndarray, start: dt.date, t: int) -> list[dict]:
    """A price increase applies to subscriptions in force too: each live period ends at
    the start of day t at the old price and a new one starts at the new price."""
    at_midnight = np.zeros(len(idx), np.int64)
    closing = _sub_rows(pop, idx, start, _timestamps(start, np.full(len(idx), t), at_midnight))
    _apply_drift(pop, "price_increase")
    pop.sub_start_day[idx] = t
    pop.sub_start_second[idx] = at_midnight
    return [closing, _sub_rows(pop, idx, start, None)]


def _apply_drift(pop: _Population, kind: DriftKind | None) -> None:
    if kind == "price_increase":
        pop.price_multiplier *= 1.25
    elif kind == "usage_drop":
        smb = pop.segment == "smb"
        pop.engagement_mean[smb] -= 0.8


def _simulate_day(
    pop: _Population, rng: np.random.Generator, idx: np.ndarray, t: int, start: dt.date
) -> list[dict]:
    """Advance the hidden state of live customers one day and emit their events."""
    n = len(idx)
    # Latent engagement: mean-reverting walk; rare declines move the mean down for good.
    decline = rng.random(n) < 0.0015
    pop.engagement_mean[idx[decline]] -= 1.0
    e = pop.engagement[idx]
    e = pop.engagement_mean[idx] + 0.96 * (e - pop.engagement_mean[idx]) + rng.normal(0, 0.06, n)
    pop.engagement[idx] = e
    # Payment trouble starts when a renewal charge is declined (so it shows the same
    # day) and lasts about a month.
    cycle_day = (t - pop.billing_offset[idx]) % 30
    bill_day = cycle_day == 0
    trouble = pop.payment_trouble[idx]
    trouble = np.where(trouble, rng.random(n) > 0.04, bill_day & (rng.random(n) < 0.045))
    pop.payment_trouble[idx] = trouble
    unhappy = pop.unhappy[idx]
    unhappy = np.where(unhappy, rng.random(n) > 0.03, rng.random(n) < 0.002 + 0.002 * (e < -0.8))
    pop.unhappy[idx] = unhappy
    pop.recent_failures[idx] *= 0.97

    parts: list[dict] = []

    def emit(mask: np.ndarray, event_type: str, value: np.ndarray) -> None:
        who = idx[mask]
        if len(who) == 0:
            return
        seconds = rng.integers(0, SECONDS_PER_DAY, size=len(who))
        parts.append(
            {
                "customer_id": pop.ids[who],
                "occurred_at": _timestamps(start, np.full(len(who), t), seconds),
                "event_type": np.full(len(who), event_type),
                "value": value.astype(np.float64),
            }
        )

    logins = rng.poisson(np.exp(-0.2 + 0.9 * e))
    active = logins > 0
    emit(active, "login", logins[active])
    minutes = rng.gamma(2.0, np.exp(2.3 + 0.5 * e))
    emit(active, "feature_use", np.round(minutes[active], 1))
    seat_day = (t % 7) == pop.seat_offset[idx]
    seats_used = rng.binomial(pop.seats[idx], 1.0 / (1.0 + np.exp(-(0.6 + e))))
    emit(seat_day, "seats_active", seats_used[seat_day])
    # A failed payment is retried a week and two weeks later while trouble lasts.
    retry_day = trouble & ((cycle_day == 7) | (cycle_day == 14))
    failed = (bill_day | retry_day) & (rng.random(n) < np.where(trouble, 0.85, 0.03))
    revenue = pop.monthly_revenue[idx]
    emit(bill_day & ~failed, "invoice_paid", revenue[bill_day & ~failed])
    emit(failed, "payment_failed", revenue[failed])
    pop.recent_failures[idx[failed]] += 1.0
    ticket = rng.random(n) < 0.004 + 0.12 * unhappy + 0.006 * (e < -1.0)
    severity = np.clip(rng.integers(1, 4, size=n) + unhappy, 1, 4)
    emit(ticket, "ticket_opened", severity[ticket])
    rated = ticket & (rng.random(n) < 0.7)
    satisfaction = np.clip(np.round(rng.normal(4.2 - 2.0 * unhappy, 0.8)), 1, 5)
    emit(rated, "ticket_rated", satisfaction[rated])
    return parts


def _hazard(pop: _Population, idx: np.ndarray, t: int) -> np.ndarray:
    tenure_years = (t - pop.signup_day[idx]) / 365.0
    log_h = (
        -7.6
        - 2.4 * pop.engagement[idx]
        + 1.6 * pop.payment_trouble[idx]
        + 0.6 * np.minimum(pop.recent_failures[idx], 3.0)
        + 1.8 * pop.unhappy[idx]
        - 0.7 * np.log1p(tenure_years)
        + 0.6 * pop.price_pressure[idx]
        + pop.frailty[idx]
    )
    return np.minimum(np.exp(log_h), 0.5).astype(np.float32)


def _hidden_state(pop: _Population, idx: np.ndarray, hazard: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pop.ids[idx],
            "engagement": pop.engagement[idx],
            "engagement_mean": pop.engagement_mean[idx],
            "payment_trouble": pop.payment_trouble[idx],
            "recent_failures": pop.recent_failures[idx],
            "unhappy": pop.unhappy[idx],
            "price_pressure": pop.price_pressure[idx],
            "frailty": pop.frailty[idx],
            "daily_hazard": hazard,
        }
    )


def _plan_changes(
    pop: _Population, rng: np.random.Generator, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Engaged customers sometimes upgrade, disengaged ones downgrade: (who, +1 or -1)."""
    e = pop.engagement[idx]
    up = (rng.random(len(idx)) < 0.0012 * (e > 0.4)) & (pop.plan[idx] < 2)
    down = (rng.random(len(idx)) < 0.0015 * (e < -0.4)) & (pop.plan[idx] > 0)
    changing = up | down
    return idx[changing], np.where(up[changing], 1, -1)


def _write_customers(
    pop: _Population, start: dt.date, landing_dir: Path, counts: dict, through: dt.date | None
) -> None:
    signup_at = _timestamps(start, pop.signup_day, pop.signup_second)
    batch_day = np.maximum(pop.signup_day, 0)
    cohort = signup_at.astype("M8[M]").astype(str)
    last = (through - start).days if through else None
    for t in np.unique(batch_day):
        if last is not None and t > last:
            break
        mask = batch_day == t
        frame = pa.table(
            {
                "customer_id": pa.array(pop.ids[mask]),
                "signup_at": pa.array(signup_at[mask].astype("M8[us]")),
                "segment": pa.array(pop.segment[mask]),
                "plan_at_signup": pa.array(PLANS[pop.plan[mask]]),
                "region": pa.array(pop.region[mask]),
                "company_size": pa.array(pop.company_size[mask].astype(str)),
                "acquisition_channel": pa.array(pop.channel[mask]),
                "signup_cohort": pa.array(cohort[mask]),
                "seats_purchased": pa.array(pop.seats[mask].astype(np.float64)),
            }
        )
        day = start + dt.timedelta(days=int(t))
        write_parquet(frame, landing_dir / "customers" / f"{day.isoformat()}.parquet")
        counts["files"] += 1


def _write_ground_truth(pop: _Population, hazard: np.ndarray, start: dt.date, path: Path) -> None:
    days, n = hazard.shape
    values = pa.array(hazard.T.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * days, days, dtype=np.int32))
    table = pa.table(
        {
            "customer_id": pa.array(pop.ids),
            "daily_hazard": pa.ListArray.from_arrays(offsets, values),
        }
    )
    metadata = {b"start": start.isoformat().encode(), b"days": str(days).encode()}
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, compression="zstd")
