"""The knowledge plugin: articles written, reviewed, published, versioned, voted on,
searched and suggested — with the sample "tickets" process beside it, never imported."""

from __future__ import annotations

import pytest
import sample_plugin
from sqlalchemy import inspect

import itsm.plugins.knowledge as knowledge_plugin
from itsm.core import plugin_admin
from itsm.plugins.knowledge.rendering import plain_text, render_markdown
from itsm.testing import make_plugin, schema_drift

ARTICLES = "/api/v1/articles"
VPN_BODY = ("When the VPN tunnel drops every hour, update the **GlobalConnect** client to "
            "version 6.1.\n\n1. Open the software centre.\n2. Install the update.")


def _editors_publish(actor, permission, record):
    # An install that keeps publishing to its editors: writer@ writes, never publishes.
    if permission == "knowledge.publish" and actor.email == "writer@example.org":
        return False
    return None


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, knowledge_plugin]


@pytest.fixture
def editor(make_token):
    return make_token("editor@example.org", role="agent")


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT")


def write(client, headers, title="VPN drops every hour", body=VPN_BODY, **fields):
    response = client.post(ARTICLES, json={"title": title, "description": body, **fields},
                           headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def run(client, headers, number, name, **fields):
    return client.post(f"{ARTICLES}/{number}/transitions",
                       json={"name": name, "fields": fields}, headers=headers)


def publish(client, headers, **kwargs):
    article = write(client, headers, **kwargs)
    assert run(client, headers, article["number"], "submit").status_code == 200
    published = run(client, headers, article["number"], "publish")
    assert published.status_code == 200, published.json
    return published.json


def sign_in(app, client, email, role="agent", agency=None):
    from itsm.core import auth
    from itsm.core.demo import ensure_agency

    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        if agency:
            ensure_agency(session, agency, agency)
        auth.create_user(session, email, role=role, agency=agency,
                         password="long enough secret")
        session.commit()
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"email": email, "password": "long enough secret",
                                           "csrf_token": token})
    assert response.status_code == 302
    return token


def csrf(client, path):
    return client.get(path).text.split('name="csrf_token" value="')[1].split('"')[0]


# -- workflow and versions -------------------------------------------------------------------


def test_article_goes_from_draft_through_review_to_published_and_retired(client, agent):
    article = write(client, agent, service="VPN", category="Troubleshooting")
    number = article["number"]
    assert number.startswith("KB")
    assert (article["state"], article["service"], article["helpful_count"]) == \
        ("draft", "VPN", 0)
    assert article["transitions"] == ["submit"]

    sent_back = run(client, agent, number, "submit")
    assert sent_back.json["state"] == "review"
    refused = run(client, agent, number, "send_back")
    assert refused.status_code == 409
    assert "review_note is required to send back" in refused.json["error"]["reasons"]
    back = run(client, agent, number, "send_back", review_note="Add a screenshot step.")
    assert (back.json["state"], back.json["review_note"]) == ("draft", "Add a screenshot step.")

    run(client, agent, number, "submit")
    published = run(client, agent, number, "publish").json
    assert published["state"] == "published" and published["published_at"]
    retired = run(client, agent, number, "retire").json
    assert retired["state"] == "retired" and retired["retired_at"] and retired["closed_at"]
    restored = run(client, agent, number, "restore").json
    assert (restored["state"], restored["retired_at"]) == ("draft", None)


def test_an_empty_article_cannot_be_submitted(client, agent):
    number = write(client, agent, body="")["number"]
    refused = run(client, agent, number, "submit")
    assert refused.status_code == 409
    assert refused.json["error"]["reasons"] == [
        "the article has no body yet: write it in the description"]


def test_requesters_cannot_write_articles(client, pat):
    response = client.post(ARTICLES, json={"title": "My tip", "description": "x"}, headers=pat)
    assert response.status_code == 403


