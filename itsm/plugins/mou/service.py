"""What the MOU plugin does with an agreement, shared by the API, pages, CLI and hooks.

Every write takes the caller's :class:`~itsm.core.records.RecordService` (one unit of
work, one actor): it checks the actor's permission on the agreement there, and records
the change in the agreement's journal (a work note naming what changed) in the same
transaction.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    ApprovalScope,
    Conflict,
    InputError,
    NotFound,
    Record,
    RecordService,
    ValidationError,
    load_input,
    resolve_reference,
    utcnow,
)
from itsm.plugins.mou import template as templates
from itsm.plugins.mou.models import (
    EDITABLE_STATES,
    MOU,
    SIDES,
    Mou,
    MouContact,
    MouSection,
    MouSignatory,
    MouTarget,
    MouVersion,
)

APPROVE_PERMISSION = "mou.approve"
TEMPLATE_PERMISSION = "mou.template"
REPORT_PERMISSION = "mou.report"
AMENDABLE_STATES = ("approved", "active")
MAX_ITEMS = 200


def _part(key: str) -> str:
    return f"appendix {key}" if key.isalpha() else f"section {key}"


# What the two signatures cover: the whole agreement as signed (docs/plugins.md,
# "Approvals bound to scope"). Any edit after a signature starts a new draft version.
SIGNATURE_SCOPE = ApprovalScope(
    "signatures", (*map(_part, templates.SECTION_KEYS), "targets", "contacts"),
    unordered=frozenset({"targets"}))


# -- input schemas ------------------------------------------------------------------------


class TargetIn(Schema):
    """One service level target."""

    service = fields.String(load_default="", validate=validate.Length(max=200), metadata={
        "description": "the service it covers; empty for any service"})
    priority = fields.Integer(load_default=None, allow_none=True, strict=True,
                              validate=validate.Range(min=1, max=5),
                              metadata={"description": "1 to 5; null for any priority"})
    response_minutes = fields.Integer(load_default=None, allow_none=True, strict=True,
                                      validate=validate.Range(min=0, max=10_000_000))
    resolution_minutes = fields.Integer(load_default=None, allow_none=True, strict=True,
                                        validate=validate.Range(min=0, max=10_000_000))
    availability = fields.Float(load_default=None, allow_none=True,
                                validate=validate.Range(min=0, max=100))
    support_hours = fields.String(load_default="default", validate=validate.Length(
        min=1, max=64), metadata={"description": "business calendar name"})
    compliance_percent = fields.Float(load_default=95.0, validate=validate.Range(
        min=0, max=100), metadata={"description": "share of records that must meet it"})


class ContactIn(Schema):
    """A contact: the relationship manager first, then the escalation contacts in order."""

    role = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(load_default="")
    phone = fields.String(load_default="", validate=validate.Length(max=50))
    when = fields.String(load_default="", validate=validate.Length(max=300), metadata={
        "description": "when to turn to this contact"})


class SignatoryIn(Schema):
    """A signature of the current version for one side."""

    side = fields.String(required=True, validate=validate.OneOf(SIDES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    title = fields.String(load_default="", validate=validate.Length(max=200))
    signed_on = fields.Date(load_default=None, allow_none=True)


class AmendmentIn(Schema):
    """A proposed amendment: changed section texts and, optionally, new targets."""

    summary = fields.String(required=True, validate=validate.Length(min=1, max=500))
    sections = fields.Dict(keys=fields.String(validate=validate.OneOf(
        templates.SECTION_KEYS)), values=fields.String(validate=validate.Length(
            max=100_000)), load_default=dict)
    targets = fields.List(fields.Nested(TargetIn), load_default=None, allow_none=True,
                          validate=validate.Length(max=MAX_ITEMS))


def load(schema: Schema, data: Any, what: str) -> Any:
    """``schema.load`` with the plugin's 422 error naming the fields."""
    return load_input(schema, data, what=what)


