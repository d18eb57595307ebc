"""The OpenAPI 3 document, generated from the same marshmallow schemas that validate input.

It covers the generic routes of every enabled record type and every plugin route marked
with :func:`itsm.core.api.document`, so a client can be written from it alone.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from itsm import __version__
from itsm.core import schemas as s
from itsm.core.numbering import NUMBER_PATTERN
from itsm.core.query import FILTER_ARGS, MAX_WITHIN, SORTS
from itsm.core.sortkeys import sort_types

ERRORS = {"400": "bad request", "401": "authentication required", "403": "forbidden",
          "404": "not found", "409": "conflict (refused transition, duplicate)",
          "412": "stale write: If-Match does not match", "413": "body too large",
          "415": "not JSON", "422": "invalid input, with field messages"}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"description": ERRORS[code],
                   "content": {"application/json": {"schema": "ErrorOut"}}} for code in codes}


def _json(schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(schema, description: str = "success") -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _list_of(name: str, item) -> dict:
    return {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": item}}, "title": name}


NUMBER = {"name": "number", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": NUMBER_PATTERN, "maxLength": 32,
                     "example": "INC0000042"}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "schema": {"type": "string"}, "description": "ETag of the version you read"}
# PATCH: what a write without If-Match means.
IF_MATCH_PATCH = {**IF_MATCH, "description": (
    "ETag of the version you read: the change is refused with 412 when the record changed "
    "since. Without it the fields you send are set on the record as it is then (a write "
    "that loses a race with another writer is applied again), never 412.")}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": "^[!-~]([ -~]*[!-~])?$"},
    "description": "a unique key (e.g. a UUID) that makes the create safe to retry, as in "
                   "the IETF draft \"The Idempotency-Key HTTP Header Field\": a retry with "
                   "the same key and body gets the first answer (and no second record); the "
                   "same key with another body is 422; while the first request is still "
                   "being processed, 409. Keys are kept api.idempotency_hours (24)."}
SUGGEST = {"name": "suggest", "in": "query", "required": False,
           "schema": {"type": "boolean", "default": True},
           "description": "false: answer without looking up suggestions (integrations that "
                          "never show them save the two searches)"}
LIST_PARAMS = [
    {"name": "state", "in": "query", "schema": {"type": "string"},
     "description": "state, or states separated by commas"},
    {"name": "assignee", "in": "query", "schema": {"type": "string"},
     "description": "e-mail, `me` or `none`"},
    {"name": "requester", "in": "query", "schema": {"type": "string"},
     "description": "e-mail or `me`"},
    {"name": "group", "in": "query", "schema": {"type": "string"}},
    {"name": "agency", "in": "query", "schema": {"type": "string"}},
    {"name": "priority", "in": "query", "schema": {"type": "string"},
     "description": "priority, or priorities separated by commas"},
    {"name": "updated_since", "in": "query", "schema": {"type": "string",
                                                         "format": "date-time"}},
    {"name": "q", "in": "query", "schema": {"type": "string"},
     "description": "text in title or description, or a record number"},
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": [
        p + k for k in SORTS for p in ("", "-")]},
     "description": "a column to sort by, `-` first for descending; ties go by id"},
    {"name": "cursor", "in": "query", "schema": {"type": "string"},
     "description": "`next` of the previous page"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "category", "in": "query", "schema": {"type": "string"},
     "description": "the record type's category (422 for a type without one)"},
    {"name": "service", "in": "query", "schema": {"type": "string"},
     "description": "the record type's service (422 for a type without one)"},
    {"name": "breaching_within", "in": "query",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WITHIN},
     "description": "minutes: records whose next SLA target falls due within them, "
                    "breached ones included (0: breached only)"},
    {"name": "created_since", "in": "query", "schema": {"type": "string",
                                                         "format": "date-time"}},
    {"name": "created_before", "in": "query", "schema": {"type": "string",
                                                          "format": "date-time"}},
    {"name": "updated_before", "in": "query", "schema": {"type": "string",
                                                          "format": "date-time"}},
    {"name": "updated_by_customer", "in": "query", "schema": {"type": "boolean"},
     "description": "true: records the requester replied to since the assignee looked"},
]
assert {p["name"] for p in LIST_PARAMS} == set(FILTER_ARGS)


def list_params(rt) -> list[dict]:
    """:data:`LIST_PARAMS` with the record type's own sort keys in ``sort``'s enum."""
    keys = sort_types(rt)
    return [{**p, "schema": {**p["schema"], "enum": [d + k for k in keys for d in ("", "-")]}}
            if p["name"] == "sort" else p for p in LIST_PARAMS]


def _record_paths(spec: APISpec, rt, schemas: dict) -> None:
    tag = rt.title
    base = f"/api/v1/{rt.collection}"
    stem = schemas["out"].__name__[:-3]
    spec.components.schema(f"{stem}In", schema=schemas["in"])
    spec.components.schema(f"{stem}Out", schema=schemas["out"])
    spec.components.schema(f"{stem}Page", schema=schemas["page"])
    created = f"{stem}Out"
    create_params = [IDEMPOTENCY_KEY]
    if rt.suggest:  # the create response also carries what other plugins suggest
        created = f"{stem}Created"
        spec.components.schema(created, schema=schemas["created"])
        create_params.append(SUGGEST)
    spec.path(path=base, operations={
        "get": {"tags": [tag], "summary": f"list {rt.title.lower()} records",
                "operationId": f"list_{rt.name}", "parameters": list_params(rt),
                "responses": {"200": _ok(f"{stem}Page"), **_errors("401", "403", "422")}},
        "post": {"tags": [tag], "summary": f"open a {rt.title.lower()}",
                 "operationId": f"create_{rt.name}", "parameters": create_params,
                 "requestBody": {
                     "required": True, **_json(f"{stem}In")},
                 "responses": {"201": _ok(created, "created"),
                               **_errors("400", "401", "403", "409", "413", "415", "422")}}})
    spec.path(path=base + "/{number}", operations={
        "get": {"tags": [tag], "summary": f"read one {rt.title.lower()}",
                "operationId": f"read_{rt.name}", "parameters": [NUMBER],
                "responses": {"200": _ok(f"{stem}Out"), **_errors("401", "404")}},
        "patch": {"tags": [tag], "summary": f"change fields of a {rt.title.lower()}",
                  "operationId": f"update_{rt.name}", "parameters": [NUMBER, IF_MATCH_PATCH],
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": {"type": "object",
                                 "description": f"any fields of {stem}In"}}}},
                  "responses": {"200": _ok(f"{stem}Out"),
                                **_errors("400", "401", "403", "404", "409", "412", "415",
                                          "422")}}})
    spec.path(path=base + "/{number}/transitions", operations={
        "get": {"tags": [tag], "summary": "transitions possible now, with refusal reasons",
                "operationId": f"transitions_{rt.name}", "parameters": [NUMBER],
                "responses": {"200": _ok(_list_of("Transitions", "TransitionOut")),
                              **_errors("401", "404")}},
        "post": {"tags": [tag], "summary": "move the record through its workflow",
                 "operationId": f"transition_{rt.name}", "parameters": [NUMBER, IF_MATCH],
                 "requestBody": {"required": True, **_json("TransitionIn")},
                 "responses": {"200": _ok(f"{stem}Out"),
                               **_errors("400", "401", "403", "404", "409", "412", "415",
                                         "422")}}})
    spec.path(path=base + "/{number}/comments", operations={
        "get": {"tags": [tag], "summary": "comments and work notes",
                "operationId": f"comments_{rt.name}", "parameters": [NUMBER],
                "responses": {"200": _ok(_list_of("Comments", "CommentOut")),
                              **_errors("401", "404")}},
        "post": {"tags": [tag], "summary": "add a comment or a work note",
                 "operationId": f"comment_{rt.name}", "parameters": [NUMBER],
                 "requestBody": {"required": True, **_json("CommentIn")},
                 "responses": {"201": _ok("CommentOut", "created"),
                               **_errors("400", "401", "403", "404", "415", "422")}}})
    spec.path(path=base + "/{number}/links", operations={
        "get": {"tags": [tag], "summary": "links to and from other records",
                "operationId": f"links_{rt.name}", "parameters": [NUMBER],
                "responses": {"200": _ok(_list_of("Links", "LinkOut")),
                              **_errors("401", "404")}},
        "post": {"tags": [tag], "summary": "link to another record",
                 "operationId": f"link_{rt.name}", "parameters": [NUMBER],
                 "requestBody": {"required": True, **_json("LinkIn")},
                 "responses": {"201": _ok("LinkOut", "created"),
                               **_errors("400", "401", "403", "404", "409", "415", "422")}}})
    spec.path(path=base + "/{number}/journal", operations={
        "get": {"tags": [tag], "summary": "the full history", "parameters": [NUMBER],
                "operationId": f"journal_{rt.name}",
                "responses": {"200": _ok(_list_of("Journal", "JournalOut")),
                              **_errors("401", "404")}}})
    spec.path(path=base + "/{number}/sla", operations={
        "get": {"tags": [tag], "summary": "service level clocks: targets, time used and left",
                "parameters": [NUMBER], "operationId": f"sla_{rt.name}",
                "responses": {"200": _ok(_list_of("Clocks", "SlaClockOut")),
                              **_errors("401", "404")}}})
    spec.path(path=base + "/{number}/suggestions", operations={
        "get": {"tags": [tag], "summary": "answers other plugins suggest (articles, known "
                "errors ...), best first", "operationId": f"suggestions_{rt.name}",
                "parameters": [NUMBER, {"name": "limit", "in": "query", "schema": {
                    "type": "integer", "minimum": 1, "maximum": 20}}],
                "responses": {"200": _ok(_list_of("Suggestions", "SuggestionOut")),
                              **_errors("401", "404", "422")}}})
    spec.path(path=base + "/{number}/attachments", operations={
        "get": {"tags": [tag], "summary": "attachments", "parameters": [NUMBER],
                "operationId": f"attachments_{rt.name}",
                "responses": {"200": _ok(_list_of("Attachments", "AttachmentOut")),
                              **_errors("401", "404")}},
        "post": {"tags": [tag], "summary": "attach a file", "parameters": [NUMBER],
                 "operationId": f"attach_{rt.name}",
                 "requestBody": {"required": True, "content": {"multipart/form-data": {
                     "schema": {"type": "object", "required": ["file"], "properties": {
                         "file": {"type": "string", "format": "binary"}}}}}},
                 "responses": {"201": _ok("AttachmentOut", "created"),
                               **_errors("400", "401", "403", "404", "413", "422")}}})
    spec.path(path=base + "/{number}/attachments/{attachment_id}", operations={
        "get": {"tags": [tag], "summary": "download an attachment",
                "operationId": f"download_{rt.name}",
                "parameters": [NUMBER, {"name": "attachment_id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": {"description": "the file, as it was uploaded, with "
                                                     "the media type it was uploaded with",
                                      "content": {"*/*": {
                                          "schema": {"type": "string", "format": "binary"}}}},
                              **_errors("401", "404")}}})


def _path_schema(converter) -> dict[str, Any]:
    """The schema of a path parameter, from the URL rule's converter: ``<int:id>`` matches
    only digits and ``<any(a, b):name>`` only the names listed."""
    if isinstance(converter, IntegerConverter) and not converter.signed:
        return {"type": "integer", "minimum": converter.min or 0,
                **({"maximum": converter.max} if converter.max is not None else {})}
    if isinstance(converter, AnyConverter):
        return {"type": "string", "enum": sorted(converter.items)}
    return {"type": "string"}


_PARTIAL: dict[type, type] = {}


def _partial(schema: type) -> type:
    """``schema`` with no field required, as a change (PATCH) loads it: a class of its own
    (``DeliverableInChange``), since apispec names components by class."""
    if schema not in _PARTIAL:
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("partial", True)
            schema.__init__(self, *args, **kwargs)

        _PARTIAL[schema] = type(f"{schema.__name__}Change", (schema,), {"__init__": __init__})
    return _PARTIAL[schema]


def _plugin_paths(spec: APISpec, app: Flask, itsm) -> None:
    owners = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "itsm_openapi", None)
        if meta is None:
            continue
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else ""
        owner = itsm.blueprint_owners.get(blueprint.split(".")[0])
        if owner and not itsm.host.is_enabled(owner):
            continue  # a disabled plugin's routes answer 404: not in the document
        owners.setdefault(blueprint, None)
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        params = [{"name": n, "in": "path", "required": True,
                   "schema": _path_schema(rule._converters.get(n))}
                  for n in sorted(rule.arguments)] + list(meta["params"])
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            # A write may be refused by the workflow or a plugin's rule (409), and a body
            # may be too large or not JSON (413, 415).
            errors = ("400", "401", "403", "404", "422") if method == "GET" else (
                "400", "401", "403", "404", "409", "413", "415", "422")
            success = _ok(meta["response"]) if meta["response"] else {"description": "success"}
            if meta.get("media"):
                success = {**success, "content": {**success.get("content", {}),
                                                  **meta["media"]}}
            op = {"summary": meta["summary"], "tags": meta["tags"] or [blueprint or "itsm"],
                  "operationId": rule.endpoint.replace(".", "_") + "_" + method.lower(),
                  "parameters": params,
                  "responses": {**{str(code): success
                                   for code in (meta["status"], *meta.get("also", ()))},
                                **_errors(*errors)}}
            if meta["body"] is not None and method in ("POST", "PUT", "PATCH"):
                body = _partial(meta["body"]) if meta.get("partial") else meta["body"]
                op["requestBody"] = {"required": True, **_json(body)}
            operations[method.lower()] = op
        spec.path(path=path, operations=operations)


def _numeric_bounds(node: Any) -> Any:
    """Bounds as JSON numbers: a decimal field sent as a string (``as_string=True``) with a
    ``Range`` comes out of apispec as ``"maximum": "1000000000.00"``, which is not OpenAPI."""
    if isinstance(node, list):
        return [_numeric_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _numeric_bounds(value) for key, value in node.items()}
    for key in ("minimum", "maximum"):
        if isinstance(out.get(key), str):
            try:
                out[key] = float(out[key])
            except ValueError:
                del out[key]
    return out


def build_spec(app: Flask, itsm) -> dict[str, Any]:
    """The OpenAPI document for the plugins enabled right now."""
    spec = APISpec(title="itsm", version=__version__, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "IT Service Management API. Authenticate with "
                                        "`Authorization: Bearer <token>` (itsm users token)."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for schema in (s.SlaClockOut, s.SuggestionOut, s.TransitionOut, s.ErrorOut,
                   s.TransitionIn, s.CommentIn, s.CommentOut, s.LinkIn, s.LinkOut,
                   s.JournalOut, s.AttachmentOut):
        spec.components.schema(schema.__name__, schema=schema)
    for rt in itsm.types:
        _record_paths(spec, rt, itsm.types.schemas[rt.name])
    spec.path(path="/api/v1/", operations={"get": {
        "tags": ["itsm"], "summary": "the enabled record collections", "operationId": "index",
        "security": [], "responses": {"200": {"description": "collections by name",
                                              "content": {"application/json": {"schema": {
                                                  "type": "object"}}}}}}})
    spec.path(path="/api/v1/openapi.json", operations={"get": {
        "tags": ["itsm"], "summary": "this document", "operationId": "openapi",
        "security": [], "responses": {"200": {"description": "OpenAPI 3 document",
                                              "content": {"application/json": {"schema": {
                                                  "type": "object"}}}}}}})
    spec.path(path="/api/v1/me", operations={"get": {
        "tags": ["account"], "summary": "who am I", "operationId": "me",
        "responses": {"200": {"description": "the caller", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "email": {"type": "string"}, "name": {"type": "string"},
                "role": {"type": "string"}, "agency": {"type": "string",
                                                       "nullable": True},
                "groups": {"type": "array", "items": {"type": "string"},
                           "description": "the support groups the caller works in"}}}}}},
                      **_errors("401")}}})
    spec.components.schema("TokenIn", schema=s.TokenIn)
    spec.components.schema("TokenOut", schema=s.TokenOut)
    spec.path(path="/api/v1/tokens", operations={
        "get": {"tags": ["account"], "summary": "my API tokens (never the secrets)",
                "operationId": "list_tokens",
                "responses": {"200": _ok(_list_of("Tokens", "TokenOut")), **_errors("401")}},
        "post": {"tags": ["account"], "summary": "create an API token",
                 "operationId": "create_token",
                 "requestBody": {"required": True, **_json("TokenIn")},
                 "responses": {"201": _ok("TokenOut", "created, with the secret"),
                               **_errors("400", "401", "415", "422")}}})
    spec.path(path="/api/v1/tokens/{token_id}", operations={"delete": {
        "tags": ["account"], "summary": "revoke one of my API tokens",
        "operationId": "revoke_token",
        "parameters": [{"name": "token_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": {"200": _ok("TokenOut"), **_errors("401", "404")}}})
    _plugin_paths(spec, app, itsm)
    document = _numeric_bounds(spec.to_dict())
    document["security"] = [{"bearer": []}]
    return document
