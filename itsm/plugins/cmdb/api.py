"""The cmdb's REST routes under ``/api/v1/cmdb``: types, CIs (``?as_of=`` for the past),
relations, history, impact, import and export. Every call goes through ``service.py``
in one unit of work, with its permission check and agency scoping."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import Schema, validate
from marshmallow import fields as mf

from itsm.plugin import (
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
    parse_int,
)
from itsm.plugins.cmdb import graph, importer
from itsm.plugins.cmdb import relations as rel
from itsm.plugins.cmdb import service as cmdb
from itsm.plugins.cmdb.models import RELATION_KINDS

api = Blueprint("cmdb_api", __name__, url_prefix="/api/v1/cmdb")
TAGS = ["CMDB"]
CI = "/cis/<int(max=2147483647):ci_id>"


class CmdbAgencyOut(Schema):
    code = mf.String()
    name = mf.String()


class CmdbAttributeOut(Schema):
    name = mf.String()
    label = mf.String()
    type = mf.String()
    required = mf.Boolean()
    choices = mf.List(mf.String())


class CmdbTypeOut(Schema):
    """A CI type and its attributes."""

    key = mf.String()
    label = mf.String()
    is_service = mf.Boolean()
    builtin = mf.Boolean()
    attributes = mf.List(mf.Nested(CmdbAttributeOut))


class CmdbTypePage(Schema):
    items = mf.List(mf.Nested(CmdbTypeOut), required=True)


class CmdbOtherCi(Schema):
    id = mf.Integer()
    name = mf.String()
    type = mf.String()
    lifecycle = mf.String()


class CmdbRelationOut(Schema):
    """A relation seen from the CI asked about."""

    id = mf.Integer()
    kind = mf.String(metadata={"description": ", ".join(RELATION_KINDS)})
    label = mf.String(metadata={"description": "as read from this CI: runs on, hosts ..."})
    direction = mf.String(metadata={"description": "outgoing (this CI is the source) or "
                                                   "incoming"})
    other = mf.Nested(CmdbOtherCi)
    created_at = mf.String()
    removed_at = mf.String(allow_none=True)


class CmdbRelationPage(Schema):
    items = mf.List(mf.Nested(CmdbRelationOut), required=True)


class CiOut(Schema):
    """A configuration item (now, or as it was on ``as_of``)."""

    id = mf.Integer()
    external_key = mf.String(allow_none=True)
    name = mf.String()
    type = mf.String()
    type_label = mf.String()
    lifecycle = mf.String()
    lifecycle_label = mf.String()
    owner = mf.String(allow_none=True)
    owner_name = mf.String(allow_none=True)
    support_group = mf.String(allow_none=True)
    location = mf.String()
    agency = mf.Nested(CmdbAgencyOut, allow_none=True)
    used_by = mf.List(mf.Nested(CmdbAgencyOut))
    attributes = mf.Dict()
    service_id = mf.String(allow_none=True, metadata={
        "description": "the stable service id, for a business service"})
    version = mf.Integer()
    source = mf.String()
    merged_into = mf.Integer(allow_none=True)
    created_at = mf.String()
    updated_at = mf.String()
    as_of = mf.String()
    relations = mf.List(mf.Nested(CmdbRelationOut))


class CiPage(Schema):
    items = mf.List(mf.Nested(CiOut), required=True)
    next = mf.Integer(allow_none=True, metadata={"description": "pass as after= for more"})
    total = mf.Integer()


class CmdbHistoryOut(Schema):
    at = mf.String()
    actor = mf.String()
    action = mf.String()
    changes = mf.Dict()
    note = mf.String()


class CmdbHistoryPage(Schema):
    items = mf.List(mf.Nested(CmdbHistoryOut), required=True)


class CmdbPathStep(Schema):
    id = mf.Integer()
    name = mf.String()
    type = mf.String()


class CmdbServiceHit(Schema):
    id = mf.Integer()
    name = mf.String()
    service_id = mf.String(allow_none=True)
    depth = mf.Integer()
    path = mf.List(mf.Nested(CmdbPathStep))


class CmdbAgencyHit(Schema):
    code = mf.String()
    name = mf.String()
    path = mf.List(mf.Nested(CmdbPathStep))


class CmdbImpactOut(Schema):
    """What depends on a CI (``impact``), or what it depends on (``depends``)."""

    ci = mf.Nested(CmdbPathStep)
    direction = mf.String()
    reached = mf.Integer(metadata={"description": "CIs reached, the CI itself left out"})
    truncated = mf.Boolean()
    services = mf.List(mf.Nested(CmdbServiceHit))
    agencies = mf.List(mf.Nested(CmdbAgencyHit))
    items = mf.List(mf.Nested(CmdbServiceHit), metadata={"description": "every CI reached"})


class CmdbRetireIn(Schema):
    """Why a CI is retired (optional; kept in its history)."""

    note = mf.String(load_default="", validate=validate.Length(max=500))


class CmdbMergeIn(Schema):
    into = mf.Integer(required=True, strict=False, validate=validate.Range(1, 2**31 - 1))


class CmdbImportIn(Schema):
    """An import: the file's text and how to read it."""

    format = mf.String(required=True, validate=validate.OneOf(importer.FORMATS))
    content = mf.String(required=True, validate=validate.Length(max=50_000_000), metadata={
        "description": "the CSV, the JSON, or the JSON of `ansible-inventory --list`"})
    source = mf.String(load_default=None, allow_none=True,
                       validate=validate.Length(min=1, max=40))
    dry_run = mf.Boolean(load_default=False)
    keep_missing = mf.Boolean(load_default=False)