def test_every_change_of_title_or_body_is_a_new_version(client, agent, editor):
    number = write(client, agent, title="VPN drops")["number"]
    client.patch(f"{ARTICLES}/{number}", json={"description": VPN_BODY + "\n\n3. Reboot."},
                 headers=editor)
    client.patch(f"{ARTICLES}/{number}", json={"category": "Troubleshooting"}, headers=agent)
    client.patch(f"{ARTICLES}/{number}", json={"title": "VPN drops every hour"},
                 headers=agent)
    history = client.get(f"{ARTICLES}/{number}/versions", headers=agent)
    assert history.status_code == 200
    items = history.json["items"]
    assert [(v["version"], v["title"], v["author"]) for v in items] == [
        (1, "VPN drops", "agent@example.org"),
        (2, "VPN drops", "editor@example.org"),
        (3, "VPN drops every hour", "agent@example.org")]
    assert items[1]["body"].endswith("3. Reboot.")


class TestPublicationBindsTheText:
    """With an install that keeps publishing to its editors."""

    @pytest.fixture
    def itsm_plugins(self):
        return [sample_plugin, knowledge_plugin,
                make_plugin("editors", itsm_permission_check=_editors_publish)]

    def test_a_published_text_changes_only_by_someone_who_may_publish(self, client, agent,
                                                                       make_token):
        writer = make_token("writer@example.org", role="agent")
        number = publish(client, agent, title="VPN drops")["number"]
        refused = client.patch(f"{ARTICLES}/{number}", headers=writer,
                               json={"description": "Uninstall the VPN client."})
        assert refused.status_code == 409, refused.json
        assert "description change only by someone who may publish" \
            in refused.json["error"]["message"]
        article = client.get(f"{ARTICLES}/{number}", headers=agent).json
        assert article["description"] == VPN_BODY
        assert article["published_by"] == "agent@example.org"
        # A publisher's correction in place is a new publication; the journal says so.
        fixed = client.patch(f"{ARTICLES}/{number}", headers=agent,
                             json={"title": "VPN drops every hour"})
        assert fixed.status_code == 200 and fixed.json["state"] == "published"
        journal = client.get(f"{ARTICLES}/{number}/journal", headers=agent).json
        notes = " ".join(e.get("body") or "" for e in journal["items"])
        assert ("publication by agent@example.org superseded: title changed; republished "
                "by agent@example.org.") in notes
        # Taking it off the portal for a new revision needs no publishing right.
        assert run(client, writer, number, "revise").status_code == 200


def test_versions_page_compares_two_versions(app, client, agent):
    number = write(client, agent, body="Restart the client.")["number"]
    client.patch(f"{ARTICLES}/{number}", json={"description": "Update the client."},
                 headers=agent)
    sign_in(app, client, "lead@example.org")
    page = client.get(f"/knowledge/{number}/versions?a=1&b=2")
    assert page.status_code == 200
    assert "<del>- Restart the client.</del>" in page.text
    assert "<ins>+ Update the client.</ins>" in page.text


def test_bad_input_gets_field_messages_not_errors(client, agent):
    number = write(client, agent)["number"]
    wrong = client.post(ARTICLES, json={"title": "x", "source_record": "nonsense"},
                        headers=agent)
    assert wrong.status_code == 422 and "source_record" in wrong.json["error"]["fields"]
    counted = client.post(ARTICLES, json={"title": "x", "helpful_count": 99}, headers=agent)
    assert counted.status_code == 422 and "helpful_count" in counted.json["error"]["fields"]
    for body in ({}, {"helpful": "perhaps"}, {"helpful": True, "extra": 1}):
        response = client.post(f"{ARTICLES}/{number}/votes", json=body, headers=agent)
        assert response.status_code == 422, body
    assert client.post(f"{ARTICLES}/{number}/votes", data="{", headers={
        **agent, "Content-Type": "application/json"}).status_code == 422
    assert client.post(f"{ARTICLES}/proposals", json={"record": ""},
                       headers=agent).status_code == 422
    assert client.get(f"{ARTICLES}/KB9999999/versions", headers=agent).status_code == 404
    assert client.get("/api/v1/knowledge/search?limit=0", headers=agent).status_code == 422


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_is_rendered_without_live_scripts_or_script_links():
    html = render_markdown("# Fix\n\n<script>alert(1)</script>\n\n"
                           "<img src=x onerror=alert(1)>\n\n"
                           "[click](javascript:alert(1)) [v](vbscript:x) "
                           "[d](data:text/html;base64,PHNjcmlwdD4=) "
                           "[vendor](https://vendor.example/kb)\n\n**bold**")
    assert "<h1>Fix</h1>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html and 'href="vbscript:' not in html
    assert 'href="data:' not in html
    assert '<a href="https://vendor.example/kb" rel="nofollow noopener noreferrer">' in html
    assert plain_text("# Fix\n\nRun **this**\nnow.", 14) == "Fix Run this…"


