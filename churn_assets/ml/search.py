"""Model search: a seeded Optuna TPE study with median pruning over five model
families, scored by validation AUC, under a trial and a time budget.

Families: LightGBM (native Booster), logistic regression (scaled, one-hot), extra
trees, histogram gradient boosting and an MLP. The study can live in any Optuna
storage, so an interrupted search resumes where it stopped."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn_assets.ml.bundle import train_booster

FAMILIES = ("lightgbm", "logistic_regression", "extra_trees", "hist_gradient_boosting", "mlp")
LIGHTGBM_STEPS = 4  # pruning checkpoints while boosting (validation AUC at each)
LIGHTGBM_START = {
    "family": "lightgbm",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "num_rounds": 200,
}


@dataclass(frozen=True)
class SearchData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    categorical: list[int] = field(default_factory=list)  # column positions


@dataclass(frozen=True)
class SearchBudget:
    trials: int = 40
    timeout_seconds: float = 300.0
    seed: int = 0
    families: tuple[str, ...] = FAMILIES


def _tabular_preprocessor(data: SearchData, scale: bool) -> ColumnTransformer:
    numeric = [i for i in range(data.x_train.shape[1]) if i not in data.categorical]
    numeric_steps: list = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if scale:
        numeric_steps.append(StandardScaler())
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1, keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                data.categorical,
            ),
        ]
    )


def _sklearn_model(
    trial: optuna.trial.BaseTrial, family: str, data: SearchData, seed: int
) -> Pipeline:
    if family == "logistic_regression":
        model = LogisticRegression(C=trial.suggest_float("C", 1e-3, 10.0, log=True), max_iter=500)
        return make_pipeline(_tabular_preprocessor(data, scale=True), model)
    if family == "extra_trees":
        # bounded so one trial stays under about 20 s on 150k rows and two cores: at
        # 150 trees on half the rows, trials took 40 s and the demo's search ran into
        # its time limit; a 30 % sample costs about 0.001 validation AUC
        model = ExtraTreesClassifier(
            n_estimators=trial.suggest_int("n_estimators", 50, 120),
            min_samples_leaf=trial.suggest_int("min_samples_leaf", 20, 200, log=True),
            max_features=trial.suggest_float("max_features", 0.2, 0.7),
            bootstrap=True,
            max_samples=0.3,
            n_jobs=2,
            random_state=seed,
        )
        return make_pipeline(_tabular_preprocessor(data, scale=False), model)
    if family == "hist_gradient_boosting":
        model = HistGradientBoostingClassifier(
            learning_rate=trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
            l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 1.0, log=True),
            categorical_features=data.categorical or None,
            random_state=seed,
        )
        return make_pipeline(model)
    if family == "mlp":
        width = trial.suggest_int("width", 16, 128, log=True)
        model = MLPClassifier(
            hidden_layer_sizes=(width, width // 2),
            alpha=trial.suggest_float("alpha", 1e-5, 1e-1, log=True),
            early_stopping=True,
            max_iter=200,
            random_state=seed,
        )
        return make_pipeline(_tabular_preprocessor(data, scale=True), model)
    raise ValueError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")


def _lightgbm_auc(trial: optuna.Trial, data: SearchData, seed: int) -> float:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-6, 10.0, log=True),
    }
    rounds = trial.suggest_int("num_rounds", 50, 600, log=True)
    checkpoints = {
        max(1, rounds * step // LIGHTGBM_STEPS): step for step in range(1, LIGHTGBM_STEPS + 1)
    }
    scores: list[float] = []

    def report(env: Any) -> None:
        # Score the validation fold while boosting, so a pruned trial stops training
        # at the checkpoint instead of paying for every round first.
        done = env.iteration + 1
        if done not in checkpoints:
            return
        scores.append(float(roc_auc_score(data.y_valid, env.model.predict(data.x_valid))))
        trial.report(scores[-1], checkpoints[done])
        if trial.should_prune():
            trial.set_user_attr("rounds_trained", done)
            raise optuna.TrialPruned()

    train_booster(
        data.x_train, data.y_train, params, rounds, seed, data.categorical, callbacks=[report]
    )
    return scores[-1]


def objective(data: SearchData, budget: SearchBudget) -> Callable[[optuna.Trial], float]:
    def run(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", list(budget.families))
        if family == "lightgbm":
            return _lightgbm_auc(trial, data, budget.seed)
        model = _sklearn_model(trial, family, data, budget.seed)
        model.fit(data.x_train, data.y_train)
        return float(roc_auc_score(data.y_valid, model.predict_proba(data.x_valid)[:, 1]))

    return run


Predictor = Callable[[np.ndarray], np.ndarray]


def fit_params(params: dict[str, Any], data: SearchData, seed: int) -> Predictor:
    """Refit the model a trial describes (its params include the family) on the
    training fold; returns a function from feature rows to churn scores."""
    fixed = optuna.trial.FixedTrial(params)
    family = params["family"]
    if family == "lightgbm":
        booster = train_booster(
            data.x_train,
            data.y_train,
            lightgbm_params(params),
            int(params["num_rounds"]),
            seed,
            data.categorical,
        )
        return lambda x: np.asarray(booster.predict(x), dtype=float)
    model = _sklearn_model(fixed, family, data, seed)
    model.fit(data.x_train, data.y_train)
    return lambda x: model.predict_proba(x)[:, 1]


def lightgbm_params(params: dict[str, Any]) -> dict[str, Any]:
    """The booster parameters of a LightGBM trial (without family and round count)."""
    return {k: v for k, v in params.items() if k not in ("family", "num_rounds")}


def study_name_for(fingerprint: str, budget: SearchBudget) -> str:
    """One study per training set, seed and family list: re-running after a crash
    resumes it, while another family list gets a study of its own (Optuna refuses a
    family choice whose options changed)."""
    families = hashlib.sha256(",".join(sorted(budget.families)).encode()).hexdigest()[:6]
    return f"churn-search-{fingerprint[:12]}-seed{budget.seed}-f{families}"


def run_search(
    data: SearchData,
    budget: SearchBudget,
    study_name: str = "churn-model-search",
    storage: str | None = None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
) -> optuna.Study:
    """Create or resume the study and run trials until it holds budget.trials finished
    ones (a resumed search completes its budget rather than starting over), stopping at
    budget.timeout_seconds. Callbacks see every finished trial (MLflow logging)."""
    if len(np.unique(data.y_valid)) < 2:
        raise ValueError("the validation fold needs churners and non-churners to score AUC")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # callers report progress
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=budget.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    if not study.trials and "lightgbm" in budget.families:
        # a sound LightGBM start guarantees one servable model even on tiny budgets
        study.enqueue_trial(LIGHTGBM_START)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = budget.trials - sum(t.state in finished for t in study.trials)
    if remaining <= 0:
        return study
    study.optimize(
        objective(data, budget),
        n_trials=remaining,
        timeout=budget.timeout_seconds,
        callbacks=callbacks or [],
    )
    return study
