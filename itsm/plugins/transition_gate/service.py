"""The transition gate's service layer: settings, who may do what, and the checklist
(deliverables, their evidence, approvals, gate exceptions) and the service manager's
acceptance, shared by the API, the pages and the CLI.

Every function takes the caller's :class:`~itsm.core.records.RecordService` (actor,
session, permission check of one unit of work); each change is journaled on the
transition record as a work note through that service, in the same transaction.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    MAX_DB_INTEGER,
    Actor,
    ApprovalScope,
    Attachment,
    Boolean,
    Conflict,
    Event,
    Forbidden,
    InputError,
    NotFound,
    RecordService,
    User,
    ValidationError,
    current_itsm,
    parse_int,
    utcnow,
)
from itsm.plugin import load_input as load
from itsm.plugins.transition_gate.models import (
    EVIDENCE_KINDS,
    OPEN_STATES,
    TRANSITION,
    ChecklistTemplate,
    Deliverable,
    GateException,
    Role,
    ServiceTransition,
)

PLUGIN = "transition_gate"
MANAGE = "transition.manage"
GATEKEEPER = "transition.gatekeeper"

DEFAULT_SETTINGS: dict[str, Any] = {
    # The checklist template a new transition starts from when it names none.
    "default_template": "default",
    # Deliverable owners are reminded this many days before the due date (once).
    "remind_days": 3,
    # Early-life support: records of these types whose service field names the service
    # are flagged and reported to the project.
    "incident_types": ["incident"],
    "service_field": "affected_service",
    # Members of this group are gatekeepers (grant exceptions, edit templates).
    "gatekeeper_group": "Service Management Office",
    "notify_channels": ["email", "log"],
}


def settings() -> dict[str, Any]:
    """The plugin's settings, lists accepted as comma-separated text too."""
    raw = dict(current_itsm().plugin_settings(PLUGIN))
    types = raw.get("incident_types") or []
    raw["incident_types"] = ([t.strip() for t in types.split(",") if t.strip()]
                             if isinstance(types, str) else list(types))
    return raw




def system_service(session: Session) -> RecordService:
    """A record service acting as the system, in the caller's transaction."""
    return RecordService(current_itsm(), session, Actor.system())


def today() -> date:
    return utcnow().date()


# -- transitions and people ----------------------------------------------------------------


def get_transition(svc: RecordService, number: str) -> ServiceTransition:
    """The transition ``number`` if the actor may read it (else NotFound)."""
    record = svc.get((number or "").strip().upper()[:32], TRANSITION.name)
    assert isinstance(record, ServiceTransition)
    return record


def require_user(session: Session, email: str, field: str) -> str:
    """The normalised e-mail of an active user, or a 422 naming ``field``."""
    email = (email or "").strip().lower()
    if session.scalar(select(User.id).where(User.email == email, User.active.is_(True))) \
            is None:
        raise ValidationError(f"{field}: no active user {email}",
                              fields={field: [f"no active user {email}"]})
    return email


def is_manager(svc: RecordService, trn: ServiceTransition) -> bool:
    """Project manager of ``trn``, a gatekeeper or an admin (``transition.manage``)."""
    return svc.can(MANAGE, trn)


def is_gatekeeper(svc: RecordService) -> bool:
    return svc.can(GATEKEEPER)


def require_manager(svc: RecordService, trn: ServiceTransition) -> None:
    if not is_manager(svc, trn):
        svc.denials.append((MANAGE, trn.id))
        raise Forbidden(f"{svc.actor.email} may not manage {trn.number}: its project "
                        f"manager ({trn.project_manager}) or a gatekeeper does that")


def require_open(trn: ServiceTransition) -> None:
    if trn.state not in OPEN_STATES:
        raise Conflict(f"{trn.number} is {trn.state.replace('_', ' ')}: its checklist is "
                       "closed")


def _name(svc: RecordService) -> str:
    """The acting person as the journal's readers know them: their display name."""
    return svc.actor.name or svc.actor.email


