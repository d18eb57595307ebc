"""A tiny client that knows only the OpenAPI document, and finds it enough.

It reads ``/api/v1/openapi.json``, checks it is a valid OpenAPI 3 document, finds
operations by operationId, builds request bodies from the documented schemas, and checks
every answer against the schema documented for its status code.
"""

from __future__ import annotations

import io
import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema (draft 4): ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


class DocumentClient:
    """Calls the API by operationId, knowing nothing but the OpenAPI document."""

    def __init__(self, http, headers: dict[str, str]) -> None:
        self.http = http
        self.headers = headers
        response = http.get("/api/v1/openapi.json")
        assert response.status_code == 200
        self.document = response.get_json()
        self.components = json_schema(self.document.get("components", {}))
        self.operations: dict[str, tuple[str, str, dict]] = {}
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                if method in METHODS:
                    assert operation["operationId"] not in self.operations
                    self.operations[operation["operationId"]] = (path, method, operation)

    # -- schemas ---------------------------------------------------------------------

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            schema = self.document["components"]["schemas"][name]
        return schema

    def validate(self, instance: Any, schema: dict) -> None:
        """Validate against a documented schema, its $refs resolved in the document."""
        root = {"components": self.components, "allOf": [json_schema(schema)]}
        validator = jsonschema.Draft4Validator(
            root, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors)

    def example(self, schema: dict) -> Any:
        """A value that satisfies ``schema``, built from what the document says."""
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object":
            return {name: self.example(schema["properties"][name])
                    for name in schema.get("required", [])}
        if kind == "integer":
            return schema.get("minimum", 1)
        if kind == "number":
            return schema.get("minimum", 1.5)
        if kind == "boolean":
            return True
        if kind == "array":
            return [self.example(schema["items"])] * schema.get("minItems", 0)
        if schema.get("format") == "email":
            return "someone@example.org"
        text = "Written from the OpenAPI document only"
        return text[:schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")

    def body_schema(self, operation_id: str, media: str = "application/json") -> dict:
        _, _, operation = self.operations[operation_id]
        return operation["requestBody"]["content"][media]["schema"]

    # -- calls -----------------------------------------------------------------------

    def call(self, operation_id: str, *, path: dict[str, str] | None = None,
             query: dict[str, Any] | None = None, json: Any = None, data: Any = None,
             headers: dict[str, str] | None = None):
        """Call an operation and check the answer against the document; return it."""
        template, method, operation = self.operations[operation_id]
        url = template.format(**(path or {}))
        assert "{" not in url, f"path parameters missing for {template}"
        documented_params = {p["name"] for p in operation.get("parameters", [])}
        assert set(query or {}) <= documented_params
        assert set(headers or {}) <= documented_params
        kwargs: dict[str, Any] = {"query_string": query,
                                  "headers": {**self.headers, **(headers or {})}}
        if json is not None:
            self.validate(json, self.body_schema(operation_id))
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "multipart/form-data"
        response = self.http.open(url, method=method.upper(), **kwargs)
        self.check(operation_id, response)
        return response

    def check(self, operation_id: str, response) -> None:
        _, _, operation = self.operations[operation_id]
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{operation_id} answered {status}, which its document does not list: "
            + response.get_data(as_text=True)[:300])
        content = operation["responses"][status].get("content")
        if content and "application/json" in content:
            assert response.is_json
            self.validate(response.get_json(), content["application/json"]["schema"])


@pytest.fixture
def api(client, agent) -> DocumentClient:
    return DocumentClient(client, agent)


def open_from_document(api: DocumentClient) -> dict:
    body = api.example(api.body_schema("create_ticket"))
    response = api.call("create_ticket", json=body)
    assert response.status_code == 201
    return response.get_json()


# -- the document itself -------------------------------------------------------------------


def test_document_is_valid_openapi_3(api):
    assert api.document["openapi"].startswith("3.")
    validate_openapi(api.document)


def test_document_is_public(client):
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_every_api_route_of_the_app_is_in_the_document(app, api):
    itsm = app.extensions["itsm"]
    collections = list(itsm.types.by_collection)
    disabled = {bp for bp, owner in itsm.blueprint_owners.items()
                if not itsm.host.is_enabled(owner)}
    assert disabled, "the built-in process plugins are installed but off in this test"
    documented = {(path, method) for path, item in api.document["paths"].items()
                  for method in item if method in METHODS}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint.split(".")[0] in disabled:
            continue  # a disabled plugin's routes answer 404 and are left out
        template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        paths = ([template.replace("{collection}", c) for c in collections]
                 if "{collection}" in template else [template])
        for path in paths:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                if (path, method.lower()) not in documented:
                    missing.append(f"{method} {path}")
    assert missing == [], "not in the document: " + ", ".join(missing)


