import numpy as np
import optuna
import pytest
from sklearn.metrics import roc_auc_score

from churn_assets.ml.search import (
    FAMILIES,
    LIGHTGBM_STEPS,
    SearchBudget,
    SearchData,
    fit_params,
    objective,
    run_search,
    study_name_for,
)
from churn_assets.ml.training import _best_per_family, _stack


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    x[:, 4] = rng.integers(0, 3, n)  # a categorical code column
    x[rng.random(n) < 0.05, 1] = np.nan  # missing values, as real features have
    logit = -2 + 1.5 * x[:, 0] - np.nan_to_num(x[:, 1]) + 0.5 * (x[:, 4] == 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    half = n * 2 // 3
    return SearchData(x[:half], y[:half], x[half:], y[half:], categorical=[4])


def test_every_family_trains_and_scores():
    data = _data()
    for family in FAMILIES:
        study = run_search(data, SearchBudget(trials=1, timeout_seconds=60, families=(family,)))
        trial = study.best_trial
        assert trial.params["family"] == family
        assert 0.7 < trial.value <= 1.0, (family, trial.value)


def test_search_is_seeded_and_resumable(tmp_path):
    data = _data()
    budget = SearchBudget(
        trials=4, timeout_seconds=120, seed=3, families=("lightgbm", "logistic_regression")
    )
    first = run_search(data, budget, study_name="a")
    second = run_search(data, budget, study_name="b")
    assert [t.params for t in first.trials] == [t.params for t in second.trials]

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(
        data, SearchBudget(trials=2, seed=1, families=("logistic_regression",)), "resume", storage
    )
    resumed = run_search(
        data, SearchBudget(trials=4, seed=1, families=("logistic_regression",)), "resume", storage
    )
    assert len(resumed.trials) == 4  # the two finished trials count toward the budget
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in resumed.trials)


def test_single_class_validation_is_refused():
    data = _data()
    bad = SearchData(data.x_train, data.y_train, data.x_valid, np.zeros_like(data.y_valid))
    with pytest.raises(ValueError, match="churners and non-churners"):
        run_search(bad, SearchBudget(trials=1))


class _PruneAtFirstReport(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_lightgbm_trial_stops_boosting_at_its_checkpoint():
    data = _data()
    budget = SearchBudget(trials=1, families=("lightgbm",))
    study = optuna.create_study(direction="maximize", pruner=_PruneAtFirstReport())
    study.optimize(objective(data, budget), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    rounds = trial.params["num_rounds"]
    assert trial.user_attrs["rounds_trained"] == rounds // LIGHTGBM_STEPS < rounds
    assert list(trial.intermediate_values) == [1]


def test_a_completed_lightgbm_trial_scores_its_fully_trained_booster():
    data = _data()
    study = run_search(data, SearchBudget(trials=1, families=("lightgbm",)))
    (trial,) = study.trials
    assert list(trial.intermediate_values) == list(range(1, LIGHTGBM_STEPS + 1))
    refit = fit_params(trial.params, data, seed=0)
    assert trial.value == pytest.approx(roc_auc_score(data.y_valid, refit(data.x_valid)))


def test_another_family_list_gets_its_own_study(tmp_path):
    data = _data()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    both = SearchBudget(trials=2, families=("lightgbm", "logistic_regression"))
    reordered = SearchBudget(trials=2, families=("logistic_regression", "lightgbm"))
    assert study_name_for("ab" * 32, both) == study_name_for("ab" * 32, reordered)
    run_search(data, both, study_name_for("ab" * 32, both), storage)
    only = SearchBudget(trials=2, families=("lightgbm",))
    assert study_name_for("ab" * 32, only) != study_name_for("ab" * 32, both)
    # under the same name Optuna would refuse the changed family choice
    study = run_search(data, only, study_name_for("ab" * 32, only), storage)
    assert {t.params["family"] for t in study.trials} == {"lightgbm"}


def test_stack_of_the_best_families_is_scored_out_of_fold():
    data = _data()
    budget = SearchBudget(trials=6, seed=2, families=("lightgbm", "logistic_regression"))
    study = run_search(data, budget)
    leaderboard = _best_per_family(study)
    assert len(leaderboard) == 2
    stack = _stack(study, leaderboard, data, seed=2, size=3, progress=lambda _: None)
    assert stack["members"] == [row["family"] for row in leaderboard]  # best first
    assert stack["servable"] is False
    best_member = max(row["validation_auc"] for row in leaderboard)
    # out of fold on the validation rows: a fair competitor, near its members
    assert abs(stack["validation_auc"] - best_member) < 0.05
    # a single family has nothing to stack
    assert _stack(study, leaderboard[:1], data, seed=2, size=3, progress=lambda _: None) == {}
