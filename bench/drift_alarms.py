"""False alarms and detection power of the drift report on the project's own generator.

    uv run python bench/drift_alarms.py [--customers 5000] [--days 365] [--jobs 2]

Worlds are generated with `warehouse.generator` (fixed start date, so every world has
the same snapshot dates), ingested into a DuckDB warehouse under their own CHURN_HOME in
var/bench/drift_alarms/ and run through dbt (`+customer_features`,
`+customer_attributes`); the feature frame is what a model sees (customer_features with
the attributes pivoted to attr_* columns, every candidate feature of `FeatureSpec.fit`).
A world already built with the same settings is reused: pass `--fresh` after changing
the generator or the dbt models.

- False alarms: no-drift worlds of independent seeds. The reference is one world's
  snapshot at an as_of date, either its validation-fold customers (the 20 % customer
  group that `time_split` validates on, which is what `training_reference` freezes) or
  every live customer; the batch is ANOTHER world's snapshot at the same date, all of
  it or a random subsample. Any alert is false by construction. Every ordered pair of
  worlds, every snapshot date, both reference modes and every batch size.
- Pre-drift control: the drift worlds' snapshots before the drift start against the
  no-drift references of the same date (also no drift by construction).
- Detection: each `--drift` kind on its own seeds; batches are snapshots after the
  drift start, against every no-drift world's reference of the SAME date, so the only
  difference is the injected drift (plus the sampling noise the false-alarm study
  measures). The headline counts snapshots at least `--settle-days` after the drift
  start; `by_days_since_drift` shows all of them. Expected features per kind follow
  the generator code and the dbt feature definitions (EXPECTED below); flagged features
  outside them are split into plausible indirect effects (INDIRECT) and unexpected.
- Time-confounded (not a false-alarm measure): what the production comparison, a
  model's validation fold against the scoring snapshot 60 days later, and a world's
  first snapshot against its last, flag without any injected drift.

No scores are compared (no model is trained), so prediction drift is not measured.
Progress goes to stderr; one JSON object to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from worlds import build_world as build_warehouse

from churn_assets.ml.drift import DriftThresholds, ReferenceProfile, build_reference, drift_report
from churn_assets.ml.feature_matrix import MARTS, FeatureSpec, pivot_attributes
from churn_assets.ml.splits import customer_bucket, time_split
from warehouse.generator import DRIFT_KINDS, DriftKind, GeneratorConfig
from warehouse.settings import load_settings

START = dt.date(2025, 1, 1)
# time_split's default customer fractions (0.6, 0.2, 0.2): buckets 60..79 validate.
VALIDATION_BUCKETS = (60, 80)
REFERENCE_MODES = ("validation_fold", "snapshot")

# Engagement: everything the latent engagement level drives in `_simulate_day`
# (logins, feature use and their active days, the weekly seats-used reading; the seat
# reading's count is a fixed weekly schedule, so seats_count_* is not among them).
ENGAGEMENT = (
    r"login_.*|usage_.*|active_days_.*|activity_trend_30d|seats_value_.*|seats_mean_vs_peak_.*"
)
# Features the generator shifts for every affected customer.
EXPECTED = {
    # price_multiplier *= 1.25: subscriptions in force are re-priced on the drift day
    # (a new period 25 % dearer), and invoices and failed payments carry the new price.
    "price_increase": r"monthly_revenue|invoice_value_\d+d|payment_failure_value_\d+d",
    # engagement_mean -= 0.8 for SMB customers (62 %).
    "usage_drop": ENGAGEMENT,
    # 60 % of sign-ups from the drift start come from a region never seen before.
    "new_region": r"attr_region",
}
# Plausible knock-on effects: flagged, they are not counted as unexpected.
INDIRECT = {
    # The re-pricing starts a new subscription period; price pressure raises the churn
    # hazard, so the survivors change (engagement, tenure, plan).
    # (dbt counts a dearer period as an upgrade.)
    "price_increase": rf"tenure_days|current_plan|subscriptions_before|days_since_plan_change"
    rf"|upgrades_180d|{ENGAGEMENT}",
    # Low engagement opens tickets, makes customers unhappy and downgrade; SMB churn
    # rises, so the segment mix of the survivors changes.
    "usage_drop": r"ticket_.*|satisfaction_.*|avg_ticket_severity_90d|avg_satisfaction_90d"
    r"|upgrades_180d|downgrades_180d|days_since_plan_change|subscriptions_before"
    r"|current_plan|monthly_revenue|invoice_value_\d+d|tenure_days"
    r"|attr_segment|attr_company_size|attr_plan_at_signup|attr_seats_purchased",
    # The new region's customers have weaker engagement (-0.4), which also shows in
    # tickets; they replace other regions' late sign-ups.
    "new_region": rf"{ENGAGEMENT}|ticket_.*|satisfaction_.*|avg_ticket_severity_90d"
    r"|avg_satisfaction_90d",
}


def log(message: str) -> None:
    print(f"[drift_alarms] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class World:
    kind: str | None  # a generator drift kind, None for no drift
    seed: int

    @property
    def label(self) -> str:
        return f"{self.kind or 'no_drift'}-s{self.seed}"


def build_world(
    world: World, customers: int, days: int, root: Path, fresh: bool
) -> tuple[Path, float, bool]:
    """Generate, ingest and build the feature tables of one world in its own CHURN_HOME;
    returns the feature frame's parquet file, the seconds spent and whether it was reused."""
    home = root / f"{world.label}-c{customers}-d{days}-{START.isoformat()}"
    out = home / "features.parquet"
    if out.exists() and not fresh:
        return out, 0.0, True
    started = time.perf_counter()
    shutil.rmtree(home, ignore_errors=True)
    cfg = GeneratorConfig(
        customers=customers,
        days=days,
        seed=world.seed,
        start=START,
        drift=cast("DriftKind | None", world.kind),
    )
    warehouse, phases = build_warehouse(home, cfg, ["+customer_features", "+customer_attributes"])
    features = warehouse.query_df(f"SELECT * FROM {MARTS}.customer_features")
    attributes = pivot_attributes(warehouse.query_df(f"SELECT * FROM {MARTS}.customer_attributes"))
    frame = features.merge(attributes, on="customer_id", how="left")
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    frame.to_parquet(home / "features.tmp.parquet", index=False)
    (home / "features.tmp.parquet").rename(out)
    seconds = time.perf_counter() - started
    spent = ", ".join(f"{k} {v:.0f}s" for k, v in phases.items())
    log(f"built {world.label}: {len(frame):,} snapshot rows in {seconds:.0f}s ({spent})")
    return out, seconds, False


