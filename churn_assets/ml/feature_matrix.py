"""From feature tables to a float32 matrix in a fixed feature order.

The behavioural features come from the dbt marts; static customer attributes come
long from `customer_attributes` and are pivoted here into `attr_<name>` columns, so
any data set's attributes become features. Text columns become integer category codes
(unknown at scoring time: NaN), which tree models and the serving path handle alike."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from warehouse.connection import Warehouse

MARTS = "analytics"
KEY_COLUMNS = ("customer_id", "as_of_date")
NOT_FEATURES = frozenset({*KEY_COLUMNS, "churned", "label_source"})
ATTRIBUTE_PREFIX = "attr_"


def pivot_attributes(long: pd.DataFrame) -> pd.DataFrame:
    """customer_attributes (customer_id, attribute_name, value_text, value_number)
    -> one row per customer with a column attr_<name> per attribute."""
    if long.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object)})
    numeric = long["value_text"].isna() & long["value_number"].notna()
    kinds = numeric.groupby(long["attribute_name"]).all()
    columns = {}
    for name, is_numeric in kinds.items():
        rows = long[long["attribute_name"] == name].set_index("customer_id")
        values = (
            rows["value_number"].astype("float64")
            if is_numeric
            else rows["value_text"].astype(object)
        )
        columns[f"{ATTRIBUTE_PREFIX}{name}"] = values
    return pd.DataFrame(columns).rename_axis("customer_id").reset_index()


@dataclass(frozen=True)
class FeatureSpec:
    """The model's feature order and the category list of every text feature."""

    names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, drop: frozenset[str] = frozenset()) -> FeatureSpec:
        names = [c for c in frame.columns if c not in NOT_FEATURES and c not in drop]
        categories = {
            c: tuple(sorted(str(v) for v in frame[c].dropna().unique()))
            for c in names
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
        }
        return cls(tuple(names), categories)

    @property
    def version(self) -> str:
        """Feature-set version: changes exactly when the feature order or a category
        list changes, so online vectors and models can be matched safely."""
        canonical = json.dumps(self.to_dict(), sort_keys=True).encode()
        return f"fs-{hashlib.sha256(canonical).hexdigest()[:12]}"

    @property
    def categorical(self) -> list[str]:
        return [n for n in self.names if n in self.categories]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise KeyError(f"feature columns missing from the input: {', '.join(missing[:10])}")
        out = np.empty((len(frame), len(self.names)), dtype=np.float32)
        for j, name in enumerate(self.names):
            column = frame[name]
            if name in self.categories:
                codes = {v: i for i, v in enumerate(self.categories[name])}
                out[:, j] = column.map(
                    lambda v, codes=codes: codes.get(str(v), np.nan) if pd.notna(v) else np.nan
                )
            else:
                out[:, j] = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "names": list(self.names),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(tuple(data["names"]), {k: tuple(v) for k, v in data["categories"].items()})


def _with_attributes(
    frame: pd.DataFrame, warehouse: Warehouse, where: str = "", params: list[str] | None = None
) -> pd.DataFrame:
    attributes = pivot_attributes(
        warehouse.query_df(f"SELECT * FROM {MARTS}.customer_attributes {where}", params)
    )
    merged = frame.merge(attributes, on="customer_id", how="left")
    merged["as_of_date"] = pd.to_datetime(merged["as_of_date"])
    return merged


def load_training_frame(warehouse: Warehouse) -> pd.DataFrame:
    """training_examples joined with the pivoted customer attributes."""
    return _with_attributes(
        warehouse.query_df(f"SELECT * FROM {MARTS}.training_examples"), warehouse
    )


def load_scoring_frame(warehouse: Warehouse, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """scoring_features (the latest as_of per customer) joined with the attributes;
    only the given customers when customer_ids is set (then an attribute none of them
    has is absent from the frame, not a column of nulls)."""
    where, params = "", None
    if customer_ids is not None:
        where = f"WHERE customer_id IN ({', '.join('?' * len(customer_ids)) or 'NULL'})"
        params = list(customer_ids)
    frame = warehouse.query_df(f"SELECT * FROM {MARTS}.scoring_features {where}", params)
    return _with_attributes(frame, warehouse, where, params)


def as_of_seconds(frame: pd.DataFrame) -> np.ndarray:
    """as_of_date -> epoch seconds at the start of that day (UTC): the features describe
    everything strictly before that instant."""
    days = pd.to_datetime(frame["as_of_date"]).to_numpy(dtype="datetime64[s]")
    return days.astype("int64").astype("float64")
