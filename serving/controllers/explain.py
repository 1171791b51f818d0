"""POST /v1/explain: per-customer feature contributions (TreeSHAP values from LightGBM's
native pred_contrib), top k by default, every feature with `full: true`."""

from __future__ import annotations

import numpy as np
from litestar import Controller, Request, post

from serving.auth import SECURED, requires
from serving.schemas import ExplainRequest, ExplainResponse, Explanation
from serving.scoring import Scorer


class ExplainController(Controller):
    path = "/v1/explain"
    tags = ["explain"]
    security = SECURED

    @post("/", opt=requires("analyst"), status_code=200)
    async def explain(self, request: Request, data: ExplainRequest) -> ExplainResponse:
        scorer: Scorer = request.app.state.scorer
        ids = data.customer_ids
        f = await scorer.features(request.user, ids)
        model = f.model
        p = model.probabilities(f.x) if len(f.x) else np.empty(0)
        contrib = model.contributions(f.x) if len(f.x) else None
        out: list[Explanation] = []
        row = 0
        for i, cid in enumerate(ids):
            if not f.found[i] or contrib is None:
                out.append(Explanation(customer_id=cid, status="not_found"))
                continue
            values = contrib[row]
            out.append(
                Explanation(
                    customer_id=cid,
                    status="ok",
                    churn_probability=round(float(p[row]), 6),
                    model_version=model.version,
                    base_value=round(float(values[-1]), 6),
                    reasons=model.reasons(f.x[row], values, data.top_k),
                    shap_values={
                        name: round(float(v), 6)
                        for name, v in zip(model.names, values[:-1], strict=True)
                    }
                    if data.full
                    else None,
                )
            )
            row += 1
        return ExplainResponse(request_id=request.state.request_id, explanations=out)
