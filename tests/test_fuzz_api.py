"""Schemathesis fuzzes every operation of the served OpenAPI document, every built-in
plugin enabled: never a 5xx, and every answer is one the document lists, in its schema.

Each operation is fed valid data (positive: status, content type and body must be as
documented) and invalid data (negative: a 4xx, never a 5xx, JSON errors in the
documented error shape) as an admin, and valid data as a requester of one agency. Path
parameters point at the demo records where a list beside the operation names one.

The run is bounded for CI (2 examples per operation and mode);
``ITSM_FUZZ_EXAMPLES=200 pytest tests/test_fuzz_api.py`` runs a deep one.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import every_plugin
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install 'itsm[test]'")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import checks  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

EXAMPLES = int(os.environ.get("ITSM_FUZZ_EXAMPLES", "2"))
POSITIVE = [checks.not_a_server_error, checks.status_code_conformance,
            checks.content_type_conformance, checks.response_schema_conformance]
# Invalid data may be turned away by the router before any view (a 404 or 405 for a path
# value that is no number): only the absence of 5xx and the error shape are checked.
NEGATIVE = [checks.not_a_server_error, checks.content_type_conformance,
            checks.response_schema_conformance]


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@dataclass
class Run:
    calls: int = 0
    operations: set = field(default_factory=set)
    failures: dict = field(default_factory=dict)  # (operation, who, mode) -> report

    def fuzz(self, operation, who: str, headers: dict, mode, path_values, examples: int):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_values)
        expected = POSITIVE if mode == GenerationMode.POSITIVE else NEGATIVE

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate],
                  report_multiple_bugs=False)
        @given(strategy)
        def one(case):
            self.calls += 1
            response = case.call(headers=headers)
            case.validate_response(response, checks=expected, headers=headers)

        self.operations.add(operation.label)
        try:
            one()
        except Unsatisfiable:  # nothing invalid to send (no parameter, no body)
            pass
        except BaseException as exc:  # schemathesis reports a group of failures
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.failures[(operation.label, who, mode.value)] = str(exc)[:3000]


def test_every_documented_operation_survives_the_fuzzer(app, client, runner, make_token):
    every_plugin.load_demo(runner)
    people = {"admin": make_token("fuzz-admin@example.org", role="admin"),
              "requester": make_token("pat@dot.demo.invalid", role="requester", agency="DOT")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        document = client.get("/api/v1/openapi.json").get_json()
    # Two plugins' schemas of one name would be renamed silently (Foo1): refuse that.
    assert [str(w.message) for w in caught if "Multiple schemas" in str(w.message)] == []
    known = every_plugin.path_values(client, people["admin"], document)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    run = Run()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        values = known.get(operation.path)
        run.fuzz(operation, "admin", people["admin"], GenerationMode.POSITIVE, values,
                 EXAMPLES)
        run.fuzz(operation, "admin", people["admin"], GenerationMode.NEGATIVE, None, EXAMPLES)
        # The requester's run is lighter: most staff operations answer 403 early.
        run.fuzz(operation, "requester", people["requester"], GenerationMode.POSITIVE,
                 values, max(1, EXAMPLES // 3))
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(run.operations)} operations, {run.calls} calls, "
          f"{len(run.failures)} failures in {elapsed:.0f} s")
    assert len(run.operations) > 100, "every plugin's operations should be fuzzed"
    assert not run.failures, "\n\n".join(
        f"== {label} as {who} ({mode})\n{report}"
        for (label, who, mode), report in sorted(run.failures.items()))
