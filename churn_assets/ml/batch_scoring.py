"""Score every customer at once: the champion bundle over the whole scoring matrix
(all cores, unlike the one-thread request path), with risk bands and top-k reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.config import BatchReasons
from churn_assets.ml.explain import risk_bands, top_k


def score_frame(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    version: str,
    reasons: int = 3,
    reasons_for: BatchReasons = "all",
) -> pd.DataFrame:
    """One row per customer: probability, risk band, model version and a JSON list of
    the top `reasons` features with their log-odds contributions, for every customer,
    only the medium and high risk bands (`at_risk`, null elsewhere), or none."""
    x = bundle.spec.transform(frame)
    raw = np.asarray(bundle.booster.predict(x), dtype=float)
    p = bundle.calibrator.transform(raw) if bundle.calibrator else raw
    threshold = float(bundle.metadata.get("threshold", 0.5))  # type: ignore[arg-type]
    bands = risk_bands(p, threshold)
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(frame["as_of_date"]).dt.date.to_numpy(),
            "churn_probability": p,
            "risk_band": bands,
            "model_version": version,
            "reasons": None,
        }
    )
    if not reasons or reasons_for == "none":
        return out
    rows = np.flatnonzero(bands != "low") if reasons_for == "at_risk" else np.arange(len(x))
    if len(rows):
        out.loc[rows, "reasons"] = reason_json(bundle, x[rows], reasons)
    return out


def reason_json(bundle: ModelBundle, x: np.ndarray, k: int) -> list[str]:
    """The top-k contributions (TreeSHAP, `pred_contrib`) of each row as JSON text."""
    contrib = np.asarray(bundle.booster.predict(x, pred_contrib=True))[:, :-1]
    top = top_k(contrib, k)
    names = np.asarray(bundle.spec.names)
    values = np.round(np.take_along_axis(contrib, top, axis=1), 6)
    return [
        json.dumps([[n, v] for n, v in zip(row_names, row_values, strict=True)])
        for row_names, row_values in zip(names[top].tolist(), values.tolist(), strict=True)
    ]
