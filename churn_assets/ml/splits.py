"""Splits that respect time and customers: a model is trained on earlier snapshots of
one group of customers, validated on later snapshots of another group and evaluated on
the last period of a third, so no customer and no moment is on both sides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # row positions
    validation: np.ndarray
    holdout: np.ndarray
    validation_from: pd.Timestamp  # first as_of_date of the validation snapshots
    holdout_from: pd.Timestamp


def customer_bucket(customer_ids: pd.Series, buckets: int = 100) -> np.ndarray:
    """A stable bucket per customer (same on every machine and run, unlike hash())."""
    return np.array(
        [
            int(hashlib.blake2b(str(c).encode(), digest_size=4).hexdigest(), 16) % buckets
            for c in customer_ids
        ]
    )


def time_split(
    customer_ids: pd.Series,
    as_of_dates: pd.Series,
    holdout_snapshots: int = 1,
    validation_snapshots: int = 1,
    customer_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> TimeSplit:
    """Train: customers of the first fraction, snapshots before the validation period.
    Validation: the second fraction, the validation snapshots. Holdout: the third
    fraction, the last snapshots."""
    if abs(sum(customer_fractions) - 1.0) > 1e-9 or min(customer_fractions) <= 0:
        raise ValueError(
            f"customer_fractions must be positive and sum to 1, got {customer_fractions}"
        )
    dates = pd.to_datetime(as_of_dates).to_numpy()
    snapshots = np.unique(dates)
    needed = holdout_snapshots + validation_snapshots + 1
    if len(snapshots) < needed:
        raise ValueError(
            f"need at least {needed} snapshots (train, validation, holdout), have {len(snapshots)}: "
            "generate more days or lower CHURN_SNAPSHOT_CADENCE_DAYS"
        )
    holdout_from = snapshots[-holdout_snapshots]
    validation_from = snapshots[-(holdout_snapshots + validation_snapshots)]
    bucket = customer_bucket(customer_ids)
    cut_train = round(customer_fractions[0] * 100)
    cut_valid = cut_train + round(customer_fractions[1] * 100)
    group = np.select([bucket < cut_train, bucket < cut_valid], [0, 1], 2)
    train = np.flatnonzero((group == 0) & (dates < validation_from))
    validation = np.flatnonzero((group == 1) & (dates >= validation_from) & (dates < holdout_from))
    holdout = np.flatnonzero((group == 2) & (dates >= holdout_from))
    return TimeSplit(
        train, validation, holdout, pd.Timestamp(validation_from), pd.Timestamp(holdout_from)
    )
