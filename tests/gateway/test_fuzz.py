"""Schemathesis over the served OpenAPI document: no 5xx, every answer as documented.

Driven through its Python API with hypothesis directly (its pytest loader does not run
under this pytest); each operation gets a bounded number of positive and negative cases.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from tests.gateway.harness import MAIN, GatewayProc  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = 30


@pytest.mark.parametrize(
    ("mode", "pinned"),
    [(GenerationMode.POSITIVE, False), (GenerationMode.POSITIVE, True), (GenerationMode.NEGATIVE, False)],
    ids=["positive", "positive-real-election", "negative"],
)
def test_openapi_conformance(gateway: GatewayProc, mode: GenerationMode, pinned: bool) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12
    for operation in operations:

        params = {"election_id": MAIN} if pinned and "{election_id}" in operation.path else None
        if pinned and params is None:
            continue

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=params))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # A schema-valid hex string is rarely a signed ballot: that refusal is semantic (400/422
            # with a ledger code), so "valid data must be accepted" cannot hold for this API.
            case.call_and_validate(headers=gateway.auth, timeout=10, excluded_checks=[positive_data_acceptance])

        inputs = len(operation.path_parameters) + len(operation.query) + len(operation.body)
        if mode is GenerationMode.NEGATIVE and not inputs:
            continue  # no parameters and no body: nothing can be made invalid
        check()
