"""Where the gap between the model and the generator's oracle comes from.

    uv run python bench/oracle_gap.py [--customers 50000] [--seed 7] [--days 365]

The oracle (`warehouse.ground_truth`) knows each customer's hidden state on the day
before as_of; a model sees only the events that state produced. This builds the
default demo world (the same size and seed as `make demo`, on a fixed start date) in
var/bench/oracle_gap/, recording the generator's hidden state on every snapshot date
(`generate(observe_hidden_state=...)`), runs the dbt models up to `training_examples`,
and trains LightGBM on the pipeline's own time split (`time_split`), with the search's
starting parameters (`LIGHTGBM_START`) and seed, on:

- `events`: the shipped feature set, what `churn_model_candidate` learns from;
- `events + engagement`: plus the latent engagement level the hazard uses;
- `events + other hidden state`: plus payment trouble, recent failures, the unhappy
  state, price pressure and frailty (everything in the hazard but engagement);
- `events + all hidden state`: both. If the oracle, the split and the labels agree,
  this model reaches the oracle, so any gap left in `events` is information the events
  do not carry (or too little data to learn it), not a fault of the pipeline;
- `events + linear engagement estimate`: plus a least-squares estimate of engagement
  from the (log) engagement features, fitted on the training rows: whether the model
  fails to combine what the events do say about engagement;
- `events, N % of training customers`: the learning curve on the shipped features.

Every model is scored on the holdout by ROC AUC and by its gap to the oracle AUC on
the same rows, with a paired bootstrap 95 % interval and the share of resamples in
which the gap is within --target. The world is reused when it exists (`--fresh` to
rebuild it). Progress goes to stderr; one JSON object to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score, roc_auc_score
from worlds import build_world

from churn_assets.ml.bundle import train_booster
from churn_assets.ml.evaluation import oracle_probabilities
from churn_assets.ml.feature_matrix import load_training_frame
from churn_assets.ml.gates import paired_auc_test
from churn_assets.ml.search import LIGHTGBM_START, lightgbm_params
from churn_assets.ml.training import TrainingSet, prepare_training_set
from warehouse.connection import Warehouse
from warehouse.generator import GeneratorConfig
from warehouse.ground_truth import GroundTruth
from warehouse.settings import load_settings

START = dt.date(2025, 1, 1)
ENGAGEMENT = ["engagement", "engagement_mean"]
OTHER_STATE = ["payment_trouble", "recent_failures", "unhappy", "price_pressure", "frailty"]
STATE_FILE = "hidden_state.parquet"
MARKER = "built.json"  # written last: a world without it is rebuilt
# the feature families the latent engagement drives (warehouse/generator.py `_simulate_day`)
ENGAGEMENT_FEATURES = ("login_", "usage_", "active_days_", "activity_", "seats_")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def snapshot_state(home: Path, cfg: GeneratorConfig, cadence_days: int) -> pd.DataFrame:
    """Build the world (or reuse it) and return the hidden state behind every snapshot:
    the state on the day before each as_of date, keyed by (customer_id, as_of_date)."""
    if (home / MARKER).exists():
        return pd.read_parquet(home / STATE_FILE)
    shutil.rmtree(home, ignore_errors=True)
    data_end = cfg.resolved_start() + dt.timedelta(days=cfg.days)  # the day after the last
    kept: list[pd.DataFrame] = []

    def keep(day: dt.date, state: pd.DataFrame) -> None:
        as_of = day + dt.timedelta(days=1)
        if (data_end - as_of).days % cadence_days == 0:
            kept.append(state.assign(as_of_date=pd.Timestamp(as_of)))

    started = time.perf_counter()
    _, phases = build_world(
        home, cfg, ["+training_examples", "+customer_attributes"], observe_hidden_state=keep
    )
    state = pd.concat(kept, ignore_index=True)
    state.to_parquet(home / STATE_FILE, index=False)
    spent = ", ".join(f"{k} {v:.0f}s" for k, v in phases.items())
    (home / MARKER).write_text(json.dumps({"seconds": time.perf_counter() - started}))
    log(f"built the world in {time.perf_counter() - started:.0f}s ({spent})")
    return state


def with_state(ts: TrainingSet, state: pd.DataFrame) -> pd.DataFrame:
    """The hidden-state columns in the training set's row order; every row must have one."""
    rows = ts.frame[["customer_id", "as_of_date"]].merge(
        state, on=["customer_id", "as_of_date"], how="left", validate="one_to_one"
    )
    missing = rows["engagement"].isna()
    if missing.any():
        dates = sorted({str(d.date()) for d in rows.loc[missing, "as_of_date"]})
        raise RuntimeError(
            f"{int(missing.sum()):,} training examples have no recorded hidden state "
            f"(as_of {', '.join(dates[:5])}): the snapshot dates differ from the recorded ones"
        )
    return rows[ENGAGEMENT + OTHER_STATE].astype("float64")