class CmdbImportErrorRow(Schema):
    row = mf.Integer()
    key = mf.String()
    fields = mf.Dict()


class CmdbImportReport(Schema):
    source = mf.String()
    dry_run = mf.Boolean()
    created = mf.Integer()
    updated = mf.Integer()
    unchanged = mf.Integer()
    retired = mf.Integer()
    failed = mf.Integer()
    relations_added = mf.Integer()
    relations_removed = mf.Integer()
    errors = mf.List(mf.Nested(CmdbImportErrorRow))


class CmdbExportOut(Schema):
    items = mf.List(mf.Dict(), required=True)
    relations = mf.List(mf.Dict())


def _query(name: str, description: str, kind: str = "string", **extra: Any) -> dict:
    return {"name": name, "in": "query", "required": False,
            "schema": {"type": kind, **extra}, "description": description}


def _text(name: str, limit: int = 200) -> str:
    value = request.args.get(name, "")
    if len(value) > limit:
        raise ValidationError(f"{name}: at most {limit} characters",
                              fields={name: [f"at most {limit} characters"]})
    return value.strip()


def _uow():
    return current_itsm().unit_of_work(current_actor())


# -- types ---------------------------------------------------------------------------------


@api.get("/types")
@document(summary="CI types and their attributes", response=CmdbTypePage, tags=TAGS)
def list_types():
    with _uow() as service:
        service.require(cmdb.READ)
        items = [cmdb.type_dict(t) for t in cmdb.all_types(service.session).values()]
    return jsonify({"items": items})


@api.post("/types")
@document(summary="add a CI type or change one (admins)", body=cmdb.CiTypeIn,
          response=CmdbTypeOut, status=201, tags=TAGS)
def define_type():
    body = json_body()
    with _uow() as service:
        out = cmdb.type_dict(cmdb.define_type(service, body))
    return jsonify(out), 201


# -- configuration items -------------------------------------------------------------------


@api.get("/cis")
@document(summary="configuration items the caller may see", response=CiPage, tags=TAGS,
          params=[_query("q", "words of the name or external key"),
                  _query("type", "a CI type key"),
                  _query("lifecycle", "planned, in_use, maintenance or retired"),
                  _query("after", "the next value of the previous page", "integer",
                         minimum=0),
                  _query("limit", "at most this many (1 to 500)", "integer", minimum=1,
                         maximum=500)])
