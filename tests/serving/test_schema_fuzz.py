"""A short schemathesis run over the served OpenAPI schema (tests/serving/schema_fuzz.py):
requests generated from it, valid and deliberately invalid, on every route and with the
token of every role, never get a 5xx nor a response the schema does not allow.
bench/schema_fuzz.py runs the same with over 1,000 examples."""

import shutil
from collections.abc import Iterator

import pytest
import schemathesis

from serving.app import create_app
from serving.auth import ROLES
from serving.settings import load_serving_settings
from tests.serving.conftest import TEST_REDIS_URL, bearer, live_server
from tests.serving.schema_fuzz import fuzz_schema


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


def test_generated_requests_get_no_server_error_and_match_the_schema(api_schema) -> None:
    operations = {result.ok().path for result in api_schema.get_all_operations()}
    assert operations >= {"/v1/predict", "/v1/explain", "/v1/models", "/v1/admin/rollback"}
    callers = {role: bearer(role) for role in ROLES} | {"anonymous": {}}
    report = fuzz_schema(api_schema, callers, examples_per_operation=8)
    assert not report.failures, "\n".join(report.failures)
    assert set(report.examples) == set(callers)
    # requests got past authentication, and were refused by it and by the role rules
    assert report.statuses[200] and report.statuses[401] and report.statuses[403]
