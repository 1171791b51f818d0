"""The scoring service over AsyncTestClient with the real app, real Redis and a real
MLflow champion: every route, status code and role."""

import anyio
import jwt
import numpy as np
import pytest
import redis
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.errors import UNAVAILABLE_DETAIL
from serving.settings import load_serving_settings
from tests.serving.conftest import SECRET, TEST_REDIS_URL, bearer
from warehouse.online_store import OnlineStore, unpack
from warehouse.prediction_log import STREAM

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def online_matrix(model, ids: list[str]) -> np.ndarray:
    """The customers' vectors as the online store holds them (read synchronously)."""
    _, blobs = OnlineStore(redis.Redis.from_url(TEST_REDIS_URL)).fetch(model.fs_version, ids)
    return unpack(blobs, model.width)[1]


@pytest.fixture
async def client(serving_env):
    async with AsyncTestClient(app=create_app(load_serving_settings())) as test_client:
        yield test_client


async def test_predict_one_customer(client, customers) -> None:
    response = await client.post(
        "/v1/predict", json={"customer_id": customers[0]}, headers=bearer("scorer")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["request_id"]) == 32
    (p,) = body["predictions"]
    assert p["customer_id"] == customers[0] and p["status"] == "ok"
    assert 0 <= p["churn_probability"] <= 1
    assert p["risk_band"] in ("low", "medium", "high")
    assert p["model_version"] == "1" and p["variant"] == "champion"
    assert p["features_as_of"].startswith("2025-") and p["feature_age_seconds"] > 0
    assert "reasons" not in p


async def test_unknown_customers_404_alone_and_not_found_in_a_list(client, customers) -> None:
    alone = await client.post(
        "/v1/predict", json={"customer_id": "nobody"}, headers=bearer("scorer")
    )
    assert alone.status_code == 404 and "nobody" in alone.json()["detail"]
    many = await client.post(
        "/v1/predict?explain=2",
        json={"customer_ids": [customers[0], "nobody", customers[1]]},
        headers=bearer("scorer"),
    )
    assert many.status_code == 200
    items = many.json()["predictions"]
    assert [i["status"] for i in items] == ["ok", "not_found", "ok"]
    assert items[1] == {"customer_id": "nobody", "status": "not_found"}
    assert len(items[0]["reasons"]) == 2


async def test_explanations_are_shap_values_that_add_up(client, customers) -> None:
    import shap

    response = await client.post(
        "/v1/explain",
        json={"customer_ids": customers[:3], "top_k": 4, "full": True},
        headers=bearer("analyst"),
    )
    assert response.status_code == 200, response.text
    explanations = response.json()["explanations"]
    model = client.app.state.holder.current
    x = online_matrix(model, customers[:3])
    expected = shap.TreeExplainer(model.bundle.booster).shap_values(x.astype(float))
    raw = model.bundle.booster.predict(x, raw_score=True)
    for i, e in enumerate(explanations):
        values = np.array([e["shap_values"][n] for n in model.names])
        np.testing.assert_allclose(values, np.asarray(expected)[i], atol=1e-5)
        assert values.sum() + e["base_value"] == pytest.approx(raw[i], abs=1e-4)
        top = [r["feature"] for r in e["reasons"]]
        assert top == sorted(model.names, key=lambda n: -abs(e["shap_values"][n]))[:4]


async def test_what_if_scoring_validates_against_the_feature_schema(client, customers) -> None:
    model = client.app.state.holder.current
    x = online_matrix(model, customers[:1])
    row = {n: model.feature_value(j, float(x[0, j])) for j, n in enumerate(model.names)}
    scored = await client.post(
        "/v1/predict/features", json={"features": row, "explain": 1}, headers=bearer("scorer")
    )
    assert scored.status_code == 200, scored.text
    direct = await client.post(
        "/v1/predict", json={"customer_id": customers[0]}, headers=bearer("scorer")
    )
    assert (
        scored.json()["churn_probability"] == direct.json()["predictions"][0]["churn_probability"]
    )
    assert len(scored.json()["reasons"]) == 1

    name = model.names[0]
    bad = {**row, "no_such_feature": 1}
    bad.pop(name)
    response = await client.post(
        "/v1/predict/features", json={"features": bad}, headers=bearer("scorer")
    )
    assert response.status_code == 400
    assert "unknown features: no_such_feature" in response.json()["detail"]
    assert f"missing features (send null for unknown values): {name}" in response.json()["detail"]
    categorical = next(iter(model.categories))
    wrong = await client.post(
        "/v1/predict/features",
        json={"features": {**row, categorical: "Atlantis"}},
        headers=bearer("scorer"),
    )
    assert wrong.status_code == 400 and f"{categorical} must be one of" in wrong.json()["detail"]
    numeric = next(n for n in model.names if n not in model.categories)
    huge = await client.post(
        "/v1/predict/features", json={"features": {**row, numeric: 1e39}}, headers=bearer("scorer")
    )
    assert huge.status_code == 400 and "finite float32 number" in huge.json()["detail"]