def engagement_estimate(ts: TrainingSet, hidden: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Least-squares engagement from the log engagement features, fitted on the
    training rows; returns it for every row and its R^2 on the holdout."""
    columns = [
        i
        for i, n in enumerate(ts.spec.names)
        if n.startswith(ENGAGEMENT_FEATURES) and n not in ts.spec.categories
    ]
    x = ts.x[:, columns].astype("float64")
    x = np.sign(x) * np.log1p(np.abs(x))  # counts and sums span orders of magnitude
    x = np.where(np.isnan(x), np.nanmedian(x[ts.rows("train")], axis=0), x)
    truth = hidden["engagement"].to_numpy()
    train, holdout = ts.rows("train"), ts.rows("holdout")
    fit = LinearRegression().fit(x[train], truth[train])
    estimate = fit.predict(x)
    return estimate, float(r2_score(truth[holdout], estimate[holdout]))


def score(
    ts: TrainingSet,
    x: np.ndarray,
    train: np.ndarray,
    oracle: np.ndarray,
    seed: int,
    target: float,
) -> dict[str, Any]:
    """Train the starting LightGBM on `train` rows of x, score validation and holdout."""
    valid, holdout = ts.rows("validation"), ts.rows("holdout")
    booster = train_booster(
        x[train],
        ts.y[train],
        lightgbm_params(LIGHTGBM_START),
        int(LIGHTGBM_START["num_rounds"]),
        seed,
        [i for i, n in enumerate(ts.spec.names) if n in ts.spec.categories],
    )
    p_holdout = np.asarray(booster.predict(x[holdout]), dtype=float)
    known = ~np.isnan(oracle)
    y = ts.y[holdout][known]
    gap = paired_auc_test(y, p_holdout[known], oracle[known], tolerance=target, seed=seed)
    return {
        "training_rows": len(train),
        "validation_auc": round(float(roc_auc_score(ts.y[valid], booster.predict(x[valid]))), 4),
        "holdout_auc": round(gap["auc_candidate"], 4),
        "gap_to_oracle": round(-gap["difference"], 4),
        "gap_ci": [round(-gap["ci_high"], 4), round(-gap["ci_low"], 4)],
        "share_of_resamples_within_target": round(gap["p_not_worse"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=GeneratorConfig.customers)
    parser.add_argument("--days", type=int, default=GeneratorConfig.days)
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed, help="world seed")
    parser.add_argument("--model-seed", type=int, default=0, help="LightGBM and bootstrap seed")
    parser.add_argument("--target", type=float, default=0.02, help="allowed gap to the oracle")
    parser.add_argument("--fractions", default="0.25,0.5", help="learning-curve customer shares")
    parser.add_argument("--home", type=Path, default=Path("var/bench/oracle_gap"))
    parser.add_argument("--fresh", action="store_true", help="rebuild the world if it exists")
    args = parser.parse_args()
    started = time.perf_counter()
    cfg = GeneratorConfig(customers=args.customers, days=args.days, seed=args.seed, start=START)
    home = (args.home / f"c{args.customers}-d{args.days}-s{args.seed}").resolve()
    if args.fresh:
        shutil.rmtree(home, ignore_errors=True)
    settings = load_settings({"CHURN_HOME": str(home)})
    state = snapshot_state(home, cfg, settings.churn.cadence_days)

    ts = prepare_training_set(load_training_frame(Warehouse(settings)))
    hidden = with_state(ts, state)
    truth = GroundTruth(settings.ground_truth_dir / "hazard.parquet")
    holdout = ts.rows("holdout")
    oracle = oracle_probabilities(truth, ts.frame.iloc[holdout], settings.churn.horizon_days)
    known = ~np.isnan(oracle)
    oracle_auc = float(roc_auc_score(ts.y[holdout][known], oracle[known]))
    log(f"{len(ts.frame):,} training examples; holdout oracle AUC {oracle_auc:.4f}")

    train = ts.rows("train")
    variants = {
        "events": ts.x,
        "events + engagement": np.column_stack([ts.x, hidden[ENGAGEMENT]]),
        "events + other hidden state": np.column_stack([ts.x, hidden[OTHER_STATE]]),
        "events + all hidden state": np.column_stack([ts.x, hidden]),
    }
    estimate, estimate_r2 = engagement_estimate(ts, hidden)
    log(f"linear engagement estimate: holdout R^2 {estimate_r2:.3f}")
    variants["events + linear engagement estimate"] = np.column_stack([ts.x, estimate])
    models: dict[str, Any] = {}
    for name, x in variants.items():
        models[name] = score(ts, x, train, oracle, args.model_seed, args.target)
        log(f"{name}: {models[name]}")
    customers = ts.frame["customer_id"].to_numpy()
    pool = np.unique(customers[train])
    rng = np.random.default_rng(args.model_seed)
    for share in (float(f) for f in args.fractions.split(",") if f):
        picked = rng.choice(pool, round(share * len(pool)), replace=False)
        subset = train[np.isin(customers[train], picked)]
        name = f"events, {share:.0%} of training customers"
        models[name] = score(ts, ts.x, subset, oracle, args.model_seed, args.target)
        log(f"{name}: {models[name]}")

    summary = ts.summary()
    print(
        json.dumps(
            {
                "world": {
                    "customers": args.customers,
                    "days": args.days,
                    "seed": args.seed,
                    "start": START.isoformat(),
                },
                "training_examples": summary["rows"],
                "split_rows": summary["split_rows"],
                "holdout_from": summary["holdout_from"],
                "holdout_churners": int(ts.y[holdout].sum()),
                "oracle_holdout_auc": round(oracle_auc, 4),
                "engagement_estimate_holdout_r2": round(estimate_r2, 3),
                "target_gap": args.target,
                "lightgbm": {k: v for k, v in LIGHTGBM_START.items() if k != "family"},
                "models": models,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
