"""The naive baseline for bench/serve.py: what a first version of a scoring endpoint
often looks like. Same model, same Redis vectors, but per request: decode the vector
into a pandas row by feature name and call the MLflow pyfunc."""

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
from litestar import Litestar, Request, get, post

from churn_assets.ml.config import load_model_settings
from churn_assets.ml.registry import CHAMPION, Registry
from warehouse.online_store import OnlineStore, unpack
from warehouse.redis_server import connect
from warehouse.settings import load_settings


def create_naive_app() -> Litestar:
    settings = load_settings()
    models = load_model_settings()
    registry = Registry(
        models.tracking_uri, models.model_name, models.experiment, models.artifact_root
    )
    version = registry.alias(CHAMPION)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{models.model_name}@{CHAMPION}")
    spec = registry.load_bundle(str(version), models.model_cache).spec
    store = OnlineStore(connect(settings))

    @post("/predict", status_code=200)
    async def predict(request: Request) -> dict:
        body = json.loads(await request.body())
        _, blobs = store.fetch(spec.version, [body["customer_id"]])
        if blobs[0] is None:
            return {"status": "not_found"}
        _, x = unpack(blobs, len(spec.names))
        row = {}
        for j, name in enumerate(spec.names):
            value = float(x[0, j])
            if name in spec.categories and not np.isnan(value):
                row[name] = spec.categories[name][int(value)]
            else:
                row[name] = None if np.isnan(value) else value
        p = float(np.asarray(pyfunc.predict(pd.DataFrame([row])))[0])
        return {
            "customer_id": body["customer_id"],
            "churn_probability": p,
            "model_version": version,
        }

    @get("/health/live")
    async def live() -> dict:
        return {"status": "ok"}

    return Litestar(route_handlers=[predict, live])
