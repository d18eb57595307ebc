"""Full-text search, suggestions, record actions, periodic work and role-named transitions:
the core services process plugins build on."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select
from test_hooks import token_for

from itsm.core import query, search
from itsm.core.app import current_itsm
from itsm.core.auth import Actor
from itsm.core.jobs import run_periodic
from itsm.core.models import Record
from itsm.core.search import Suggestion
from itsm.core.web import NavItem
from itsm.core.workflow import Transition
from itsm.testing import make_plugin

TICKETS = [
    ("Printer on floor 3 jams", "The printers in the east wing jam on every A3 job."),
    ("VPN drops every hour", "Remote staff lose the VPN tunnel hourly since Monday."),
    ("Password reset", "User cannot reset her password from the portal."),
]


def _open(client, headers, tickets=TICKETS):
    return [client.post("/api/v1/tickets", json={"title": t, "description": d},
                        headers=headers).json["number"] for t, d in tickets]


def _titles(client, headers, q):
    response = client.get("/api/v1/tickets", query_string={"q": q}, headers=headers)
    assert response.status_code == 200, response.json
    return sorted(item["title"] for item in response.json["items"])


def test_search_finds_words_stems_and_prefixes_in_titles_and_descriptions(client, agent):
    numbers = _open(client, agent)
    assert _titles(client, agent, "vpn") == ["VPN drops every hour"]
    assert _titles(client, agent, "tunnel remote") == ["VPN drops every hour"]  # description
    assert _titles(client, agent, "printer") == ["Printer on floor 3 jams"]  # "printers" too
    assert _titles(client, agent, "passw") == ["Password reset"]  # a prefix, as one types
    assert _titles(client, agent, "vpn printer") == []  # every word must match
    assert _titles(client, agent, numbers[2].lower()) == ["Password reset"]  # the number


def test_search_follows_edits_and_takes_any_text_without_error(client, agent):
    number = _open(client, agent)[0]
    client.patch(f"/api/v1/tickets/{number}", json={"title": "Scanner on floor 3 jams"},
                 headers=agent)
    assert _titles(client, agent, "scanner") == ["Scanner on floor 3 jams"]
    for nasty in ['"', "*", "NEAR(a b)", "title:vpn", "' OR 1=1 --", "a & b | !c", "-",
                  "((((", "\\", "ü ß 東京", "x" * 300]:
        response = client.get("/api/v1/tickets", query_string={"q": nasty}, headers=agent)
        assert response.status_code == 200, (nasty, response.json)
    assert _titles(client, agent, "(vpn)!") == ["VPN drops every hour"]  # words only


def _pages(client, headers, q, limit):
    """Every page of a search, followed by its cursors: the numbers in order."""
    numbers, cursor = [], None
    while True:
        args = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/tickets", query_string=args, headers=headers)
        assert response.status_code == 200, response.json
        numbers += [item["number"] for item in response.json["items"]]
        cursor = response.json.get("next")
        if not cursor:
            return numbers


def test_search_lists_matches_newest_first_page_by_page(client, agent):
    towns = ["Lisbon", "Oslo", "Turin", "Lyon", "Bergen", "Porto", "Ghent", "Graz", "Split",
             "Cork", "Brno"]
    tickets = [(f"VPN drops in {town}" if i % 3 else f"Printer jams in {town}",
                "tunnel lost" if i % 3 else "paper stuck") for i, town in enumerate(towns, 1)]
    numbers = _open(client, agent, tickets)
    vpn = [n for n, (title, _) in zip(numbers, tickets, strict=True) if "VPN" in title]
    assert len(vpn) == 8
    assert _pages(client, agent, "vpn", 50) == vpn[::-1]  # newest first
    assert _pages(client, agent, "vpn", 3) == vpn[::-1]  # the same across pages
    assert _pages(client, agent, "tunn", 2) == vpn[::-1]  # a prefix, in descriptions
    assert _pages(client, agent, "vpn lyon", 50) == [numbers[3]]
    assert _pages(client, agent, "printer lyon", 50) == []
    # A number typed as it is finds its record, whatever its words.
    assert _pages(client, agent, numbers[2], 50) == [numbers[2]]
    assert _pages(client, agent, f" {numbers[0].lower()} ", 50) == [numbers[0]]
    assert _pages(client, agent, "nothing matches this", 50) == []
    # Sorted another way, the same records.
    response = client.get("/api/v1/tickets", query_string={"q": "vpn", "sort": "number"},
                          headers=agent)
    assert [i["number"] for i in response.json["items"]] == vpn


@pytest.mark.parametrize(("first", "walk", "gather"), [
    (1, 1, 1), (1, 1, query.SEARCH_GATHER), (1, 4, 1), (2, 4, 3), (4, 4, 3), (1, 6, 2),
    (query.SEARCH_WALK_FIRST, query.SEARCH_WALK, query.SEARCH_GATHER)])
def test_a_search_page_is_the_same_however_many_newest_records_are_walked(
        client, agent, monkeypatch, first, walk, gather):
    # PostgreSQL walks the newest records first, and further when they matched often;
    # when they hold too few matches, it gathers every match when there are few, else
    # walks further first: either way, the same records in the same order.
    monkeypatch.setattr(query, "SEARCH_WALK_FIRST", first)
    monkeypatch.setattr(query, "SEARCH_WALK", walk)
    monkeypatch.setattr(query, "SEARCH_GATHER", gather)
    monkeypatch.setattr(query, "SEARCH_GATHER_PER_ROOT", 0)
    tickets = [("Docking station dead" if i % 4 == 0 else f"VPN drops {i}",
                "the docking station of desk" if i % 5 == 0 else "tunnel lost")
               for i in range(1, 15)]
    numbers = _open(client, agent, tickets)
    docking = [n for n, (t, d) in zip(numbers, tickets, strict=True) if "ocking" in t + d]
    assert len(docking) == 5
    assert _pages(client, agent, "docking station", 2) == docking[::-1]
    assert _pages(client, agent, "docking station", 50) == docking[::-1]
    assert _pages(client, agent, "vpn tunnel", 4) == [
        n for n, (t, d) in zip(numbers, tickets, strict=True)
        if "VPN" in t and "tunnel" in d][::-1]
    # Only the start of a word, in most records.
    assert _pages(client, agent, "tunn", 4) == [
        n for n, (t, d) in zip(numbers, tickets, strict=True) if "tunnel" in d][::-1]
    response = client.get("/api/v1/tickets", query_string={
        "q": "dock", "sort": "number", "limit": 2}, headers=agent)
    assert [i["number"] for i in response.json["items"]] == docking[:2]


def test_a_search_gathers_more_matches_at_once_as_the_desk_grows(itsm, monkeypatch):
    if itsm.engine.dialect.name != "postgresql":
        pytest.skip("the walk and the gathering are PostgreSQL's")
    monkeypatch.setattr(query, "SEARCH_GATHER", 10)
    with itsm.unit_of_work(Actor.system()) as service:
        for i in range(150):
            service.create("ticket", {"title": f"Printer {i} jams", "description": "A3"})
    with itsm.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE record")
    with itsm.Session() as session:
        records = session.scalar(select(func.count()).select_from(Record))
        assert records >= 150
        # 5 x the square root of the records: 5 x 12.2 for 150, never under the floor.
        assert query.gather_cap(session) == max(10, round(5 * math.sqrt(records))) >= 61
        monkeypatch.setattr(query, "SEARCH_GATHER", 1000)
        assert query.gather_cap(session) == 1000


def test_search_forgets_the_words_an_edit_removed(client, agent):
    number = _open(client, agent)[1]
    changed = client.patch(f"/api/v1/tickets/{number}",
                           json={"description": "Remote staff cannot reach the intranet."},
                           headers=agent)
    assert changed.status_code == 200, changed.json
    assert _titles(client, agent, "intranet") == ["VPN drops every hour"]
    assert _titles(client, agent, "tunnel") == []
    assert _titles(client, agent, "vpn") == ["VPN drops every hour"]  # the title stays
    client.patch(f"/api/v1/tickets/{number}", json={"title": "Intranet unreachable"},
                 headers=agent)
    assert _titles(client, agent, "vpn") == []
    assert _titles(client, agent, "unreach intranet") == ["Intranet unreachable"]


def test_several_searches_in_one_query_each_keep_their_own_words(itsm):
    with itsm.unit_of_work(Actor.system()) as service:
        for title, description in TICKETS:
            service.create("ticket", {"title": title, "description": description})
    with itsm.Session() as session:
        def titles(*texts: str) -> list[str]:
            return session.scalars(select(Record.title).where(
                *[Record.id.in_(search.matching(session, t)) for t in texts])).all()

        assert titles("printer", "jams") == ["Printer on floor 3 jams"]
        assert titles("vpn", "printer") == []
        assert titles("password", "portal") == ["Password reset"]


def test_records_written_before_the_search_upgrade_are_found_after_it(itsm):
    from alembic import command

    from itsm.core import migrate

    # The records are written first and the schema is then taken back to before the
    # search tables: what the upgrade finds is what an install of core_0005 held.
    with itsm.unit_of_work(Actor.system()) as service:
        for title, description in TICKETS:
            service.create("ticket", {"title": title, "description": description})
    with itsm.engine.begin() as connection:
        command.downgrade(migrate._config(itsm, connection), "core_0005")
    assert migrate.upgrade(itsm) == ["core: core_0005 -> core_0016"]
    with itsm.Session() as session:
        def titles(text_: str) -> list[str]:
            return sorted(session.scalars(select(Record.title).where(
                Record.id.in_(search.matching(session, text_)))))

        assert titles("printers jam") == ["Printer on floor 3 jams"]
        assert titles("hour") == ["VPN drops every hour"]
        assert [r.title for r, _ in search.ranked(session, "password portal")] == [
            "Password reset"]
    with itsm.unit_of_work(Actor.system()) as service:  # and what is written after it
        service.create("ticket", {"title": "Badge reader dead", "description": "lobby"})
    with itsm.Session() as session:
        assert titles("lobby badge") == ["Badge reader dead"]


def test_the_start_of_a_word_written_before_the_stored_words_finds_it_after_them(
        itsm, monkeypatch):
    # PostgreSQL looks a word's start up as the whole words it stands for (core_0007):
    # words of records written before the upgrade are there too, and a start that stands
    # for more words than are looked up is still found as a start.
    from alembic import command

    from itsm.core import migrate

    with itsm.unit_of_work(Actor.system()) as service:
        for title, description in [*TICKETS, ("Printing slow", "prints take minutes"),
                                   ("Wiki down", "see intranet.example/path?a=b'c\\d "
                                                 "and foo-bar, ask o'brien")]:
            service.create("ticket", {"title": title, "description": description})
    if itsm.engine.dialect.name == "postgresql":  # as an install of core_0006 held them
        with itsm.engine.begin() as connection:
            command.downgrade(migrate._config(itsm, connection), "core_0006")
        assert migrate.upgrade(itsm) == ["core: core_0006 -> core_0016"]

    def titles(session, text_: str) -> list[str]:
        return sorted(session.scalars(select(Record.title).where(
            Record.id.in_(search.matching(session, text_)))))

    with itsm.Session() as session:
        assert titles(session, "passw") == ["Password reset"]
        assert titles(session, "print") == ["Printer on floor 3 jams", "Printing slow"]
        assert titles(session, "print jam") == ["Printer on floor 3 jams"]
        assert titles(session, "print zzz") == []
        if itsm.engine.dialect.name == "postgresql":  # SQLite's index keeps stop words
            assert titles(session, "the") == []
        assert titles(session, "the passw") == ["Password reset"]
        # Words of a web address, a path, a quote or a backslash are stored as they are.
        assert titles(session, "intranet foo brien") == ["Wiki down"]
        assert [r.title for r, _ in search.ranked(session, "password zzzzz")] == [
            "Password reset"]  # any word: one that no record starts with is left out
    monkeypatch.setattr(search, "MAX_EXPANSION", 1)  # "print": print, printer, ...
    with itsm.Session() as session:
        assert titles(session, "print") == ["Printer on floor 3 jams", "Printing slow"]
        assert titles(session, "print jam") == ["Printer on floor 3 jams"]


def test_a_search_sees_words_that_came_after_its_last_transaction(itsm):
    def titles(session, text_: str) -> list[str]:
        return session.scalars(select(Record.title).where(
            Record.id.in_(search.matching(session, text_)))).all()

    with itsm.Session() as session:
        assert titles(session, "quokk") == []
        session.commit()
        with itsm.unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": "Quokka badge", "description": "lobby"})
        assert titles(session, "quokk") == ["Quokka badge"]


def test_search_keeps_agencies_apart(client, make_token):
    north = make_token("ann@north.example", role="requester", agency="NORTH")
    south = make_token("bob@south.example", role="requester", agency="SOUTH")
    _open(client, north, [("VPN broken at North", "tunnel down")])
    _open(client, south, [("VPN broken at South", "tunnel down")])
    assert _titles(client, north, "vpn") == ["VPN broken at North"]
    assert _titles(client, south, "tunnel") == ["VPN broken at South"]


def test_ranked_orders_best_matches_first_with_scores(itsm):
    with itsm.unit_of_work(Actor.system()) as service:
        for title, description in [("Mail", "outlook mail crash"), ("Outlook crash",
                                   "outlook crashes when opening outlook calendar"),
                                   ("Calendar", "shared calendar missing")]:
            service.create("ticket", {"title": title, "description": description})
    with itsm.Session() as session:
        hits = search.ranked(session, "outlook crash calendar", limit=5)
        assert [r.title for r, _ in hits][0] == "Outlook crash"
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
        assert len(hits) == 3  # any word matches by default
        only = search.ranked(session, "calendar", where=[Record.title == "Calendar"])
        assert [r.title for r, _ in only] == ["Calendar"]
        assert search.ranked(session, "!!! ???") == []
        # Stop words and short words do not make a suggestion of everything.
        assert search.ranked(session, "it is in the calendar")[0][0].title == "Calendar"
        assert search.ranked(session, "it is a an") == []


def test_itsm_suggestions_are_merged_by_score_and_returned_on_create(with_plugin):
    def itsm_suggestions(session, text, record, limit):
        hits = search.ranked(session, text, types=["ticket"], limit=limit,
                             exclude=[record.id] if record else [],
                             where=[Record.state == "resolved"])
        return [Suggestion(r.number, r.title, "Solved ticket", summary="try this",
                           score=score) for r, score in hits]

    def other_suggestions(text):
        return [Suggestion("KB0000001", "Restart the VPN client", "Article", score=0.5)]

    application = with_plugin(make_plugin("answers", itsm_suggestions=itsm_suggestions))
    itsm = application.extensions["itsm"]
    web, headers = application.test_client(), token_for(application)
    solved = web.post("/api/v1/tickets", json={"title": "VPN drops", "description":
                                                "tunnel lost"}, headers=headers).json
    web.post(f"/api/v1/tickets/{solved['number']}/transitions",
             json={"name": "resolve", "fields": {"resolution": "new client"}}, headers=headers)
    itsm.host.pm.register(make_plugin("more", itsm_suggestions=other_suggestions), "more")
    created = web.post("/api/v1/tickets", json={"title": "VPN keeps dropping"},
                       headers=headers)
    assert created.status_code == 201
    assert [(s["number"], s["kind"]) for s in created.json["suggestions"]] == [
        (solved["number"], "Solved ticket"), ("KB0000001", "Article")]
    again = web.get(f"/api/v1/tickets/{created.json['number']}/suggestions", headers=headers)
    assert again.json["items"] == created.json["suggestions"]
    one = web.get(f"/api/v1/tickets/{created.json['number']}/suggestions?limit=1",
                  headers=headers)
    assert [s["number"] for s in one.json["items"]] == [solved["number"]]
    assert web.get(f"/api/v1/tickets/{created.json['number']}/suggestions?limit=0",
                   headers=headers).status_code == 422
    page = web.get(f"/api/v1/tickets/{created.json['number']}", headers=headers)
    assert "suggestions" not in page.json  # only the create response carries them


def test_itsm_record_actions_appear_on_any_records_page(with_plugin, make_token):
    def itsm_record_actions(record, actor):
        if record.state == "resolved" and actor.role != "requester":
            return [NavItem("Propose an article", f"/kb/propose?from={record.number}")]
        return None

    application = with_plugin(make_plugin("kb", itsm_record_actions=itsm_record_actions))
    web = application.test_client()
    headers = token_for(application)
    number = web.post("/api/v1/tickets", json={"title": "Disk full"}, headers=headers) \
        .json["number"]
    _sign_in(application, web)
    assert "Propose an article" not in web.get(f"/records/tickets/{number}").text
    web.post(f"/api/v1/tickets/{number}/transitions",
             json={"name": "resolve", "fields": {"resolution": "cleaned"}}, headers=headers)
    page = web.get(f"/records/tickets/{number}").text
    assert f'href="/kb/propose?from={number}"' in page


def _sign_in(application, web, email="lead@example.org"):
    from itsm.core import auth

    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        auth.create_user(session, email, role="agent", password="long enough secret")
        session.commit()
    token = web.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = web.post("/login", data={"email": email, "password": "long enough secret",
                                        "csrf_token": token})
    assert response.status_code == 302


def test_itsm_periodic_runs_each_plugin_on_its_own(with_plugin, caplog):
    seen = []

    def itsm_periodic(now):
        with current_itsm().unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": f"Nightly check {now:%Y-%m-%d}"})
        seen.append(now)

    def broken_periodic():
        raise RuntimeError("downstream gone")

    application = with_plugin(make_plugin("nightly", itsm_periodic=itsm_periodic))
    itsm = application.extensions["itsm"]
    itsm.host.pm.register(make_plugin("broken", itsm_periodic=broken_periodic), "broken")
    with application.app_context():
        failed = run_periodic(itsm)
    assert failed == ["broken"]
    assert len(seen) == 1
    with itsm.Session() as session:
        assert session.scalars(select(Record.title)).all() == [f"Nightly check {seen[0]:%Y-%m-%d}"]
    assert "periodic work of plugin broken failed" in caplog.text


def test_a_transition_open_to_the_requester_is_theirs_alone(with_plugin):
    application = with_plugin(make_plugin("confirm"))
    itsm = application.extensions["itsm"]
    workflow = itsm.types.get("ticket").workflow
    original = workflow.transitions["close"]
    workflow.transitions["close"] = Transition("close", ("resolved",), "closed",
                                               requester=True)
    try:
        web = application.test_client()
        ann = token_for(application, "ann@north.example", role="requester", agency="NORTH")
        cat = token_for(application, "cat@north.example", role="requester", agency="NORTH")
        agent = token_for(application)
        number = web.post("/api/v1/tickets", json={"title": "Screen flickers"},
                          headers=ann).json["number"]
        web.post(f"/api/v1/tickets/{number}/transitions",
                 json={"name": "resolve", "fields": {"resolution": "cable"}}, headers=agent)
        refused = web.post(f"/api/v1/tickets/{number}/transitions", json={"name": "reopen"},
                           headers=ann)
        assert refused.status_code == 409  # not open to requesters: no ticket.transition
        colleague = web.post(f"/api/v1/tickets/{number}/transitions", json={"name": "close"},
                             headers=cat)
        assert colleague.status_code == 409  # same agency, but not the requester
        assert "may not move ticket records" in colleague.json["error"]["reasons"][0]
        done = web.post(f"/api/v1/tickets/{number}/transitions", json={"name": "close"},
                        headers=ann)
        assert done.status_code == 200 and done.json["state"] == "closed"
    finally:
        workflow.transitions["close"] = original