def load_list(schema: type[Schema], data: Any, what: str) -> list[dict[str, Any]]:
    """Load ``{"items": [...]}`` with ``schema`` for each item."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValidationError(f"send {{\"items\": [...]}} with the {what}",
                              fields={"items": ["a list"]})
    if len(data["items"]) > MAX_ITEMS:
        raise ValidationError(f"at most {MAX_ITEMS} {what}", fields={"items": ["too many"]})
    return load(schema(many=True), data["items"], what)


# -- reading ------------------------------------------------------------------------------


def get(service: RecordService, number: str) -> Mou:
    """The agreement ``number`` if the actor may read it (404 otherwise)."""
    return service.get(number.strip().upper(), MOU.name)


def sections(session: Session, mou: Mou, version: int | None = None) -> list[MouSection]:
    return list(session.scalars(select(MouSection).where(
        MouSection.mou_id == mou.id, MouSection.version == (version or mou.current_version))
        .order_by(MouSection.position)))


def targets(session: Session, mou: Mou) -> list[MouTarget]:
    return list(session.scalars(select(MouTarget).where(MouTarget.mou_id == mou.id)
                                .order_by(MouTarget.service, MouTarget.priority,
                                          MouTarget.id)))


def contacts(session: Session, mou: Mou) -> list[MouContact]:
    return list(session.scalars(select(MouContact).where(MouContact.mou_id == mou.id)
                                .order_by(MouContact.position)))


def signatories(session: Session, mou: Mou) -> list[MouSignatory]:
    return list(session.scalars(select(MouSignatory).where(MouSignatory.mou_id == mou.id)
                                .order_by(MouSignatory.version, MouSignatory.id)))


def versions(session: Session, mou: Mou) -> list[MouVersion]:
    return list(session.scalars(select(MouVersion).where(MouVersion.mou_id == mou.id)
                                .order_by(MouVersion.number)))


def relationship_managers(session: Session, agency_ids: list[int]) -> set[str]:
    """The e-mail addresses of the relationship managers (first contact) of the active
    agreements of ``agency_ids``."""
    out = set()
    for agency_id in dict.fromkeys(agency_ids):
        mou = active_for_agency(session, agency_id)
        if mou is None:
            continue
        email = session.scalar(select(MouContact.email).where(
            MouContact.mou_id == mou.id, MouContact.position == 0))
        if email:
            out.add(email)
    return out


def target_dict(t: MouTarget) -> dict[str, Any]:
    return {"id": t.id, "service": t.service, "priority": t.priority,
            "response_minutes": t.response_minutes,
            "resolution_minutes": t.resolution_minutes, "availability": t.availability,
            "support_hours": t.support_hours, "compliance_percent": t.compliance_percent}


def contact_dict(c: MouContact) -> dict[str, Any]:
    return {"position": c.position, "role": c.role, "name": c.name, "email": c.email,
            "phone": c.phone, "when": c.when}


def version_dict(v: MouVersion) -> dict[str, Any]:
    return {"number": v.number, "status": v.status, "summary": v.summary, "diff": v.diff,
            "proposed_by": v.proposed_by, "proposed_at": v.proposed_at.isoformat(),
            "approved_by": v.approved_by or None,
            "approved_at": v.approved_at.isoformat() if v.approved_at else None}


def agreement_dict(service: RecordService, mou: Mou) -> dict[str, Any]:
    """The agreement with its text, targets, contacts, signatories and versions."""
    session = service.session
    out = service.to_dict(mou)
    out["sections"] = [{"key": s.key, "title": s.title, "body": s.body}
                       for s in sections(session, mou)]
    out["targets"] = [target_dict(t) for t in targets(session, mou)]
    people = contacts(session, mou)
    out["relationship_manager"] = contact_dict(people[0]) if people else None
    out["escalation"] = [contact_dict(c) for c in people[1:]]
    out["signatories"] = [{"version": s.version, "side": s.side, "name": s.name,
                           "title": s.title, "signed_on": s.signed_on.isoformat()}
                          for s in signatories(session, mou)]
    shown = versions(session, mou)
    if not service.is_staff:  # an agency sees the text in force, not internal proposals
        shown = [v for v in shown if v.status == "approved"]
    out["versions"] = [version_dict(v) for v in shown]
    return out


# Its id first, with a plain statement built once: the SLA policy asks on every record
# created or moved, the usual answer is "none", and only an agreement that exists is
# loaded as an object.
_MOU, _RECORD = Mou.__table__, Record.__table__
_ACTIVE_MOU_ID = (
    select(_MOU.c.id).join(_RECORD, _RECORD.c.id == _MOU.c.id)
    .where(_RECORD.c.agency_id == bindparam("agency_id"), _MOU.c.kind == "mou",
           _RECORD.c.state == "active")
    .order_by(_MOU.c.id.desc()).limit(1))


def active_for_agency(session: Session, agency_id: int | None) -> Mou | None:
    """The agency's agreement in force (the newest, should two overlap)."""
    if agency_id is None:
        return None
    mou_id = session.scalar(_ACTIVE_MOU_ID, {"agency_id": agency_id})
    return None if mou_id is None else session.get(Mou, mou_id)