def test_article_page_shows_rendered_markdown_and_escapes_html(app, client, agent):
    number = publish(client, agent, body="Use **bold** steps.\n\n<script>alert(1)</script>"
                     "\n\n[x](javascript:alert(1))")["number"]
    sign_in(app, client, "reader@dot.example.org", role="requester", agency="DOT")
    page = client.get(f"/knowledge/{number}")
    assert page.status_code == 200
    assert "<strong>bold</strong>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert 'href="javascript:' not in page.text


# -- what requesters see ------------------------------------------------------------------


def test_requester_reads_published_articles_only(client, agent, pat):
    draft = write(client, agent, title="Draft about printers")["number"]
    published = publish(client, agent, title="Printer jams")["number"]
    assert client.get(f"{ARTICLES}/{published}", headers=pat).status_code == 200
    assert client.get(f"{ARTICLES}/{draft}", headers=pat).status_code == 404
    assert client.get(ARTICLES, headers=pat).status_code == 403  # the knowledge search
    found = client.get("/api/v1/knowledge/search?q=printer", headers=pat).json["items"]
    assert [item["number"] for item in found] == [published]
    assert client.get(f"{ARTICLES}/{published}/versions", headers=pat).status_code == 403
    assert client.post(f"{ARTICLES}/{published}/comments", json={"body": "thanks"},
                       headers=pat).status_code == 403
    run(client, agent, published, "retire")
    assert client.get(f"{ARTICLES}/{published}", headers=pat).status_code == 404


def test_article_of_an_agency_is_for_that_agency_only(client, agent, pat, make_token):
    sam = make_token("sam@doh.example.org", role="requester", agency="DOH")
    number = publish(client, agent, title="DOT badge printer", agency="DOT")["number"]
    assert client.get(f"{ARTICLES}/{number}", headers=pat).status_code == 200
    assert client.get(f"{ARTICLES}/{number}", headers=sam).status_code == 404
    assert client.get("/api/v1/knowledge/search?q=badge", headers=sam).json["items"] == []


def test_portal_search_lists_published_articles_to_a_requester(app, client, agent):
    publish(client, agent, title="Reset your password", body="Use the self-service page.")
    write(client, agent, title="Password policy draft", body="Not yet.")
    sign_in(app, client, "reader@dot.example.org", role="requester", agency="DOT")
    home = client.get("/home")
    assert 'href="/knowledge"' in home.text  # the navigation entry
    page = client.get("/knowledge?q=password")
    assert page.status_code == 200
    assert "Reset your password" in page.text
    assert "Password policy draft" not in page.text
    latest = client.get("/knowledge")
    assert "Reset your password" in latest.text and "Password policy draft" not in latest.text
    assert "self-service page" in latest.text  # the summary


# -- votes --------------------------------------------------------------------------------------


def test_one_vote_per_person_which_they_may_change(client, agent, pat, make_token):
    number = publish(client, agent)["number"]
    version = client.get(f"{ARTICLES}/{number}", headers=agent).json["version"]
    first = client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=pat)
    assert first.status_code == 200, first.json
    assert (first.json["helpful_count"], first.json["not_helpful_count"]) == (1, 0)
    again = client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=pat)
    assert (again.json["helpful_count"], again.json["not_helpful_count"]) == (1, 0)
    changed = client.post(f"{ARTICLES}/{number}/votes", json={"helpful": False}, headers=pat)
    assert (changed.json["helpful_count"], changed.json["not_helpful_count"]) == (0, 1)
    client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=agent)
    article = client.get(f"{ARTICLES}/{number}", headers=agent).json
    assert (article["helpful_count"], article["not_helpful_count"]) == (1, 1)
    assert article["version"] == version  # a vote is not an edit


def test_drafts_take_no_votes(client, agent, pat):
    number = write(client, agent)["number"]
    refused = client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=agent)
    assert refused.status_code == 409
    hidden = client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=pat)
    assert hidden.status_code == 404


