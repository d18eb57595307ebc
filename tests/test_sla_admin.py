"""Service levels kept in the database: business calendars with holidays of a country or
state, and versions of the SLA targets, through the service functions and ``itsm sla``.
A change applies to records created after it; older clocks keep what they started with."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from itsm.core import service_levels
from itsm.core.auth import Actor
from itsm.core.errors import Forbidden, ValidationError
from itsm.core.models import Record
from itsm.core.sla import TICK, SlaClock
from itsm.core.sla_models import StoredCalendar

WEEKDAY_HOURS = {day: "08:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}
# 60 working days of 9 hours: long enough to cross at least one Maine public holiday
# whenever the test runs (the longest gap between two is about eight weeks).
LONG = 60 * 9 * 60


def _maine(itsm, years: list[int]):
    found = service_levels.public_holidays("United States", "Maine", years)
    with itsm.unit_of_work(Actor.system()) as service:
        row = service_levels.save_calendar(
            service, "maine", timezone="America/New_York", hours=WEEKDAY_HOURS,
            holidays=found, source=service_levels.holiday_source("US", "ME", years))
        return row.key


def _targets(itsm, calendar: str, minutes: int) -> None:
    with itsm.unit_of_work(Actor.system()) as service:
        service_levels.save_targets(service, calendar=calendar, warn_at="75",
                                    targets={"response": {"1": 30, "3": 60},
                                             "resolution": {"3": minutes}})


def _ticket(itsm, title: str = "printer") -> int:
    with itsm.unit_of_work(Actor.system()) as service:
        return service.create("ticket", {"title": title, "priority": 3}).id


def _clock(itsm, record_id: int, metric: str = "resolution") -> SlaClock:
    with itsm.Session() as session:
        return session.scalar(select(SlaClock).where(SlaClock.record_id == record_id,
                                                     SlaClock.metric == metric))


def test_maine_holidays_come_from_the_rules_of_the_state():
    found = dict(service_levels.public_holidays("United States", "Maine", [2026]))
    assert found[date(2026, 4, 20)] == "Patriots' Day"  # Maine's own, not federal
    assert date(2026, 12, 25) in found
    assert "Patriots' Day" not in dict(service_levels.public_holidays("US", "", [2026])).values()
    assert service_levels.holiday_source("us", "me", [2026, 2027]) == \
        "United States, Maine 2026-2027"


def test_new_ticket_due_time_skips_the_maine_holidays(itsm):
    today = date.today()
    key = _maine(itsm, [today.year, today.year + 1])
    assert key == "maine@1"
    _targets(itsm, "maine", LONG)
    clock = _clock(itsm, _ticket(itsm))
    assert clock.calendar == "maine@1" and clock.target_minutes == LONG
    cal = service_levels.calendars_for(itsm, None)["maine@1"]
    # Breached once past the target: a tick after the last working instant, which an
    # evening run reaches at the end of a working day or, the same working time, at the
    # start of the next one.
    end = cal.add(clock.started_at, timedelta(minutes=LONG))
    assert end <= clock.breach_due_at - TICK < cal.add(end, timedelta(minutes=1))
    no_holidays = type(cal)(name="plain", timezone=cal.timezone, weekly=cal.weekly)
    assert clock.breach_due_at > no_holidays.add(clock.started_at, timedelta(minutes=LONG))


def test_a_change_applies_to_new_clocks_only(itsm):
    before = _ticket(itsm, "made under itsm.toml")
    assert _clock(itsm, before).calendar == "default"
    _maine(itsm, [2026])
    _targets(itsm, "maine", 600)
    first = _ticket(itsm, "made under version 1")
    # A second calendar version and new targets: the earlier tickets keep theirs.
    with itsm.unit_of_work(Actor.system()) as service:
        service_levels.save_calendar(service, "maine", timezone="America/New_York",
                                     hours={"mon": "09:00-12:00"}, holidays=[])
    _targets(itsm, "maine", 900)
    second = _ticket(itsm, "made under version 2")
    with itsm.unit_of_work(Actor.system()) as service:  # any change replays the journal
        for number in (before, first):
            record = service.session.get(Record, number)
            service.update(record, {"title": record.title + "!"})
    assert (_clock(itsm, before).calendar, _clock(itsm, before).target_minutes) == \
        ("default", 1440)
    assert (_clock(itsm, first).calendar, _clock(itsm, first).target_minutes) == \
        ("maine@1", 600)
    assert (_clock(itsm, second).calendar, _clock(itsm, second).target_minutes) == \
        ("maine@2", 900)
    with itsm.Session() as session:
        names = [c["name"] for c in service_levels.describe_calendars(itsm, session)]
        assert names.count("maine") == 1
        assert service_levels.current_targets(itsm, session)["targets"]["resolution"][3] == 900


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": "Bad Name!"}, "name"),
    ({"name": "default"}, "name"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"hours": {"mon": "9-5"}}, "mon"),
    ({"hours": {"tue": "17:00-08:00"}}, "tue"),
    ({"hours": {}}, "mon"),
])
def test_a_bad_calendar_names_the_field(itsm, kwargs, field):
    given = {"name": "office", "timezone": "UTC", "hours": WEEKDAY_HOURS, "holidays": [],
             **kwargs}
    name = given.pop("name")
    with pytest.raises(ValidationError) as caught, \
            itsm.unit_of_work(Actor.system()) as service:
        service_levels.save_calendar(service, name, **given)
    assert field in caught.value.fields
    with itsm.Session() as session:
        assert session.scalar(select(StoredCalendar)) is None


def test_bad_targets_and_holiday_input_name_the_field(itsm):
    for kwargs, field in (({"calendar": "nowhere"}, "calendar"),
                          ({"warn_at": "much"}, "warn_at"),
                          ({"warn_at": "150"}, "warn_at"),
                          ({"targets": {"response": {"1": "soon"}}}, "response.p1"),
                          ({"targets": {"resolution": {"2": "-5"}}}, "resolution.p2")):
        given = {"calendar": "default", "warn_at": 75, "targets": {}, **kwargs}
        with pytest.raises(ValidationError) as caught, \
                itsm.unit_of_work(Actor.system()) as service:
            service_levels.save_targets(service, **given)
        assert field in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        service_levels.public_holidays("Atlantis", "", [2026])
    assert "country" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        service_levels.public_holidays("United States", "Gondor", [2026])
    assert "subdivision" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        service_levels.parse_years("2026-2099")
    assert "years" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        service_levels.parse_holiday_lines("2026-12-25 Christmas\nsoon")
    assert "line 2" in caught.value.fields["holidays"][0]


def test_only_admins_change_service_levels(itsm):
    agent = Actor(id=None, email="agent@example.org", role="agent")
    with pytest.raises(Forbidden), itsm.unit_of_work(agent) as service:
        service_levels.save_targets(service, calendar="default", warn_at=75, targets={})
    with pytest.raises(Forbidden), itsm.unit_of_work(agent) as service:
        service_levels.save_calendar(service, "office", timezone="UTC",
                                     hours=WEEKDAY_HOURS, holidays=[])


def test_cli_shows_the_holidays_then_saves_the_calendar_and_targets(runner, itsm):
    shown = runner.invoke(["sla", "holidays", "United States", "--subdivision", "Maine",
                           "--years", "2026"])
    assert shown.exit_code == 0, shown.output
    assert "2026-04-20 Mon  Patriots' Day" in shown.output
    refused = runner.invoke(["sla", "calendars", "set", "maine", "--timezone",
                             "America/New_York", "--country", "US", "--subdivision", "ME",
                             "--years", "2026"], input="n\n")
    assert refused.exit_code != 0 and "Patriots' Day" in refused.output
    saved = runner.invoke(["sla", "calendars", "set", "maine", "--timezone",
                           "America/New_York", "--country", "US", "--subdivision", "ME",
                           "--years", "2026", "--holiday", "2026-12-24 Christmas Eve",
                           "--day", "sat=09:00-12:00"], input="y\n")
    assert saved.exit_code == 0, saved.output
    assert "saved calendar maine@1 with 14 holiday(s)" in saved.output
    listed = runner.invoke(["sla", "calendars"])
    assert "maine (America/New_York, saved, version 1)" in listed.output
    assert "sat: 09:00-12:00" in listed.output
    assert runner.invoke(["sla", "targets", "set", "--calendar", "maine", "--target",
                          "resolution.p1=120", "--warn-at", "80"]).exit_code == 0
    shown = runner.invoke(["sla", "targets"])
    assert "calendar maine, warning at 80%" in shown.output and "P1 120" in shown.output


@pytest.mark.parametrize("args", [
    ["sla", "calendars", "set", "office", "--timezone", "Nowhere/Land"],
    ["sla", "calendars", "set", "office", "--day", "funday=09:00-10:00"],
    ["sla", "calendars", "set", "office", "--holiday", "someday"],
    ["sla", "holidays", "Atlantis", "--years", "2026"],
    ["sla", "targets", "set", "--target", "resolution.p9=5"],
    ["sla", "targets", "set", "--target", "resolution.p1=soon"],
])
def test_cli_bad_input_is_one_line_and_fails(runner, args):
    result = runner.invoke(args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output


# -- the admin pages ---------------------------------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture
def admin_client(client, make_token):
    make_token("boss@example.org", role="admin", password=PASSWORD)
    make_token("desk@example.org", role="agent", password=PASSWORD)
    sign_in(client, "boss@example.org")
    return client


def sign_in(client, email: str) -> None:
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, response.text


def post(client, path: str, data: dict | None = None):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token})


CALENDAR = {"name": "maine", "timezone": "America/New_York", "holidays": "",
            **WEEKDAY_HOURS, "sat": "", "sun": ""}


def test_computed_holidays_are_shown_for_review_before_they_apply(admin_client, itsm):
    form = {**CALENDAR, "country": "US", "subdivision": "Maine", "years": "2026",
            "holidays": "2026-12-24 Christmas Eve"}
    shown = post(admin_client, "/admin/service-levels/calendars/new", form)
    assert shown.status_code == 200
    assert "Patriots" in shown.text and 'name="reviewed"' in shown.text
    with itsm.Session() as session:  # nothing saved yet: a save without review previews
        assert session.scalar(select(StoredCalendar)) is None
    # Untick Columbus Day (Indigenous Peoples' Day in Maine), keep the rest.
    ticked = [d.isoformat() for d, _ in service_levels.public_holidays("US", "ME", [2026])
              if d != date(2026, 10, 12)]
    saved = admin_client.post("/admin/service-levels/calendars/new", data={
        **form, "reviewed": "1", "public": ticked, "action": "save",
        "csrf_token": _token(admin_client)})
    assert saved.status_code == 302, saved.text
    with itsm.Session() as session:
        row = session.scalar(select(StoredCalendar))
        days = {h["date"]: h["name"] for h in row.holidays}
    assert days["2026-12-24"] == "Christmas Eve" and days["2026-04-20"] == "Patriots' Day"
    assert "2026-10-12" not in days and len(days) == 13
    assert row.holiday_source == "United States, Maine 2026"
    listing = admin_client.get("/admin/service-levels/calendars")
    assert "version 1" in listing.text and "new clocks" in listing.text
    edit = admin_client.get("/admin/service-levels/calendars/maine")
    assert "2026-12-24 Christmas Eve" in edit.text and "version 2" in edit.text
    from itsm.core.admin.models import AdminAudit
    with itsm.Session() as session:
        entry = session.scalar(select(AdminAudit).where(AdminAudit.action == "calendar.save"))
        assert entry.target == "calendar maine" and entry.actor_email == "boss@example.org"


def _token(client) -> str:
    with client.session_transaction() as state:
        return state["csrf"]


@pytest.mark.parametrize(("change", "field", "kept"), [
    ({"name": "Not OK"}, "name", "Not OK"),
    ({"timezone": "Moon/Base"}, "timezone", "Moon/Base"),
    ({"mon": "8 to 5"}, "mon", "8 to 5"),
    ({"holidays": "2026-12-25 Christmas\nnext friday"}, "holidays", "next friday"),
    ({"country": "XX", "years": "2026"}, "country", None),
    ({"country": "US", "subdivision": "Gondor", "years": "2026"}, "subdivision", "Gondor"),
    ({"country": "US", "years": "soon"}, "years", "soon"),
])
def test_a_bad_calendar_form_comes_back_with_messages_and_what_was_typed(
        admin_client, change, field, kept):
    response = post(admin_client, "/admin/service-levels/calendars/new",
                    {**CALENDAR, **change, "action": "save"})
    assert response.status_code == 422
    assert f'id="e-{field}"' in response.text
    if kept:
        assert html.escape(kept) in response.text


def test_targets_page_saves_a_version_and_says_it_applies_to_new_clocks(admin_client, itsm):
    page = admin_client.get("/admin/service-levels")
    assert page.status_code == 200 and "new clocks" in page.text
    assert 'value="1440"' in page.text  # resolution P3 of the configuration file
    data = {"calendar": "default", "warn_at": "80",
            **{f"t-{m}-{p}": "" for m in ("response", "resolution") for p in range(1, 6)},
            "t-resolution-3": "600"}
    bad = post(admin_client, "/admin/service-levels", {**data, "t-response-1": "asap",
                                                       "warn_at": "200"})
    assert bad.status_code == 422
    assert 'id="e-t-response-1"' in bad.text and 'value="asap"' in bad.text
    assert 'id="e-warn_at"' in bad.text
    saved = post(admin_client, "/admin/service-levels", data)
    assert saved.status_code == 302
    assert admin_client.get("/admin/service-levels").text.count('value="600"') == 1
    clock = _clock(itsm, _ticket(itsm))
    assert clock.target_minutes == 600 and clock.warn_at == 0.8


def test_service_level_pages_are_listed_for_admins_and_refused_to_agents(admin_client, app):
    home = admin_client.get("/admin/")
    assert "SLA targets" in home.text and "Business calendars" in home.text
    paths = ["/admin/service-levels", "/admin/service-levels/calendars",
             "/admin/service-levels/calendars/new"]
    agent = app.test_client()
    sign_in(agent, "desk@example.org")
    for path in paths:
        assert agent.get(path).status_code == 403, path
    for path in (paths[0], paths[2]):
        assert post(agent, path, {"calendar": "default"}).status_code == 403, path
    assert agent.get("/admin/service-levels/calendars/none").status_code == 403
