"""Bulk import of records: `itsm records import FILE --type incident`."""

from __future__ import annotations

import datetime
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import itsm.plugins.incident as incident_plugin
from itsm.core import sla
from itsm.core.bulk import ImportError_
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import Event, JournalEntry, Record, utcnow
from itsm.core.sla_models import SlaClock
from itsm.testing import make_plugin

INCIDENTS = "/api/v1/incidents"
STATES = ("new", "in_progress", "on_hold", "resolved", "closed", "cancelled")


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


@pytest.fixture
def desk(itsm, make_token):
    """An agency, a group, an agent and a requester, as an install has them."""
    agent = make_token("agent@example.org", role="agent")
    make_token("pat@dot.example", role="requester", agency="DOT")
    with itsm.Session() as session:
        ensure_agency(session, "DOT", "Department of Transport")
        ensure_group(session, "Network")
        session.commit()
    return agent


def incident_line(i: int, **extra) -> dict:
    now = utcnow()
    state = STATES[i % len(STATES)]
    row = {"title": f"VPN drops every hour at site {i}", "description": "since Monday",
           "category": "network", "subcategory": "vpn", "impact": 1 + i % 3,
           "urgency": 1 + (i // 3) % 3, "requester": "pat@dot.example", "group": "Network",
           "state": state, "created_at": (now - timedelta(days=3, minutes=i)).isoformat(),
           "updated_at": (now - timedelta(days=1)).isoformat()}
    if state != "new":
        row["assignee"] = "agent@example.org"
    if i % 7 == 0:
        row["comments"] = [{"body": "called the user", "public": False}]
    row.update(extra)
    return row


def write(tmp_path, rows) -> str:
    path = tmp_path / "incidents.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def count(itsm, model, *where) -> int:
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# With --jobs 3, two processes of their own validate the batches and this one writes them.
JOBS = pytest.mark.parametrize("jobs", ["1", "3"])


@JOBS
def test_import_writes_records_journal_and_the_clocks_recompute_would(itsm, desk, runner,
                                                                       tmp_path, jobs):
    path = write(tmp_path, [incident_line(i) for i in range(300)])
    result = runner.invoke(["records", "import", path, "--type", "incident", "--batch", "64",
                            "--jobs", jobs])
    assert result.exit_code == 0, result.output
    assert "300 incident record(s) imported" in result.output
    assert count(itsm, Record, Record.type == "incident") == 300
    assert count(itsm, JournalEntry, JournalEntry.kind == "created") == 300
    moved = sum(1 for i in range(300) if STATES[i % 6] != "new")
    assert count(itsm, JournalEntry, JournalEntry.kind == "transitioned") == moved
    assert count(itsm, JournalEntry, JournalEntry.kind == "work_noted") == 43
    assert count(itsm, SlaClock) == 600
    # The clocks written are exactly those a rebuild from the journals gives.
    assert sla.recompute(itsm, "incident").changed == 0
    # A history load notifies nobody.
    assert count(itsm, Event) == 0


ASKED: list[tuple[str, str | None]] = []


def _hardware_policy(record, metric):
    ASKED.append((metric, record.category))
    if record.category == "hardware":
        return sla.SlaTarget(metric=metric, minutes=45, source="hardware desk")
    return None


HARDWARE_DESK = make_plugin("hardware_desk", itsm_sla_policy=_hardware_policy)


@pytest.mark.parametrize("itsm_plugins", [[incident_plugin, HARDWARE_DESK]])
def test_the_policy_is_asked_once_for_records_alike_and_each_gets_its_own_answer(
        itsm, desk, runner, tmp_path):
    rows = [incident_line(i, **({"category": "hardware", "subcategory": "printer"}
                                if i % 2 else {})) for i in range(200)]
    ASKED.clear()
    path = write(tmp_path, rows)
    result = runner.invoke(["records", "import", path, "--type", "incident", "--batch", "50"])
    assert result.exit_code == 0, result.output
    # 200 records, 2 metrics, 2 categories, 5 priorities: asked once per category,
    # priority and metric at most, not twice per record.
    assert 4 <= len(ASKED) <= 2 * 2 * 5
    with itsm.Session() as session:
        sources = dict(session.execute(
            select(Record.title, func.min(SlaClock.source))
            .join(SlaClock, SlaClock.record_id == Record.id).group_by(Record.title)).all())
    assert {sources[r["title"]] for r in rows[1::2]} == {"hardware desk"}
    assert {sources[r["title"]] for r in rows[::2]} == {"default policy"}
    # Each record's clocks are the ones its own policy answers give, record by record.
    assert sla.recompute(itsm, "incident").changed == 0


@JOBS
def test_timestamps_with_any_offset_are_stored_as_the_instant_they_name(itsm, desk, runner,
                                                                       tmp_path, jobs):
    path = write(tmp_path, [
        incident_line(0, state="closed", created_at="2026-01-31T12:00:00+02:00",
                      updated_at="2026-01-31T23:30:00.000250-05:00"),
        incident_line(1, created_at="2026-02-01T00:00:00Z", updated_at="2026-02-01T00:00:00Z")])
    result = runner.invoke(["records", "import", path, "--type", "incident", "--jobs", jobs])
    assert result.exit_code == 0, result.output
    with itsm.Session() as session:
        rows = session.execute(select(Record.created_at, Record.updated_at, Record.closed_at)
                               .order_by(Record.id)).all()
        started = session.scalars(select(SlaClock.started_at).order_by(SlaClock.id)).all()
    utc = datetime.UTC
    assert [tuple(r) for r in rows] == [
        (datetime.datetime(2026, 1, 31, 10, 0, tzinfo=utc),
         datetime.datetime(2026, 2, 1, 4, 30, 0, 250, tzinfo=utc),
         datetime.datetime(2026, 2, 1, 4, 30, 0, 250, tzinfo=utc)),
        (datetime.datetime(2026, 2, 1, tzinfo=utc), datetime.datetime(2026, 2, 1, tzinfo=utc),
         None)]
    assert started == [rows[0][0]] * 2 + [rows[1][0]] * 2


def test_imported_incidents_read_like_any_other(itsm, desk, runner, client, tmp_path):
    path = write(tmp_path, [incident_line(1, impact=1, urgency=1)])
    assert runner.invoke(["records", "import", path, "--type", "incident"]).exit_code == 0
    number = client.get(INCIDENTS, headers=desk).get_json()["items"][0]["number"]
    body = client.get(f"{INCIDENTS}/{number}", headers=desk).get_json()
    assert body["priority"] == 1  # the plugin's impact x urgency matrix
    assert (body["state"], body["agency"], body["group"]) == ("in_progress", "DOT", "Network")
    assert body["assignee"] == "agent@example.org"
    moved = client.post(f"{INCIDENTS}/{number}/transitions", headers=desk,
                        json={"name": "hold", "fields": {"hold_kind": "customer",
                                                         "hold_reason": "waiting"}})
    assert moved.status_code == 200, moved.get_json()


def test_numbers_never_repeat_between_imports_and_live_creates(itsm, desk, runner, client,
                                                                tmp_path):
    new = {"title": "Printer jam", "category": "hardware", "subcategory": "printer"}
    before = client.post(INCIDENTS, headers=desk, json=new).get_json()["number"]
    path = write(tmp_path, [incident_line(i) for i in range(120)])
    assert runner.invoke(["records", "import", path, "--type", "incident",
                          "--batch", "50"]).exit_code == 0
    after = client.post(INCIDENTS, headers=desk, json=new).get_json()["number"]
    with itsm.Session() as session:
        numbers = list(session.scalars(select(Record.number).where(Record.type == "incident")))
    assert len(numbers) == len(set(numbers)) == 122
    assert before < min(set(numbers) - {before, after}) and after == max(numbers)


@JOBS
def test_a_bad_line_stops_the_import_and_nothing_of_its_batch_is_written(itsm, desk, runner,
                                                                         tmp_path, jobs):
    rows = [incident_line(i) for i in range(450)]
    rows[229]["impact"] = 9
    path = write(tmp_path, rows)
    result = runner.invoke(["records", "import", path, "--type", "incident", "--batch", "100",
                            "--jobs", jobs])
    assert result.exit_code != 0
    assert isinstance(result.exception, ImportError_)
    message = result.exception.message
    assert message.startswith("line 230: invalid incident: impact")
    assert "200 record(s) imported before it" in message and "\n" not in message
    assert count(itsm, Record, Record.type == "incident") == 200
    assert count(itsm, JournalEntry, JournalEntry.kind == "created") == 200


@pytest.mark.parametrize(("change", "says"), [
    ({"group": "Nowhere"}, "group: unknown group 'Nowhere'"),
    ({"assignee": "ghost@example.org"}, "assignee: unknown user 'ghost@example.org'"),
    ({"state": "parked"}, "state: 'parked' is not a state of incident"),
    ({"title": ""}, "title:"),
    ({"colour": "red"}, "colour: Unknown field."),
    ({"subcategory": "printer"}, "subcategory: one of"),
    ({"created_at": "yesterday"}, "created_at: not an ISO 8601 date-time"),
    ({"updated_at": "2020-01-01T00:00:00"}, "updated_at: needs a time zone"),
    ({"closed_at": "2020-01-01T00:00:00Z", "state": "new"}, "closed_at: 'new' is not a final"),
])
def test_bad_values_are_named_in_one_line(itsm, desk, runner, tmp_path, change, says):
    path = write(tmp_path, [incident_line(0), incident_line(6, **change)])
    result = runner.invoke(["records", "import", path, "--type", "incident"])
    assert isinstance(result.exception, ImportError_), result.output
    assert result.exception.message.startswith("line 2: invalid incident: ")
    assert says in result.exception.message
    assert count(itsm, Record) == 0


@JOBS
def test_not_json_is_refused_with_its_line(itsm, desk, runner, tmp_path, jobs):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(incident_line(0)) + "\n{not json\n", encoding="utf-8")
    result = runner.invoke(["records", "import", str(path), "--type", "incident",
                            "--jobs", jobs])
    assert result.exception.message.startswith("line 2: not valid JSON")
    assert count(itsm, Record) == 0