async def test_batch_and_models_need_the_analyst_role(client, customers) -> None:
    body = {"customer_ids": customers, "explain": 3}
    assert (
        await client.post("/v1/predict/batch", json=body, headers=bearer("scorer"))
    ).status_code == 403
    batch = await client.post("/v1/predict/batch", json=body, headers=bearer("analyst"))
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 5
    too_many = {"customer_ids": [f"c{i}" for i in range(1001)]}
    response = await client.post("/v1/predict/batch", json=too_many, headers=bearer("admin"))
    assert response.status_code == 400 and "at most 1000" in response.json()["detail"]

    assert (await client.get("/v1/models", headers=bearer("scorer"))).status_code == 403
    models = await client.get("/v1/models", headers=bearer("analyst"))
    assert models.status_code == 200
    info = models.json()
    (model,) = info["models"]
    assert model["version"] == "1" and model["aliases"] == ["champion"] and model["serving"]
    assert info["online"]["feature_set_version"] == model["feature_set_version"]
    assert info["online"]["customers"] > 100 and info["online"]["live_sync"]


async def test_missing_forged_expired_and_wrong_role_tokens(client, customers) -> None:
    body = {"customer_id": customers[0]}
    missing = await client.post("/v1/predict", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    forged = await client.post("/v1/predict", json=body, headers=bearer("scorer", key="x" * 40))
    assert forged.status_code == 401 and "invalid token" in forged.json()["detail"]
    expired = jwt.encode(
        {"sub": "a", "roles": ["scorer"], "iat": 0, "exp": 1, "iss": "churn-lakehouse",
         "aud": "churn-scoring"},
        SECRET,
    )  # fmt: skip
    response = await client.post(
        "/v1/predict", json=body, headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401 and response.json()["detail"] == "token expired"
    wrong_role = await client.post(
        "/v1/explain", json={"customer_ids": customers[:1]}, headers=bearer("scorer")
    )
    assert wrong_role.status_code == 403 and "analyst" in wrong_role.json()["detail"]
    assert SECRET not in (missing.text + forged.text + response.text)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "JSON is malformed"),
        (b'{"customer_id": 5}', "Expected `str | null`, got `int`"),
        (b'{"customer_id": "a", "extra": 1}', "unknown field"),
        (b'{"customer_id": "a", "customer_ids": ["b"]}', "exactly one"),
        (b"{}", "exactly one"),
        (b'{"customer_ids": []}', "length"),
    ],
)
async def test_malformed_requests_get_400_with_a_message(client, body, detail) -> None:
    response = await client.post(
        "/v1/predict",
        content=body,
        headers={**bearer("scorer"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert detail.lower() in response.json()["detail"].lower()


async def test_oversized_bodies_are_refused(client) -> None:
    huge = b'{"customer_ids": ["' + b"x" * 2_000_000 + b'"]}'
    response = await client.post(
        "/v1/predict/batch",
        content=huge,
        headers={**bearer("analyst"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_rate_limit_per_subject_with_retry_after(serving_env, monkeypatch, customers) -> None:
    monkeypatch.setenv("CHURN_RATE_LIMIT", "3")
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        body = {"customer_id": customers[0]}
        codes = [
            (
                await client.post("/v1/predict", json=body, headers=bearer("scorer", "alice"))
            ).status_code
            for _ in range(3)
        ]
        limited = await client.post("/v1/predict", json=body, headers=bearer("scorer", "alice"))
        other = await client.post("/v1/predict", json=body, headers=bearer("scorer", "bob"))
    assert codes == [200, 200, 200]
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 200


async def test_health_metrics_and_openapi(client, customers) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["model"] == "v1" and ready.json()["checks"]["redis"] == "ok"
    await client.post("/v1/predict", json={"customer_id": customers[0]}, headers=bearer("scorer"))
    await client.post("/v1/predict", json={"customer_id": "nobody"}, headers=bearer("scorer"))
    metrics = (await client.get("/metrics")).text
    assert (
        'churn_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in metrics
    )
    assert (
        'churn_http_requests_total{method="POST",route="/v1/predict",status="404"} 1.0' in metrics
    )
    assert 'churn_predictions_total{model_version="1",variant="champion"} 1.0' in metrics
    for status in ("200", "404"):  # latency by route and status
        assert (
            f'churn_http_request_duration_seconds_count{{route="/v1/predict",status="{status}"}} 1.0'
            in metrics
        )
    assert "churn_prediction_probability_count 1.0" in metrics
    for name in ("churn_http_request_duration_seconds_bucket", "churn_prediction_probability_bucket",
                 "churn_feature_age_seconds_bucket", "churn_redis_errors_total",
                 "churn_redis_circuit_state 0.0"):  # fmt: skip
        assert name in metrics
    schema = (await client.get("/schema/openapi.json")).json()
    v1 = {"/v1/predict", "/v1/explain", "/v1/predict/batch", "/v1/models", "/v1/admin/promote"}
    assert v1 <= set(schema["paths"])
    # Swagger's Authorize button: every /v1 operation declares the bearer scheme
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    for path in v1:
        (operation,) = schema["paths"][path].values()
        assert operation["security"] == [{"BearerToken": []}], path
    assert "security" not in schema["paths"]["/health/ready"]["get"]
    assert (await client.get("/schema/swagger")).status_code == 200


async def test_stale_features_make_the_service_not_ready(serving_env, monkeypatch) -> None:
    monkeypatch.setenv("CHURN_FEATURE_MAX_AGE_SECONDS", "3600")
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert "limit 3600 s" in ready.json()["checks"]["features"]


async def test_every_prediction_lands_in_the_log_stream(client, customers) -> None:
    response = await client.post(
        "/v1/predict?explain=1",
        json={"customer_ids": [*customers[:3], "nobody"]},
        headers=bearer("scorer", "auditor"),
    )
    stream = redis.Redis.from_url(TEST_REDIS_URL)
    for _ in range(200):  # the writer flushes every few ms in the background
        if stream.xlen(STREAM) >= 3:
            break
        await anyio.sleep(0.01)
    entries = stream.xrange(STREAM)
    logged = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    assert [e["customer_id"] for e in logged] == customers[:3]
    request_id = response.json()["request_id"]
    assert all(e["request_id"] == request_id and e["subject"] == "auditor" for e in logged)
    assert all(e["model_version"] == "1" and e["reasons"].startswith("[[") for e in logged)

    # explanations are predictions too: logged with their reasons and counted
    explained = await client.post(
        "/v1/explain", json={"customer_ids": customers[3:5]}, headers=bearer("analyst", "auditor")
    )
    for _ in range(200):
        if stream.xlen(STREAM) >= 5:
            break
        await anyio.sleep(0.01)
    later = [{k.decode(): v.decode() for k, v in f.items()} for _, f in stream.xrange(STREAM)[3:]]
    assert [e["customer_id"] for e in later] == customers[3:5]
    assert {e["request_id"] for e in later} == {explained.json()["request_id"]}
    assert all(e["reasons"].count("[") == 4 for e in later)  # top 3 by default
    metrics = (await client.get("/metrics")).text
    assert 'churn_predictions_total{model_version="1",variant="champion"} 5.0' in metrics
    assert 'churn_prediction_log_lost{reason="buffer_full"} 0.0' in metrics


async def test_without_a_champion_the_service_is_up_but_not_ready(
    serving_env, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        predict = await client.post(
            "/v1/predict", json={"customer_id": "C1"}, headers=bearer("scorer")
        )
    assert ready.status_code == 503
    assert ready.json()["checks"]["model"] == "none (no churn-model version is champion yet)"
    # why goes to the log, not to the caller
    assert predict.status_code == 503 and predict.json()["detail"] == UNAVAILABLE_DETAIL
