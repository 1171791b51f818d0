"""/metrics is open unless CHURN_METRICS_TOKEN is set; then it takes exactly that
bearer token (and no JWT, not even an admin's)."""

import pytest
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import bearer

pytestmark = pytest.mark.anyio
TOKEN = "scrape-token-of-the-prometheus-server"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_metrics_are_open_without_a_metrics_token(serving_env) -> None:
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200 and "churn_http_requests_total" in response.text


async def test_a_metrics_token_guards_metrics_only(serving_env, monkeypatch) -> None:
    monkeypatch.setenv("CHURN_METRICS_TOKEN", TOKEN)
    async with AsyncTestClient(app=create_app(load_serving_settings())) as client:
        answers = {
            "none": await client.get("/metrics"),
            "wrong": await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
            "prefix": await client.get("/metrics", headers={"Authorization": "Bearer scrape"}),
            "not bearer": await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            "jwt": await client.get("/metrics", headers=bearer("admin")),
        }
        right = await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        live = await client.get("/health/live")
    for case, response in answers.items():
        assert response.status_code == 401, case
        assert response.headers["www-authenticate"] == "Bearer", case
        assert TOKEN not in response.text and "churn_" not in response.text, case
    assert right.status_code == 200 and "churn_http_requests_total" in right.text
    assert live.status_code == 200  # probes stay open
