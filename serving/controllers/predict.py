"""POST /v1/predict (one or many customers), /v1/predict/batch and /v1/predict/features."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from litestar import Controller, Request, post
from litestar.params import Parameter

from serving.auth import SECURED, requires
from serving.errors import BadRequest, NotFound
from serving.prediction_log import idempotency_key
from serving.predictor import LoadedModel
from serving.schemas import (
    BatchRequest,
    FeaturesRequest,
    FeaturesResponse,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from serving.scoring import Scorer

FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model sees float32
ExplainK = Annotated[
    int | None,
    Parameter(query="explain", ge=1, le=50, description="add the top-k reasons to each prediction"),
]


class PredictController(Controller):
    path = "/v1/predict"
    tags = ["predict"]
    security = SECURED

    async def _score(
        self, request: Request, ids: list[str], explain: int | None
    ) -> list[Prediction]:
        key = idempotency_key(request)  # a bad header fails before anything is scored
        scorer: Scorer = request.app.state.scorer
        features = await scorer.features(request.user, ids)
        predictions = await scorer.score(ids, features, explain)
        request.app.state.metrics.record(predictions)
        request.app.state.prediction_log.append(request, predictions, key)
        return predictions

    @post("/", opt=requires("scorer"), status_code=200)
    async def predict(
        self, request: Request, data: PredictRequest, explain: ExplainK = None
    ) -> PredictResponse:
        """Churn probability of one customer (`customer_id`, 404 when unknown) or up to
        100 (`customer_ids`, a `not_found` item per unknown id)."""
        if (data.customer_id is None) == (data.customer_ids is None):
            raise BadRequest("give exactly one of customer_id or customer_ids")
        ids = [data.customer_id] if data.customer_id is not None else data.customer_ids or []
        predictions = await self._score(request, ids, explain)
        if data.customer_id is not None and predictions[0].status == "not_found":
            raise NotFound(f"customer {data.customer_id!r} has no online features")
        return PredictResponse(request_id=request.state.request_id, predictions=predictions)

    @post("/batch", opt=requires("analyst"), status_code=200)
    async def batch(self, request: Request, data: BatchRequest) -> PredictResponse:
        """Many customers in one call, up to CHURN_MAX_BATCH ids."""
        limit = request.app.state.settings.max_batch
        if len(data.customer_ids) > limit:
            raise BadRequest(
                f"at most {limit} customer_ids per batch, got {len(data.customer_ids)}"
            )
        predictions = await self._score(request, data.customer_ids, data.explain)
        return PredictResponse(request_id=request.state.request_id, predictions=predictions)

    @post("/features", opt=requires("scorer"), status_code=200)
    async def what_if(self, request: Request, data: FeaturesRequest) -> FeaturesResponse:
        """Score feature values given inline (what-if analysis), validated against the
        serving model's feature schema."""
        scorer: Scorer = request.app.state.scorer
        model = scorer.model()
        await scorer.touch(request.user)
        x = inline_vector(model, data.features)
        p = float(model.probabilities(x)[0])
        reasons = (
            model.reasons(x[0], model.contributions(x)[0], data.explain) if data.explain else None
        )
        return FeaturesResponse(
            request_id=request.state.request_id,
            churn_probability=round(p, 6),
            risk_band=model.risk_band(p),
            model_version=model.version,
            reasons=reasons,
        )


def inline_vector(model: LoadedModel, features: dict[str, float | str | None]) -> np.ndarray:
    """One row in model order; every problem is collected into one 400 message."""
    problems = []
    unknown = sorted(set(features) - set(model.index))
    if unknown:
        problems.append(f"unknown features: {', '.join(unknown[:10])}")
    missing = [n for n in model.names if n not in features]
    if missing:
        problems.append(
            f"missing features (send null for unknown values): {', '.join(missing[:10])}"
        )
    x = np.full((1, model.width), np.nan, dtype=np.float32)
    for name, value in features.items():
        j = model.index.get(name)
        if j is None or value is None:
            continue
        if name in model.categories:
            options = model.categories[name]
            if not isinstance(value, str) or value not in options:
                problems.append(f"{name} must be one of {', '.join(options)}; got {value!r}")
                continue
            x[0, j] = options.index(value)
        elif isinstance(value, str) or not abs(value) <= FLOAT32_MAX:  # NaN fails too
            problems.append(f"{name} must be a finite float32 number or null; got {value!r}")
        else:
            x[0, j] = value
    if problems:
        raise BadRequest("; ".join(problems))
    return x
