"""People and time: display names everywhere instead of addresses, times in the reader's
zone (their own, else the install's), set on the account page or with the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

import itsm.plugins.incident
from itsm.core import auth
from itsm.core.config import load_settings
from itsm.core.demo import ensure_agency
from itsm.core.display import local_time
from itsm.core.errors import ConfigError
from itsm.core.models import JournalEntry, User
from itsm.core.records import RecordService

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


@pytest.fixture
def itsm_plugins():
    return [itsm.plugins.incident]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "time_zone": "America/New_York"}


@pytest.fixture
def people(itsm):
    state = itsm
    with state.Session() as session:
        ensure_agency(session, "DOT", "Transport")
        auth.create_user(session, "pat@dot.example", role="requester", agency="DOT",
                         password=PASSWORD, name="Pat Morgan")
        agent = auth.create_user(session, "alex@it.example", role="agent",
                                 password=PASSWORD, name="Alex Kim")
        agent.time_zone = "Europe/Berlin"
        session.commit()
    return state


def signed_in(app, email):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    client.csrf = TOKEN.search(client.get("/home").text).group(1)
    return client


def test_local_time_shows_the_zone():
    from zoneinfo import ZoneInfo

    moment = datetime(2026, 12, 7, 20, 30, tzinfo=UTC)
    assert local_time(moment, ZoneInfo("Europe/Berlin")) == "2026-12-07 21:30 CET"
    assert local_time("2026-07-01T12:00:00", ZoneInfo("America/New_York")) == \
        "2026-07-01 08:00 EDT"
    assert local_time(None) == "—"


def test_a_bad_install_zone_is_refused_at_start():
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        load_settings({"time_zone": "Mars/Olympus"})


def _incident(people, title="Printer jam"):
    with people.Session() as session:
        pat = session.scalar(select(User).where(User.email == "pat@dot.example"))
        service = RecordService(people, session, auth.Actor.of(session, pat))
        record = service.create("incident", {"title": title})
        session.commit()
        return record.number, record.created_at


def test_record_page_shows_names_and_the_readers_own_zone(app, people):
    number, created = _incident(people)
    agent = signed_in(app, "alex@it.example")
    page = agent.get(f"/records/incidents/{number}").text
    assert "Pat Morgan" in page
    # The address only as the requester's contact: the activity names her.
    assert page.count("pat@dot.example") == 2
    assert "<strong>Pat Morgan</strong> opened the record" in page
    assert " CET" in page and " UTC" not in page


def test_a_reader_without_a_zone_sees_the_install_zone(app, people):
    number, _ = _incident(people)
    pat = signed_in(app, "pat@dot.example")
    page = pat.get(f"/portal/incidents/{number}").text
    assert " EST" in page or " EDT" in page


def test_the_account_page_sets_name_and_zone_with_field_messages(app, people):
    pat = signed_in(app, "pat@dot.example")
    bad = pat.post("/account", data={"name": " ", "time_zone": "Mars/Olympus",
                                     "csrf_token": pat.csrf})
    assert bad.status_code == 422
    assert "Enter the name people see for you" in bad.text
    assert "Choose a time zone from the list" in bad.text
    assert 'value="Mars/Olympus" selected' in bad.text  # what was typed is kept
    good = pat.post("/account", data={"name": "Pat  O'Neil", "time_zone": "Asia/Tokyo",
                                      "csrf_token": pat.csrf})
    assert good.status_code == 302
    with people.Session() as session:
        user = session.scalar(select(User).where(User.email == "pat@dot.example"))
        assert (user.name, user.time_zone) == ("Pat O'Neil", "Asia/Tokyo")
    assert "Asia/Tokyo" in pat.get("/account").text


def test_portal_conversation_names_the_agent(app, people):
    number, _ = _incident(people)
    agent = signed_in(app, "alex@it.example")
    assert agent.post(f"/records/incidents/{number}/comment",
                      data={"body": "Looking at it", "visibility": "public",
                            "csrf_token": agent.csrf}).status_code == 302
    page = signed_in(app, "pat@dot.example").get(f"/portal/incidents/{number}").text
    assert "Alex Kim" in page and "alex@it.example" not in page
    with people.Session() as session:
        assert session.scalar(select(JournalEntry.body).where(
            JournalEntry.kind == "commented")) == "Looking at it"


def test_cli_adds_a_user_with_name_and_zone_and_refuses_a_bad_zone(runner, itsm):
    ok = runner.invoke(["users", "add", "kim@it.example", "--role", "agent", "--name",
                        "Kim Lee", "--time-zone", "Europe/Paris"])
    assert ok.exit_code == 0, ok.output
    with itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == "kim@it.example"))
        assert (user.name, user.time_zone) == ("Kim Lee", "Europe/Paris")
    bad = runner.invoke(["users", "add", "lee@it.example", "--time-zone", "Nowhere"])
    assert bad.exit_code != 0
    assert "not a time zone" in bad.output + str(bad.exception)