@dataclass
class Outcome:
    """One drift report and what it found."""

    study: str
    kind: str | None
    reference: str
    current: str
    as_of: pd.Timestamp
    reference_mode: str
    reference_rows: int
    batch: str  # a batch size label: "250", "1000", "all"
    rows: int
    verdict: str
    drifted: dict[str, str]  # feature -> warn | alert
    problems: list[str]
    psi: dict[str, float]  # every feature's PSI
    significant: frozenset[str]  # features with a BH-adjusted p-value under alpha
    days_since_drift: int | None = None

    @property
    def setting(self) -> str:
        return f"{self.reference_mode}/{self.batch}"


@dataclass
class Study:
    spec: FeatureSpec
    thresholds: DriftThresholds
    sizes: list[str]
    rng: np.random.Generator
    frames: dict[World, pd.DataFrame]
    references: dict[tuple[World, pd.Timestamp, str], ReferenceProfile] = field(
        default_factory=dict
    )
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        return [n for n in self.spec.names if n not in self.spec.categories]

    def snapshot(self, world: World, as_of: pd.Timestamp) -> pd.DataFrame:
        frame = self.frames[world]
        return frame[frame["as_of_date"] == as_of]

    def reference(self, world: World, as_of: pd.Timestamp, mode: str) -> ReferenceProfile:
        key = (world, as_of, mode)
        if key not in self.references:
            rows = self.snapshot(world, as_of)
            if mode == "validation_fold":
                rows = rows[rows["bucket"].between(*VALIDATION_BUCKETS, inclusive="left")]
            self.references[key] = self.profile(rows, f"{world.label} {mode} {as_of.date()}")
        return self.references[key]

    def profile(self, rows: pd.DataFrame, description: str) -> ReferenceProfile:
        names = list(self.spec.names)
        return build_reference(rows[names], self.spec.categorical, self.numeric, None, description)

    def batches(self, rows: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
        for size in self.sizes:
            if size == "all":
                yield size, rows
            elif int(size) < len(rows):
                pick = np.sort(self.rng.choice(len(rows), int(size), replace=False))
                yield size, rows.iloc[pick]

    def run(
        self,
        study: str,
        reference: ReferenceProfile,
        reference_label: str,
        reference_mode: str,
        current: World,
        rows: pd.DataFrame,
        batch: str,
        days_since_drift: int | None = None,
    ) -> None:
        report = drift_report(reference, rows[list(self.spec.names)], None, self.thresholds)
        self.outcomes.append(
            Outcome(
                study=study,
                kind=current.kind,
                reference=reference_label,
                current=current.label,
                as_of=rows["as_of_date"].iloc[0],
                reference_mode=reference_mode,
                reference_rows=next(iter(reference.features)).rows,
                batch=batch,
                rows=len(rows),
                verdict=report.verdict,
                drifted={f.name: f.level for f in report.drifted()},
                problems=list(report.problems),
                psi={f.name: f.psi for f in report.features},
                significant=frozenset(
                    f.name for f in report.features if f.p_adjusted < self.thresholds.alpha
                ),
                days_since_drift=days_since_drift,
            )
        )

    def same_date(
        self,
        study: str,
        references: Sequence[World],
        currents: Sequence[World],
        dates: Sequence[pd.Timestamp],
        drift_start: dt.date | None = None,
    ) -> None:
        """Every reference world against every other current world at each date."""
        for current in currents:
            for as_of in dates:
                rows = self.snapshot(current, as_of)
                since = (as_of.date() - drift_start).days if drift_start else None
                for ref_world in references:
                    if ref_world == current:
                        continue
                    for mode in REFERENCE_MODES:
                        reference = self.reference(ref_world, as_of, mode)
                        for batch, sample in self.batches(rows):
                            self.run(
                                study,
                                reference,
                                ref_world.label,
                                mode,
                                current,
                                sample,
                                batch,
                                since,
                            )


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def verdict_rates(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    return {
        "reports": n,
        "alert_rate": rate(sum(o.verdict == "alert" for o in outcomes), n),
        "warn_rate": rate(sum(o.verdict == "warn" for o in outcomes), n),
    }


def grouped(
    outcomes: Sequence[Outcome], key: str, order: Sequence[Any] | None = None
) -> dict[str, Any]:
    groups: dict[Any, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[getattr(o, key)].append(o)
    keys = [k for k in order if k in groups] if order else sorted(groups)
    return {str(k): verdict_rates(groups[k]) for k in keys}


def settings_order(sizes: Sequence[str]) -> list[str]:
    return [f"{mode}/{size}" for mode in REFERENCE_MODES for size in sizes]


def quantile(values: Sequence[float], q: float) -> float:
    return round(float(np.quantile(values, q)), 4)


def alarm_summary(outcomes: Sequence[Outcome], sizes: Sequence[str], goal: float) -> dict[str, Any]:
    """What a study with no drift by construction found: every alarm is false."""
    summary = verdict_rates(outcomes)
    summary["goal_alert_rate_below"] = goal
    summary["goal_met"] = (summary["alert_rate"] or 0.0) < goal
    by_setting = grouped(outcomes, "setting", settings_order(sizes))
    summary["goal_met_in_every_setting"] = all(
        (g["alert_rate"] or 0.0) < goal for g in by_setting.values()
    )
    summary["by_setting"] = by_setting
    flagged: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        for name, level in o.drifted.items():
            flagged[name][level] += 1
    summary["features_flagged"] = {
        name: dict(levels)
        for name, levels in sorted(flagged.items(), key=lambda kv: -sum(kv[1].values()))
    }
    problems = Counter(re.sub(r"\(.*\)", "(...)", p) for o in outcomes for p in o.problems)
    summary["problems"] = dict(problems.most_common())
    if outcomes:
        # How close noise comes to psi_warn: the features with the largest PSI (95th
        # percentile over the reports) on full batches and on the smallest ones.
        for size in (sizes[-1], sizes[0]):
            group = [o for o in outcomes if o.batch == size]
            p95 = {n: quantile([o.psi[n] for o in group], 0.95) for n in group[0].psi}
            top = sorted(p95.items(), key=lambda kv: -kv[1])[:5]
            summary[f"psi_p95_top_features_batch_{size}"] = dict(top)
    return summary


def matching(names: Sequence[str], pattern: str) -> list[str]:
    return [n for n in names if re.fullmatch(pattern, n)]


def feature_rates(
    outcomes: Sequence[Outcome], names: Iterable[str], sizes: Sequence[str]
) -> dict[str, list[float | None]]:
    """Per feature, the share of reports that flagged it, per batch size."""
    by_size = {s: [o for o in outcomes if o.batch == s] for s in sizes}
    return {
        name: [rate(sum(name in o.drifted for o in by_size[s]), len(by_size[s])) for s in sizes]
        for name in names
    }


def detection_summary(
    kind: str,
    outcomes: Sequence[Outcome],
    names: Sequence[str],
    sizes: Sequence[str],
    settle: int,
    noise: dict[str, float],
) -> dict[str, Any]:
    """What the reports found in batches after the drift start, against the features
    the generator shifts. `noise` is each feature's 95th-percentile PSI on full
    batches without drift, the yardstick for the PSI the drift produced."""
    expected = matching(names, EXPECTED[kind])
    indirect = [n for n in matching(names, INDIRECT[kind]) if n not in expected]
    settled = [o for o in outcomes if (o.days_since_drift or 0) >= settle]

    def found(group: Sequence[Outcome], full: bool = True) -> dict[str, Any]:
        out = verdict_rates(group)
        n = len(group)
        out["any_expected_found_rate"] = rate(
            sum(any(e in o.drifted for e in expected) for o in group), n
        )
        if full:
            out["all_expected_found_rate"] = rate(
                sum(all(e in o.drifted for e in expected) for o in group), n
            )
        out["mean_expected_found"] = (
            round(float(np.mean([sum(e in o.drifted for e in expected) for o in group])), 1)
            if n
            else None
        )
        return out

    flagged = {n for o in settled for n in o.drifted}
    by_days: dict[int, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_days[o.days_since_drift or 0].append(o)
    full_batches = [o for o in settled if o.batch == sizes[-1]]
    expected_features = {
        name: {
            "found_rate_by_batch_size": feature_rates(settled, [name], sizes)[name],
            f"psi_median_batch_{sizes[-1]}": quantile([o.psi[name] for o in full_batches], 0.5),
            "psi_p95_no_drift": noise.get(name),
            f"significant_rate_batch_{sizes[-1]}": rate(
                sum(name in o.significant for o in full_batches), len(full_batches)
            ),
        }
        for name in expected
    }
    summary = found(settled)
    summary.update(
        {
            "by_setting": {
                k: found([o for o in settled if o.setting == k], full=False)
                for k in settings_order(sizes)
            },
            "by_days_since_drift": {str(d): found(by_days[d], full=False) for d in sorted(by_days)},
            "expected_features": expected_features,
            "indirect_flagged_rate_by_batch_size": feature_rates(
                settled, [n for n in indirect if n in flagged], sizes
            ),
            "unexpected_flagged_rate_by_batch_size": feature_rates(
                settled, [n for n in names if n in flagged - set(expected) - set(indirect)], sizes
            ),
        }
    )
    return summary


def time_confounded(study: Study, worlds: Sequence[World], horizon_days: int) -> dict[str, Any]:
    """No injected drift, but reference and batch are months apart: what the production
    comparison flags, and what a world's first snapshot against its last flags."""
    production: list[Outcome] = []
    early_late: list[Outcome] = []
    validation_dates: set[str] = set()
    for world in worlds:
        frame = study.frames[world]
        data_end = frame["as_of_date"].max()
        # The production reference: time_split's validation fold of the training examples
        # (snapshots whose label window has closed), as training_reference takes it.
        examples = frame[frame["as_of_date"] + pd.Timedelta(days=horizon_days) <= data_end]
        examples = examples.sort_values(["customer_id", "as_of_date"]).reset_index(drop=True)
        fold = examples.iloc[time_split(examples["customer_id"], examples["as_of_date"]).validation]
        validation_dates |= {str(d.date()) for d in fold["as_of_date"].unique()}
        reference = study.profile(fold, f"{world.label} validation fold")
        for current in worlds:
            rows = study.snapshot(current, data_end)
            study.run(
                "time_confounded", reference, world.label, "validation_fold", current, rows, "all"
            )
            production.append(study.outcomes[-1])
        first = study.profile(
            study.snapshot(world, frame["as_of_date"].min()), f"{world.label} first snapshot"
        )
        last = study.snapshot(world, data_end)
        study.run("time_confounded", first, world.label, "snapshot", world, last, "all")
        early_late.append(study.outcomes[-1])

    def flagged(group: Sequence[Outcome]) -> dict[str, int]:
        return dict(Counter(n for o in group for n in o.drifted).most_common())

    return {
        "validation_fold_vs_scoring_snapshot": {
            **verdict_rates(production),
            "validation_as_of": sorted(validation_dates),
            "reference_rows": sorted({o.reference_rows for o in production}),
            "features_flagged": flagged(production),
        },
        "first_vs_last_snapshot_same_world": {
            **verdict_rates(early_late),
            "features_flagged": flagged(early_late),
        },
    }


def parse_ints(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5_000, help="customers per world")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-drift-seeds", default="101,102,103,104")
    parser.add_argument("--drift-seeds", default="201,202,203", help="seeds per drift kind")
    parser.add_argument("--kinds", default=",".join(DRIFT_KINDS))
    parser.add_argument("--sizes", default="250,1000,all", help="batch sizes (rows or all)")
    parser.add_argument("--settle-days", type=int, default=30)
    parser.add_argument("--goal", type=float, default=0.05, help="false-alarm goal (alert rate)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="worlds built in parallel")
    parser.add_argument("--home", type=Path, default=Path("var/bench/drift_alarms"))
    parser.add_argument("--fresh", action="store_true", help="rebuild worlds that exist")
    args = parser.parse_args()
    started = time.perf_counter()
    root = args.home.resolve()
    root.mkdir(parents=True, exist_ok=True)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(DRIFT_KINDS))
    if unknown:
        parser.error(f"unknown drift kinds {unknown}; choose from {', '.join(DRIFT_KINDS)}")
    clean = [World(None, s) for s in parse_ints(args.no_drift_seeds)]
    drifting = [World(k, s) for k in kinds for s in parse_ints(args.drift_seeds)]
    if len(clean) < 2:
        parser.error("need at least two no-drift seeds: a reference world and another")
    drift_start = GeneratorConfig(days=args.days, start=START).resolved_drift_start()
    settings = load_settings({"CHURN_HOME": str(root)})

    worlds = [*clean, *drifting]
    log(f"building {len(worlds)} worlds of {args.customers:,} customers, {args.jobs} at a time")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(build_world, w, args.customers, args.days, root, args.fresh) for w in worlds
        ]
        built = [f.result() for f in futures]
    build_seconds = time.perf_counter() - started
    frames: dict[World, pd.DataFrame] = {}
    for world, (path, _, _) in zip(worlds, built, strict=True):
        # A fixed row order: DuckDB returns rows in any order, and subsamples are drawn
        # by position, so the same seeds give the same reports.
        frame = pd.read_parquet(path).sort_values(["as_of_date", "customer_id"], ignore_index=True)
        frame["bucket"] = customer_bucket(frame["customer_id"])
        frames[world] = frame

    reports_started = time.perf_counter()
    spec = FeatureSpec.fit(frames[clean[0]].drop(columns=["bucket"]))
    study = Study(
        spec=spec,
        thresholds=DriftThresholds(),
        sizes=[s.strip() for s in args.sizes.split(",") if s.strip()],
        rng=np.random.default_rng(args.sample_seed),
        frames=frames,
    )
    dates = sorted(set.intersection(*(set(f["as_of_date"].unique()) for f in frames.values())))
    dates = [pd.Timestamp(d) for d in dates]
    before = [d for d in dates if d.date() <= drift_start]
    after = [d for d in dates if d.date() > drift_start]

    log(f"false alarms: {len(clean)} no-drift worlds, {len(dates)} snapshot dates")
    study.same_date("false_alarm", clean, clean, dates)
    log("pre-drift control and detection")
    study.same_date("pre_drift_control", clean, drifting, before)
    study.same_date("detection", clean, drifting, after, drift_start)
    log("time-confounded comparisons")
    confounded = time_confounded(study, clean, settings.churn.horizon_days)
    report_seconds = time.perf_counter() - reports_started

    def of(name: str, kind: str | None = None) -> list[Outcome]:
        return [o for o in study.outcomes if o.study == name and (kind is None or o.kind == kind)]

    names = list(spec.names)
    full_no_drift = [o for o in of("false_alarm") if o.batch == study.sizes[-1]]
    noise = {n: quantile([o.psi[n] for o in full_no_drift], 0.95) for n in names}
    fold_rows = [
        o.reference_rows for o in of("false_alarm") if o.reference_mode == "validation_fold"
    ]
    result = {
        "benchmark": "drift_alarms",
        "config": {
            "customers_per_world": args.customers,
            "days": args.days,
            "start": START.isoformat(),
            "drift_start": drift_start.isoformat(),
            "no_drift_seeds": [w.seed for w in clean],
            "drift_seeds": parse_ints(args.drift_seeds),
            "kinds": kinds,
            "batch_sizes": study.sizes,
            "reference_modes": list(REFERENCE_MODES),
            "snapshot_dates": [str(d.date()) for d in dates],
            "settle_days": args.settle_days,
            "thresholds": study.thresholds.__dict__,
            "features": {"numeric": len(study.numeric), "categorical": spec.categorical},
            "live_customers_per_snapshot": {
                "min": int(min(len(study.snapshot(w, d)) for w in clean for d in dates)),
                "max": int(max(len(study.snapshot(w, d)) for w in clean for d in dates)),
            },
            "validation_fold_reference_rows": {"min": min(fold_rows), "max": max(fold_rows)},
        },
        "seconds": {
            "build_worlds": round(build_seconds, 1),
            "worlds_reused": sum(reused for _, _, reused in built),
            "reports": round(report_seconds, 1),
            "reports_run": len(study.outcomes),
            "total": round(time.perf_counter() - started, 1),
        },
        "false_alarms": alarm_summary(of("false_alarm"), study.sizes, args.goal),
        "pre_drift_control": alarm_summary(of("pre_drift_control"), study.sizes, args.goal),
        "detection": {
            kind: detection_summary(
                kind, of("detection", kind), names, study.sizes, args.settle_days, noise
            )
            for kind in kinds
        },
        "time_confounded_no_drift": confounded,
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