def test_document_names_each_schema_once_after_the_plugin_is_switched_off_and_on(app,
                                                                                client):
    from itsm.core import plugin_admin

    itsm = app.extensions["itsm"]
    with app.app_context():
        plugin_admin.disable(itsm, "tickets")
        plugin_admin.enable(itsm, "tickets")

    document = client.get("/api/v1/openapi.json").get_json()

    names = set(document["components"]["schemas"])
    assert {"TicketIn", "TicketOut", "TicketPage"} <= names
    assert sorted(n for n in names if n[-1].isdigit()) == []
    create = document["paths"]["/api/v1/tickets"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TicketIn"}


def test_every_operation_has_a_summary_and_a_documented_success(api):
    for operation_id, (_, _, operation) in api.operations.items():
        assert operation.get("summary"), operation_id
        assert any(code.startswith("2") for code in operation["responses"]), operation_id


def test_document_describes_what_a_transition_requires(api):
    """A client must learn from the document which transitions it may run and with what."""
    _, _, operation = api.operations["transitions_ticket"]
    page = api.resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    item = api.resolve(page["properties"]["items"]["items"])

    assert {"name", "allowed", "reasons", "required"} <= set(item.get("properties", {}))


# -- a client written from the document alone ----------------------------------------------


def test_ticket_opened_from_the_documented_in_schema_matches_the_out_schema(api):
    body = api.example(api.body_schema("create_ticket"))
    assert set(body) == {"title"}

    response = api.call("create_ticket", json=body)

    assert response.status_code == 201
    assert response.get_json()["title"] == body["title"]


def test_ticket_with_every_documented_field_can_be_opened(api, make_token):
    make_token("someone@example.org", role="agent")
    schema = api.resolve(api.body_schema("create_ticket"))
    body = {name: api.example(prop) for name, prop in schema["properties"].items()
            if not prop.get("nullable")}
    body["priority"] = 2

    response = api.call("create_ticket", json=body)

    assert response.status_code == 201


def test_read_update_transition_and_comment_by_the_document(api):
    ticket = open_from_document(api)
    where = {"number": ticket["number"]}

    read = api.call("read_ticket", path=where)
    assert read.status_code == 200
    etag = read.headers["ETag"]

    updated = api.call("update_ticket", path=where, json={"priority": 2},
                       headers={"If-Match": etag})
    assert updated.status_code == 200
    stale = api.call("update_ticket", path=where, json={"priority": 3},
                     headers={"If-Match": etag})
    assert stale.status_code == 412

    possible = api.call("transitions_ticket", path=where)
    assert possible.status_code == 200
    name = ticket["transitions"][0]
    moved = api.call("transition_ticket", path=where, json={"name": name})
    assert moved.status_code == 200
    assert moved.get_json()["state"] != ticket["state"]

    comment_body = api.example(api.body_schema("comment_ticket"))
    commented = api.call("comment_ticket", path=where, json=comment_body)
    assert commented.status_code == 201
    comments = api.call("comments_ticket", path=where)
    assert [c["body"] for c in comments.get_json()["items"]] == [comment_body["body"]]

    journal = api.call("journal_ticket", path=where)
    assert [e["kind"] for e in journal.get_json()["items"]] == [
        "created", "updated", "transitioned", "commented"]


def test_links_and_attachments_by_the_document(api):
    first = open_from_document(api)
    second = open_from_document(api)
    where = {"number": first["number"]}

    linked = api.call("link_ticket", path=where, json={"target": second["number"]})
    assert linked.status_code == 201
    again = api.call("link_ticket", path=where, json={"target": second["number"]})
    assert again.status_code == 409
    links = api.call("links_ticket", path={"number": second["number"]})
    assert links.get_json()["items"][0]["direction"] == "incoming"

    attached = api.call("attach_ticket", path=where,
                        data={"file": (io.BytesIO(b"hello"), "hello.txt")})
    assert attached.status_code == 201
    listed = api.call("attachments_ticket", path=where)
    assert [a["filename"] for a in listed.get_json()["items"]] == ["hello.txt"]


def test_list_pages_through_the_documented_cursor(api):
    opened = [open_from_document(api)["number"] for _ in range(3)]
    _, _, operation = api.operations["list_ticket"]
    params = {p["name"] for p in operation["parameters"]}
    assert {"limit", "cursor", "sort"} <= params

    seen, query = [], {"limit": 2, "sort": "number"}
    while True:
        page = api.call("list_ticket", query=query)
        assert page.status_code == 200
        seen += [t["number"] for t in page.get_json()["items"]]
        if page.get_json()["next"] is None:
            break
        query = {**query, "cursor": page.get_json()["next"]}

    assert seen == opened


def test_documented_sort_values_are_all_accepted(api):
    _, _, operation = api.operations["list_ticket"]
    sort = next(p for p in operation["parameters"] if p["name"] == "sort")

    for value in sort["schema"]["enum"]:
        assert api.call("list_ticket", query={"sort": value}).status_code == 200


def test_errors_match_the_documented_error_schema(api):
    ticket = open_from_document(api)

    missing = api.call("read_ticket", path={"number": "TCK9999999"})
    invalid = api.http.post("/api/v1/tickets", json={"priority": "high"}, headers=api.headers)
    api.check("create_ticket", invalid)
    refused = api.call("transition_ticket", path={"number": ticket["number"]},
                       json={"name": "close"})
    unknown = api.call("list_ticket", query={"sort": "colour"})

    assert missing.status_code == 404
    assert invalid.status_code == 422
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reasons"]
    assert unknown.status_code == 422


def test_unauthenticated_call_gets_the_documented_401(client):
    api = DocumentClient(client, {})

    response = api.call("list_ticket")

    assert response.status_code == 401


def test_me_matches_its_documented_schema(api):
    response = api.call("me")

    assert response.status_code == 200
    assert response.get_json()["email"] == "agent@example.org"


def test_document_schemas_are_strict_about_unknown_fields(api):
    """The In schema refuses unknown fields, as the API does."""
    schema = api.resolve(api.body_schema("create_ticket"))

    with pytest.raises(AssertionError):
        api.validate({"title": "x", "colour": "red"}, schema)
