"""The OpenAPI document is the contract, with every built-in plugin enabled: every route
is in it with each of its methods, a method it does not list answers 405 with the true
``Allow``, every write has a request schema and every answer one that allows nothing
undeclared; what an outside tester found answered otherwise stays fixed.
"""

from __future__ import annotations

import re

import every_plugin
import pytest

HTTP = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def bare(client, make_token):
    """No demo data: an admin's headers and the document (routing needs no records)."""
    admin = make_token("contract-admin@example.org", role="admin")
    return {"admin": admin, "document": client.get("/api/v1/openapi.json").get_json()}


@pytest.fixture
def demo(app, client, runner, make_token):
    """The demo install, an admin's and a requester's headers and the document."""
    every_plugin.load_demo(runner)
    admin = make_token("contract-admin@example.org", role="admin")
    requester = make_token("pat@dot.demo.itsm", role="requester", agency="DOT")
    document = client.get("/api/v1/openapi.json").get_json()
    return {"admin": admin, "requester": requester, "document": document}


def _template(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_rule_is_in_the_document_with_each_method(app, bare):
    itsm = app.extensions["itsm"]
    documented = {(path, method.upper()) for path, item in bare["document"]["paths"].items()
                  for method in item if method.upper() in HTTP}
    missing = []
    for rule in app.url_map.iter_rules():
        owner = itsm.blueprint_owners.get(rule.endpoint.split(".")[0])
        if not rule.rule.startswith("/api/v1") or (owner and not itsm.host.is_enabled(owner)):
            continue
        template = _template(rule.rule)
        paths = ([template.replace("{collection}", c) for c in itsm.types.by_collection]
                 if "{collection}" in template else [template])
        missing += [f"{method} {path}" for path in paths
                    for method in sorted((rule.methods or set()) & set(HTTP))
                    if (path, method) not in documented]
    assert missing == [], "not in the document: " + ", ".join(missing)


def test_no_two_paths_of_the_document_are_the_same_template(bare):
    # /changes/{name} beside /changes/{number} is one path to OpenAPI, which forbids it.
    shapes: dict[str, list[str]] = {}
    for path in bare["document"]["paths"]:
        shapes.setdefault(re.sub(r"\{[^}]+\}", "{}", path), []).append(path)
    assert [paths for paths in shapes.values() if len(paths) > 1] == []
    assert "/api/v1/changes/templates" in bare["document"]["paths"]


def _sample_path(path: str, item: dict, known: dict) -> str:
    values = dict(known.get(path, {}))
    for operation in item.values():
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path" or parameter["name"] in values:
                continue
            schema = parameter["schema"]
            values[parameter["name"]] = (schema["enum"][0] if "enum" in schema else 1
                                         if schema.get("type") == "integer" else "AB1")
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", str(value))
    return path


def test_a_method_the_document_does_not_list_answers_405_with_the_documented_allow(
        client, demo):
    # With the demo records in the paths, a route's own checks cannot answer first.
    admin, document = demo["admin"], demo["document"]
    known = every_plugin.path_values(client, admin, document)
    wrong = []
    for template, item in document["paths"].items():
        listed = {m.upper() for m in item if m.upper() in HTTP}
        allow = listed | {"OPTIONS"} | ({"HEAD"} if "GET" in listed else set())
        path = _sample_path(template, item, known)
        for method in sorted(set(HTTP) - listed):
            answer = client.open(path, method=method, headers=admin)
            got = {m.strip() for m in answer.headers.get("Allow", "").split(",") if m.strip()}
            if answer.status_code != 405 or got != allow:
                wrong.append(f"{method} {path}: {answer.status_code} Allow {sorted(got)}")
        options = client.options(path, headers=admin)
        got = {m.strip() for m in options.headers.get("Allow", "").split(",") if m.strip()}
        if got != allow:
            wrong.append(f"OPTIONS {path}: Allow {sorted(got)}, documented {sorted(allow)}")
    assert wrong == []


def test_a_path_nothing_serves_is_404_for_every_method(client, bare):
    for method in HTTP:
        answer = client.open("/api/v1/webhooks/abc1", method=method, headers=bare["admin"])
        assert answer.status_code == 404, (method, answer.status_code)
    assert client.post("/api/v1/no-such-thing", headers=bare["admin"], json={}) \
        .status_code == 404
    answer = client.post("/api/v1/me", headers=bare["admin"], json={})
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_every_write_with_a_body_has_a_request_schema_and_every_answer_a_schema(bare):
    document = bare["document"]
    # Actions without a body: they take no input but the record in the path.
    bodyless = {("post", "/api/v1/billing/statements/{statement_id}/{step}"),
                ("post", "/api/v1/changes/{number}/freeze-exception"),
                ("post", "/api/v1/incidents/{number}/review"),
                ("post", "/api/v1/mous/{number}/proposals/{proposal_id}/adopt"),
                ("post", "/api/v1/mous/{number}/versions/{version}/{decision}"),
                ("post", "/api/v1/transitions/{number}/acceptance")}
    gaps = []
    for method, path, operation in every_plugin.operations(document):
        if method in every_plugin.WRITES and "requestBody" not in operation \
                and (method, path) not in bodyless:
            gaps.append(f"no request schema: {method.upper()} {path}")
        for status, response in operation["responses"].items():
            if status.startswith("2") and status != "204" and not response.get("content"):
                gaps.append(f"no schema for {status}: {method.upper()} {path}")
    assert gaps == []


def test_an_offerings_form_is_typed_in_the_document(bare):
    schemas = bare["document"]["components"]["schemas"]
    assert schemas["OfferingIn"]["properties"]["form"]["items"] == {
        "$ref": "#/components/schemas/FieldDefinition"}
    assert schemas["FieldDefinition"]["additionalProperties"] is False
    assert schemas["OfferingOut"]["properties"]["form"]["items"] == {
        "$ref": "#/components/schemas/FieldDefinition"}


def _declared(document: dict, name: str) -> set[str]:
    return set(document["components"]["schemas"][name]["properties"])


def test_a_catalog_request_answers_the_documented_record(client, demo):
    document, headers = demo["document"], demo["requester"]
    operation = document["paths"]["/api/v1/catalog/offerings/{offering_id}/requests"]["post"]
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RequestOut"}
    service = client.get("/api/v1/catalog/services", headers=headers).get_json()["items"][0]
    offering = client.get(f"/api/v1/catalog/services/{service['slug']}",
                          headers=headers).get_json()["offerings"][0]
    samples = {"integer": 1, "date": "2027-01-04", "email": "pat@dot.demo.itsm",
               "checkbox": True}
    answers = {f["name"]: samples.get(f["type"], f["choices"][0] if f["choices"] else "yes")
               for f in offering["form"] if f["required"]}
    answers.update({f["name"]: [f["choices"][0]] for f in offering["form"]
                    if f["required"] and f["type"] == "multichoice"})
    answer = client.post(f"/api/v1/catalog/offerings/{offering['id']}/requests",
                         headers=headers, json={"answers": answers})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert {"number", "state", "version", "answers"} <= set(body)
    assert set(body) <= _declared(document, "RequestOut")


def test_a_transition_overview_declares_every_key_it_answers(client, demo):
    document, admin = demo["document"], demo["admin"]
    number = client.get("/api/v1/transitions", headers=admin).get_json()["items"][0]["number"]
    body = client.get(f"/api/v1/transitions/{number}/overview", headers=admin).get_json()
    assert {"checklist", "support_until", "catalog_enabled", "timeline"} <= set(body)
    assert set(body) <= _declared(document, "Overview")
    assert set(body["checklist"][0]) <= _declared(document, "DeliverableOut")


def test_booleans_are_true_or_false_only(client, demo):
    admin = demo["admin"]
    number = client.get("/api/v1/incidents", headers=admin).get_json()["items"][0]["number"]
    for value in (0, 1, "yes", "true", "on", None):
        answer = client.post(f"/api/v1/incidents/{number}/comments", headers=admin,
                             json={"body": "a note", "public": value})
        assert answer.status_code == 422, (value, answer.status_code)
        assert "public" in answer.get_json()["error"]["fields"]
    answer = client.post(f"/api/v1/incidents/{number}/comments", headers=admin,
                         json={"body": "a note", "public": False})
    assert answer.status_code == 201 and answer.get_json()["public"] is False
    answer = client.patch(f"/api/v1/incidents/{number}", headers=admin, json={"major": 1})
    assert answer.status_code == 422 and "major" in answer.get_json()["error"]["fields"]


def test_an_empty_updated_since_is_refused(client, bare):
    answer = client.get("/api/v1/incidents?updated_since=", headers=bare["admin"])
    assert answer.status_code == 422
    assert "updated_since" in answer.get_json()["error"]["fields"]


def test_an_offering_changed_with_a_short_task_keeps_whole_tasks(client, demo):
    # A PATCH loaded the tasks partially too: {"title": "0"} was stored without its group
    # (500 on the spot) and {} without its title (every later read broke the document).
    admin = demo["admin"]
    slug = client.get("/api/v1/catalog/services", headers=admin).get_json()["items"][0]["slug"]
    offering = client.get(f"/api/v1/catalog/services/{slug}",
                          headers=admin).get_json()["offerings"][0]
    path = f"/api/v1/catalog/offerings/{offering['id']}"
    answer = client.patch(path, headers=admin, json={"tasks": [{"title": "Call back"}]})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["tasks"] == [{"title": "Call back", "group": "",
                                           "instructions": ""}]
    answer = client.patch(path, headers=admin, json={"tasks": [{}]})
    assert answer.status_code == 422
    assert client.get(path, headers=admin).get_json()["tasks"][0]["title"] == "Call back"


def test_a_lone_surrogate_is_refused_not_a_500(client, bare):
    answer = client.post("/api/v1/incidents", headers=bare["admin"],
                         data='{"title": "\\ud800"}', content_type="application/json")
    assert answer.status_code == 422


def test_a_category_too_large_for_an_id_is_refused_not_a_500(client, bare):
    answer = client.get("/api/v1/catalog/services?category=32589158477190044731",
                        headers=bare["admin"])
    assert answer.status_code == 422 and "category" in answer.get_json()["error"]["fields"]


def test_the_change_calendar_declares_every_key_of_its_rows(client, demo):
    document, admin = demo["document"], demo["admin"]
    body = client.get("/api/v1/changes/calendar?from=2000-01-01&to=2000-12-31",
                      headers=admin).get_json()
    assert set(body) == {"from", "to", "changes", "freeze_windows"}
    rows = client.get("/api/v1/changes/calendar", headers=admin).get_json()["changes"]
    assert rows, "the demo plans changes in the coming month"
    assert set(rows[0]) <= _declared(document, "CalendarChange")
