"""Reading the generator's ground truth (never ingested): the hidden daily churn hazard
of every customer, from which oracle churn probabilities follow."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


class GroundTruth:
    def __init__(self, path: Path) -> None:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        self.start = dt.date.fromisoformat(meta[b"start"].decode())
        self.days = int(meta[b"days"])
        self.customer_ids = np.asarray(table.column("customer_id").to_pylist())
        values = table.column("daily_hazard").combine_chunks().flatten().to_numpy()
        self.hazard = values.reshape(len(self.customer_ids), self.days)  # NaN: not live that day
        self._row = {cid: i for i, cid in enumerate(self.customer_ids)}

    def oracle_probability(
        self, customer_ids: list[str] | np.ndarray, as_of: dt.date, horizon_days: int
    ) -> np.ndarray:
        """P(churn within horizon) given the hidden state on the last day before as_of,
        held for the horizon: the best any model that sees data up to as_of can do,
        up to the state's slow drift. NaN for customers not live before as_of."""
        day = (as_of - self.start).days - 1
        if not 0 <= day < self.days:
            raise ValueError(f"as_of {as_of} is outside the simulated period")
        rows = np.array([self._row.get(c, -1) for c in customer_ids])
        h = np.where(rows >= 0, self.hazard[np.maximum(rows, 0), day], np.nan)
        return 1.0 - np.power(1.0 - h, horizon_days)

    def churned_within(self, as_of: dt.date, horizon_days: int) -> pd.DataFrame:
        """Customers live on the day before as_of and whether their simulated life ended
        in [as_of, as_of + horizon) - labels straight from the simulation."""
        day = (as_of - self.start).days
        live = ~np.isnan(self.hazard)
        before = live[:, day - 1]
        end = min(day + horizon_days, self.days)
        survived = live[:, end - 1] if end > day else before
        return pd.DataFrame(
            {
                "customer_id": self.customer_ids[before],
                "churned": (~survived[before]).astype(int),
            }
        )
