"""The MOU plugin's REST routes, beside the generic ``/api/v1/mous`` collection.

- ``GET /api/v1/mous/<number>/agreement``: text, targets, contacts, signatures, versions;
- ``PUT /api/v1/mous/<number>/sections|targets|contacts``, ``POST .../signatories``;
- ``GET/POST /api/v1/mous/<number>/versions``, ``POST .../versions/<n>/approve|reject``;
- ``GET /api/v1/mous/<number>/document?format=markdown|html``;
- ``GET /api/v1/mou/mine``: the caller's agency's agreement in force;
- ``GET /api/v1/mou/compliance?agency=&from=&to=&format=json|csv``;
- ``GET/POST /api/v1/mou/templates``;
- the agency's part (:mod:`.participation`): ``POST .../sections/<key>/comments``,
  ``GET/POST .../proposals``, ``POST .../proposals/<id>/adopt|decline``,
  ``GET/POST /api/v1/mou/delegates``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from itsm.plugin import (
    CoreRecordOut,
    NotFound,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
)
from itsm.plugins.mou import compliance, participation, service
from itsm.plugins.mou import document as export
from itsm.plugins.mou import template as templates
from itsm.plugins.mou.models import MouSchema, MouTemplate

api = Blueprint("mou_api", __name__, url_prefix="/api/v1", template_folder="templates")
TAGS = ["MOU"]


class MouItems(Schema):
    """A list of items."""

    items = fields.List(fields.Dict(), required=True)


class MouAgreement(CoreRecordOut, MouSchema):
    """An agreement with everything in it: the record, its text, targets and people."""

    sections = fields.List(fields.Dict(), metadata={
        "description": "key, title and body of sections 1-10 and appendices A-G"})
    targets = fields.List(fields.Dict())
    relationship_manager = fields.Dict(allow_none=True)
    escalation = fields.List(fields.Dict(), metadata={"description": "in order"})
    signatories = fields.List(fields.Dict())
    versions = fields.List(fields.Dict())


class MouSectionsIn(Schema):
    """Section texts of a draft, by key: ``{"sections": {"1": "...", "A": "..."}}``."""

    sections = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class MouReport(Schema):
    """Compliance of an agency with its agreement over a period."""

    agency = fields.String()
    agency_name = fields.String()
    agreement = fields.String()
    agreement_state = fields.String()
    version = fields.Integer()
    from_ = fields.String(data_key="from")
    to = fields.String()
    granularity = fields.String(metadata={"description": "week or month"})
    periods = fields.List(fields.String())
    targets = fields.List(fields.Dict())


class MouSection(Schema):
    """One section of the standard template."""

    class Meta:
        unknown = RAISE

    key = fields.String(required=True, metadata={"description": "1 to 10, A to G"})
    title = fields.String()
    body = fields.String()


class MouTemplateIn(Schema):
    """A new version of the standard template: every section once."""

    class Meta:
        unknown = RAISE

    sections = fields.List(fields.Nested(MouSection), required=True)
    note = fields.String(load_default="", validate=validate.Length(max=500))


class MouTemplateOut(Schema):
    version = fields.Integer(required=True)
    sections = fields.List(fields.Nested(MouSection))
    note = fields.String()
    created_by = fields.String()
    created_at = fields.String()


class MouSignatureOut(Schema):
    version = fields.Integer(required=True)
    side = fields.String()
    name = fields.String()
    title = fields.String()
    signed_on = fields.String()


class MouVersionOut(Schema):
    number = fields.Integer(required=True)
    status = fields.String()
    summary = fields.String(allow_none=True)
    diff = fields.Raw(metadata={"description": "what changed against the version before"})
    proposed_by = fields.String(allow_none=True)
    proposed_at = fields.String()
    approved_by = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
            "description": description}


def _created(body: Any) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


@api.get("/mous/<number>/agreement")
@document(summary="an agreement with its sections, targets, contacts and versions",
          response=MouAgreement, tags=TAGS)
def agreement(number: str):
    """The whole agreement, as the caller may see it."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify(service.agreement_dict(svc, service.get(svc, number)))


