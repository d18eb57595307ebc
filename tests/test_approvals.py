"""Approvals bound to scope: the digest is stable and names what changed since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from itsm.plugin import ApprovalScope, scope_changes, scope_digest

SCOPE = ApprovalScope("CAB approval", ("services", "environment", "planned_end"),
                      unordered=frozenset({"services"}))


def test_digest_ignores_order_and_repeats_of_a_set_and_the_time_zone():
    moment = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    a = {"services": ["reporting", "billing"], "environment": "staging",
         "planned_end": moment}
    b = {"planned_end": moment.astimezone(timezone(timedelta(hours=2))),
         "environment": "staging", "services": ["billing", "reporting", "billing"]}
    assert scope_digest(a, ["services"]) == scope_digest(b, ["services"])
    assert SCOPE.digest(a) == SCOPE.digest(b)
    assert len(SCOPE.digest(a)) == 64
    # A list the scope does not call a set keeps its order: the order of steps matters.
    assert scope_digest({"steps": ["a", "b"]}) != scope_digest({"steps": ["b", "a"]})


def test_changes_name_the_fields_that_differ_in_the_scope_order():
    approved = {"services": ["reporting"], "environment": "staging", "planned_end": None}
    current = {"services": ["core-banking", "reporting"], "environment": "production",
               "planned_end": None}
    assert SCOPE.changes(approved, current) == ["services", "environment"]
    assert scope_changes(approved, {**approved, "extra": 1}) == ["extra"]
    assert SCOPE.changes(approved, {**approved, "services": ["reporting"] * 2}) == []
    assert SCOPE.superseded_note(["services", "environment"]) \
        == "CAB approval superseded: services, environment changed"


def test_values_read_an_object_with_the_values_about_to_be_set():
    class Change:
        services = ["b", "a"]
        environment = "staging"
        planned_end = datetime(2026, 1, 1, tzinfo=UTC)

    values = SCOPE.values(Change(), {"environment": "production"})
    assert values == {"services": ["a", "b"], "environment": "production",
                      "planned_end": "2026-01-01T00:00:00+00:00"}
    assert SCOPE.touched({"title": 1, "environment": 2}) == ["environment"]
