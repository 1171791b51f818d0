"""Training a model candidate from training examples: time-respecting split, stable
feature selection, the model search, a stacking ensemble of the best families, the
parsimony rule, the final LightGBM booster and its calibration on a time-later fold.

Everything is seeded and rows are put in a fixed order first, so the same data and
settings give the same model (search timing aside: the trial budget, not the clock,
should bound a reproducible search; `reproduce` retrains from the recorded choice)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from churn_assets.ml.bundle import ModelBundle, train_booster
from churn_assets.ml.business import CampaignEconomics, best_campaign
from churn_assets.ml.calibration import Calibrator, Method
from churn_assets.ml.drift import ReferenceProfile, build_reference
from churn_assets.ml.feature_matrix import KEY_COLUMNS, FeatureSpec
from churn_assets.ml.lineage import frame_fingerprint
from churn_assets.ml.search import SearchBudget, SearchData, fit_params, lightgbm_params, run_search
from churn_assets.ml.selection import Selection, select_features
from churn_assets.ml.splits import TimeSplit, time_split

REVENUE_COLUMN = "monthly_revenue"
REFERENCE_ROWS = 100_000  # enough for stable percentiles; bounds the bundle's size
SERVABLE_FAMILIES = ("lightgbm",)  # what serving runs natively (a Booster, no sklearn)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # training examples in (customer_id, as_of_date) order
    spec: FeatureSpec  # every candidate feature
    x: np.ndarray
    y: np.ndarray
    split: TimeSplit
    fingerprint: str

    def rows(self, part: str) -> np.ndarray:
        return getattr(self.split, part)

    def summary(self) -> dict[str, Any]:
        dates = self.frame["as_of_date"]
        return {
            "fingerprint": self.fingerprint,
            "rows": len(self.frame),
            "churners": int(self.y.sum()),
            "customers": int(self.frame["customer_id"].nunique()),
            "as_of_from": str(dates.min().date()),
            "as_of_to": str(dates.max().date()),
            "validation_from": str(self.split.validation_from.date()),
            "holdout_from": str(self.split.holdout_from.date()),
            "split_rows": {p: len(self.rows(p)) for p in ("train", "validation", "holdout")},
        }


def prepare_training_set(frame: pd.DataFrame) -> TrainingSet:
    """Fix the row order (warehouses return rows in any order), build the matrix over
    every feature and split it by customer and time."""
    if frame.empty:
        raise ValueError("no training examples: build the feature tables first")
    frame = frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    spec = FeatureSpec.fit(frame)
    y = frame["churned"].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("training examples hold a single class; nothing to learn")
    return TrainingSet(
        frame=frame,
        spec=spec,
        x=spec.transform(frame),
        y=y,
        split=time_split(frame["customer_id"], frame["as_of_date"]),
        fingerprint=frame_fingerprint(frame),
    )


@dataclass(frozen=True)
class TrainingChoice:
    """What `reproduce` needs to retrain a version without searching again."""

    features: list[str]
    params: dict[str, Any]  # the chosen LightGBM trial's params (family included)
    seed: int
    calibration: Method

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainedCandidate:
    bundle: ModelBundle
    choice: TrainingChoice
    study: optuna.Study
    selection: Selection
    leaderboard: list[dict[str, Any]]
    parsimony: dict[str, Any]
    calibration: dict[str, Any]
    threshold: float
    budget: SearchBudget
    stack: dict[str, Any] = field(default_factory=dict)

    def search_summary(self) -> dict[str, Any]:
        completed = _completed(self.study)
        return {
            "study": self.study.study_name,
            "trials": len(self.study.trials),
            "completed": len(completed),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in self.study.trials),
            # a search the clock stopped is not repeatable by running it again
            "budget": {
                "trials": self.budget.trials,
                "timeout_seconds": self.budget.timeout_seconds,
            },
            "stopped_by": "trial budget"
            if len(self.study.trials) >= self.budget.trials
            else "time budget",
            "families": sorted({t.params["family"] for t in self.study.trials if t.params}),
            "search_space": _search_space(self.study),
            "best_per_family": self.leaderboard,
            "stack": self.stack,
            "chosen": {
                "family": self.choice.params["family"],
                "params": self.choice.params,
                "validation_auc": self.parsimony["chosen_auc"],
            },
            "parsimony": self.parsimony,
        }


def train_candidate(
    ts: TrainingSet,
    budget: SearchBudget,
    parsimony_tolerance: float,
    calibration: Method,
    economics: CampaignEconomics,
    stack_size: int = 3,
    storage: str | None = None,
    study_name: str = "churn-model-search",
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    progress: Progress = lambda _: None,
) -> TrainedCandidate:
    train, valid = ts.rows("train"), ts.rows("validation")
    progress(f"Feature selection over {len(ts.spec.names)} features on {len(train):,} rows")
    selection = select_features(
        ts.x[train], ts.y[train], list(ts.spec.names), _categorical(ts.spec), seed=budget.seed
    )
    progress(f"Kept {len(selection.kept)} features, dropped {len(selection.dropped)}")
    spec = _subset(ts.spec, selection.kept)
    columns = np.array([ts.spec.names.index(n) for n in spec.names])
    data = SearchData(
        x_train=ts.x[np.ix_(train, columns)],
        y_train=ts.y[train],
        x_valid=ts.x[np.ix_(valid, columns)],
        y_valid=ts.y[valid],
        categorical=_categorical(spec),
    )
    progress(
        f"Search: up to {budget.trials} trials / {budget.timeout_seconds:.0f}s over "
        f"{', '.join(budget.families)}"
    )
    study = run_search(data, budget, study_name=study_name, storage=storage, callbacks=callbacks)
    leaderboard = _best_per_family(study)
    stack = _stack(study, leaderboard, data, budget.seed, stack_size, progress)
    chosen, parsimony = choose_by_parsimony(study, stack.get("validation_auc"), parsimony_tolerance)
    progress(f"Chosen: {parsimony['decision']}")
    choice = TrainingChoice(list(spec.names), dict(chosen.params), budget.seed, calibration)
    bundle, calib_info, threshold = fit_final(ts, choice, economics)
    return TrainedCandidate(
        bundle=bundle,
        choice=choice,
        study=study,
        selection=selection,
        leaderboard=leaderboard,
        parsimony=parsimony,
        calibration=calib_info,
        threshold=threshold,
        budget=budget,
        stack=stack,
    )


def fit_final(
    ts: TrainingSet, choice: TrainingChoice, economics: CampaignEconomics
) -> tuple[ModelBundle, dict[str, Any], float]:
    """Train the chosen booster on the training fold, calibrate it on the time-later
    validation fold and pick the campaign threshold there (never on the holdout)."""
    spec = _subset(ts.spec, choice.features)
    columns = np.array([ts.spec.names.index(n) for n in spec.names])
    train, valid = ts.rows("train"), ts.rows("validation")
    booster = train_booster(
        ts.x[np.ix_(train, columns)],
        ts.y[train],
        lightgbm_params(choice.params),
        int(choice.params["num_rounds"]),
        choice.seed,
        _categorical(spec),
    )
    raw_valid = np.asarray(booster.predict(ts.x[np.ix_(valid, columns)]), dtype=float)
    calibrator = Calibrator.fit(raw_valid, ts.y[valid], choice.calibration)
    p_valid = calibrator.transform(raw_valid)
    threshold = operating_threshold(ts.y[valid], p_valid, _revenue(ts.frame, valid), economics)
    reference = training_reference(ts, spec, valid, p_valid, choice.seed)
    bundle = ModelBundle(booster=booster, spec=spec, calibrator=calibrator, reference=reference)
    calibration = {
        "method": choice.calibration,
        "fold": "validation (time-later than training)",
        "rows": len(valid),
        "churners": int(ts.y[valid].sum()),
    }
    return bundle, calibration, threshold


def training_reference(
    ts: TrainingSet, spec: FeatureSpec, valid: np.ndarray, p_valid: np.ndarray, seed: int
) -> ReferenceProfile:
    """The drift reference frozen with the model: its features and calibrated scores on
    the validation fold (a seeded sample of at most REFERENCE_ROWS rows). That fold is
    the latest period the model learned from (it fitted the calibrator and the
    threshold); the training fold's early snapshots carry windows cut short by the
    start of the history, which would make every later batch look drifted."""
    rows = np.arange(len(valid))
    if len(rows) > REFERENCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, REFERENCE_ROWS, replace=False))
    frame = ts.frame.iloc[valid[rows]]
    dates = frame["as_of_date"]
    numeric = [n for n in spec.names if n not in spec.categories]
    return build_reference(
        frame[list(spec.names)],
        spec.categorical,
        numeric,
        p_valid[rows],
        f"{len(rows):,} validation rows, as_of {dates.min().date()} to {dates.max().date()}",
    )


def operating_threshold(
    y: np.ndarray, p: np.ndarray, revenue: np.ndarray, economics: CampaignEconomics
) -> float:
    """The campaign threshold maximizing net saved revenue; when no campaign pays off,
    the top-decile score, so precision and recall still describe a sensible cut."""
    plan = best_campaign(y, p, revenue, economics)
    return plan.threshold if plan.contacted else float(np.quantile(p, 0.9))


def choose_by_parsimony(
    study: optuna.Study, stack_auc: float | None, tolerance: float
) -> tuple[optuna.trial.FrozenTrial, dict[str, Any]]:
    """Among servable trials within `tolerance` of the best validation AUC of any model
    (stack included), take the cheapest to run (fewest tree nodes); if none is that
    close, the best servable trial, with the gap recorded."""
    completed = _completed(study)
    servable = [t for t in completed if t.params["family"] in SERVABLE_FAMILIES]
    if not servable:
        raise ValueError(
            "no LightGBM trial completed, so nothing is servable: raise CHURN_SEARCH_TRIALS "
            "or CHURN_SEARCH_TIMEOUT_SECONDS"
        )
    best_values = [t.value for t in completed if t.value is not None]
    best_overall = max([*best_values, stack_auc or 0.0])
    near = [t for t in servable if (t.value or 0.0) >= best_overall - tolerance]
    if near:
        chosen = min(near, key=lambda t: (complexity(t.params), -(t.value or 0.0), t.number))
        rule = f"cheapest servable model within {tolerance} AUC of the best"
    else:
        chosen = max(servable, key=lambda t: (t.value or 0.0, -t.number))
        rule = f"no servable model within {tolerance} AUC of the best: best servable model"
    chosen_auc = float(chosen.value or 0.0)
    return chosen, {
        "rule": rule,
        "tolerance": tolerance,
        "best_overall_auc": best_overall,
        "chosen_auc": chosen_auc,
        "chosen_trial": chosen.number,
        "chosen_complexity": complexity(chosen.params),
        "decision": (
            f"trial {chosen.number} ({chosen.params['family']}, "
            f"{complexity(chosen.params):,} tree nodes) at validation AUC {chosen_auc:.4f}; "
            f"best of any model {best_overall:.4f}; {rule}"
        ),
    }


def complexity(params: dict[str, Any]) -> int:
    """Inference cost of a LightGBM trial: trees times leaves."""
    return int(params.get("num_rounds", 0)) * int(params.get("num_leaves", 0))


def _stack(
    study: optuna.Study,
    leaderboard: list[dict[str, Any]],
    data: SearchData,
    seed: int,
    size: int,
    progress: Progress,
) -> dict[str, Any]:
    """A logistic-regression stack over the best trial of the top families. Its AUC is
    measured out of fold on the validation rows, so it competes fairly."""
    members = leaderboard[:size]
    if len(members) < 2:
        return {}
    progress(f"Stacking the best of {', '.join(m['family'] for m in members)}")
    trials = {t.number: t for t in study.trials}
    scores = np.column_stack(
        [fit_params(dict(trials[m["trial"]].params), data, seed)(data.x_valid) for m in members]
    )
    logits = np.log(np.clip(scores, 1e-6, 1 - 1e-6) / np.clip(1 - scores, 1e-6, 1))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(
        LogisticRegression(), logits, data.y_valid, cv=folds, method="predict_proba"
    )[:, 1]
    return {
        "members": [m["family"] for m in members],
        "validation_auc": float(roc_auc_score(data.y_valid, out_of_fold)),
        "servable": False,
    }


def _best_per_family(study: optuna.Study) -> list[dict[str, Any]]:
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for t in _completed(study):
        family = t.params["family"]
        if family not in best or (t.value or 0.0) > (best[family].value or 0.0):
            best[family] = t
    rows = [
        {
            "family": family,
            "trial": t.number,
            "validation_auc": float(t.value or 0.0),
            "servable": family in SERVABLE_FAMILIES,
            "params": dict(t.params),
        }
        for family, t in best.items()
    ]
    return sorted(rows, key=lambda r: -r["validation_auc"])


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def _search_space(study: optuna.Study) -> dict[str, dict[str, Any]]:
    space: dict[str, dict[str, Any]] = {}
    for t in study.trials:
        for name, dist in t.distributions.items():
            family = t.params.get("family", "?") if name != "family" else "all"
            space.setdefault(family, {})[name] = repr(dist)
    return space


def _subset(spec: FeatureSpec, names: list[str]) -> FeatureSpec:
    missing = [n for n in names if n not in spec.names]
    if missing:
        raise KeyError(f"features not in the training examples: {', '.join(missing[:10])}")
    keep = [n for n in spec.names if n in set(names)]
    return FeatureSpec(tuple(keep), {n: c for n, c in spec.categories.items() if n in keep})


def _categorical(spec: FeatureSpec) -> list[int]:
    return [i for i, n in enumerate(spec.names) if n in spec.categories]


def _revenue(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    if REVENUE_COLUMN not in frame.columns:
        return np.zeros(len(rows))
    return pd.to_numeric(frame[REVENUE_COLUMN].iloc[rows], errors="coerce").to_numpy(dtype=float)
