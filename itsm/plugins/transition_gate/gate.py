"""The operations gate itself: what is missing before go-live, going live (the catalog
service too, as the reference kind ``service``), holding the service's own go-live back,
early-life support for the service's incidents, and reminders before due dates."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    InputError,
    Link,
    Record,
    RecordChange,
    RecordService,
    Ref,
    ValidationError,
    current_itsm,
    reference_get,
    reference_kind,
    request_reference_status,
    resolve_reference,
    utcnow,
)
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import (
    EARLY_LIFE,
    OPEN_STATES,
    Deliverable,
    GateException,
    Role,
    ServiceTransition,
)


def excepted_ids(session: Session, trn: ServiceTransition) -> set[int]:
    """Deliverables covered by a gate exception that still runs today."""
    return set(session.scalars(select(GateException.deliverable_id).where(
        GateException.transition_id == trn.id, GateException.until >= gate.today())))


def missing(session: Session, trn: ServiceTransition) -> list[str]:
    """Exactly what stands between ``trn`` and go-live (empty: the gate passes)."""
    waived = excepted_ids(session, trn)
    out = []
    for item in gate.deliverables(session, trn):
        if item.mandatory and item.state != "approved" and item.id not in waived:
            extra = f": {item.rejection_reason}" if item.state == "rejected" else ""
            out.append(f"deliverable “{item.title}” is {item.state}, not approved "
                       f"(owner {item.owner}, approver {item.approver}){extra}")
        elif item.mandatory and item.id not in waived and (changed := gate.deliverable_changes(
                item)):
            out.append(f"deliverable “{item.title}” differs from what {item.decided_by} "
                       f"approved: {', '.join(changed)} changed since")
    if trn.accepted_at is None:
        out.append(f"the service manager {trn.service_manager or '(none named)'} has not "
                   "accepted responsibility for the service")
    elif changed := gate.acceptance_changes(session, trn):
        out.append(f"the service manager {trn.accepted_by} accepted another checklist: "
                   f"{', '.join(changed)} changed since; they accept again")
    return out


def go_live_refusals(session: Session, trn: ServiceTransition, actor: Actor) -> list[str]:
    """Reasons the ``go_live`` transition is refused now (``itsm_transition_guard``)."""
    svc = RecordService(current_itsm(), session, actor)
    reasons = []
    if actor.email != trn.project_manager and not gate.is_gatekeeper(svc):
        reasons.append(f"only the project manager ({trn.project_manager}) or a gatekeeper "
                       "takes the service live")
    return reasons + missing(session, trn)


SERVICE = "service"  # the reference kind of the services a transition takes live


def catalog_enabled() -> bool:
    """Whether an enabled plugin provides services (a service catalog)."""
    return reference_kind(SERVICE) is not None


def lookup(session: Session, value: str) -> Ref | None:
    """The provider's service for what a user typed (its id, key or name), or None (no
    provider enabled, or unknown)."""
    if not value or not catalog_enabled():
        return None
    try:
        return resolve_reference(session, SERVICE, value)
    except InputError:
        return None


def service_of(session: Session, trn: ServiceTransition) -> Ref | None:
    """The transition's service: by its stable id once known (a rename or a merge keeps
    it), else by the key or name it was given."""
    if trn.catalog_id is not None:
        found = reference_get(session, SERVICE, str(trn.catalog_id))
        if found is not None and found.merged_into:
            found = reference_get(session, SERVICE, found.merged_into) or found
        return found
    return lookup(session, trn.catalog_key or trn.service)


def _stable_id(ref: Ref | None) -> int | None:
    # The column keeps a catalog's numeric ids; a provider with other ids is matched by name.
    return int(ref.id) if ref is not None and ref.id.isdigit() and len(ref.id) < 12 else None


# -- record rules --------------------------------------------------------------------------


def prepare(session: Session, trn: ServiceTransition, kind: str, transition: str | None,
            changed: dict) -> None:
    """The transition's own fields, set before the change is journaled: people checked,
    the catalog service found, acceptance withdrawn from a replaced service manager,
    the time the gate passed and the end of early-life support."""
    if kind == "created":
        trn.project_manager = gate.require_user(session, trn.project_manager,
                                                "project_manager")
        trn.service_manager = gate.require_user(session, trn.service_manager,
                                                "service_manager")
        _link_catalog(session, trn)
        gate.choose_template(session, trn)
    elif kind == "updated":
        on_updated(session, trn, changed)
    elif kind == "transitioned" and transition == "go_live":
        now = utcnow()
        trn.gate_passed_at = now
        trn.support_until = now + timedelta(days=trn.support_days or 0)
        found = service_of(session, trn)
        if found is not None:
            trn.service_name = found.label
            trn.catalog_id = _stable_id(found)


def on_created(session: Session, trn: ServiceTransition) -> None:
    """The checklist and roles filled in."""
    session.flush()
    gate.items_from_template(session, trn)
    session.add(Role(transition_id=trn.id, role="Project manager", name=trn.project_manager,
                     email=trn.project_manager, phone="",
                     responsibility="Delivers the project and the checklist."))
    session.add(Role(transition_id=trn.id, role="Service manager", name=trn.service_manager,
                     email=trn.service_manager, phone="",
                     responsibility="Accepts responsibility for the live service."))


def _link_catalog(session: Session, trn: ServiceTransition) -> None:
    trn.service = (trn.service or "").strip()
    if not trn.service:
        raise ValidationError("name the service (its catalog key or its name)",
                              fields={"service": ["required"]})
    found = lookup(session, trn.service)
    trn.catalog_key = trn.service[:100] if found else ""
    trn.catalog_id = _stable_id(found)
    trn.service_name = found.label if found else trn.service


def on_updated(session: Session, trn: ServiceTransition, changed: dict) -> None:
    """Re-check people and service; a new service manager must accept again."""
    for field in ("project_manager", "service_manager"):
        if field in changed:
            setattr(trn, field, gate.require_user(session, getattr(trn, field), field))
    if "service" in changed:
        _link_catalog(session, trn)
    if "service_manager" in changed and trn.accepted_at is not None:
        trn.accepted_at, trn.accepted_by = None, ""


def on_transitioned(session: Session, trn: ServiceTransition, name: str,
                    actor: Actor) -> None:
    if name == "start":
        found = service_of(session, trn)
        if found is not None and found.lifecycle in ("planned", ""):
            _set_catalog_status(session, found.id, "in_transition")
    elif name == "go_live":
        go_live(session, trn, actor)


def _set_catalog_status(session: Session, id_: str, status: str) -> Ref | None:
    # The gate decided (its guard checked the actor); the system moves the catalog entry,
    # whose own permission (catalog.manage) the project manager need not hold.
    system = gate.system_service(session)
    return request_reference_status(system, SERVICE, id_, status)


def go_live(session: Session, trn: ServiceTransition, actor: Actor) -> None:
    """The gate passed (early-life support started, see :func:`prepare`): publish the
    catalog service."""
    session.flush()  # the catalog's guard asks for open transitions: this one has passed
    found = service_of(session, trn)
    system = gate.system_service(session)
    if found is None:
        text = (f"The gate passed: {trn.service_name or trn.service} is live. No service "
                "catalog knows it (the catalog is not enabled or has no such service).")
    else:
        published = _set_catalog_status(session, found.id, "live")
        text = (f"The gate passed: the catalog service {found.label} is "
                f"{(published or found).lifecycle or 'live'}.")
    until = trn.support_until.date().isoformat()
    who = actor.name or actor.email
    system.comment(trn, f"{text} Early-life support runs until {until} ({who}).",
                   public=False)
    gate.emit(session, "transition.went_live", trn, actor,
              service=trn.service_name or trn.service, support_until=until)


# -- the catalog's own go-live ---------------------------------------------------------------


def service_status_refusals(session: Session, ref: Ref, status: str) -> list[str]:
    """A service may not go live while an open transition for it has not passed the gate
    (``itsm_reference_status_guard``). Matched by the service's stable id, so a rename
    or a merge keeps the veto; a transition not yet linked to it is matched by what the
    provider resolves its service to now."""
    if ref.kind != SERVICE or status != "live":
        return []
    open_ = select(ServiceTransition).where(
        ServiceTransition.state.in_(OPEN_STATES), ServiceTransition.gate_passed_at.is_(None))
    number = _stable_id(ref)
    held = list(session.scalars(open_.where(ServiceTransition.catalog_id == number)
                                .order_by(ServiceTransition.id))) if number is not None else []
    for trn in session.scalars(open_.where(ServiceTransition.catalog_id.is_(None))
                               .order_by(ServiceTransition.id)):
        found = lookup(session, trn.catalog_key or trn.service)
        if (found is not None and found.id == ref.id) or \
                (trn.service or "").strip().lower() == ref.label.lower():
            held.append(trn)
    out = []
    for trn in sorted(held, key=lambda t: t.id):
        count = len(missing(session, trn))
        out.append(f"{ref.label} is held back by the operations gate of {trn.number} "
                   f"({trn.title}): {count} item{'s' if count != 1 else ''} missing; it goes "
                   "live when that transition passes the gate")
    return out


def service_merged(session: Session, ref: Ref, into: Ref) -> None:
    """A service merged into another: its transitions follow the one that stays."""
    old, new = _stable_id(ref), _stable_id(into)
    if ref.kind != SERVICE or old is None or new is None:
        return
    session.execute(update(ServiceTransition).where(ServiceTransition.catalog_id == old)
                    .values(catalog_id=new, service_name=into.label))


# -- early-life support ------------------------------------------------------------------------


def flag_incident(session: Session, record: Record, change: RecordChange) -> None:
    """An incident of a service in early-life support: link it to the transition, note
    it on the incident and tell the project manager."""
    conf = gate.settings()
    if record.type not in conf["incident_types"] or change.kind not in ("created",
                                                                         "updated"):
        return
    field = str(conf["service_field"])
    if change.kind == "updated" and field not in change.changes:
        return
    stored = str(getattr(record, field, "") or "").strip()
    if not stored:
        return
    # The incident stores the service's stable id when a provider knows it: follow it by
    # id (a rename keeps the flag); a name still matches transitions without a catalog.
    value = stored.lower()
    known = reference_get(session, SERVICE, stored) if catalog_enabled() else None
    same = [func.lower(ServiceTransition.service) == value,
            func.lower(ServiceTransition.service_name) == value,
            func.lower(ServiceTransition.catalog_key) == value]
    if (number := _stable_id(known)) is not None:
        same.append(ServiceTransition.catalog_id == number)
    now = utcnow()
    candidates = session.scalars(select(ServiceTransition).where(
        ServiceTransition.state == "early_life", ServiceTransition.support_until >= now,
        or_(*same)))
    system = gate.system_service(session)
    for trn in candidates:
        known = session.scalar(select(Link.id).where(
            Link.source_id == trn.id, Link.target_id == record.id,
            Link.kind == EARLY_LIFE.name))
        if known is not None:
            continue
        system.link(trn, record.number, EARLY_LIFE.name)
        system.comment(record, f"Early-life support: {trn.service_name} went live recently; "
                               f"this incident is reported to the project of {trn.number} "
                               f"({trn.project}).", public=False)
        gate.emit(session, "transition.early_life_incident", trn, change.actor,
                  incident=record.number, incident_title=record.title,
                  project_manager=trn.project_manager)


def early_life_incidents(svc: RecordService, trn: ServiceTransition) -> list[dict]:
    """The incidents flagged during the transition's early-life support."""
    ids = svc.session.scalars(select(Link.target_id).where(
        Link.source_id == trn.id, Link.kind == EARLY_LIFE.name).order_by(Link.id))
    refs = [svc.record_ref(i) for i in ids]
    return [r for r in refs if r is not None]


