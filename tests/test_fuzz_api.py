"""Schemathesis tests every operation of the served OpenAPI document, every built-in
plugin enabled: the document is the contract, and each answer must keep it.

The run is schemathesis's own engine (the one behind ``schemathesis run``) on the WSGI
application, in its examples, coverage and fuzzing phases, with these checks:

- ``not_a_server_error``: never a 5xx;
- ``status_code_conformance``: every status answered is one the document lists;
- ``content_type_conformance``: the body's media type is the documented one;
- ``response_schema_conformance``: the body validates against the documented schema
  (output schemas allow no undeclared keys);
- ``unsupported_method``: a method the document does not list for a path answers 405
  with an ``Allow`` header;
- ``allow_header_conformance``: ``OPTIONS`` lists exactly the documented methods.

Valid and invalid data (positive and negative modes) are sent as an admin; valid data as a
requester of one agency. Path parameters point at the demo records where a list beside
the operation names one. The run is bounded for CI (2 examples per operation and phase,
the requester without the coverage phase); ``ITSM_FUZZ_EXAMPLES=200 pytest
tests/test_fuzz_api.py`` runs a deep one (from 10 examples on, the requester gets the
coverage phase too).
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import every_plugin
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install 'itsm[test]'")
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.engine import Status, events, from_schema  # noqa: E402

EXAMPLES = int(os.environ.get("ITSM_FUZZ_EXAMPLES", "2"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "unsupported_method", "allow_header_conformance")


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@dataclass
class Run:
    """What one engine run sent and found: requests, checks run and failed by name."""

    requests: int = 0
    phases: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    failures: dict = field(default_factory=dict)  # (check, operation) -> report
    errors: list = field(default_factory=list)

    def summary(self, who: str, seconds: float) -> str:
        return (f"schemathesis as {who}: {self.requests} requests in {seconds:.0f} s "
                f"{dict(self.phases)}; "
                f"statuses {dict(sorted(self.statuses.items()))}; checks run "
                f"{dict(sorted(self.checks.items()))}; failed {dict(sorted(self.failed.items()))}")


def fuzz(app, headers: dict, path_values: dict, *, modes: str, examples: int,
         coverage: str | None) -> Run:
    """Run the engine once with ``headers`` (the caller's token); ``coverage``: the modes
    of the coverage phase (its boundary values and unexpected methods), None: no phase."""
    config = SchemathesisConfig.from_dict({
        "headers": headers, "seed": 23, "cache": {"enabled": False},
        "generation": {"max-examples": examples, "mode": modes, "database": "none",
                       "deterministic": True},
        "phases": {"examples": {"enabled": True},
                   "coverage": {"enabled": coverage is not None,
                                "generation": {"mode": coverage or "positive"}},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        # Real records (numbers, ids) in the path, so that the operations do more than 404.
        "operations": [{"include-path": template,
                        "parameters": {f"path.{k}": v for k, v in values.items()}}
                       for template, values in path_values.items()],
    })
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            run.requests += len(recorder.interactions)
            run.phases[str(event.phase.value)] += len(recorder.interactions)
            run.statuses.update(i.response.status_code for i in recorder.interactions.values()
                                if i.response is not None)
            for nodes in recorder.checks.values():
                for node in nodes:
                    run.checks[node.name] += 1
                    if node.status == Status.FAILURE:
                        run.failed[node.name] += 1
                        info = node.failure_info
                        run.failures.setdefault((node.name, recorder.label), (
                            f"{info.failure.title}: {info.failure.message}\n{info.code_sample}"
                            if info else node.name)[:2500])
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.title}: {event.info.message}"[:2500])
        elif isinstance(event, events.FatalError):
            raise event.exception
    return run


def test_every_documented_operation_keeps_the_contract(app, client, runner, make_token):
    every_plugin.load_demo(runner)
    people = {"admin": make_token("fuzz-admin@example.org", role="admin"),
              "requester": make_token("pat@dot.demo.invalid", role="requester", agency="DOT")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        document = client.get("/api/v1/openapi.json").get_json()
    # Two plugins' schemas of one name would be renamed silently (Foo1): refuse that.
    assert [str(w.message) for w in caught if "Multiple schemas" in str(w.message)] == []
    known = every_plugin.path_values(client, people["admin"], document)
    # The token to revoke is a spare one: revoking the admin's own would make the rest of
    # the run a series of 401s.
    spare = client.post("/api/v1/tokens", headers=people["admin"],
                        json={"name": "to revoke"}).get_json()
    known["/api/v1/tokens/{token_id}"] = {"token_id": spare["id"]}
    reports = []
    deep = EXAMPLES >= 10
    for who, modes, examples, coverage in (
            # In CI the coverage phase sends valid boundary values and the methods the
            # document does not list; a deep run sends its invalid values too.
            ("admin", "all", EXAMPLES, "all" if deep else "positive"),
            # Most staff operations answer a requester 403 early: a lighter run.
            ("requester", "positive", max(1, EXAMPLES // 3), "positive" if deep else None)):
        started = time.monotonic()
        run = fuzz(app, people[who], known, modes=modes, examples=examples, coverage=coverage)
        print(run.summary(who, time.monotonic() - started))
        assert run.checks["response_schema_conformance"] > 0
        reports += [f"== {check} on {label} as {who}\n{text}"
                    for (check, label), text in sorted(run.failures.items())]
        reports += [f"== error as {who}: {text}" for text in run.errors]
    assert not reports, "\n\n".join(reports)