@JOBS
def test_the_batches_before_a_line_that_is_not_json_land_and_its_own_lines_are_judged_first(
        itsm, desk, runner, tmp_path, jobs):
    lines = [json.dumps(incident_line(i)) for i in range(7)]
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join([*lines, "{not json"]) + "\n", encoding="utf-8")
    result = runner.invoke(["records", "import", str(path), "--type", "incident",
                            "--batch", "3", "--jobs", jobs])
    # Lines 1-6 are two whole batches, written; line 7 was read but its batch never ended.
    assert result.exception.message.startswith("line 8: not valid JSON"), result.output
    assert count(itsm, Record) == 6
    # A bad line before the unreadable one, in the batch it interrupted, is the one named.
    lines[6] = json.dumps(incident_line(6, impact=9))
    path.write_text("\n".join([*lines, "{not json"]) + "\n", encoding="utf-8")
    result = runner.invoke(["records", "import", str(path), "--type", "incident",
                            "--batch", "3", "--jobs", jobs])
    assert result.exception.message.startswith("line 7: invalid incident: impact"), \
        result.output
    assert "6 record(s) imported before it" in result.exception.message
    assert count(itsm, Record) == 12


def test_unknown_type_is_refused(itsm, desk, runner, tmp_path):
    path = write(tmp_path, [incident_line(0)])
    result = runner.invoke(["records", "import", path, "--type", "spaceship"])
    assert "no record type 'spaceship' is enabled" in result.exception.message


