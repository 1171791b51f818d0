"""The request path shared by predict, batch and explain: one online-store round trip,
the vectors decoded straight into a float32 matrix, and the model on numpy."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from churn_assets.ml.feature_matrix import as_of_seconds, load_scoring_frame
from serving.auth import Principal
from serving.errors import BadRequest, Unavailable
from serving.model_holder import ModelHolder
from serving.online import OnlineReader
from serving.predictor import LoadedModel
from serving.rate_limit import LocalRateLimit
from serving.schemas import Prediction
from serving.settings import ServingSettings
from warehouse.connection import Warehouse
from warehouse.online_store import unpack

VARIANT = "champion"
DEGRADED_CONCURRENCY = 2  # warehouse lookups at once while Redis is down
# scoring this many rows (or explaining more than one) moves off the event loop, so a
# big batch cannot stall every other request on the worker; LightGBM drops the GIL
OFFLOAD_ROWS = 256


@dataclass
class Features:
    """Vectors of the customers that were found (rows align with `found` positions)."""

    model: LoadedModel
    found: np.ndarray  # bool per requested id
    as_of: np.ndarray  # epoch seconds, one per found customer
    x: np.ndarray  # (found, width) float32
    degraded: bool = False


@functools.lru_cache(maxsize=4_096)
def iso_date(epoch_seconds: float) -> str:
    """ISO-8601 UTC; cached, as features are as of a handful of distinct dates."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).isoformat()


class Scorer:
    def __init__(
        self, settings: ServingSettings, holder: ModelHolder, reader: OnlineReader
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.reader = reader
        self._degraded_slots = asyncio.Semaphore(DEGRADED_CONCURRENCY)
        # counts the rate limit while Redis, which normally counts it, is unreachable
        self.fallback_limit = LocalRateLimit(settings.rate_limit, settings.rate_window_seconds)

    def model(self) -> LoadedModel:
        model = self.holder.current
        if model is None:
            raise Unavailable("no champion model loaded yet: promote a model and sync features")
        return model

    async def touch(self, principal: Principal) -> None:
        """Count a request that reads no features against the caller's rate limit (one
        unit). Such requests need no Redis otherwise, so with Redis down they go ahead,
        counted by this process."""
        model = self.model()
        try:
            await self.reader.fetch(model.fs_version, (), principal.subject, *self._limits())
        except Unavailable:
            self.fallback_limit.take(principal.subject, 1)

    def _limits(self) -> tuple[int, int]:
        return self.settings.rate_limit, self.settings.rate_window_seconds

    def _cost(self, ids: Sequence[str]) -> int:
        """Rate-limit units of a lookup: one per customer. One larger than the whole
        limit could never pass, so it is a 400 rather than a 429 to retry forever."""
        cost = max(len(ids), 1)
        limit, window = self._limits()
        if cost > limit:
            raise BadRequest(
                f"{cost} customer ids exceed the rate limit of {limit} customers per "
                f"{window} s; send fewer per request"
            )
        return cost

    async def features(self, principal: Principal, ids: Sequence[str]) -> Features:
        model = self.model()
        cost = self._cost(ids)
        try:
            lookup = await self.reader.fetch(
                model.fs_version, ids, principal.subject, *self._limits()
            )
        except Unavailable:
            self.fallback_limit.take(principal.subject, cost)
            if self.settings.redis_failure_mode != "degraded":
                raise
            try:
                async with self._degraded_slots:  # a dead Redis must not flood the warehouse
                    return await asyncio.to_thread(self._from_warehouse, model, ids)
            except Exception as exc:  # a locked DuckDB file, Postgres down: still a 503
                raise Unavailable(
                    f"online store unavailable and the warehouse fallback failed "
                    f"({type(exc).__name__})"
                ) from exc
        if lookup.sync_id is None:
            # every id would be "not found": say what is really wrong instead
            raise Unavailable(
                f"features of feature set {model.fs_version} (model v{model.version}) are "
                "not in the online store yet: materialize online_features"
            )
        present = [b for b in lookup.blobs if b is not None]
        found = np.fromiter((b is not None for b in lookup.blobs), bool, len(ids))
        if present:
            as_of, x = unpack(present, model.width)
        else:
            as_of, x = np.empty(0), np.empty((0, model.width), np.float32)
        return Features(model, found, as_of, x)

    def _from_warehouse(self, model: LoadedModel, ids: Sequence[str]) -> Features:
        """Degraded mode: the same vectors from scoring_features (slower, marked)."""
        frame = load_scoring_frame(Warehouse(self.settings.storage), list(dict.fromkeys(ids)))
        absent = [n for n in model.names if n not in frame.columns]
        frame = frame.reindex(columns=[*frame.columns, *absent])  # attributes none of them has
        frame["customer_id"] = frame["customer_id"].astype(str)
        position = {cid: i for i, cid in enumerate(frame["customer_id"])}
        found = np.fromiter((cid in position for cid in ids), bool, len(ids))
        rows = [position[cid] for cid in ids if cid in position]
        x = model.bundle.spec.transform(frame).astype(np.float32)[rows]
        return Features(model, found, as_of_seconds(frame)[rows], x, degraded=True)

    async def score(
        self, ids: Sequence[str], f: Features, explain_k: int | None
    ) -> list[Prediction]:
        """predictions(), in a worker thread when the work is large."""
        if len(f.x) >= OFFLOAD_ROWS or (explain_k and len(f.x) > 1):
            return await asyncio.to_thread(self.predictions, ids, f, explain_k)
        return self.predictions(ids, f, explain_k)

    def predictions(
        self,
        ids: Sequence[str],
        f: Features,
        explain_k: int | None,
        contrib: np.ndarray | None = None,
    ) -> list[Prediction]:
        """One Prediction per id; top-k reasons from `contrib` (pred_contrib rows of the
        found customers) when given, else computed when explain_k is set."""
        model = f.model
        p = model.probabilities(f.x) if len(f.x) else np.empty(0)
        if contrib is None and explain_k and len(f.x):
            contrib = model.contributions(f.x)
        # Python floats once: per-row numpy scalars cost more than the arithmetic
        probabilities = p.tolist()
        as_of = f.as_of.tolist()
        now = time.time()
        out: list[Prediction] = []
        row = 0
        for i, cid in enumerate(ids):
            if not f.found[i]:
                out.append(Prediction(customer_id=cid, status="not_found"))
                continue
            out.append(
                Prediction(
                    customer_id=cid,
                    status="ok",
                    churn_probability=round(probabilities[row], 6),
                    risk_band=model.risk_band(probabilities[row]),
                    model_version=model.version,
                    variant=VARIANT,
                    features_as_of=iso_date(as_of[row]),
                    feature_age_seconds=round(now - as_of[row], 3),
                    reasons=model.reasons(f.x[row], contrib[row], explain_k)
                    if contrib is not None and explain_k
                    else None,
                    degraded=f.degraded,
                )
            )
            row += 1
        return out