def list_cis():
    after = parse_int(request.args.get("after") or "0", "after", minimum=0,
                      maximum=2**31 - 1)
    limit = parse_int(request.args.get("limit") or "50", "limit", minimum=1, maximum=500)
    with _uow() as service:
        rows, cursor, total = cmdb.list_cis(
            service, text=_text("q"), type_key=_text("type", 64) or None,
            lifecycle=_text("lifecycle", 20) or None, after=after, limit=limit)
        names = cmdb.Names(service.session)
        items = [cmdb.current_dict(service, ci, names) for ci in rows]
    return jsonify({"items": items, "next": cursor, "total": total})


@api.post("/cis")
@document(summary="add a configuration item", body=cmdb.CiIn, response=CiOut, status=201,
          tags=TAGS)
def create_ci():
    body = json_body()
    with _uow() as service:
        ci = cmdb.create_ci(service, body)
        out = cmdb.current_dict(service, ci)
    return jsonify(out), 201


@api.get(CI)
@document(summary="a configuration item with its relations, now or as it was then",
          response=CiOut, tags=TAGS,
          params=[_query("as_of", "a date or date-time (2026-12-01, 2026-12-01T09:30Z)")])
def get_ci(ci_id: int):
    with _uow() as service:
        ci = cmdb.get_ci(service, ci_id)
        if request.args.get("as_of"):
            out = rel.as_of(service, ci, rel.parse_when(request.args["as_of"]))
        else:
            out = cmdb.current_dict(service, ci)
            out["relations"] = rel.relations(service, ci)
    return jsonify(out)


@api.patch(CI)
@document(summary="change a configuration item", body=cmdb.CiIn, response=CiOut,
          partial=True, tags=TAGS)
def update_ci(ci_id: int):
    body = json_body()
    with _uow() as service:
        ci = cmdb.update_ci(service, cmdb.get_ci(service, ci_id), body)
        out = cmdb.current_dict(service, ci)
    return jsonify(out)


@api.post(CI + "/retire")
@document(summary="retire a configuration item (kept, with its history)", body=CmdbRetireIn,
          response=CiOut, tags=TAGS)
def retire_ci(ci_id: int):
    with _uow() as service:
        body = cmdb.load(CmdbRetireIn(), json_body() if request.content_length else {})
        ci = cmdb.retire_ci(service, cmdb.get_ci(service, ci_id), note=body["note"])
        out = cmdb.current_dict(service, ci)
    return jsonify(out)


@api.post(CI + "/merge")
@document(summary="merge a duplicate into another CI", body=CmdbMergeIn, response=CiOut,
          tags=TAGS)
def merge_ci(ci_id: int):
    with _uow() as service:
        body = cmdb.load(CmdbMergeIn(), json_body())
        ci = cmdb.get_ci(service, ci_id)
        ci = rel.merge_ci(service, ci, cmdb.get_ci(service, body["into"]))
        out = cmdb.current_dict(service, ci)
    return jsonify(out)


@api.get(CI + "/history")
@document(summary="every change of a configuration item, newest first",
          response=CmdbHistoryPage, tags=TAGS)
def ci_history(ci_id: int):
    with _uow() as service:
        items = rel.history(service, cmdb.get_ci(service, ci_id))
    return jsonify({"items": items})


@api.get(CI + "/relations")
@document(summary="the relations of a configuration item", response=CmdbRelationPage, tags=TAGS)
def list_relations(ci_id: int):
    with _uow() as service:
        items = rel.relations(service, cmdb.get_ci(service, ci_id))
    return jsonify({"items": items})


@api.post(CI + "/relations")
@document(summary="relate a configuration item to another (it is the source)",
          body=cmdb.CiRelationIn, response=CmdbRelationPage, status=201, tags=TAGS)
def add_relation(ci_id: int):
    body = json_body()
    with _uow() as service:
        ci = cmdb.get_ci(service, ci_id)
        rel.relate(service, ci, body)
        items = rel.relations(service, ci)
    return jsonify({"items": items}), 201