def test_values_the_schema_converts_are_imported_as_the_api_takes_them(itsm, desk, runner,
                                                                      tmp_path):
    # Strings for integers: the schema converts them, as on the API (a boolean is true or
    # false only, there as here: see the bad values below).
    path = write(tmp_path, [incident_line(0, impact="1", urgency="2", major=True),
                            incident_line(1, impact=3, urgency=3, major=False)])
    result = runner.invoke(["records", "import", path, "--type", "incident"])
    assert result.exit_code == 0, result.output
    from itsm.plugins.incident.models import Incident

    with itsm.Session() as session:
        rows = session.execute(select(Incident.title, Incident.impact, Incident.urgency,
                                      Incident.major, Incident.priority)
                               .order_by(Incident.id)).all()
    assert [tuple(r) for r in rows] == [
        ("VPN drops every hour at site 0", 1, 2, True, 2),
        ("VPN drops every hour at site 1", 3, 3, False, 5)]


@pytest.mark.parametrize(("change", "says"), [
    ({"impact": True}, "impact: Not a valid integer."),
    ({"major": "true"}, "major: Not a valid boolean."),
    ({"requester": "not-an-email"}, "requester: Not a valid email address."),
    ({"title": None}, "title: Field may not be null."),
    ({"channel": "fax"}, "channel: Must be one of: portal, email"),
    ({"description": 42}, "description: Not a valid string."),
    ({"title": "x" * 301}, "title: Length must be between 1 and 300."),
])
@JOBS
def test_a_bad_value_in_a_later_batch_names_its_line_and_field_and_writes_no_part_of_it(
        itsm, desk, runner, tmp_path, change, says, jobs):
    rows = [incident_line(i) for i in range(13)]
    rows[7].update(change)
    path = write(tmp_path, rows)
    result = runner.invoke(["records", "import", path, "--type", "incident", "--batch", "4",
                            "--jobs", jobs])
    assert isinstance(result.exception, ImportError_), result.output
    message = result.exception.message
    assert message.startswith(f"line 8: invalid incident: {says}"), message
    assert "4 record(s) imported before it" in message
    assert count(itsm, Record) == 4
    assert count(itsm, JournalEntry, JournalEntry.kind == "created") == 4
    assert count(itsm, SlaClock) == 8