def test_portal_vote_buttons_record_the_vote(app, client, agent):
    number = publish(client, agent)["number"]
    sign_in(app, client, "reader@dot.example.org", role="requester", agency="DOT")
    token = csrf(client, f"/knowledge/{number}")
    refused = client.post(f"/knowledge/{number}/vote", data={"helpful": "yes"})
    assert refused.status_code == 400  # no CSRF token
    voted = client.post(f"/knowledge/{number}/vote", data={"helpful": "no",
                                                            "csrf_token": token})
    assert voted.status_code == 302
    page = client.get(f"/knowledge/{number}").text
    assert "0 found it helpful, 1 did not" in page and "You said it did not help." in page


# -- suggestions and proposals ------------------------------------------------------------


def test_a_new_ticket_gets_published_articles_never_drafts(client, agent, pat):
    published = publish(client, agent)["number"]
    write(client, agent, title="VPN drops draft", body="Draft text about the VPN tunnel.")
    created = client.post("/api/v1/tickets", json={"title": "VPN tunnel drops"}, headers=pat)
    assert created.status_code == 201
    suggestions = created.json["suggestions"]
    assert [(s["number"], s["kind"]) for s in suggestions] == [
        (published, "Knowledge article")]
    assert suggestions[0]["url"] == f"/knowledge/{published}"
    assert suggestions[0]["summary"].startswith("When the VPN tunnel drops every hour")
    assert "**" not in suggestions[0]["summary"]


def test_a_create_that_asks_for_no_suggestions_gets_none_and_can_fetch_them_later(
        client, agent, pat):
    published = publish(client, agent)["number"]
    created = client.post("/api/v1/tickets?suggest=false", json={"title": "VPN tunnel drops"},
                          headers=pat)
    assert created.status_code == 201
    assert "suggestions" not in created.json
    later = client.get(f"/api/v1/tickets/{created.json['number']}/suggestions", headers=pat)
    assert [s["number"] for s in later.json["items"]] == [published]
    refused = client.post("/api/v1/tickets?suggest=maybe", json={"title": "VPN tunnel drops"},
                          headers=pat)
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {"suggest": ["use true or false"]}
    numbers = [t["number"] for t in client.get("/api/v1/tickets", headers=agent).json["items"]]
    assert numbers == [created.json["number"]]  # the refused one wrote nothing


def test_agent_proposes_an_article_from_a_resolved_ticket_on_its_page(app, client, agent):
    number = client.post("/api/v1/tickets", json={
        "title": "Outlook crashes on start", "description": "Since the update.",
        "category": "general"}, headers=agent).json["number"]
    sign_in(app, client, "lead@example.org")
    assert "Propose a knowledge article" not in client.get(f"/records/tickets/{number}").text
    client.post(f"/api/v1/tickets/{number}/transitions", json={
        "name": "resolve", "fields": {"resolution": "Start Outlook once in safe mode."}},
        headers=agent)
    page = client.get(f"/records/tickets/{number}").text
    assert f'href="/knowledge/propose?from={number}"' in page

    form = client.get(f"/knowledge/propose?from={number}")
    assert form.status_code == 200
    assert "Start Outlook once in safe mode." in form.text
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    saved = client.post("/knowledge/propose", data={
        "from": number, "title": "Outlook crashes on start",
        "description": "Start Outlook once in safe mode.", "service": "E-mail",
        "category": "Troubleshooting", "csrf_token": token})
    assert saved.status_code == 302
    article_number = saved.headers["Location"].rsplit("/", 1)[1]
    article = client.get(f"{ARTICLES}/{article_number}", headers=agent).json
    assert (article["state"], article["source_record"], article["service"]) == \
        ("draft", number, "E-mail")
    links = client.get(f"{ARTICLES}/{article_number}/links", headers=agent).json["items"]
    assert [link["record"]["number"] for link in links] == [number]
    detail = client.get(f"/records/articles/{article_number}")
    assert detail.status_code == 200 and "Versions and changes" in detail.text
    assert "Version 1" in client.get(f"/knowledge/{article_number}/versions").text


def test_proposal_form_keeps_what_was_typed_when_refused(app, client, agent):
    number = client.post("/api/v1/tickets", json={"title": "Disk full"},
                         headers=agent).json["number"]
    client.post(f"/api/v1/tickets/{number}/transitions", json={
        "name": "resolve", "fields": {"resolution": "Emptied the temp folder."}},
        headers=agent)
    sign_in(app, client, "lead@example.org")
    token = csrf(client, f"/knowledge/propose?from={number}")
    refused = client.post("/knowledge/propose", data={
        "from": number, "title": "", "description": "My own words", "csrf_token": token})
    assert refused.status_code == 422
    assert "My own words" in refused.text and 'aria-invalid="true"' in refused.text
    unresolved = client.post("/api/v1/tickets", json={"title": "Open one"},
                             headers=agent).json["number"]
    assert client.get(f"/knowledge/propose?from={unresolved}").status_code == 409


