import numpy as np
import pandas as pd
import pytest

from churn_assets.ml.splits import customer_bucket, time_split


def _panel(customers=500, snapshots=8):
    dates = pd.date_range("2025-01-01", periods=snapshots, freq="30D")
    ids = [f"C{i}" for i in range(customers)]
    frame = pd.DataFrame(
        [(c, d) for d in dates for c in ids], columns=["customer_id", "as_of_date"]
    )
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # order must not matter


def test_no_customer_and_no_moment_on_both_sides():
    frame = _panel()
    split = time_split(frame["customer_id"], frame["as_of_date"], holdout_snapshots=2)
    parts = {name: frame.iloc[getattr(split, name)] for name in ("train", "validation", "holdout")}
    ids = {name: set(p["customer_id"]) for name, p in parts.items()}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["holdout"]
    assert not ids["validation"] & ids["holdout"]
    assert parts["train"]["as_of_date"].max() < parts["validation"]["as_of_date"].min()
    assert parts["validation"]["as_of_date"].max() < parts["holdout"]["as_of_date"].min()
    assert parts["holdout"]["as_of_date"].nunique() == 2
    assert 0.5 < len(ids["train"]) / 500 < 0.7


def test_split_is_stable_across_runs_and_row_order():
    frame = _panel()
    first = time_split(frame["customer_id"], frame["as_of_date"])
    shuffled = frame.sample(frac=1.0, random_state=2)
    second = time_split(shuffled["customer_id"], shuffled["as_of_date"])

    def key(f, rows):
        return set(zip(f.iloc[rows]["customer_id"], f.iloc[rows]["as_of_date"], strict=True))

    assert key(frame, first.holdout) == key(shuffled, second.holdout)
    assert (
        customer_bucket(pd.Series(["C1", "C2"])) == customer_bucket(pd.Series(["C1", "C2"]))
    ).all()


def test_too_few_snapshots_is_a_clear_error():
    frame = _panel(snapshots=2)
    with pytest.raises(ValueError, match="at least 3 snapshots"):
        time_split(frame["customer_id"], frame["as_of_date"])
    assert np.issubdtype(customer_bucket(pd.Series(["x"])).dtype, np.integer)
