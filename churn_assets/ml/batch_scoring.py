"""Score every customer at once: the champion bundle over the whole scoring matrix
(all cores, unlike the one-thread request path), with risk bands and top-k reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from churn_assets.ml.bundle import ModelBundle
from churn_assets.ml.explain import risk_bands, top_k


def score_frame(
    bundle: ModelBundle, frame: pd.DataFrame, version: str, reasons: int = 3
) -> pd.DataFrame:
    """One row per customer: probability, risk band, model version and a JSON list of
    the top `reasons` features with their log-odds contributions."""
    x = bundle.spec.transform(frame)
    raw = np.asarray(bundle.booster.predict(x), dtype=float)
    p = bundle.calibrator.transform(raw) if bundle.calibrator else raw
    threshold = float(bundle.metadata.get("threshold", 0.5))  # type: ignore[arg-type]
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(frame["as_of_date"]).dt.date.to_numpy(),
            "churn_probability": p,
            "risk_band": risk_bands(p, threshold),
            "model_version": version,
        }
    )
    if reasons:
        contrib = np.asarray(bundle.booster.predict(x, pred_contrib=True))[:, :-1]
        top = top_k(contrib, reasons)
        names = np.asarray(bundle.spec.names)
        values = np.round(np.take_along_axis(contrib, top, axis=1), 6)
        out["reasons"] = [
            json.dumps([[n, v] for n, v in zip(row_names, row_values, strict=True)])
            for row_names, row_values in zip(names[top].tolist(), values.tolist(), strict=True)
        ]
    return out
