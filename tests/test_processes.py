"""Incident, problem and knowledge together, and each of them switched off alone.

They never import each other: a new incident gets the published article and the known
error through the core's suggestions hook, and a problem collects incidents by links.
"""

from __future__ import annotations

import pytest

import itsm.plugins.incident as incident_plugin
import itsm.plugins.knowledge as knowledge_plugin
import itsm.plugins.problem as problem_plugin
from itsm.core import plugin_admin

PLUGINS = {"incident": "/api/v1/incidents", "problem": "/api/v1/problems",
           "knowledge": "/api/v1/articles"}


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, problem_plugin, knowledge_plugin]


def _post(client, url, headers, status=201, **body):
    response = client.post(url, json=body, headers=headers)
    assert response.status_code == status, response.json
    return response.json


def _move(client, url, number, name, headers, **fields):
    return _post(client, f"{url}/{number}/transitions", headers, 200, name=name,
                 fields=fields)


def test_a_new_incident_gets_the_article_and_the_known_error(client, admin, make_token):
    pat = make_token("pat@dot.example", role="requester", agency="DOT")
    article = _post(client, "/api/v1/articles", admin, title="Fix a VPN tunnel that drops",
                    description="Reinstall the **VPN client** profile, then reconnect.")
    _move(client, "/api/v1/articles", article["number"], "submit", admin)
    _move(client, "/api/v1/articles", article["number"], "publish", admin)
    draft = _post(client, "/api/v1/articles", admin, title="VPN drops: internal notes",
                  description="VPN tunnel drops, draft only")
    problem = _post(client, "/api/v1/problems", admin, title="VPN tunnel drops hourly",
                    description="Concentrator rekeys every hour")
    _move(client, "/api/v1/problems", problem["number"], "record_known_error", admin,
          root_cause="Rekey timer", workaround="Reconnect the VPN after the drop")

    staff_view = _post(client, "/api/v1/incidents", admin, title="VPN tunnel drops again",
                       category="network", subcategory="vpn")
    kinds = {s["number"]: s["kind"] for s in staff_view["suggestions"]}
    assert kinds[article["number"]] == "Knowledge article"
    assert kinds[problem["number"]] == "Known error"
    assert draft["number"] not in kinds  # drafts are never suggested

    # The requester gets the published article; internal known errors stay internal.
    own = _post(client, "/api/v1/incidents", pat, title="My VPN tunnel drops")
    assert [s["number"] for s in own["suggestions"]] == [article["number"]]

    # The problem collects both incidents; resolving it tells the open ones.
    for number in (staff_view["number"], own["number"]):
        _post(client, f"/api/v1/problems/{problem['number']}/incidents", admin,
              incident=number)
    _move(client, "/api/v1/problems", problem["number"], "resolve", admin,
          resolution="Rekey timer raised to 24 h")
    comments = client.get(f"/api/v1/incidents/{own['number']}/comments",
                          headers=pat).json["items"]
    assert any(problem["number"] in c["body"] for c in comments)


@pytest.mark.parametrize("off", sorted(PLUGINS))
def test_each_plugin_switched_off_alone_leaves_the_others_working(app, client, admin, off):
    itsm = app.extensions["itsm"]
    with app.app_context():
        plugin_admin.disable(itsm, off)
    assert client.get(PLUGINS[off], headers=admin).status_code == 404
    for name, url in PLUGINS.items():
        if name == off:
            continue
        body = {"title": f"Still working without {off}"}
        if name == "incident":
            body.update(category="network", subcategory="vpn")
        created = client.post(url, json=body, headers=admin)
        assert created.status_code == 201, (name, created.json)
        listed = client.get(url, headers=admin)
        assert listed.status_code == 200 and listed.json["items"]
    spec = client.get("/api/v1/openapi.json").json
    assert not any(path.startswith(PLUGINS[off]) for path in spec["paths"])
    assert client.get("/home").status_code in (200, 302)
    with app.app_context():
        plugin_admin.enable(itsm, off)
    assert client.get(PLUGINS[off], headers=admin).status_code == 200


def test_every_route_of_the_three_plugins_is_in_the_openapi_document(app, client):
    import re

    itsm = app.extensions["itsm"]
    documented = {(path, method.upper()) for path, item in
                  client.get("/api/v1/openapi.json").json["paths"].items() for method in item}
    routes = [(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method)
              for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1")
              and itsm.blueprint_owners.get(rule.endpoint.split(".")[0]) in PLUGINS
              for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}]
    assert len(routes) >= 12
    assert [r for r in routes if r not in documented] == []
