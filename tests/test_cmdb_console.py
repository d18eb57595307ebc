"""The cmdb's console forms and its outbox events: staff add, change, retire and relate
configuration items from the console, admins define CI types in the admin area, and every
change of a CI writes its event (which webhooks subscribed to ``cmdb.*`` receive) in the
change's own transaction; a refused change writes none."""

from __future__ import annotations

import re
import shutil

import pytest
import sample_plugin
from sqlalchemy import select

import itsm.adapters.webhooks
import itsm.plugins.cmdb
from itsm.plugin import Event
from itsm.testing import make_plugin

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
AGENT = "ann@it.example.org"
VIEWER = "vic@it.example.org"  # an agent the install's permission rule keeps read-only


def read_only_viewer(actor, permission, record):
    """An install's own rule: one agent may read the CMDB but not change it."""
    if actor.email == VIEWER and permission == "cmdb.write":
        return False
    return None


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.cmdb, itsm.adapters.webhooks]


@pytest.fixture
def cast(app, make_token):
    pm = app.extensions["itsm"].host.pm
    pm.register(make_plugin("viewer", itsm_permission_check=read_only_viewer), "viewer")
    yield {"admin": make_token("admin@example.org", role="admin", password=PASSWORD),
            "agent": make_token(AGENT, role="agent", password=PASSWORD),
            "viewer": make_token(VIEWER, role="agent", password=PASSWORD),
            "requester": make_token("pat@dot.example.org", role="requester", agency="DOT",
                                    password=PASSWORD),
            "other": make_token("olga@doh.example.org", role="requester", agency="DOH",
                                password=PASSWORD)}
    pm.unregister(name="viewer")


@pytest.fixture
def desk(app, client, cast):
    """A support group with the agent in it, and a database CI to relate to."""
    response = client.post("/api/v1/groups", headers=cast["admin"],
                           json={"name": "Server team"})
    assert response.status_code == 201, response.json
    made = client.post("/api/v1/cmdb/cis", headers=cast["admin"], json={
        "name": "orders-db", "type": "database", "attributes": {"engine": "postgresql"}})
    assert made.status_code == 201
    return {"database": made.json["id"]}


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


def post(client, path, data=None):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token})


def events(app, prefix="cmdb."):
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        rows = session.scalars(select(Event).where(Event.name.startswith(prefix))
                               .order_by(Event.id))
        return [(e.name, e.payload) for e in rows]


SERVER = {"type": "server", "name": "web-01", "lifecycle": "planned",
          "owner": AGENT, "support_group": "Server team", "agency": "DOT",
          "used_by": "DOT", "location": "Room 2", "external_key": "web-01.example.org",
          "attr-hostname": "web-01.example.org", "attr-cpu_count": "8",
          "attr-memory_gb": "15.5", "attr-virtual": "true",
          "attr-environment": "production", "attr-groups": '["web"]'}


def test_a_bad_attribute_value_is_shown_at_its_field_and_the_form_keeps_what_was_typed(
        app, client, cast, desk):
    sign_in(client, AGENT)
    picker = client.get("/cmdb/cis/new")
    assert picker.status_code == 200 and "Show its fields" in picker.text
    assert 'name="attr-' not in picker.text  # the type's fields come once it is chosen
    form = client.get("/cmdb/cis/new?type=server")
    assert form.status_code == 200
    for label in ("CPUs", "Memory (GB)", "Operating system", "In use", "Planned",
                  "Server team", "Agency DOT (DOT)", f"<option value=\"{AGENT}\">"):
        assert label in form.text, label
    assert "Retired</option>" not in form.text  # retiring asks first, on the CI's page
    refused = post(client, "/cmdb/cis/new", {**SERVER, "attr-cpu_count": "lots",
                                             "attr-groups": "[web"})
    assert refused.status_code == 422
    text = refused.text
    assert "Not a valid integer" in text or "not a valid integer" in text.lower()
    assert 'id="f-attr-cpu_count" name="attr-cpu_count" value="lots"' in text
    assert "not valid json" in text.lower()
    assert 'value="web-01.example.org"' in text and 'value="Room 2"' in text
    assert '<option value="Server team" selected>' in text
    nonsense = post(client, "/cmdb/cis/new", {**SERVER, "attr-cpu_count": "lots"})
    assert nonsense.status_code == 422 and 'aria-invalid="true"' in nonsense.text
    unknown = post(client, "/cmdb/cis/new", {**SERVER, "owner": "Nobody Known"})
    assert unknown.status_code == 422 and "no user" in unknown.text.lower()
    assert client.get("/api/v1/cmdb/cis?q=web-01", headers=cast["admin"]).json["total"] == 0
    assert [name for name, _ in events(app)] == ["cmdb.ci.created"]  # orders-db only