@api.get("/mou/mine")
@document(summary="the caller's agency's agreement in force", response=MouAgreement,
          tags=TAGS)
def mine():
    """The agreement in force of the caller's agency (404 when there is none)."""
    actor = current_actor()
    with current_itsm().unit_of_work(actor) as svc:
        mou = service.active_for_agency(svc.session, actor.agency_id)
        if mou is None:
            raise NotFound("your agency has no agreement in force")
        return jsonify(service.agreement_dict(svc, service.get(svc, mou.number)))


@api.put("/mous/<number>/sections")
@document(summary="edit section texts of a draft agreement", body=MouSectionsIn,
          response=MouAgreement, tags=TAGS)
def put_sections(number: str):
    """Edit section texts while the agreement is a draft or in review."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        mou = service.get(svc, number)
        service.set_sections(svc, mou, body.get("sections"))
        return jsonify(service.agreement_dict(svc, mou))


@api.get("/mous/<number>/targets")
@document(summary="service level targets of an agreement", response=MouItems, tags=TAGS)
def get_targets(number: str):
    """The agreement's service level targets."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        mou = service.get(svc, number)
        return jsonify({"items": [service.target_dict(t)
                                  for t in service.targets(svc.session, mou)]})


@api.put("/mous/<number>/targets")
@document(summary="replace the targets of a draft agreement", body=MouItems, response=MouItems,
          tags=TAGS)
def put_targets(number: str):
    """Replace the targets while the agreement is a draft or in review."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        rows = service.set_targets(svc, service.get(svc, number), body)
        return jsonify({"items": [service.target_dict(t) for t in rows]})


@api.put("/mous/<number>/contacts")
@document(summary="relationship manager first, then escalation contacts in order",
          body=MouItems, response=MouItems, tags=TAGS)
def put_contacts(number: str):
    """Replace the relationship manager and the escalation contacts."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        rows = service.set_contacts(svc, service.get(svc, number), body)
        return jsonify({"items": [service.contact_dict(c) for c in rows]})


@api.post("/mous/<number>/signatories")
@document(summary="a named signatory signs the current version for one side",
          body=service.SignatoryIn, response=MouSignatureOut, status=201, tags=TAGS)
def post_signatory(number: str):
    """Record a signature of the current version."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        row = service.sign(svc, service.get(svc, number), body)
        return _created({"version": row.version, "side": row.side, "name": row.name,
                         "title": row.title, "signed_on": row.signed_on.isoformat()})


@api.get("/mous/<number>/versions")
@document(summary="versions of an agreement with their diffs", response=MouItems, tags=TAGS)
def get_versions(number: str):
    """Every version with its diff, proposer and approver."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        data = service.agreement_dict(svc, service.get(svc, number))
        return jsonify({"items": data["versions"]})


@api.post("/mous/<number>/versions")
@document(summary="propose an amendment (a new version with its diff)",
          body=service.AmendmentIn, response=MouVersionOut, status=201, tags=TAGS)
def post_version(number: str):
    """Propose an amendment of an approved or active agreement."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        version = service.propose(svc, service.get(svc, number), body)
        return _created(service.version_dict(version))


@api.post("/mous/<number>/versions/<int(max=1000000):version>/<any(approve, reject):decision>")
@document(summary="approve or reject a proposed amendment", response=MouVersionOut,
          tags=TAGS)
def decide_version(number: str, version: int, decision: str):
    """Approve (it takes effect at once) or reject a proposed amendment."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        row = service.decide(svc, service.get(svc, number), version, decision == "approve")
        return jsonify(service.version_dict(row))


@api.get("/mous/<number>/document")
@document(summary="the agreement as a document (Markdown or HTML)", tags=TAGS,
          media={"text/markdown": {"schema": {"type": "string"}},
                 "text/html": {"schema": {"type": "string"}}},
          params=[_query("format", "markdown (default) or html")])