@api.delete(CI + "/relations/<int(max=2147483647):relation_id>")
@document(summary="end a relation (kept in the history)", status=204, tags=TAGS)
def remove_relation(ci_id: int, relation_id: int):
    with _uow() as service:
        rel.unrelate(service, cmdb.get_ci(service, ci_id), relation_id)
    return "", 204


LISTED = 200  # CIs an impact lists with their paths; ``reached`` counts them all


def impact_data(service: Any, ci: Any, direction: str) -> dict[str, Any]:
    """An impact analysis as the API, the pages and the CLI show it; another agency's
    CIs are left out for requesters."""
    types = cmdb.service_type_keys(service.session)
    result = graph.analyse(service.session, [ci.id], direction, types, named=LISTED)
    allowed = cmdb.visible_ids(service, sorted(result.walk.parent))
    names = cmdb.Names(service.session)

    def steps(path: list[int]) -> list[dict[str, Any]]:
        return [{"id": i, "name": result.nodes[i]["name"], "type": result.nodes[i]["type"]}
                for i in path if i in result.nodes]

    def hit(ci_id: int) -> dict[str, Any]:
        node = result.nodes[ci_id]
        return {"id": ci_id, "name": node["name"], "service_id": node["service_id"],
                "depth": result.walk.depth[ci_id], "path": steps(result.walk.path(ci_id))}

    reached = [c for c in result.walk.order() if c != ci.id and c in allowed]
    # The nearest 200 are listed with their paths (the count is exact); a requester's
    # list skips CIs the analysis did not name, so those few are loaded here.
    listed = reached[:LISTED]
    missing = [step for c in listed for step in result.walk.path(c) if step not in result.nodes]
    result.nodes.update(graph.load_nodes(service.session, missing))
    agencies = []
    for found in result.agencies:
        agency = names.agency(found["agency_id"])
        if agency and all(step in allowed for step in found["path"]):
            agencies.append({**agency, "path": steps(found["path"])})
    return {"ci": {"id": ci.id, "name": ci.name, "type": ci.type_key},
            "direction": direction, "reached": len(reached),
            "truncated": result.walk.truncated,
            "services": [hit(s["ci"]["id"]) for s in result.services
                         if s["ci"]["id"] in allowed],
            "agencies": agencies, "items": [hit(c) for c in listed]}


@api.get(CI + "/impact")
@document(summary="the services and agencies that depend on a CI, with paths (or, with "
          "direction=depends, everything it depends on)", response=CmdbImpactOut, tags=TAGS,
          params=[_query("direction", "impact (default) or depends", enum=[
              "impact", "depends"])])
def impact(ci_id: int):
    direction = request.args.get("direction") or "impact"
    if direction not in ("impact", "depends"):
        raise ValidationError("direction: impact or depends",
                              fields={"direction": ["impact or depends"]})
    with _uow() as service:
        out = impact_data(service, cmdb.get_ci(service, ci_id), direction)
    return jsonify(out)


# -- import and export ---------------------------------------------------------------------


@api.post("/import")
@document(summary="import and reconcile CIs from CSV, JSON or Ansible's inventory (admins)",
          body=CmdbImportIn, response=CmdbImportReport, tags=TAGS)
def import_cis():
    with _uow() as service:  # the caller first: 401 before any word about the body
        body = cmdb.load(CmdbImportIn(), json_body())
        rows, relations = importer.parse(body["format"], body["content"])
        report = importer.reconcile(service, rows, body["source"] or body["format"],
                                    relations=relations, dry_run=body["dry_run"],
                                    retire_missing=not body["keep_missing"])
    return jsonify(report.to_dict())


@api.get("/export")
@document(summary="every CI the caller may see and their relations, as import reads them",
          response=CmdbExportOut, tags=TAGS)
def export():
    import json

    with _uow() as service:
        text = importer.export(service, "json")
    return jsonify(json.loads(text))