def test_staff_add_change_and_retire_a_ci_and_each_change_writes_its_event(
        app, client, cast, desk):
    sign_in(client, AGENT)
    listed = client.get("/cmdb/cis")
    assert 'href="/cmdb/cis/new"' in listed.text and "CI types" not in listed.text
    made = post(client, "/cmdb/cis/new", SERVER)
    assert made.status_code == 302, made.text
    ci_id = int(made.headers["Location"].rsplit("/", 1)[1])
    page = client.get(made.headers["Location"]).text
    for shown in ("web-01 added", "Planned", "Server team", "Agency DOT", "Room 2",
                  "Memory (GB)", "15.5", f'href="/cmdb/cis/{ci_id}/edit"'):
        assert shown in page, shown
    stored = client.get(f"/api/v1/cmdb/cis/{ci_id}", headers=cast["admin"]).json
    assert stored["owner"] == AGENT and stored["attributes"]["cpu_count"] == 8
    assert stored["attributes"]["virtual"] is True and stored["attributes"]["groups"] == ["web"]
    assert [a["code"] for a in stored["used_by"]] == ["DOT"]

    edit = client.get(f"/cmdb/cis/{ci_id}/edit")
    assert edit.status_code == 200
    assert 'value="15.5"' in edit.text and '<option value="planned" selected>' in edit.text
    version = re.search(r'name="version" value="(\d+)"', edit.text).group(1)
    changed = post(client, f"/cmdb/cis/{ci_id}/edit", {
        **SERVER, "version": version, "location": "Room 3", "attr-memory_gb": "32"})
    assert changed.status_code == 302
    stale = post(client, f"/cmdb/cis/{ci_id}/edit", {
        **SERVER, "version": version, "location": "Room 9"})
    assert stale.status_code in (409, 412) and 'value="Room 9"' in stale.text
    assert "reload" in stale.text
    live = post(client, f"/cmdb/cis/{ci_id}/edit", {
        **SERVER, "version": str(int(version) + 1), "location": "Room 3",
        "attr-memory_gb": "32", "lifecycle": "in_use"})
    assert live.status_code == 302

    detail = client.get(f"/cmdb/cis/{ci_id}").text
    retire_form = detail[detail.index('id="retire"'):]
    assert 'type="checkbox" id="confirm" name="confirm" value="yes" required' in retire_form
    assert 'class="secondary danger">Retire</button>' in retire_form  # never the primary
    unconfirmed = post(client, f"/cmdb/cis/{ci_id}/retire")
    assert unconfirmed.status_code == 302
    assert client.get(f"/api/v1/cmdb/cis/{ci_id}",
                      headers=cast["admin"]).json["lifecycle"] == "in_use"
    retired = post(client, f"/cmdb/cis/{ci_id}/retire", {"confirm": "yes", "note": "gone"})
    assert "Configuration item retired" in client.get(retired.headers["Location"]).text

    mine = [(n, p) for n, p in events(app) if p["ci"]["id"] == ci_id]
    assert [n for n, _ in mine] == ["cmdb.ci.created", "cmdb.ci.updated",
                                    "cmdb.ci.lifecycle_changed", "cmdb.ci.retired"]
    created, updated, lifecycle, gone = (p for _, p in mine)
    assert created["ci"]["name"] == "web-01" and created["actor"] == AGENT
    assert updated["changes"]["location"] == ["Room 2", "Room 3"]
    assert updated["changes"]["attributes"][1]["memory_gb"] == 32
    assert lifecycle["changes"]["lifecycle"] == ["planned", "in_use"]
    assert gone["changes"]["lifecycle"] == ["in_use", "retired"] and gone["note"] == "gone"


