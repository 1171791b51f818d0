"""schemathesis over the served OpenAPI schema with the token of every role and none:
requests generated from the schema, valid and deliberately invalid, on every route.
Each response must be no 5xx and must match the schema the route documents. Shared by
the bounded test (tests/serving/test_schema_fuzz.py) and the long run
(bench/schema_fuzz.py)."""

import itertools
from collections import Counter
from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]


@dataclass
class FuzzReport:
    examples: Counter[str] = field(default_factory=Counter)  # per caller
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "examples": sum(self.examples.values()),
            "examples_per_caller": dict(self.examples),
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            "failures": self.failures,
        }


def fuzz_schema(
    schema: schemathesis.schemas.BaseSchema,
    callers: dict[str, dict[str, str]],
    examples_per_operation: int,
) -> FuzzReport:
    """Every operation, in positive and (for POSTs) negative generation mode, called as
    each of `callers` (name -> request headers); failures are collected, not raised, so
    one run reports all of them."""
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    for (caller, headers), operation, mode in itertools.product(
        callers.items(), operations, list(GenerationMode)
    ):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has nothing to get wrong
        _fuzz_operation(
            report, caller, headers, operation.as_strategy(mode), examples_per_operation
        )
    return report


def _fuzz_operation(
    report: FuzzReport, caller: str, headers: dict[str, str], cases, examples: int
) -> None:
    @given(case=cases)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def call_and_check(case) -> None:
        response = case.call(headers=headers)
        report.examples[caller] += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as failure:  # every check failure is reported, not just the first
            report.failures.append(
                f"{caller}: {case.method} {case.formatted_path} -> "
                f"{response.status_code}: {str(failure).strip()[:400]}"
            )

    call_and_check()
