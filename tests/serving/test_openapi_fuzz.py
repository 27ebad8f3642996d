"""Schemathesis against the live server's OpenAPI spec: generated requests (valid and invalid)
must never get a 5xx, and every response must match the spec (status, content type, body)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as oa_checks

if TYPE_CHECKING:
    from tests.serving.conftest import LiveServer

pytestmark = pytest.mark.slow

CASES_PER_OPERATION = {"POST /v1/predict": 850, "POST /v1/predict/file": 120}
DEFAULT_CASES = 30
CHECKS = [
    st_checks.not_a_server_error,
    oa_checks.status_code_conformance,
    oa_checks.content_type_conformance,
    oa_checks.response_schema_conformance,
    oa_checks.response_headers_conformance,
]


def test_generated_requests_get_no_server_error_and_match_the_spec(
    live: LiveServer, api_key: str
) -> None:
    headers = {"X-API-Key": api_key}
    spec = httpx.get(f"{live.url}/openapi.json", headers=headers).json()
    schema = schemathesis.openapi.from_dict(spec)
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        # operations without a body or parameters have no invalid input to generate
        modes = [GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            n = _fuzz(
                operation, mode, live.url, headers, CASES_PER_OPERATION.get(label, DEFAULT_CASES)
            )
            calls[f"{label} {mode.value}"] = n
    print("schemathesis cases per operation:", calls, "total", sum(calls.values()))
    assert sum(calls.values()) >= 2000, calls
    assert calls["POST /v1/predict positive"] >= 800, calls
    assert calls["POST /v1/predict negative"] >= 800, calls


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], examples: int
) -> int:
    """Run up to ``examples`` generated cases of one operation; returns how many ran."""
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal count
        count += 1
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()
    return count