# -- writing ------------------------------------------------------------------------------


def content(session: Session, mou: Mou) -> dict[str, Any]:
    """The signature scope's values: the current version's sections and appendices, the
    targets and the contacts, as canonical data."""
    values: dict[str, Any] = {_part(s.key): {"title": s.title, "body": s.body}
                              for s in sections(session, mou)}
    values["targets"] = [{k: v for k, v in target_dict(t).items() if k != "id"}
                         for t in targets(session, mou)]
    values["contacts"] = [contact_dict(c) for c in contacts(session, mou)]
    return SIGNATURE_SCOPE.values(values)


def signature_refusal(session: Session, mou: Mou) -> str | None:
    """Why the signatures of the current version do not cover the agreement as it is
    now (the parts changed since a side signed), or None."""
    now = content(session, mou)
    digest = SIGNATURE_SCOPE.digest(now)
    for row in session.scalars(select(MouSignatory).where(
            MouSignatory.mou_id == mou.id, MouSignatory.version == mou.current_version)
            .order_by(MouSignatory.id)):
        if row.scope_digest != digest:
            changed = SIGNATURE_SCOPE.changes(row.scope or {}, now) or ["the content"]
            return (f"the {row.side}'s signature by {row.name} covers other content than "
                    f"version {mou.current_version} holds now: {', '.join(changed)} "
                    "changed since; both sides sign again")
    return None


def _signed_rows(session: Session, mou: Mou) -> list[MouSignatory]:
    return list(session.scalars(select(MouSignatory).where(
        MouSignatory.mou_id == mou.id, MouSignatory.version == mou.current_version)
        .order_by(MouSignatory.id)))


def _new_draft_if_signed(service: RecordService, mou: Mou) -> MouSignatory | None:
    """Before an edit: if the current version is signed, the edit goes into a new draft
    version (a copy of its text) that needs both signatures again. Returns the latest
    signature the edit supersedes."""
    session = service.session
    signed = _signed_rows(session, mou)
    if not signed:
        return None
    old = mou.current_version
    number = (session.scalar(select(func.max(MouVersion.number))
                             .where(MouVersion.mou_id == mou.id)) or 0) + 1
    for position, s in enumerate(sections(session, mou)):
        session.add(MouSection(mou_id=mou.id, version=number, position=position,
                               key=s.key, title=s.title, body=s.body))
    previous = session.scalar(select(MouVersion).where(MouVersion.mou_id == mou.id,
                                                       MouVersion.number == old))
    if previous is not None and previous.status == "draft":
        previous.status = "superseded"
    session.add(MouVersion(mou_id=mou.id, number=number, status="draft",
                           proposed_by=service.actor.email,
                           summary=f"version {old} edited after it was signed"))
    session.flush()
    service.set_fields(mou, {"current_version": number})
    return signed[-1]


def _note_superseded(service: RecordService, mou: Mou, signature: MouSignatory | None) \
        -> None:
    if signature is None:
        return
    changed = SIGNATURE_SCOPE.changes(signature.scope or {}, content(service.session, mou))
    note(service, mou, SIGNATURE_SCOPE.superseded_note(
        changed or ["nothing"], f"of version {signature.version}")
        + f"; version {mou.current_version} is a new draft that both sides sign again.")


def note(service: RecordService, mou: Mou, text: str) -> None:
    """Journal a change of the agreement's own tables (a work note, an outbox event)."""
    service.comment(mou, text, public=False)


def _require_editable(mou: Mou, what: str) -> None:
    if mou.state not in EDITABLE_STATES:
        raise Conflict(f"{mou.number} is {mou.state}: change its {what} through an "
                       "amendment (POST .../versions)",
                       reasons=[f"the {what} of an approved agreement change only "
                                "through an amendment"])


def prepare_new(session: Session, mou: Mou) -> None:
    """A new agreement is version 1 of the latest template (before it is journaled)."""
    mou.template_version = templates.ensure_default(session).version
    mou.current_version = 1


def start(session: Session, mou: Mou, author: str) -> None:
    """Give a new agreement the latest template's text as its version 1."""
    template = templates.ensure_default(session)
    for position, section in enumerate(template.sections):
        session.add(MouSection(mou_id=mou.id, version=1, position=position,
                               key=section["key"], title=section["title"],
                               body=section["body"]))
    session.add(MouVersion(mou_id=mou.id, number=1, status="draft", proposed_by=author,
                           summary=f"first version, from template version "
                                   f"{template.version}"))


