import numpy as np
import optuna
import pytest

from churn_assets.ml.search import FAMILIES, SearchBudget, SearchData, run_search


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
