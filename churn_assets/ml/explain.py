"""Reasons and risk bands shared by the scoring service and batch scoring, so both say
the same thing about the same customer."""

from __future__ import annotations

import numpy as np


def risk_band(p: float, threshold: float) -> str:
    """high: at or above the campaign threshold; medium: at or above half of it."""
    if p >= threshold:
        return "high"
    return "medium" if p >= threshold / 2 else "low"


def risk_bands(p: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(p >= threshold, "high", np.where(p >= threshold / 2, "medium", "low"))


def top_k(contributions: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest absolute contributions per row, largest first
    (ties in feature order). `contributions` holds features only, no bias column."""
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")
    return order[:, :k]
