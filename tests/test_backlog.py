"""Imports and backlogs: imported history sets off nothing, and the background work keeps
to its per-cycle budgets so that a backlog cannot starve the web process."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import itsm.plugins.incident as incident_plugin
from itsm.core import sla
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.jobs import run_cycle
from itsm.core.models import Delivery, Event, JournalEntry, Record, utcnow
from itsm.core.sla_models import SlaClock
from itsm.plugins.incident.models import Escalation

PAST = 2000  # the import was 20,000; bench/backlog.py measures that one


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    # Every incident notification goes to the log channel (a delivery each), and
    # management has an address: anything the import set off would show as a delivery.
    return {**itsm_config, "sla.calendar": "24x7",
            "plugins.incident.notify_channels": ["log"],
            "plugins.incident.escalation_contacts": ["duty.manager@north.example"],
            "plugins.incident.breach_group": "Major Incident Team"}


@pytest.fixture
def desk(itsm, make_token):
    make_token("agent@example.org", role="agent")
    make_token("pat@dot.example", role="requester", agency="DOT")
    with itsm.Session() as session:
        ensure_agency(session, "DOT", "Department of Transport")
        for name in ("Network", "Major Incident Team"):
            ensure_group(session, name)
        session.commit()


def incident(i: int, created) -> dict:
    return {"title": f"Printer jam on floor {i}", "category": "hardware",
            "impact": 1 + i % 3, "urgency": 1 + (i // 3) % 3, "requester": "pat@dot.example",
            "group": "Network", "state": ("new", "in_progress")[i % 2],
            "assignee": "agent@example.org", "created_at": created.isoformat(),
            "updated_at": created.isoformat()}


def count(itsm, model, *where) -> int:
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def escalation_notes(itsm) -> int:
    return count(itsm, JournalEntry, JournalEntry.kind == "work_noted",
                 JournalEntry.body.like("Escalated%"))


def test_imported_history_neither_notifies_nor_escalates(itsm, desk, runner, tmp_path):
    now = utcnow()
    past = [incident(i, now - timedelta(days=30, minutes=i)) for i in range(PAST)]
    # Three reported a minute ago: their targets (15 minutes and more) are still ahead.
    recent = [{**incident(i, now - timedelta(minutes=1)), "state": "new"} for i in range(3)]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in past + recent), encoding="utf-8")
    # The server's own worker thread runs while the history is loaded, as in production.
    itsm.outbox.start_thread(interval=0.05)
    try:
        result = runner.invoke(["records", "import", str(path), "--type", "incident"])
        assert result.exit_code == 0, result.output
        time.sleep(0.3)  # a few more cycles after the last batch
    finally:
        itsm.outbox.stop_thread()
    while run_cycle(itsm).more:  # and a worker's cycles until nothing is left
        pass

    assert count(itsm, Record) == PAST + 3
    assert count(itsm, Event) == 0
    assert count(itsm, Delivery) == 0
    assert count(itsm, Escalation) == 0
    assert escalation_notes(itsm) == 0
    # Every running clock of the history shows its breach, recorded as announced (the
    # incidents in progress met their response target when they were taken up).
    assert count(itsm, SlaClock, SlaClock.breached.is_(True),
                 SlaClock.breach_sent.is_(True)) == PAST + PAST // 2
    assert count(itsm, SlaClock, SlaClock.state == "running",
                 SlaClock.breach_sent.is_(False)) == 3 * 2  # the recent ones
    first = runner.invoke(["sla", "show", "INC0000001"])
    assert first.output.count("[breached]") == 2, first.output

    # The recent ones behave as any incident: announced and escalated when they come due.
    later = now + timedelta(days=3)
    assert sla.sweep(itsm, later).breached == 3 * 2
    while itsm.outbox.drain().more:
        pass
    with itsm.Session() as session:
        escalated = set(session.scalars(select(Record.number).join(
            Escalation, Escalation.record_id == Record.id)))
    assert escalated == {f"INC{n:07d}" for n in range(PAST + 1, PAST + 4)}
    assert escalation_notes(itsm) == 3 * 4  # warning and breach of both metrics


def test_a_warning_past_and_a_breach_ahead_announce_only_the_breach(itsm, desk, runner,
                                                                      tmp_path):
    # P3 in 24x7: 240 minutes to respond, warned at 180. Reported 200 minutes ago.
    line = {**incident(4, utcnow() - timedelta(minutes=200)), "impact": 2, "urgency": 2}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert runner.invoke(["records", "import", str(path), "--type", "incident"]).exit_code == 0
    sla.sweep(itsm, utcnow() + timedelta(minutes=1))
    assert count(itsm, Event) == 0  # the warning was history
    sla.sweep(itsm, utcnow() + timedelta(minutes=60))
    with itsm.Session() as session:
        names = session.scalars(select(Event.name).join(SlaClock, SlaClock.record_id
                                                        == Event.record_id)
                                .where(SlaClock.metric == "response")).all()
    assert "sla.breached" in names and "sla.warning" not in names


def _open_incidents(itsm, runner, tmp_path, n: int) -> None:
    now = utcnow()
    path = tmp_path / "open.jsonl"
    path.write_text("".join(json.dumps(incident(i, now)) + "\n" for i in range(n)),
                    encoding="utf-8")
    assert runner.invoke(["records", "import", str(path), "--type", "incident"]).exit_code == 0


def test_one_cycle_announces_and_delivers_at_most_its_budget(itsm, desk, runner, tmp_path):
    _open_incidents(itsm, runner, tmp_path, 60)  # 90 clocks running
    itsm.settings.update({"sla.sweep_batch": 25, "outbox.batch": 40})
    later = utcnow() + timedelta(days=3)
    stats = run_cycle(itsm, later)
    assert stats.more
    assert count(itsm, SlaClock, SlaClock.warning_sent.is_(True)) == 25  # warnings first
    assert count(itsm, Event, Event.name.like("sla.%")) == 25
    assert count(itsm, Event, Event.dispatched_at.is_not(None)) <= 40
    assert count(itsm, Delivery, Delivery.state != "pending") <= 40
    cycles = 1
    while run_cycle(itsm, later).more:  # the rest, cycle after cycle
        cycles += 1
        assert cycles < 200
    assert sla.count_due(itsm, later) == 0
    # Every running clock but the six P5s' resolution (five days) was announced.
    assert count(itsm, SlaClock, SlaClock.breach_sent.is_(True)) == 90 - 6
    assert cycles >= 168 // 25
    assert count(itsm, Delivery, Delivery.state == "pending") == 0


def test_the_sweep_stops_at_its_time_budget(itsm, desk, runner, tmp_path):
    _open_incidents(itsm, runner, tmp_path, 30)
    stats = sla.sweep(itsm, utcnow() + timedelta(days=3), batch=1, seconds=1e-9)
    assert stats.more and stats.warned + stats.breached <= 1


def test_the_worker_notes_each_cycle_it_finished(itsm, desk):
    from itsm.core.models import WorkerRun

    before = utcnow()
    run_cycle(itsm)
    run_cycle(itsm)
    with itsm.Session() as session:
        runs = session.scalars(select(WorkerRun)).all()
    assert [r.name for r in runs] == ["cycle"] and runs[0].finished_at >= before


# -- itsm doctor and the health checks ----------------------------------------------------


def _report(client, token, n: int) -> None:
    for i in range(n):
        answer = client.post("/api/v1/incidents", headers=token, json={
            "title": f"Scanner offline {i}", "category": "hardware", "impact": 1, "urgency": 1})
        assert answer.status_code == 201, answer.json


def problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("problem:")]


def test_doctor_warns_on_an_outbox_backlog_and_a_lagging_sweep(itsm, desk, runner, client,
                                                                 make_token):
    from itsm.core import health

    _report(client, make_token("pat@dot.example", role="requester", agency="DOT"), 12)
    assert runner.invoke(["doctor"]).exit_code == 0  # 12 events, just written: fine
    itsm.settings.update({"health.outbox_waiting": 10})
    result = runner.invoke(["doctor"])
    assert result.exit_code != 0
    (line,) = problems(result.output)
    assert line.startswith("problem: outbox backlog: 12 notification(s) waiting (12 "
                           "event(s), 0 delivery(ies) due), the oldest for ")
    assert line.endswith(" s (limits 10 and 15 minute(s)): is a worker running (itsm "
                         "worker, or itsm serve's own)?")
    # Few, but waiting for twenty minutes: a backlog too. And the worker was down while
    # the incidents' response targets came due an hour ago.
    itsm.settings.update({"health.outbox_waiting": 1000})
    an_hour_ago = utcnow() - timedelta(hours=1)
    with itsm.Session() as session:
        session.execute(update(Event).values(created_at=utcnow() - timedelta(minutes=20)))
        session.execute(update(SlaClock).where(SlaClock.metric == "response")
                        .values(warn_due_at=an_hour_ago, breach_due_at=an_hour_ago))
        session.commit()
    found = problems(runner.invoke(["doctor"]).output)
    assert len(found) == 2
    assert found[0].startswith("problem: outbox backlog: 12 notification(s) waiting") \
        and "the oldest for 20 minute(s)" in found[0]
    assert found[1] == ("problem: SLA sweep lagging: 24 warning(s) and breach(es) due and "
                        "not announced, the oldest 60 minute(s) late (limit 15 minute(s)): "
                        "is a worker running?")
    assert not all(check.ok for check in health.checks(itsm))  # what the admin page shows
    while run_cycle(itsm).more:  # the worker is back
        pass
    result = runner.invoke(["doctor"])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output


def test_doctor_warns_on_dead_deliveries(itsm, desk, runner, client, make_token):
    _report(client, make_token("pat@dot.example", role="requester", agency="DOT"), 1)
    itsm.outbox.drain()
    with itsm.Session() as session:  # a mail for a channel this install has not enabled
        event_id = session.scalar(select(Event.id))
        session.add(Delivery(event_id=event_id, channel="email", recipient="x@dot.example"))
        session.commit()
    itsm.settings.update({"outbox.max_attempts": 1})
    assert itsm.outbox.drain().dead == 1
    result = runner.invoke(["doctor"])
    assert result.exit_code != 0
    assert problems(result.output) == [
        "problem: 1 notification delivery(ies) dead after every attempt: see itsm outbox "
        "list --state dead, fix the channel, then itsm outbox retry --dead"]


# -- no placeholder addresses ---------------------------------------------------------------

ADDRESS = re.compile(r"[^@\s\"'<>(),;]+@([^@\s\"'<>(),;]+)")


def mailable(text: str) -> list[str]:
    """Addresses in ``text`` whose domain may exist: all but localhost and the names
    RFC 6761 keeps from ever resolving (.invalid, .test, .localhost)."""
    return [d for d in ADDRESS.findall(text)
            if d != "localhost" and not d.endswith((".localhost", ".invalid", ".test"))]


def test_a_new_install_names_no_one_to_mail(tmp_path):
    from importlib.metadata import entry_points

    from itsm.cli import write_config
    from itsm.core.config import DEFAULTS

    written = write_config(tmp_path, None).read_text(encoding="utf-8")
    assert mailable(written) == []
    assert mailable(repr(DEFAULTS)) == []
    for ep in entry_points(group="itsm.plugins"):  # every plugin's declared defaults
        settings = ep.load().plugin.settings
        assert mailable(repr(settings)) == [], ep.name
    assert incident_plugin.plugin.settings["escalation_contacts"] == []


class TestDemo:
    """The demo install, every built-in plugin enabled, after its SLA targets passed."""

    @pytest.fixture
    def itsm_plugins(self):
        from every_plugin import builtin_plugins

        return builtin_plugins()

    @pytest.fixture
    def itsm_config(self, itsm_config):
        # The install's own defaults: none of this module's incident settings.
        return {**{k: v for k, v in itsm_config.items() if not k.startswith("plugins.")},
                "plugins.initial": "*", "plugins.refresh_seconds": 0.0}

    def test_the_demo_mails_only_addresses_that_never_resolve(self, itsm, runner):
        from every_plugin import load_demo

        from itsm.core.demo import DEMO_DOMAIN
        from itsm.core.models import User

        load_demo(runner)
        later = utcnow() + timedelta(days=30)
        sla.sweep(itsm, later)  # every demo incident breaches: escalations, mails
        while itsm.outbox.drain().more:
            pass
        itsm.outbox.fan_out()
        with itsm.Session() as session:
            people = set(session.scalars(select(User.email)))
            recipients = set(session.scalars(select(Delivery.recipient).where(
                Delivery.recipient.contains("@"))))
            escalated = session.scalar(select(func.count()).select_from(Escalation))
        assert escalated > 0 and recipients
        test_users = {"admin@example.org"}  # made by the test fixture, not by the demo
        outside = {a for a in (people | recipients) - test_users
                   if not a.endswith("." + DEMO_DOMAIN) and not a.endswith("@" + DEMO_DOMAIN)}
        assert outside == set()


def test_housekeeping_takes_the_due_escalation_steps_now(itsm, desk, runner, client,
                                                         make_token):
    _report(client, make_token("pat@dot.example", role="requester", agency="DOT"), 1)
    an_hour_ago = utcnow() - timedelta(hours=1)
    with itsm.Session() as session:  # the P1's targets passed while no worker ran
        session.execute(update(SlaClock).values(warn_due_at=an_hour_ago,
                                                breach_due_at=an_hour_ago))
        session.commit()
    result = runner.invoke(["incident", "housekeeping"])
    assert result.exit_code == 0, result.output
    assert "escalation steps taken: 4;" in result.output
    assert escalation_notes(itsm) == 4
    again = runner.invoke(["incident", "housekeeping"])
    assert "escalation steps taken: 0;" in again.output
