"""The cmdb's console pages: the CI list, a CI's page (now and as it was), and the
dependency picture of 200 CIs; without script, and in Chromium at 1280 and 390 px with
no sideways scroll (the picture scrolls in its own box)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import sample_plugin

import itsm.plugins.cmdb

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.cmdb]


@pytest.fixture
def admin(make_token):
    return make_token("admin@example.org", role="admin", password=PASSWORD)


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT", password=PASSWORD)


def big_graph() -> dict:
    """About 200 CIs under one core switch: access switches, servers, databases,
    applications and ten business services used by DOT."""
    items = [{"key": "core", "type": "network_device", "name": "core-switch",
              "attributes": {"role": "switch"}}]
    relations = []
    for a in range(4):
        items.append({"key": f"acc{a}", "type": "network_device", "name": f"access-{a}"})
        relations.append({"source": f"acc{a}", "kind": "connected_to", "target": "core"})
    for h in range(100):
        items.append({"key": f"h{h}", "type": "server", "name": f"srv-{h:03d}.example.org"})
        relations.append({"source": f"h{h}", "kind": "connected_to", "target": f"acc{h % 4}"})
    for d in range(20):
        items.append({"key": f"d{d}", "type": "database", "name": f"db-{d:02d}"})
        relations.append({"source": f"d{d}", "kind": "runs_on", "target": f"h{80 + d}"})
    for s in range(10):
        items.append({"key": f"s{s}", "type": "business_service", "name": f"Service {s}",
                      "used_by": ["DOT"]})
    for p in range(64):
        items.append({"key": f"a{p}", "type": "application", "name": f"application-{p:02d}"})
        relations += [{"source": f"a{p}", "kind": "runs_on", "target": f"h{p}"},
                      {"source": f"a{p}", "kind": "depends_on", "target": f"d{p % 20}"},
                      {"source": f"a{p}", "kind": "part_of", "target": f"s{p % 10}"}]
    return {"items": items, "relations": relations}


@pytest.fixture
def loaded(client, admin, pat):
    report = client.post("/api/v1/cmdb/import", headers=admin, json={
        "format": "json", "content": json.dumps(big_graph())}).json
    assert report["created"] == 199, report
    cis = {}
    for key in ("core", "a3"):
        found = client.get("/api/v1/cmdb/cis", headers=admin,
                           query_string={"q": key == "core" and "core-switch"
                                         or "application-03"}).json["items"][0]
        cis[key] = found["id"]
    return cis


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


def post(client, path, data=None):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token})


def test_list_detail_and_picture_without_script(client, loaded):
    sign_in(client, "admin@example.org")
    listed = client.get("/cmdb/cis?q=srv-00&type=server")
    assert listed.status_code == 200 and "srv-001.example.org" in listed.text
    assert re.search(r"<script(?![^>]*\bsrc=)", listed.text) is None  # no inline script
    detail = client.get(f"/cmdb/cis/{loaded['a3']}")
    assert detail.status_code == 200
    assert "Service 3" in detail.text and "application-03 → Service 3" in detail.text
    picture = client.get(f"/cmdb/cis/{loaded['core']}/graph")
    assert picture.status_code == 200
    assert picture.text.count('<g class="node') == 199
    assert "199 configuration items" in picture.text
    assert re.search(r"<script(?![^>]*\bsrc=)", picture.text) is None
    bad = client.get(f"/cmdb/cis/{loaded['a3']}?as_of=last+week")
    assert bad.status_code == 400 and "is not a date" in bad.text
    refused = post(client, f"/cmdb/cis/{loaded['a3']}/retire")
    assert refused.status_code == 302
    assert "Tick the box" in client.get(refused.headers["Location"]).text
    done = post(client, f"/cmdb/cis/{loaded['a3']}/retire", {"confirm": "yes"})
    assert "Retired" in client.get(done.headers["Location"]).text
    related = post(client, f"/cmdb/cis/{loaded['a3']}/relations",
                   {"kind": "hosted_by", "target": "nonsense"})
    assert related.status_code == 422 and 'value="nonsense"' in related.text
    assert "no configuration item &#39;nonsense&#39;" in related.text.lower()


def test_a_requester_sees_only_their_agencys_cis_on_the_pages(client, loaded):
    sign_in(client, "pat@dot.example.org")
    assert client.get(f"/cmdb/cis/{loaded['core']}").status_code == 404
    listed = client.get("/cmdb/cis").text
    assert "Service 0" in listed and "srv-001" not in listed


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900},
                                      {"width": 390, "height": 844}])
def test_pages_in_a_browser_at_desktop_and_phone_width(client, live_server, browser, loaded,
                                                       viewport, tmp_path):
    from browsing import expect

    page = browser.new_page(viewport=viewport)
    messages = []
    page.on("console", lambda m: messages.append(m.text))
    page.set_default_timeout(15_000)
    page.goto(live_server + "/cmdb/cis")
    page.get_by_label("E-mail address").fill("admin@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    width = viewport["width"]
    for name, path in (("list", "/cmdb/cis"), ("detail", f"/cmdb/cis/{loaded['a3']}"),
                       ("graph", f"/cmdb/cis/{loaded['core']}/graph")):
        page.goto(live_server + path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width + 1, f"{name} scrolls sideways at {width}px"
        shot = tmp_path / f"cmdb-{name}-{width}.png"
        page.screenshot(path=str(shot), full_page=name != "graph")
        shutil.copyfile(shot, f"/tmp/itsm-cmdb-{name}-{width}.png")
    page.goto(live_server + f"/cmdb/cis/{loaded['core']}/graph")
    expect(page.locator("svg.cmdb-graph")).to_be_visible()
    page.locator("svg.cmdb-graph a").first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert not [m for m in messages if "Content Security Policy" in m]