def test_relations_are_added_by_name_and_ended_with_their_events(app, client, cast, desk):
    sign_in(client, AGENT)
    made = post(client, "/cmdb/cis/new", {"type": "application", "name": "orders-app"})
    assert made.status_code == 302
    app_id = int(made.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/cmdb/cis/{app_id}").text
    assert '<option value="orders-db">Database</option>' in page  # picked by name
    assert '<option value="depends_on">depends on</option>' in page
    unknown = post(client, f"/cmdb/cis/{app_id}/relations",
                   {"kind": "depends_on", "target": "orders-dbx"})
    assert unknown.status_code == 422
    assert "no configuration item" in unknown.text.lower() and 'value="orders-dbx"' in unknown.text
    client.post("/api/v1/cmdb/cis", headers=cast["admin"],
                json={"name": "billing-db", "type": "database"})
    assert '<option value="billing-db">' in client.get(f"/cmdb/cis/{app_id}").text
    narrowed = post(client, f"/cmdb/cis/{app_id}/relations",
                    {"kind": "depends_on", "target": "orders"})
    assert narrowed.status_code == 422  # the list now holds the names with "orders"
    assert '<option value="orders-db">' in narrowed.text
    assert '<option value="billing-db">' not in narrowed.text
    added = post(client, f"/cmdb/cis/{app_id}/relations",
                 {"kind": "depends_on", "target": "orders-db"})
    assert added.status_code == 302
    again = post(client, f"/cmdb/cis/{app_id}/relations",
                 {"kind": "depends_on", "target": "orders-db"})
    assert again.status_code == 422 and "already related" in again.text.lower()
    relations = client.get(f"/api/v1/cmdb/cis/{app_id}", headers=cast["admin"]).json
    [relation] = relations["relations"]
    assert relation["other"]["name"] == "orders-db" and relation["label"] == "depends on"
    ended = post(client, f"/cmdb/cis/{app_id}/relations/{relation['id']}/end")
    assert ended.status_code == 302
    assert client.get(f"/api/v1/cmdb/cis/{app_id}",
                      headers=cast["admin"]).json["relations"] == []
    named = [(n, p) for n, p in events(app, "cmdb.relation.")]
    assert [n for n, _ in named] == ["cmdb.relation.added", "cmdb.relation.removed"]
    assert named[0][1]["relation"]["target"]["name"] == "orders-db"
    assert named[0][1]["relation"]["label"] == "depends on"


def test_admins_define_ci_types_and_their_attributes_in_the_admin_area(app, client, cast):
    sign_in(client, "admin@example.org")
    listed = client.get("/admin/cmdb/types/")
    assert listed.status_code == 200 and "Network device" in listed.text
    assert 'href="/admin/cmdb/types/"' in listed.text  # in the admin sidebar
    form = {"key": "load_balancer", "label": "Load balancer",
            "a-0-name": "vip", "a-0-label": "Virtual IP", "a-0-type": "string",
            "a-0-required": "y", "a-0-choices": "",
            "a-1-name": "Mode!", "a-1-label": "Mode", "a-1-type": "choice",
            "a-1-choices": "active\npassive"}
    bad = post(client, "/admin/cmdb/types/new", form)
    assert bad.status_code == 422
    assert "lower-case letters" in bad.text.lower() and 'value="Mode!"' in bad.text
    assert 'value="Virtual IP"' in bad.text
    saved = post(client, "/admin/cmdb/types/new", {**form, "a-1-name": "mode"})
    assert saved.status_code == 302
    stored = client.get("/api/v1/cmdb/types", headers=cast["admin"]).json
    found = {t["key"]: t for t in stored["items"]} if isinstance(stored, dict) else {
        t["key"]: t for t in stored}
    assert found["load_balancer"]["attributes"][1]["choices"] == ["active", "passive"]
    assert "Load balancer" in client.get("/admin/audit").text
    agent = app.test_client()
    sign_in(agent, AGENT)
    ci_form = agent.get("/cmdb/cis/new?type=load_balancer").text
    assert "Virtual IP" in ci_form and '<option value="passive">Passive</option>' in ci_form
    missing = post(agent, "/cmdb/cis/new", {"type": "load_balancer", "name": "lb-1"})
    assert missing.status_code == 422 and "missing data" in missing.text.lower()


def test_who_may_not_change_the_cmdb_gets_403_from_every_form(app, client, cast, desk):
    ci = desk["database"]
    forms = [("GET", "/cmdb/cis/new"), ("POST", "/cmdb/cis/new"),
             ("GET", f"/cmdb/cis/{ci}/edit"), ("POST", f"/cmdb/cis/{ci}/edit"),
             ("POST", f"/cmdb/cis/{ci}/relations"), ("POST", f"/cmdb/cis/{ci}/retire"),
             ("GET", "/admin/cmdb/types/"), ("GET", "/admin/cmdb/types/server"),
             ("POST", "/admin/cmdb/types/new")]
    wrong = []
    for email, may_write in (("pat@dot.example.org", False), (VIEWER, False),
                             (AGENT, True)):
        browser = app.test_client()
        sign_in(browser, email)
        for method, path in forms:
            data = {"type": "server", "name": "x", "kind": "runs_on", "target": "orders-db",
                    "confirm": "yes", "key": "x", "label": "X"}
            if method == "POST":
                got = post(browser, path, data).status_code
            else:
                got = browser.get(path).status_code
            want = 403 if not may_write or path.startswith("/admin/") else None
            # a requester may not even read a CI outside their agency: 404 will do
            if want is not None and got != want and not (
                    email.startswith("pat") and f"/{ci}/" in path and got == 404):
                wrong.append(f"{email} {method} {path}: {got} not {want}")
            if want is None and got >= 400 and got != 422:
                wrong.append(f"{email} {method} {path}: {got}")
        listed = browser.get("/cmdb/cis").text
        if ('href="/cmdb/cis/new"' in listed) != may_write:
            wrong.append(f"{email}: the new CI link shown to the wrong people")
    assert wrong == [], "\n".join(wrong)
    names = [n for n, _ in events(app)]
    assert names.count("cmdb.ci.created") == 2  # orders-db, and the agent's "x"


def test_a_refused_change_writes_no_event_and_webhooks_receive_cmdb_events(
        app, client, cast, desk):
    hook = client.post("/api/v1/webhooks", headers=cast["admin"], json={
        "url": "https://hooks.example.org/cmdb", "events": ["cmdb.*"]})
    assert hook.status_code == 201, hook.json
    before = len(events(app))
    bad = client.patch(f"/api/v1/cmdb/cis/{desk['database']}", headers=cast["admin"],
                       json={"attributes": {"port": "many"}})
    assert bad.status_code == 422
    dup = client.post("/api/v1/cmdb/cis", headers=cast["admin"], json={
        "name": "again", "type": "server", "owner": "nobody@example.org"})
    assert dup.status_code == 422
    assert len(events(app)) == before
    client.patch(f"/api/v1/cmdb/cis/{desk['database']}", headers=cast["admin"],
                 json={"attributes": {"engine": "postgresql", "port": 5432}})
    itsm = app.extensions["itsm"]
    with app.app_context():
        itsm.outbox.fan_out()
    from itsm.core.models import Delivery

    with app.app_context(), itsm.Session() as session:
        rows = session.execute(select(Event.name, Delivery.channel).join(
            Delivery, Delivery.event_id == Event.id).where(Event.name.startswith("cmdb.")))
        delivered = sorted(set(rows.all()))
    assert ("cmdb.ci.updated", "webhook") in delivered
    assert ("cmdb.ci.created", "webhook") in delivered
    twin = client.post("/api/v1/cmdb/cis", headers=cast["admin"],
                       json={"name": "orders-db copy", "type": "database"}).json["id"]
    merged = client.post(f"/api/v1/cmdb/cis/{twin}/merge", headers=cast["admin"],
                         json={"into": desk["database"]})
    assert merged.status_code == 200, merged.json
    name, payload = events(app)[-1]
    assert name == "cmdb.ci.merged" and payload["ci"]["id"] == twin
    assert payload["changes"]["lifecycle"] == ["in_use", "retired"]


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900},
                                      {"width": 390, "height": 844}])
