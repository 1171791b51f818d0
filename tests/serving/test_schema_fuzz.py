"""A short schemathesis run over the served OpenAPI schema: requests generated from it,
valid and deliberately invalid, on every route, never get a 5xx."""

import itertools
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer, live_server


@pytest.fixture(scope="module")
def api_schema(served_home) -> Iterator[schemathesis.schemas.BaseSchema]:
    env = {
        "CHURN_HOME": str(served_home),
        "REDIS_URL": TEST_REDIS_URL,
        "MLFLOW_TRACKING_URI": f"sqlite:///{served_home / 'mlflow.db'}",
        "CHURN_JWT_SECRET": "test-secret-of-at-least-thirty-two-bytes",
        "CHURN_RATE_LIMIT": "1000000",
        "CHURN_FEATURE_MAX_AGE_SECONDS": str(10 * 365 * 86_400),  # ready: 503 is not a fault
    }
    with live_server(create_app(load_serving_settings(env))) as url:
        yield schemathesis.openapi.from_url(f"{url}/schema/openapi.json")


def test_generated_requests_never_get_a_server_error(api_schema) -> None:
    headers = bearer("admin")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/explain", "/v1/models"}
    for operation, mode in itertools.product(operations, list(GenerationMode)):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has nothing to get wrong

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )

        no_server_error()
