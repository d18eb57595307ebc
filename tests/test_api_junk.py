"""Every documented route of the built-in process plugins, fed junk: never a 5xx.

The routes come from the served OpenAPI document, so a new route is covered the day it
is documented. Path numbers point at real records where the route needs one.
"""

from __future__ import annotations

import re
import warnings

import pytest

import itsm.adapters.alertmanager as alertmanager_plugin
import itsm.adapters.email as email_plugin
import itsm.adapters.webhooks as webhooks_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.change as change_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.knowledge as knowledge_plugin
import itsm.plugins.problem as problem_plugin

JUNK_BODIES = [None, [], "text", 0, {"": None}, {"title": None}, {"title": "x" * 5000},
               {"rating": "five", "incident": 7, "helpful": "maybe", "record": {}},
               {"name": "resolve", "fields": []}, {"days": -1, "group": ["x"]}]
JUNK_QUERIES = [{"limit": "-1"}, {"days": "abc", "min": "x"}, {"q": "\x00"},
                {"within": "99999999999999999999"}, {"cursor": "%%%"}, {"a": "b"}]


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, problem_plugin, knowledge_plugin, catalog_plugin, change_plugin,
            email_plugin, webhooks_plugin, alertmanager_plugin]


def _numbers(client, admin) -> dict[str, str]:
    incident = client.post("/api/v1/incidents", json={"title": "Junk target"},
                           headers=admin).json["number"]
    problem = client.post("/api/v1/problems", json={"title": "Junk problem"},
                          headers=admin).json["number"]
    article = client.post("/api/v1/articles", json={"title": "Junk article",
                                                    "description": "body"},
                          headers=admin).json["number"]
    return {"incidents": incident, "problems": problem, "articles": article}


def test_no_documented_route_answers_5xx_to_junk(client, admin, make_token):
    requester = make_token("pat@dot.example", role="requester", agency="DOT")
    numbers = _numbers(client, admin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = client.get("/api/v1/openapi.json").json["paths"]
    # Two plugins' schemas with one name would be renamed silently (Foo1): refuse that.
    assert [str(w.message) for w in caught if "Multiple schemas" in str(w.message)] == []
    tried = 0
    for template, operations in paths.items():
        collection = template.split("/")[3]
        path = template.replace("{number}", numbers.get(collection, "INC0000001"))
        path = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            if method not in ("get", "post", "patch", "delete", "put"):
                continue
            for headers in (admin, requester):
                for body in JUNK_BODIES if method != "get" else [None]:
                    for query in JUNK_QUERIES:
                        response = client.open(path, method=method.upper(), json=body,
                                               query_string=query, headers=headers)
                        tried += 1
                        assert response.status_code < 500, (method, path, body, query,
                                                            response.get_data(as_text=True))
    assert tried > 500
