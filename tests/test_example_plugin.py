"""The vendor example in examples/itsm-facilities, installed with pip and driven for real.

It is discovered through its ``itsm.plugins`` entry point like any third-party package,
starts disabled, and is enabled, used, disabled and purged through the CLI and the API.
"""

from __future__ import annotations

import importlib
import json
import site
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, update

from itsm.core.migrate import plugin_migrations
from itsm.core.models import Delivery, Record, utcnow
from itsm.testing import schema_drift

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "itsm-facilities"
URL = "/api/v1/facility-requests"


def _installed() -> bool:
    return any(ep.name == "facilities" for ep in metadata.entry_points(group="itsm.plugins"))


@pytest.fixture(scope="session", autouse=True)
def facilities_installed() -> None:
    """pip-install the example into this interpreter's environment once, if missing."""
    if _installed():
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-e", str(EXAMPLE)],
                   check=True)
    importlib.invalidate_caches()
    # An editable install is made importable by a .pth file, which Python reads only at
    # start-up; have this already running interpreter read the new one too.
    site.addsitedir(sysconfig.get_paths()["purelib"])
    assert _installed(), "pip installed itsm-facilities but its entry point is not visible"


@pytest.fixture
def itsm_plugins():
    """No extra modules: the installed entry point is found by discovery, as in production."""
    return []


@pytest.fixture
def outbox_file(tmp_path) -> Path:
    return tmp_path / "fac.jsonl"


@pytest.fixture
def itsm_config(itsm_config, outbox_file):
    return {**itsm_config, "plugins.facilities.outbox_file": str(outbox_file)}


@pytest.fixture
def facilities(runner):
    """The plugin enabled by an admin, as `itsm plugins enable facilities` does it."""
    result = runner.invoke(["plugins", "enable", "facilities"])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent")


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT")


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def open_request(client, headers, **fields) -> dict:
    body = {"title": "Leaking tap in the kitchen", "building": "Headquarters",
            "room": "2.01", "kind": "repair", **fields}
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def run(client, headers, number: str, name: str, **fields):
    return client.post(f"{URL}/{number}/transitions", json={"name": name, "fields": fields},
                       headers=headers)


def summary(runner) -> dict[str, int]:
    result = runner.invoke(["facilities", "summary"])
    assert result.exit_code == 0, result.output
    return {line.split()[0]: int(line.split()[1]) for line in result.output.splitlines()}


# -- installing and enabling ----------------------------------------------------------------