def test_api_proposal_from_a_resolved_ticket(client, agent, pat):
    number = client.post("/api/v1/tickets", json={
        "title": "Printer jams on A3", "description": "East wing printer."},
        headers=pat).json["number"]
    early = client.post(f"{ARTICLES}/proposals", json={"record": number}, headers=agent)
    assert early.status_code == 409  # not resolved yet
    client.post(f"/api/v1/tickets/{number}/transitions", json={
        "name": "resolve", "fields": {"resolution": "Clean the rear sensor."}}, headers=agent)
    refused = client.post(f"{ARTICLES}/proposals", json={"record": number}, headers=pat)
    assert refused.status_code == 403
    proposed = client.post(f"{ARTICLES}/proposals", json={"record": number.lower()},
                           headers=agent)
    assert proposed.status_code == 201, proposed.json
    body = proposed.json
    assert (body["title"], body["state"], body["source_record"]) == \
        ("Printer jams on A3", "draft", number)
    assert body["description"] == "East wing printer.\n\n## Resolution\n\nClean the rear sensor."
    again = client.post(f"{ARTICLES}/proposals", json={"record": number}, headers=agent)
    assert again.status_code == 409 and body["number"] in again.json["error"]["message"]
    missing = client.post(f"{ARTICLES}/proposals", json={"record": "TCK0000999"},
                          headers=agent)
    assert missing.status_code == 422


# -- the plugin among others -------------------------------------------------------------


def test_openapi_document_describes_the_knowledge_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/articles", "/api/v1/knowledge/search",
                 "/api/v1/articles/{number}/versions", "/api/v1/articles/{number}/votes",
                 "/api/v1/articles/proposals"):
        assert path in paths, path
    assert "post" in paths["/api/v1/articles/proposals"]


def test_tickets_keep_working_with_knowledge_disabled(app, client, agent):
    publish(client, agent)
    with app.app_context():
        plugin_admin.disable(app.extensions["itsm"], "knowledge")
    created = client.post("/api/v1/tickets", json={"title": "VPN tunnel drops"},
                          headers=agent)
    assert created.status_code == 201
    assert created.json["suggestions"] == []
    number = created.json["number"]
    client.post(f"/api/v1/tickets/{number}/transitions", json={
        "name": "resolve", "fields": {"resolution": "done"}}, headers=agent)
    assert client.get(f"/api/v1/tickets/{number}", headers=agent).json["state"] == "resolved"
    assert client.get(ARTICLES, headers=agent).status_code == 404
    assert client.get("/api/v1/knowledge/search", headers=agent).status_code == 404
    with app.app_context():
        plugin_admin.enable(app.extensions["itsm"], "knowledge")
    assert client.get(ARTICLES, headers=agent).status_code == 200


def test_purge_removes_the_articles_and_their_tables(app, client, agent, runner):
    number = publish(client, agent)["number"]
    client.post(f"{ARTICLES}/{number}/votes", json={"helpful": True}, headers=agent)
    result = runner.invoke(["plugins", "uninstall", "knowledge", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    with app.extensions["itsm"].engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
    assert not tables & {"kb_article", "kb_article_version", "kb_vote"}
    assert client.post("/api/v1/tickets", json={"title": "VPN"},
                       headers=agent).status_code == 201


def test_migration_creates_exactly_what_the_models_describe(app):
    tables = ["kb_article", "kb_article_version", "kb_vote"]
    assert schema_drift(app.extensions["itsm"].engine, tables) == []



def test_demo_data_publishes_articles_and_keeps_one_draft(app, runner, agent):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    found = client.get("/api/v1/knowledge/search", headers=agent).json["items"]
    assert {"Connect to the VPN from home", "Reset your password"} <= \
        {item["title"] for item in found}
    listed = client.get(ARTICLES, headers=agent).json["items"]
    assert sorted(item["state"] for item in listed).count("draft") == 1