# -- reminders ---------------------------------------------------------------------------------


def send_reminders(now: datetime) -> int:
    """Tell each owner once that a deliverable falls due within ``remind_days``; a row is
    claimed with a conditional UPDATE, so several workers never remind twice."""
    install = current_itsm()
    horizon = now.date() + timedelta(days=int(gate.settings()["remind_days"]))
    sent = 0
    with install.unit_of_work(Actor.system()) as svc:
        session = svc.session
        due = session.execute(select(Deliverable.id, Deliverable.transition_id).join(
            ServiceTransition, ServiceTransition.id == Deliverable.transition_id).where(
            ServiceTransition.state.in_(OPEN_STATES), Deliverable.reminded_at.is_(None),
            Deliverable.state.in_(("open", "rejected")), Deliverable.due_date.is_not(None),
            Deliverable.due_date <= horizon)).all()
        for item_id, trn_id in due:
            claimed = session.execute(update(Deliverable).where(
                Deliverable.id == item_id, Deliverable.reminded_at.is_(None))
                .values(reminded_at=now)).rowcount
            if not claimed:
                continue
            item = session.get(Deliverable, item_id)
            trn = session.get(ServiceTransition, trn_id)
            late = item.due_date < now.date()
            gate.emit(session, "transition.deliverable_due", trn, Actor.system(),
                      deliverable=item.title, owner=item.owner,
                      due_date=item.due_date.isoformat(), late=late)
            sent += 1
    return sent