def test_the_ci_form_in_a_browser_with_axe(client, live_server, browser, cast, desk,
                                           viewport, tmp_path):
    from accessibility import assert_no_serious_violations, axe_context
    from browsing import expect

    context = axe_context(browser, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/cmdb/cis/new")
    page.get_by_label("E-mail address").fill(AGENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/cmdb/cis/new")
    page.get_by_label("Type (required)").select_option(label="Server")
    page.get_by_role("button", name="Show its fields").click()
    expect(page.get_by_label("CPUs")).to_be_visible()
    page.get_by_label("Name (required)").fill("web-02")
    page.get_by_label("CPUs").fill("lots")
    page.get_by_label("Support group").select_option(label="Server team")
    page.get_by_role("button", name="Add configuration item").click()
    expect(page.get_by_text("Not a valid integer")).to_be_visible()
    assert page.get_by_label("CPUs").input_value() == "lots"
    width = viewport["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    assert_no_serious_violations(page)
    shot = tmp_path / f"cmdb-form-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, f"/tmp/itsm-cmdb-form-{width}.png")
    page.get_by_label("CPUs").fill("4")
    page.get_by_role("button", name="Add configuration item").click()
    expect(page.get_by_role("heading", level=1, name="web-02")).to_be_visible()
    assert_no_serious_violations(page)
    page.screenshot(path=str(tmp_path / "detail.png"), full_page=True)
    shutil.copyfile(tmp_path / "detail.png", f"/tmp/itsm-cmdb-detail-form-{width}.png")
    context.close()


@pytest.mark.parametrize("width", (1280, 390))
def test_the_ci_type_admin_pages_in_a_browser_with_axe(live_server, browser, cast, width,
                                                       tmp_path):
    from accessibility import assert_no_serious_violations, axe_context
    from browsing import expect

    context = axe_context(browser, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("admin@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    for name, path in (("types", "/admin/cmdb/types/"), ("server", "/admin/cmdb/types/server")):
        answer = page.goto(live_server + path)
        assert answer.status == 200
        assert_no_serious_violations(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        page.screenshot(path=str(tmp_path / "shot.png"), full_page=True)
        shutil.copyfile(tmp_path / "shot.png", f"/tmp/itsm-cmdb-admin-{name}-{width}.png")
    page.get_by_role("button", name="Add an attribute").click()
    page.get_by_label("Name").last.fill("Rack!")
    page.get_by_role("button", name="Save CI type").click()
    expect(page.get_by_text("The CI type was not saved")).to_be_visible()
    assert_no_serious_violations(page)
    context.close()
