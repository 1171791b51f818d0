"""The parsimony rule: among servable trials close enough to the best model of any
family (the stack included), the cheapest to run wins."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from churn_assets.ml.training import choose_by_parsimony, complexity

SPACE = {
    "family": CategoricalDistribution(["lightgbm", "extra_trees"]),
    "num_rounds": IntDistribution(10, 1000),
    "num_leaves": IntDistribution(2, 200),
}


def _study(*trials: tuple[str, float, int, int]) -> optuna.Study:
    """Trials as (family, validation AUC, rounds, leaves); rounds 0: not a tree model."""
    study = optuna.create_study(direction="maximize")
    for family, auc, rounds, leaves in trials:
        params = {
            "family": family,
            **({"num_rounds": rounds, "num_leaves": leaves} if rounds else {}),
        }
        distributions = {k: SPACE[k] for k in params}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=auc)
        )
    return study


def test_cheapest_servable_model_within_tolerance_of_the_best_wins():
    study = _study(
        ("lightgbm", 0.880, 600, 63),  # best LightGBM, dear
        ("lightgbm", 0.877, 100, 15),  # within 0.005 of the best, cheapest
        ("lightgbm", 0.870, 50, 7),  # cheaper still, but too far behind
        ("extra_trees", 0.881, 0, 0),  # best of any model, not servable
    )
    chosen, info = choose_by_parsimony(study, stack_auc=None, tolerance=0.005)
    assert chosen.number == 1 and info["chosen_complexity"] == complexity(chosen.params) == 1500
    assert info["best_overall_auc"] == 0.881 and "cheapest servable" in info["rule"]


def test_a_better_stack_raises_the_bar_and_the_best_servable_model_is_kept():
    study = _study(("lightgbm", 0.870, 600, 63), ("lightgbm", 0.860, 50, 7))
    chosen, info = choose_by_parsimony(study, stack_auc=0.900, tolerance=0.005)
    assert chosen.number == 0  # none is within 0.005 of the stack: the best servable one
    assert info["best_overall_auc"] == 0.900 and "no servable model within" in info["rule"]


def test_no_lightgbm_trial_means_nothing_servable():
    study = _study(("extra_trees", 0.88, 0, 0))
    with pytest.raises(ValueError, match="nothing is servable"):
        choose_by_parsimony(study, stack_auc=None, tolerance=0.005)