def get_document(number: str):
    """The agreement with every section and appendix, as Markdown or printable HTML."""
    kind = request.args.get("format", "markdown")
    if kind not in ("markdown", "html"):
        raise ValidationError("format: markdown or html", fields={"format": ["unknown"]})
    with current_itsm().unit_of_work(current_actor()) as svc:
        data = service.agreement_dict(svc, service.get(svc, number))
    if kind == "html":
        return Response(render_template("mou/document.html", data=data, standalone=True,
                                        targets=export.target_rows(data),
                                        contacts=export.contact_lines(data)),
                        mimetype="text/html")
    return Response(export.to_markdown(data), mimetype="text/markdown", headers={
        "Content-Disposition": f'attachment; filename="{data["number"]}.md"'})


@api.get("/mou/compliance")
@document(summary="an agency's compliance with its agreement's targets", response=MouReport,
          media={"text/csv": {"schema": {"type": "string"}}}, tags=TAGS,
          params=[_query("agency", "agency code"),
                  _query("from", "first day, YYYY-MM-DD"),
                  _query("to", "last day, YYYY-MM-DD"),
                  _query("format", "json (default) or csv")])
def get_compliance():
    """Per target and metric: measured, met, breached, compliance and its trend."""
    kind = request.args.get("format", "json")
    if kind not in ("json", "csv"):
        raise ValidationError("format: json or csv", fields={"format": ["unknown"]})
    agency = request.args.get("agency", "")
    if not agency.strip() or len(agency) > 32:
        raise ValidationError("agency: an agency code", fields={"agency": ["required"]})
    start, end = compliance.parse_period(request.args.get("from"), request.args.get("to"))
    with current_itsm().unit_of_work(current_actor()) as svc:
        if not participation.may_see_compliance(svc, agency):
            svc.require(service.REPORT_PERMISSION)
        data = compliance.report(svc.session, agency, start, end)
    if kind == "csv":
        return Response(compliance.to_csv(data), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="mou-{data["agency"]}.csv"'})
    return jsonify(data)


def _template_dict(t: MouTemplate) -> dict[str, Any]:
    return {"version": t.version, "sections": t.sections, "note": t.note,
            "created_by": t.created_by, "created_at": t.created_at.isoformat()}


@api.get("/mou/templates")
@document(summary="versions of the standard agreement template", response=MouItems, tags=TAGS)
def get_templates():
    """Every version of the standard template (IT staff and agencies' delegates)."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        if not svc.is_staff and not participation.is_delegate(svc.session, svc.actor):
            raise NotFound("no such page")
        rows = svc.session.scalars(select(MouTemplate).order_by(MouTemplate.version))
        return jsonify({"items": [_template_dict(t) for t in rows]})


@api.post("/mou/templates")
@document(summary="publish a new version of the standard template", body=MouTemplateIn,
          response=MouTemplateOut, status=201, tags=TAGS)
def post_template():
    """Publish a new template version; agreements made earlier keep theirs."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require(service.TEMPLATE_PERMISSION)
        data = MouTemplateIn().load(body)  # a marshmallow error is a 422 with its fields
        row = service.publish_template(svc, data["sections"], data["note"])
        return _created(_template_dict(row))


# -- the agency's part in its agreements -------------------------------------------------


class SectionCommentIn(Schema):
    """A delegate's comment on one section."""

    body = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class SectionCommentOut(Schema):
    """The comment as posted to the agreement's conversation."""

    section = fields.String()
    body = fields.String()


class ProposalOut(Schema):
    """An amendment proposed by an agency's delegate."""

    id = fields.Integer()
    summary = fields.String()
    sections = fields.Dict(keys=fields.String(), values=fields.String())
    state = fields.String(metadata={"description": "open, adopted or declined"})
    author = fields.String()
    reason = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True, metadata={
        "description": "the amendment version it became"})
    decided_by = fields.String(allow_none=True)
    decided_at = fields.String(allow_none=True)
    created_at = fields.String()


