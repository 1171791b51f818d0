"""schemathesis over the whole served OpenAPI schema with the token of every role and
none, at least 1,000 generated requests: no 5xx, no response the schema does not allow.
The same run as tests/serving/test_schema_fuzz.py, with many more examples.

    uv run python bench/schema_fuzz.py [--home DIR] [--examples-per-operation 60]

Without --home it builds the small world of bench/serve.py first (a few minutes). The
admin routes may roll the champion back, so the run serves a copy of the home. Prints
one JSON object and exits 1 on any failure or when fewer than --min-examples ran."""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import schemathesis
from serve import ROOT, SECRET, bench_home, service_env, start_server

from serving.auth import ROLES, mint_token

sys.path.insert(0, str(ROOT))  # the fuzz run itself is shared with the tests
from tests.serving.schema_fuzz import fuzz_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="a CHURN_HOME with a promoted champion")
    parser.add_argument("--examples-per-operation", type=int, default=60)
    parser.add_argument("--min-examples", type=int, default=1_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()

    home = bench_home(args.home, args.redis_url)
    with tempfile.TemporaryDirectory(prefix="schema-fuzz-") as scratch:
        copy = Path(scratch) / "home"
        shutil.copytree(home, copy, ignore=shutil.ignore_patterns("dagster_home"))
        env = service_env(copy, args.redis_url)
        callers: dict[str, dict[str, str]] = {
            role: {
                "Authorization": "Bearer "
                + mint_token("fuzz", role, 3600, SECRET, "HS256", "churn-lakehouse")
            }
            for role in ROLES
        }
        callers["anonymous"] = {}
        proc, url = start_server("serving.app:create_app", env)
        try:
            schema = schemathesis.openapi.from_url(f"{url}/schema/openapi.json")
            report = fuzz_schema(schema, callers, args.examples_per_operation)
        finally:
            proc.terminate()
            proc.wait()
    result = report.as_dict()
    result["examples_per_operation"] = args.examples_per_operation
    print(json.dumps(result, indent=2))
    if report.failures or sum(report.examples.values()) < args.min_examples:
        sys.exit(1)


if __name__ == "__main__":
    main()