def set_sections(service: RecordService, mou: Mou, changes: Any) -> None:
    """Edit section texts of a draft: ``{"3": "new text", ...}``."""
    service.require(f"{MOU.name}.update", mou)
    _require_editable(mou, "text")
    if not isinstance(changes, dict) or not changes:
        raise ValidationError("send {\"sections\": {\"<key>\": \"text\"}}",
                              fields={"sections": ["an object of section texts"]})
    bodies = load(AmendmentIn(), {"summary": "edit", "sections": changes},
                  "sections")["sections"]
    signed = _new_draft_if_signed(service, mou)
    rows = {s.key: s for s in sections(service.session, mou)}
    for key, body in bodies.items():
        rows[key].body = body
    service.session.flush()
    note(service, mou, "Sections edited: " + ", ".join(sorted(bodies, key=_order)))
    _note_superseded(service, mou, signed)


def _order(key: str) -> int:
    return templates.SECTION_KEYS.index(key)


def set_targets(service: RecordService, mou: Mou, data: Any) -> list[MouTarget]:
    """Replace the targets of a draft agreement."""
    service.require(f"{MOU.name}.update", mou)
    _require_editable(mou, "targets")
    items = load_list(TargetIn, data, "targets")
    signed = _new_draft_if_signed(service, mou)
    _replace_targets(service.session, mou, items)
    note(service, mou, f"Service level targets set ({len(items)}).")
    _note_superseded(service, mou, signed)
    return targets(service.session, mou)


def _replace_targets(session: Session, mou: Mou, items: list[dict[str, Any]]) -> None:
    session.execute(delete(MouTarget).where(MouTarget.mou_id == mou.id))
    for item in items:
        values = {k: v for k, v in item.items() if k not in ("id", "service_ref")}
        session.add(MouTarget(mou_id=mou.id, service_ref=service_ref(
            session, values.get("service") or ""), **values))
    session.flush()


def service_ref(session: Session, name: str) -> str:
    """The stable id of the service a target names, when a provider knows it; else the
    name (an agreement may name a service no catalog lists)."""
    if not name:
        return ""
    try:
        return resolve_reference(session, "service", name).id
    except InputError:
        return name


def set_contacts(service: RecordService, mou: Mou, data: Any) -> list[MouContact]:
    """Replace the relationship manager (first) and the escalation contacts (in order)."""
    service.require(f"{MOU.name}.update", mou)
    items = load_list(ContactIn, data, "contacts")
    if mou.state == "approved":
        # Signed and approved, not yet in force: activation holds the parties to the
        # contacts they signed; once active, contacts are kept current in place.
        raise Conflict(f"{mou.number} is approved with the contacts both sides signed: "
                       "activate it first, then update the contacts",
                       reasons=["contacts are in the signed scope until activation"])
    signed = _new_draft_if_signed(service, mou) if mou.state in EDITABLE_STATES else None
    service.session.execute(delete(MouContact).where(MouContact.mou_id == mou.id))
    service.session.flush()
    for position, item in enumerate(items):
        service.session.add(MouContact(mou_id=mou.id, position=position, **item))
    service.session.flush()
    names = ", ".join(f"{c['role']} {c['name']}" for c in items) or "none"
    note(service, mou, f"Contacts set: {names}.")
    _note_superseded(service, mou, signed)
    return contacts(service.session, mou)


def sign(service: RecordService, mou: Mou, data: Any) -> MouSignatory:
    """A named signatory signs the current version for one side."""
    service.require(f"{MOU.name}.update", mou)
    if mou.state not in EDITABLE_STATES:
        raise Conflict(f"{mou.number} is {mou.state}: only a draft or an agreement in "
                       "review is signed")
    values = load(SignatoryIn(), data, "signatory")
    values["signed_on"] = values["signed_on"] or date.today()
    scope = content(service.session, mou)
    row = MouSignatory(mou_id=mou.id, version=mou.current_version, scope=scope,
                       scope_digest=SIGNATURE_SCOPE.digest(scope), **values)
    service.session.add(row)
    service.session.flush()
    note(service, mou, f"Signed for the {row.side} by {row.name} on "
                       f"{row.signed_on.isoformat()} (version {row.version}).")
    return row


