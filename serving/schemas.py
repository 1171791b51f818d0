"""Request and response bodies as msgspec Structs: decoded and validated in one pass,
unknown fields refused, encoded without an intermediate dict."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

CustomerId = Annotated[str, Meta(min_length=1, max_length=128)]
TopK = Annotated[int, Meta(ge=1, le=50)]
FeatureValue = float | str | None

MAX_PREDICT_IDS = 100


class Request(Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class PredictRequest(Request):
    """Exactly one of customer_id (404 when unknown) or customer_ids (per-item results)."""

    customer_id: CustomerId | None = None
    customer_ids: (
        Annotated[list[CustomerId], Meta(min_length=1, max_length=MAX_PREDICT_IDS)] | None
    ) = None


class BatchRequest(Request):
    customer_ids: Annotated[list[CustomerId], Meta(min_length=1)]
    explain: TopK | None = None


class FeaturesRequest(Request):
    """What-if scoring: one row of feature values by name (null = missing)."""

    features: dict[str, FeatureValue]
    explain: TopK | None = None


class ExplainRequest(Request):
    customer_ids: Annotated[list[CustomerId], Meta(min_length=1, max_length=MAX_PREDICT_IDS)]
    top_k: TopK = 3
    full: bool = False  # every feature's SHAP value, not only the top k


class Reason(Struct, kw_only=True):
    feature: str
    value: FeatureValue
    contribution: float  # SHAP value in log-odds of the uncalibrated score


class Prediction(Struct, kw_only=True, omit_defaults=True):
    customer_id: str
    status: Literal["ok", "not_found"]
    churn_probability: float | None = None
    risk_band: str | None = None
    model_version: str | None = None
    variant: str | None = None
    features_as_of: str | None = None
    feature_age_seconds: float | None = None
    reasons: list[Reason] | None = None
    degraded: bool = False


class PredictResponse(Struct, kw_only=True):
    request_id: str
    predictions: list[Prediction]


class FeaturesResponse(Struct, kw_only=True, omit_defaults=True):
    request_id: str
    churn_probability: float
    risk_band: str
    model_version: str
    reasons: list[Reason] | None = None


class Explanation(Struct, kw_only=True, omit_defaults=True):
    customer_id: str
    status: Literal["ok", "not_found"]
    churn_probability: float | None = None
    model_version: str | None = None
    base_value: float | None = None
    reasons: list[Reason] | None = None
    shap_values: dict[str, float] | None = None


class ExplainResponse(Struct, kw_only=True):
    request_id: str
    explanations: list[Explanation]


class ModelInfo(Struct, kw_only=True):
    version: str
    aliases: list[str]
    serving: bool
    loaded_at: str
    feature_set_version: str
    features: list[str]
    threshold: float


class OnlineInfo(Struct, kw_only=True, omit_defaults=True):
    feature_set_version: str
    live_sync: str | None = None
    customers: int | None = None
    features_as_of: str | None = None


class ModelsResponse(Struct, kw_only=True):
    models: list[ModelInfo]
    online: OnlineInfo | None


class Health(Struct, kw_only=True):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class PromoteRequest(Request):
    version: Annotated[str, Meta(min_length=1, max_length=32)]
    reason: Annotated[str, Meta(max_length=2_000)] = ""
    force: bool = False  # promote even though its quality gates refused it (on record)


class RollbackRequest(Request):
    reason: Annotated[str, Meta(max_length=2_000)] = ""


class AdminResult(Struct, kw_only=True, omit_defaults=True):
    action: Literal["promote", "rollback"]
    champion: str
    previous_champion: str | None = None
    challenger: str | None = None
    serving: str | None = None  # the version this worker serves once the action returns
    waiting: str | None = None  # why this worker still serves the old one