def test_installed_plugin_is_listed_as_disabled_third_party(runner, client, agent):
    result = runner.invoke(["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    row = {r["name"]: r for r in json.loads(result.output)}["facilities"]
    assert row["builtin"] is False
    assert row["enabled"] is False
    assert row["error"] is None
    assert (row["version"], row["distribution"]) == ("0.1.0", "itsm-facilities")
    assert {"itsm_record_types", "itsm_cli_commands",
            "itsm_notification_channels"} <= set(row["hooks"])
    assert "disabled third-party" in runner.invoke(["plugins", "list"]).output
    assert client.get(URL, headers=agent).status_code == 404
    assert client.get("/api/v1/facilities/buildings", headers=agent).status_code == 404


def test_schema_is_found_beside_the_module_without_a_migrations_hook(app):
    info = app.extensions["itsm"].host.plugins["facilities"]
    assert not hasattr(info.module, "itsm_migrations")
    found = plugin_migrations(info)
    assert found.branch == "facilities"
    assert found.path == Path(info.module.__file__).parent / "migrations" / "versions"


def test_enable_migrates_the_plugins_own_alembic_branch(app, runner):
    assert not inspect(app.extensions["itsm"].engine).has_table("facility_request")
    result = runner.invoke(["plugins", "enable", "facilities"])
    assert result.exit_code == 0, result.output
    assert "enabled facilities 0.1.0" in result.output
    assert inspect(app.extensions["itsm"].engine).has_table("facility_request")
    current = runner.invoke(["db", "current"]).output.splitlines()
    assert any(line.startswith("core: core_0") for line in current)
    assert "facilities: fac_0001" in current
    check = runner.invoke(["plugins", "check"])
    assert check.exit_code == 0, check.output
    assert "ok: plugins are consistent" in check.output



def test_migration_creates_exactly_what_the_model_describes(app, facilities):
    assert schema_drift(app.extensions["itsm"].engine, ["facility_request"]) == []


# -- the API ---------------------------------------------------------------------------------


def test_requester_opens_a_request_and_agent_schedules_and_completes_it(client, facilities,
                                                                         agent, pat):
    created = open_request(client, pat)
    number = created["number"]
    assert number.startswith("FAC")
    assert (created["state"], created["kind"], created["agency"]) == ("new", "repair", "DOT")
    assert created["transitions"] == ["schedule", "cancel"]

    listed = client.get(URL, headers=agent).get_json()["items"]
    assert [item["number"] for item in listed] == [number]

    scheduled = run(client, agent, number, "schedule", scheduled_for=in_days(2),
                    assignee="agent@example.org")
    assert scheduled.status_code == 200, scheduled.get_json()
    assert scheduled.get_json()["state"] == "scheduled"
    assert scheduled.get_json()["assignee"] == "agent@example.org"

    done = run(client, agent, number, "complete", completion_note="Washer replaced.")
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert (body["state"], body["completion_note"]) == ("done", "Washer replaced.")
    assert body["closed_at"] is not None


def test_refused_transitions_answer_409_with_every_reason(client, facilities, agent):
    number = open_request(client, agent)["number"]

    too_early = run(client, agent, number, "complete", completion_note="Done.")
    assert too_early.status_code == 409
    assert too_early.get_json()["error"]["reasons"] == ["cannot mark done from state 'New'"]

    no_date = run(client, agent, number, "schedule")
    assert no_date.status_code == 409
    assert no_date.get_json()["error"]["reasons"] == ["scheduled_for is required to schedule"]

    yesterday = run(client, agent, number, "schedule", scheduled_for=in_days(-1))
    assert yesterday.status_code == 409
    assert yesterday.get_json()["error"]["reasons"] == ["scheduled_for lies in the past"]
    assert client.get(f"{URL}/{number}", headers=agent).get_json()["state"] == "new"


def test_requester_cannot_schedule_but_may_cancel_own_request(client, facilities, pat,
                                                             make_token):
    number = open_request(client, pat)["number"]

    refused = run(client, pat, number, "schedule", scheduled_for=in_days(1))
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reasons"] == ["only agent may schedule"]

    other_agency = make_token("sam@doh.example.org", role="requester", agency="DOH")
    assert run(client, other_agency, number, "cancel").status_code == 404

    cancelled = run(client, pat, number, "cancel")
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["state"] == "cancelled"


def test_invalid_kind_is_refused_with_field_message(client, facilities, agent):
    response = client.post(URL, json={"title": "Paint the hall", "building": "HQ",
                                      "kind": "painting"}, headers=agent)
    assert response.status_code == 422
    assert "kind" in response.get_json()["error"]["fields"]


def test_own_route_counts_open_requests_per_building_for_agents_only(client, facilities,
                                                                    agent, pat):
    open_request(client, pat, building="Annex")
    open_request(client, pat, building="Headquarters")
    done = open_request(client, agent, building="Annex", kind="cleaning")["number"]
    assert run(client, agent, done, "cancel").status_code == 200

    response = client.get("/api/v1/facilities/buildings", headers=agent)
    assert response.status_code == 200
    assert response.get_json()["items"] == [{"building": "Annex", "open": 1},
                                            {"building": "Headquarters", "open": 1}]
    assert client.get("/api/v1/facilities/buildings", headers=pat).status_code == 403


def test_collection_and_route_are_in_the_openapi_document(client, facilities):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert URL in paths
    assert "/api/v1/facilities/buildings" in paths


# -- command line ----------------------------------------------------------------------------


def test_summary_counts_requests_per_state(client, runner, facilities, agent):
    assert summary(runner) == {"New": 0, "Scheduled": 0, "Done": 0, "Cancelled": 0,
                               "Total": 0}
    first = open_request(client, agent)["number"]
    open_request(client, agent, kind="cleaning")
    second = open_request(client, agent, kind="move")["number"]
    assert run(client, agent, first, "schedule", scheduled_for=in_days(1)).status_code == 200
    assert run(client, agent, second, "cancel").status_code == 200
    assert summary(runner) == {"New": 1, "Scheduled": 1, "Done": 0, "Cancelled": 1,
                               "Total": 3}


def test_demo_data_creates_two_requests(runner, facilities):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    assert summary(runner)["New"] == 2


# -- lifecycle -------------------------------------------------------------------------------


def test_disable_hides_requests_and_enable_brings_them_back(client, runner, facilities, agent):
    number = open_request(client, agent, title="Move desk to 3.14", kind="move")["number"]

    result = runner.invoke(["plugins", "disable", "facilities"])
    assert result.exit_code == 0, result.output
    assert "disabled facilities (data kept)" in result.output
    assert client.get(URL, headers=agent).status_code == 404
    assert client.get(f"{URL}/{number}", headers=agent).status_code == 404
    assert client.get("/api/v1/facilities/buildings", headers=agent).status_code == 404
    hidden = runner.invoke(["facilities", "summary"])
    assert hidden.exit_code != 0
    assert "No such command 'facilities'" in hidden.output

    assert runner.invoke(["plugins", "enable", "facilities"]).exit_code == 0
    back = client.get(f"{URL}/{number}", headers=agent)
    assert back.status_code == 200
    assert (back.get_json()["title"], back.get_json()["kind"]) == ("Move desk to 3.14", "move")
    assert summary(runner)["New"] == 1


def test_uninstall_purge_removes_table_and_records(app, client, runner, facilities, agent):
    open_request(client, agent)
    open_request(client, agent, kind="access")
    itsm = app.extensions["itsm"]

    result = runner.invoke(["plugins", "uninstall", "facilities", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    assert "2 record(s) of type facility_request" in result.output
    with itsm.Session() as session:
        left = session.scalar(select(func.count()).select_from(Record)
                              .where(Record.type == "facility_request"))
    assert left == 0
    row = {r["name"]: r for r in json.loads(
        runner.invoke(["plugins", "list", "--json"]).output)}["facilities"]
    assert row["enabled"] is False
    assert not inspect(itsm.engine).has_table("facility_request")
    assert "facilities" not in runner.invoke(["db", "current"]).output


# -- notifications ---------------------------------------------------------------------------


def drain(app):
    with app.app_context():
        return app.extensions["itsm"].outbox.drain()


def test_channel_appends_one_json_line_per_event(app, client, facilities, agent, outbox_file):
    number = open_request(client, agent)["number"]
    assert run(client, agent, number, "schedule", scheduled_for=in_days(1)).status_code == 200

    stats = drain(app)
    assert (stats.failed, stats.dead) == (0, 0)
    lines = [json.loads(line) for line in outbox_file.read_text().splitlines()]
    assert [(line["name"], line["record"], line["recipient"]) for line in lines] == [
        ("record.created", number, "facilities-desk"),
        ("record.transitioned", number, "facilities-desk")]
    assert len({line["event"] for line in lines}) == 2

    drain(app)  # delivered once: a second drain writes nothing more
    assert len(outbox_file.read_text().splitlines()) == 2


def test_delivery_waits_in_the_outbox_until_the_file_is_configured(app, client, runner,
                                                                    facilities, agent,
                                                                    outbox_file):
    itsm = app.extensions["itsm"]
    itsm.settings["plugins.facilities.outbox_file"] = ""
    number = open_request(client, agent)["number"]

    stats = drain(app)
    assert stats.failed == 1
    with itsm.Session() as session:
        delivery = session.scalar(select(Delivery).where(Delivery.channel == "facilities_file"))
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert "outbox_file" in delivery.last_error
    assert delivery.next_attempt_at > utcnow()  # backing off, not retried at once

    itsm.settings["plugins.facilities.outbox_file"] = str(outbox_file)
    drain(app)
    assert not outbox_file.exists()  # still waiting for its next attempt

    with itsm.Session() as session:  # let the backoff pass
        session.execute(update(Delivery).where(Delivery.id == delivery.id)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    result = runner.invoke(["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "delivered 1" in result.output

    lines = [json.loads(line) for line in outbox_file.read_text().splitlines()]
    assert [(line["name"], line["record"]) for line in lines] == [("record.created", number)]
    with itsm.Session() as session:
        delivery = session.get(Delivery, delivery.id)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


def test_relative_outbox_file_is_written_in_the_instance_folder(app, client, facilities,
                                                                agent):
    itsm = app.extensions["itsm"]
    itsm.settings["plugins.facilities.outbox_file"] = "facilities.jsonl"
    number = open_request(client, agent)["number"]
    drain(app)
    written = Path(itsm.settings.home) / "facilities.jsonl"
    assert json.loads(written.read_text())["record"] == number
