"""Property-based fuzzing of the served API's OpenAPI schema (schemathesis): no input, however odd,
gives a server error (5xx), and every refusal has the JSON error shape. Bounded: a few examples per
operation, no shrinking, no example database."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from serve_fixtures import served_copy  # noqa: E402

EXAMPLES = 12  # per operation


def test_no_input_gives_a_server_error(served_run_dir, tiny_lm, tmp_path):
    app = served_copy(served_run_dir, tmp_path / "run").app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    failures, statuses = [], []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call()
            statuses.append(response.status_code)
            if response.status_code >= 500 or (response.status_code >= 400 and "error" not in response.json()):
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert not failures, failures[:5]
    assert len(statuses) >= 3 * len(operations) and {200, 422} <= set(statuses)  # it did reach the endpoints