def test_the_journal_and_clocks_of_each_record_are_its_own(itsm, desk, runner, tmp_path):
    rows = [incident_line(i) for i in range(40)]
    path = write(tmp_path, rows)
    assert runner.invoke(["records", "import", path, "--type", "incident",
                          "--batch", "7"]).exit_code == 0
    with itsm.Session() as session:
        titles = {r.id: r.title for r in session.execute(select(Record.id, Record.title))}
        created = session.execute(select(JournalEntry.record_id, JournalEntry.data)
                                  .where(JournalEntry.kind == "created")).all()
        clocked = session.execute(select(SlaClock.record_id, func.count())
                                  .group_by(SlaClock.record_id)).all()
    assert len(titles) == 40
    assert {record_id: data["title"] for record_id, data in created} == titles
    assert {r[0]: r[1] for r in clocked} == dict.fromkeys(titles, 2)
    # The created entry shows the type's own fields as the schema dumps them.
    data = next(d for _, d in created if d["title"] == "VPN drops every hour at site 3")
    assert {k: data[k] for k in ("category", "subcategory", "impact", "urgency", "major",
                                 "resolved_at", "reopen_count", "satisfaction")} == {
        "category": "network", "subcategory": "vpn", "impact": 1, "urgency": 2,
        "major": False, "resolved_at": None, "reopen_count": 0, "satisfaction": None}
    assert (data["state"], data["priority"], data["group"], data["agency"]) == \
        ("new", 2, "Network", "DOT")


@JOBS
def test_a_batch_the_database_refuses_stops_the_import_with_what_landed_before_it(
        itsm, desk, runner, tmp_path, jobs):
    """A batch refused while it is written (here a number it takes is in use already:
    a record was renumbered by hand) stops the import with one line, and the batches
    written before it stay, whole."""
    path = write(tmp_path, [incident_line(i) for i in range(3)])
    assert runner.invoke(["records", "import", path, "--type", "incident"]).exit_code == 0
    with itsm.Session() as session:
        session.execute(update(Record).where(Record.number == "INC0000003")
                        .values(number="INC0000007"))
        session.commit()
    path = write(tmp_path, [incident_line(i) for i in range(15)])
    result = runner.invoke(["records", "import", path, "--type", "incident", "--batch", "2",
                            "--jobs", jobs])
    assert result.exit_code != 0
    assert isinstance(result.exception, ImportError_), result.output
    assert result.exception.message.startswith("could not write lines 3 to 4:"), \
        result.exception.message
    assert "2 record(s) imported before them" in result.exception.message
    assert count(itsm, Record) == 3 + 2
    assert count(itsm, JournalEntry, JournalEntry.kind == "created") == 5
    assert count(itsm, SlaClock) == 10
