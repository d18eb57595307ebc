"""The facilities plugin's own tests, written with the fixtures of ``itsm.testing``
(``app``, ``client``, ``runner``, ``make_token``), as any vendor's would be."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import itsm_facilities
import pytest

URL = "/api/v1/facility-requests"


@pytest.fixture
def itsm_plugins():
    """The plugin under test, registered and enabled in the ``app`` fixture."""
    return [itsm_facilities]


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent")


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT")


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def open_request(client, headers, **fields) -> str:
    body = {"title": "Leaking tap in the kitchen", "building": "Headquarters", **fields}
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["number"]


def run(client, headers, number: str, name: str, **fields):
    return client.post(f"{URL}/{number}/transitions", json={"name": name, "fields": fields},
                       headers=headers)


def test_requester_opens_a_request_and_agent_schedules_and_completes_it(client, agent, pat):
    number = open_request(client, pat)
    assert number.startswith("FAC")
    request = client.get(f"{URL}/{number}", headers=pat).get_json()
    assert (request["state"], request["building"], request["agency"]) == (
        "new", "Headquarters", "DOT")

    scheduled = run(client, agent, number, "schedule", visit_at=in_days(2))
    assert scheduled.status_code == 200, scheduled.get_json()
    assert scheduled.get_json()["state"] == "scheduled"
    done = run(client, agent, number, "complete")
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["state"] == "done"
    assert done.get_json()["closed_at"] is not None


def test_schedule_needs_the_visit_time(client, agent):
    number = open_request(client, agent)
    refused = run(client, agent, number, "schedule")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reasons"] == ["visit_at is required to schedule"]


def test_requester_may_cancel_own_request_but_not_schedule_it(client, pat):
    number = open_request(client, pat)
    assert run(client, pat, number, "schedule", visit_at=in_days(1)).status_code == 409
    cancelled = run(client, pat, number, "cancel")
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["state"] == "cancelled"


def test_a_request_without_building_is_refused_with_a_field_message(client, agent):
    response = client.post(URL, json={"title": "Paint the hall"}, headers=agent)
    assert response.status_code == 422
    assert "building" in response.get_json()["error"]["fields"]


def test_channel_writes_a_line_per_event_in_the_instance_folder(app, client, agent):
    itsm = app.extensions["itsm"]
    number = open_request(client, agent)
    assert run(client, agent, number, "schedule", visit_at=in_days(1)).status_code == 200
    with app.app_context():
        stats = itsm.outbox.drain()
    assert (stats.failed, stats.dead) == (0, 0)
    log = (Path(itsm.settings.home) / "facilities.log").read_text(encoding="utf-8")
    assert log.splitlines() == [f"record.created {number} facilities-desk",
                                f"record.transitioned {number} facilities-desk"]


def test_command_counts_requests_per_state(client, runner, agent):
    first = open_request(client, agent)
    open_request(client, agent)
    assert run(client, agent, first, "cancel").status_code == 200
    result = runner.invoke(["facilities"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"new": 1, "cancelled": 1}