def on_approved(session: Session, mou: Mou, approver: str) -> None:
    """The approval of the agreement approves its current version."""
    version = session.scalar(select(MouVersion).where(
        MouVersion.mou_id == mou.id, MouVersion.number == mou.current_version))
    if version is not None and version.status != "approved":
        version.status = "approved"
        version.approved_by = approver
        version.approved_at = utcnow()
        version.targets = [target_dict(t) for t in targets(session, mou)]


# -- amendments (section 10) ------------------------------------------------------------------


def text_of(secs: list[dict[str, str]], goals: list[dict[str, Any]]) -> list[str]:
    """The lines a diff compares: every section, then the targets."""
    lines = []
    for s in secs:
        lines += [f"## {s['key']}. {s['title']}", *s["body"].splitlines(), ""]
    lines.append("## Service level targets")
    for t in sorted(goals, key=lambda t: (t["service"], t["priority"] or 0)):
        lines.append(f"- {t['service'] or 'any service'} P{t['priority'] or '*'}: "
                     f"response {t['response_minutes']} min, resolution "
                     f"{t['resolution_minutes']} min, availability {t['availability']}%, "
                     f"hours {t['support_hours']}, compliance {t['compliance_percent']}%")
    return lines


def propose(service: RecordService, mou: Mou, data: Any) -> MouVersion:
    """Propose an amendment: a new version with its diff against the current one."""
    service.require(f"{MOU.name}.update", mou)
    if mou.state not in AMENDABLE_STATES:
        raise Conflict(f"{mou.number} is {mou.state}: amendments are for approved or "
                       "active agreements; edit a draft directly")
    values = load(AmendmentIn(), data, "amendment")
    session = service.session
    pending = session.scalar(select(MouVersion.number).where(
        MouVersion.mou_id == mou.id, MouVersion.status == "proposed"))
    if pending is not None:
        raise Conflict(f"version {pending} of {mou.number} is still proposed: approve or "
                       "reject it first")
    old = [{"key": s.key, "title": s.title, "body": s.body} for s in sections(session, mou)]
    old_targets = [target_dict(t) for t in targets(session, mou)]
    new = [{**s, "body": values["sections"].get(s["key"], s["body"])} for s in old]
    new_targets = old_targets if values["targets"] is None else \
        [{"id": None, **t} for t in values["targets"]]
    number = (session.scalar(select(func.max(MouVersion.number))
                             .where(MouVersion.mou_id == mou.id)) or 0) + 1
    diff = "\n".join(difflib.unified_diff(
        text_of(old, old_targets), text_of(new, new_targets),
        f"{mou.number} version {mou.current_version}", f"{mou.number} version {number}",
        lineterm=""))
    if not diff:
        raise ValidationError("the amendment changes nothing",
                              fields={"sections": ["no change to the text or targets"]})
    for position, s in enumerate(new):
        session.add(MouSection(mou_id=mou.id, version=number, position=position, **s))
    version = MouVersion(mou_id=mou.id, number=number, status="proposed",
                         summary=values["summary"], diff=diff, targets=new_targets,
                         proposed_by=service.actor.email)
    session.add(version)
    session.flush()
    note(service, mou, f"Amendment proposed as version {number} by {service.actor.email}: "
                       f"{values['summary']}")
    return version


def _proposed(service: RecordService, mou: Mou, number: int) -> MouVersion:
    version = service.session.scalar(select(MouVersion).where(
        MouVersion.mou_id == mou.id, MouVersion.number == number))
    if version is None:
        raise NotFound(f"{mou.number} has no version {number}")
    if version.status != "proposed":
        raise Conflict(f"version {number} of {mou.number} is {version.status}, not proposed")
    return version


def decide(service: RecordService, mou: Mou, number: int, approve: bool) -> MouVersion:
    """Approve (it takes effect) or reject a proposed amendment; never one's own."""
    service.require(APPROVE_PERMISSION, mou)
    version = _proposed(service, mou, number)
    if version.proposed_by == service.actor.email:
        raise Conflict("an amendment is approved by someone other than who proposed it",
                       reasons=[f"{service.actor.email} proposed version {number}"])
    version.status = "approved" if approve else "rejected"
    version.approved_by = service.actor.email
    version.approved_at = utcnow()
    if approve:
        service.set_fields(mou, {"current_version": number})
        _replace_targets(service.session, mou, version.targets)
        version.targets = [target_dict(t) for t in targets(service.session, mou)]
    verb = "approved; it is now in force" if approve else "rejected"
    note(service, mou, f"Amendment version {number} {verb} by {service.actor.email}.")
    return version