class ProposalPage(Schema):
    """Proposals, newest first."""

    items = fields.List(fields.Nested(ProposalOut), required=True)


class DeclineIn(Schema):
    """Why a proposal is declined."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=5000))


class DelegateIn(Schema):
    """A person of an agency to designate."""

    agency = fields.String(required=True, validate=validate.Length(min=1, max=32))
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class DelegatePage(Schema):
    """The agency's delegates."""

    agency = fields.String()
    items = fields.List(fields.String(), required=True)


# Quoted: werkzeug's any() would read 1 to 10 as numbers.
SECTION_PATH = "any(" + ", ".join(f"'{key}'" for key in templates.SECTION_KEYS) + ")"


@api.post(f"/mous/<number>/sections/<{SECTION_PATH}:key>/comments")
@document(summary="comment on one section of the agency's agreement", body=SectionCommentIn,
          response=SectionCommentOut, status=201, tags=TAGS)
def comment_section(number: str, key: str):
    """A delegate's (or staff member's) comment, in the agreement's conversation."""
    data = SectionCommentIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        participation.comment_on_section(svc, service.get(svc, number), key, data["body"])
    return _created({"section": key, "body": data["body"]})


@api.get("/mous/<number>/proposals")
@document(summary="amendments the agency's delegates proposed", response=ProposalPage,
          tags=TAGS)
def list_proposals(number: str):
    """Newest first."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        rows = participation.proposals(svc, service.get(svc, number))
        return jsonify({"items": [participation.proposal_dict(p) for p in rows]})


@api.post("/mous/<number>/proposals")
@document(summary="propose an amendment (an agency's delegate)",
          body=participation.AgencyProposalIn, response=ProposalOut, status=201, tags=TAGS)
def post_proposal(number: str):
    """New texts for some sections; IT staff adopt or decline it."""
    body = json_body()
    with current_itsm().unit_of_work(current_actor()) as svc:
        row = participation.propose(svc, service.get(svc, number), body)
        return _created(participation.proposal_dict(row))


@api.post("/mous/<number>/proposals/<int(max=1000000000):proposal_id>/adopt")
@document(summary="adopt a proposal: an amendment version to approve, or a draft's text",
          response=ProposalOut, tags=TAGS)
def adopt_proposal(number: str, proposal_id: int):
    """IT staff take an agency's proposal up."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        row = participation.adopt(svc, service.get(svc, number), proposal_id)
        return jsonify(participation.proposal_dict(row))


@api.post("/mous/<number>/proposals/<int(max=1000000000):proposal_id>/decline")
@document(summary="decline a proposal with a reason", body=DeclineIn, response=ProposalOut,
          tags=TAGS)
def decline_proposal(number: str, proposal_id: int):
    """The agency's delegates read the reason."""
    data = DeclineIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        row = participation.decline(svc, service.get(svc, number), proposal_id,
                                    data["reason"])
        return jsonify(participation.proposal_dict(row))


@api.get("/mou/delegates")
@document(summary="the people an agency designated to take part in its agreements",
          response=DelegatePage, tags=TAGS, params=[_query("agency", "agency code")])
def list_delegates():
    """IT staff."""
    agency = request.args.get("agency", "")
    if not agency.strip() or len(agency) > 32:
        raise ValidationError("agency: an agency code", fields={"agency": ["required"]})
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"agency": agency, "items": participation.delegates(svc, agency)})


@api.post("/mou/delegates")
@document(summary="designate a person of an agency to take part in its agreements",
          body=DelegateIn, response=DelegatePage, status=201, tags=TAGS)
def post_delegate():
    """They read drafts, comment, propose amendments and see the agency's compliance."""
    data = DelegateIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        participation.designate(svc, data["agency"], data["email"])
        return _created({"agency": data["agency"],
                         "items": participation.delegates(svc, data["agency"])})
