"""A short schemathesis run over the served OpenAPI schema: requests generated from it,
valid and deliberately invalid, on every route, never get a 5xx."""

import itertools
import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from serving.app import create_app
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer, live_server


@pytest.fixture(scope="module")
def api_schema(served_home, tmp_path_factory) -> Iterator[schemathesis.schemas.BaseSchema]:
    # admin operations may promote or roll back: on copies, never the shared world
    home = tmp_path_factory.mktemp("fuzzed")
    for name in ("warehouse.duckdb", "mlflow.db"):
        shutil.copy(served_home / name, home / name)
    env = {
        "CHURN_HOME": str(home),
        "REDIS_URL": TEST_REDIS_URL,
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "CHURN_JWT_SECRET": "test-secret-of-at-least-thirty-two-bytes",
        "CHURN_RATE_LIMIT": "1000000",
        "CHURN_FEATURE_MAX_AGE_SECONDS": str(10 * 365 * 86_400),  # ready: 503 is not a fault
    }
    with live_server(create_app(load_serving_settings(env))) as url:
        yield schemathesis.openapi.from_url(f"{url}/schema/openapi.json")


def test_generated_requests_never_get_a_server_error(api_schema) -> None:
    headers = bearer("admin")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/predict",
        "/v1/explain",
        "/v1/models",
        "/v1/admin/rollback",
    }
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