def note(svc: RecordService, trn: ServiceTransition, text: str) -> None:
    """Journal ``text`` on the transition as a work note (as the actor when they may
    comment on it, else as the system on their behalf)."""
    writer = svc if svc.can(f"{TRANSITION.name}.comment", trn) else system_service(
        svc.session)
    who = "" if writer is svc else f" ({_name(svc)})"
    writer.comment(trn, text + who, public=False)


def emit(session: Session, name: str, trn: ServiceTransition, actor: Actor,
         **payload: Any) -> None:
    """Write one of the plugin's own events to the outbox, in this transaction."""
    event = Event(name=name, record_id=trn.id, actor_id=actor.id, payload={
        "record": {"number": trn.number, "type": trn.type, "title": trn.title,
                   "state": trn.state, "priority": trn.priority},
        "actor": actor.email, "public": False, **payload})
    session.add(event)
    session.info.setdefault("itsm_events", []).append(event)


# -- checklist -------------------------------------------------------------------------------


class DeliverableIn(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    mandatory = Boolean()
    document_url = fields.String(validate=validate.Length(max=500), metadata={
        "description": "the template document to start from, where one applies"})
    owner = fields.Email(metadata={"description": "who delivers (default: the project "
                                                  "manager)"})
    approver = fields.Email(metadata={"description": "who approves (default: the service "
                                                     "manager)"})
    due_date = fields.Date(allow_none=True)


class EvidenceIn(Schema):
    class Meta:
        unknown = RAISE

    evidence_kind = fields.String(required=True,
                                  validate=validate.OneOf([k for k in EVIDENCE_KINDS if k]))
    evidence = fields.String(required=True, validate=validate.Length(min=1, max=500),
                             metadata={"description": "a web address, a record number "
                                                      "(KB0000012) or an attachment id of "
                                                      "the transition"})
    evidence_note = fields.String(load_default="", validate=validate.Length(max=5000))


class DecisionIn(Schema):
    class Meta:
        unknown = RAISE

    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    reason = fields.String(load_default="", validate=validate.Length(max=5000))


class ExceptionIn(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, validate=validate.Length(min=3, max=5000))
    until = fields.Date(required=True, metadata={"description": "the exception counts "
                                                                "until this date"})


# What an approver approves: the deliverable as described and the evidence handed in.
DELIVERABLE_SCOPE = ApprovalScope(
    "approval", ("title", "description", "mandatory", "document_url", "owner", "approver",
                 "evidence_kind", "evidence", "evidence_note"))
# What the service manager accepts: the service and the checklist as it stands.
ACCEPTANCE_SCOPE = ApprovalScope("acceptance", ("service", "checklist"))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def deliverable_scope(item: Deliverable) -> dict[str, Any]:
    return DELIVERABLE_SCOPE.values(item)


def deliverable_changes(item: Deliverable) -> list[str]:
    """The fields of an approved deliverable changed since its approval (empty: none)."""
    if item.state != "approved" or not item.approved_digest:
        return []
    now = deliverable_scope(item)
    if DELIVERABLE_SCOPE.digest(now) == item.approved_digest:
        return []
    return DELIVERABLE_SCOPE.changes(item.approved_scope or {}, now)


def acceptance_scope(session: Session, trn: ServiceTransition) -> dict[str, Any]:
    """The service (by the catalog's stable id when known) and every deliverable's
    description, keyed by its title."""
    service = f"#{trn.catalog_id}" if trn.catalog_id is not None else trn.service
    checklist = {f"“{item.title}”": {k: v for k, v in deliverable_scope(item).items()
                                     if not k.startswith("evidence")}
                 for item in deliverables(session, trn)}
    return ACCEPTANCE_SCOPE.values({"service": service, "checklist": checklist})


def acceptance_changes(session: Session, trn: ServiceTransition) -> list[str]:
    """What changed since the service manager accepted: ``service`` or the titles of the
    deliverables added, removed or changed (empty: nothing, or no digest recorded)."""
    if trn.accepted_at is None or not trn.accepted_digest:
        return []
    now = acceptance_scope(session, trn)
    if ACCEPTANCE_SCOPE.digest(now) == trn.accepted_digest:
        return []
    then = trn.accepted_scope or {}
    out = ["service"] if then.get("service") != now["service"] else []
    old, new = then.get("checklist") or {}, now["checklist"]
    out += [name for name in [*old, *(n for n in new if n not in old)]
            if old.get(name) != new.get(name)]
    return out


def deliverables(session: Session, trn: ServiceTransition) -> list[Deliverable]:
    return list(session.scalars(select(Deliverable).where(
        Deliverable.transition_id == trn.id).order_by(Deliverable.position, Deliverable.id)))


def get_deliverable(svc: RecordService, trn: ServiceTransition, item_id: int) -> Deliverable:
    found = svc.session.get(Deliverable, item_id)
    if found is None or found.transition_id != trn.id:
        raise NotFound(f"no deliverable {item_id} in {trn.number}")
    return found


def choose_template(session: Session, trn: ServiceTransition) -> None:
    """Name the new transition's checklist template: the one asked for, or the default
    one when it is installed (set before the transition is journaled)."""
    name = trn.template or str(settings()["default_template"])
    template = session.scalar(select(ChecklistTemplate.name).where(
        ChecklistTemplate.name == name, ChecklistTemplate.active.is_(True)))
    if template is None:
        if not trn.template:
            return  # no default template installed: an empty checklist
        known = ", ".join(session.scalars(select(ChecklistTemplate.name).where(
            ChecklistTemplate.active.is_(True)).order_by(ChecklistTemplate.name))) or "none"
        raise ValidationError(f"no checklist template {name!r} (templates: {known})",
                              fields={"template": ["no active template of this name"]})
    trn.template = template


def items_from_template(session: Session, trn: ServiceTransition) -> None:
    """Copy the checklist of the transition's template (see :func:`choose_template`)."""
    template = session.scalar(select(ChecklistTemplate).where(
        ChecklistTemplate.name == trn.template, ChecklistTemplate.active.is_(True))) \
        if trn.template else None
    if template is None:
        return
    for position, item in enumerate(template.items or []):
        due = None
        if trn.go_live_date is not None and item.get("due_days_before") is not None:
            due = trn.go_live_date - timedelta(days=int(item["due_days_before"]))
        role = (item.get("approver_role") or "").strip()[:100]
        session.add(Deliverable(
            transition_id=trn.id, position=position, title=item["title"][:200],
            description=item.get("description", ""), mandatory=item.get("mandatory", True),
            document_url=item.get("document_url", ""), owner=trn.project_manager,
            approver=role_holder(session, trn, role) or trn.service_manager,
            approver_role=role, due_date=due, state="open", evidence_kind="",
            evidence="", evidence_note="", rejection_reason="", decided_by=""))
    session.flush()


def role_holder(session: Session, trn: ServiceTransition, role: str) -> str | None:
    """The e-mail of the active user who holds ``role`` in the transition: its service or
    project manager, or a role of its list (``Service desk lead``); None when nobody does
    (yet)."""
    wanted = role.strip().casefold()
    if wanted in ("", "service manager"):
        email = trn.service_manager
    elif wanted == "project manager":
        email = trn.project_manager
    else:
        email = next((r.email for r in session.scalars(select(Role).where(
            Role.transition_id == trn.id).order_by(Role.id))
            if r.role.strip().casefold() == wanted and r.email), None)
    if not email:
        return None
    email = email.strip().lower()
    active = session.scalar(select(User.id).where(User.email == email,
                                                  User.active.is_(True)))
    return email if active is not None else None


def assign_role_approvals(svc: RecordService, trn: ServiceTransition) -> None:
    """Deliverables whose template names a role as approver go to the person who now
    holds it (open and rejected ones: one submitted or decided keeps its approver)."""
    for item in deliverables(svc.session, trn):
        if not item.approver_role or item.state not in ("open", "rejected"):
            continue
        holder = role_holder(svc.session, trn, item.approver_role)
        if holder and holder != item.approver:
            item.approver = holder
            note(svc, trn, f"Deliverable “{item.title}” is approved by {holder}, "
                           f"the {item.approver_role.lower()}.")
    svc.session.flush()


def save_deliverable(svc: RecordService, trn: ServiceTransition, data: Any,
                     item: Deliverable | None = None) -> Deliverable:
    """Add a deliverable to the checklist, or change one (only the fields sent)."""
    require_manager(svc, trn)
    require_open(trn)
    values = load(DeliverableIn(), data, partial=item is not None)
    session = svc.session
    for field in ("owner", "approver"):
        if field in values:
            values[field] = require_user(session, values[field], field)
    if item is None:
        position = len(deliverables(session, trn))
        item = Deliverable(transition_id=trn.id, position=position, title=values["title"],
                           owner=trn.project_manager, approver=trn.service_manager,
                           state="open", mandatory=True, description="", document_url="",
                           evidence_kind="", evidence="", evidence_note="",
                           rejection_reason="", decided_by="")
        session.add(item)
        what = "added"
    else:
        what = "changed (" + ", ".join(sorted(values)) + ")"
    for key, value in values.items():
        setattr(item, key, value)
    if "due_date" in values:
        item.reminded_at = None  # a new due date earns a new reminder
    session.flush()
    note(svc, trn, f"Deliverable “{item.title}” {what}.")
    changed = deliverable_changes(item)
    if changed:
        # Approved as it was: the approver looks again at what it is now.
        item.state, item.decided_at = "submitted", None
        session.flush()
        note(svc, trn, _sentence(DELIVERABLE_SCOPE.superseded_note(
            changed, f"of “{item.title}” by {item.decided_by}"))
            + f"; {item.approver} decides again.")
    accepted = acceptance_changes(session, trn)
    if accepted:
        note(svc, trn, _sentence(ACCEPTANCE_SCOPE.superseded_note(
            accepted, f"by {trn.accepted_by}"))
            + "; the service manager accepts the checklist again before go-live.")
    return item


def _check_evidence(svc: RecordService, trn: ServiceTransition, kind: str, value: str) -> str:
    value = value.strip()
    if kind == "link" and not value.startswith(("https://", "http://", "/")):
        raise ValidationError("a link is a web address (https://...)",
                              fields={"evidence": ["a web address"]})
    if kind == "record":
        try:
            value = svc.get(value.upper()[:32]).number
        except NotFound:
            raise ValidationError(f"no record {value}",
                                  fields={"evidence": ["no such record"]}) from None
    if kind == "attachment":
        try:
            attachment_id = parse_int(value, "evidence", minimum=1, maximum=MAX_DB_INTEGER)
        except InputError:
            attachment_id = -1  # matches none: the message below names the value
        found = svc.session.scalar(select(Attachment.id).where(
            Attachment.record_id == trn.id, Attachment.id == attachment_id))
        if found is None:
            raise ValidationError(f"no attachment {value} on {trn.number}: attach the file "
                                  "to the transition first",
                                  fields={"evidence": ["no such attachment"]})
    return value


def submit(svc: RecordService, trn: ServiceTransition, item: Deliverable, data: Any) \
        -> Deliverable:
    """The owner hands in the deliverable with its evidence; the approver is told."""
    if svc.actor.email != item.owner and not is_manager(svc, trn):
        raise Forbidden(f"{svc.actor.email} may not submit “{item.title}”: its owner "
                        f"{item.owner} does")
    require_open(trn)
    values = load(EvidenceIn(), data)
    if item.state not in ("open", "rejected"):
        raise Conflict(f"“{item.title}” is {item.state} already")
    item.evidence_kind = values["evidence_kind"]
    item.evidence = _check_evidence(svc, trn, item.evidence_kind, values["evidence"])
    item.evidence_note = values["evidence_note"]
    item.state, item.submitted_at, item.rejection_reason = "submitted", utcnow(), ""
    svc.session.flush()
    note(svc, trn, f"Deliverable “{item.title}” submitted for approval by {item.approver} "
                   f"({item.evidence_kind}: {item.evidence}).")
    emit(svc.session, "transition.deliverable_submitted", trn, svc.actor,
         deliverable=item.title, approver=item.approver, owner=item.owner)
    return item


def decide(svc: RecordService, trn: ServiceTransition, item: Deliverable, data: Any) \
        -> Deliverable:
    """The appointed approver approves the deliverable, or rejects it with a reason."""
    if svc.actor.email != item.approver and svc.actor.role != "admin":
        raise Forbidden(f"{svc.actor.email} may not decide on “{item.title}”: its approver "
                        f"{item.approver} does")
    require_open(trn)
    values = load(DecisionIn(), data)
    if item.state != "submitted":
        raise Conflict(f"“{item.title}” is {item.state}: only a submitted deliverable is "
                       "approved or rejected")
    reason = values["reason"].strip()
    if values["decision"] == "reject" and not reason:
        raise ValidationError("say why you reject the deliverable",
                              fields={"reason": ["required to reject"]})
    item.state = "approved" if values["decision"] == "approve" else "rejected"
    item.rejection_reason = reason if item.state == "rejected" else ""
    item.decided_at, item.decided_by = utcnow(), svc.actor.email
    if item.state == "approved":
        item.approved_scope = deliverable_scope(item)
        item.approved_digest = DELIVERABLE_SCOPE.digest(item.approved_scope)
    svc.session.flush()
    note(svc, trn, f"Deliverable “{item.title}” {item.state} by {_name(svc)}"
                   + (f": {reason}" if reason else "."))
    if item.state == "rejected":
        emit(svc.session, "transition.deliverable_rejected", trn, svc.actor,
             deliverable=item.title, owner=item.owner, reason=reason)
    return item


def exceptions(session: Session, trn: ServiceTransition) -> list[GateException]:
    return list(session.scalars(select(GateException).where(
        GateException.transition_id == trn.id).order_by(GateException.id)))


def grant_exception(svc: RecordService, trn: ServiceTransition, item: Deliverable,
                    data: Any) -> GateException:
    """A gatekeeper lets the gate pass without ``item`` until a date, for a reason."""
    if not is_gatekeeper(svc):
        svc.denials.append((GATEKEEPER, trn.id))
        raise Forbidden(f"{svc.actor.email} may not grant gate exceptions (gatekeepers "
                        "only)")
    require_open(trn)
    values = load(ExceptionIn(), data)
    if values["until"] < today():
        raise ValidationError("the exception must run until today or later",
                              fields={"until": ["in the past"]})
    if item.state == "approved":
        raise Conflict(f"“{item.title}” is approved: it needs no exception")
    granted = GateException(transition_id=trn.id, deliverable_id=item.id,
                            reason=values["reason"].strip(), until=values["until"],
                            granted_by=svc.actor.email, granted_at=utcnow())
    svc.session.add(granted)
    svc.session.flush()
    note(svc, trn, f"Gate exception for “{item.title}” granted by {_name(svc)} until "
                   f"{granted.until.isoformat()}: {granted.reason}")
    return granted


def accept(svc: RecordService, trn: ServiceTransition) -> ServiceTransition:
    """The service manager explicitly accepts responsibility for the service."""
    if svc.actor.email != trn.service_manager:
        raise Forbidden(f"only the service manager ({trn.service_manager}) accepts "
                        f"responsibility for {trn.service_name or trn.service}")
    require_open(trn)
    if trn.accepted_at is not None and not acceptance_changes(svc.session, trn):
        raise Conflict(f"{trn.service_manager} accepted {trn.number} already")
    scope = acceptance_scope(svc.session, trn)
    svc.set_fields(trn, {"accepted_by": svc.actor.email, "accepted_at": utcnow(),
                         "accepted_scope": scope,
                         "accepted_digest": ACCEPTANCE_SCOPE.digest(scope)})
    note(svc, trn, f"The service manager {_name(svc)} accepts responsibility for "
                   f"the service {trn.service_name or trn.service}.")
    return trn
