"""The operations gate itself: what is missing before go-live, going live (the catalog
service too, through hooks), holding the catalog's own go-live back, early-life support
for the service's incidents, and reminders before due dates."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Link,
    Record,
    RecordChange,
    RecordService,
    ServiceRef,
    ValidationError,
    current_itsm,
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


def catalog_enabled() -> bool:
    """Whether an enabled plugin keeps a service catalog (implements the lookup hook)."""
    return bool(current_itsm().hook.itsm_service_lookup.get_hookimpls())


def catalog_ref(trn: ServiceTransition) -> str:
    """How the transition finds its catalog service: by the catalog's stable id once
    known (a rename of the service keeps it), else by the key or name it was given."""
    return f"#{trn.catalog_id}" if trn.catalog_id is not None else \
        (trn.catalog_key or trn.service)


def lookup(session: Session, key: str) -> ServiceRef | None:
    """The catalog's view of a service, or None (no catalog enabled, or unknown)."""
    if not key:
        return None
    return current_itsm().hook.itsm_service_lookup(session=session, key=key)


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
        found = lookup(session, catalog_ref(trn))
        if found is not None:
            trn.catalog_key, trn.service_name = found.key, found.name
            trn.catalog_id = found.id


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
    trn.catalog_key = found.key if found else ""
    trn.catalog_id = found.id if found else None
    trn.service_name = found.name if found else trn.service


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
        found = lookup(session, catalog_ref(trn))
        if found is not None and found.status in ("planned", ""):
            _set_catalog_status(session, found.key, "in_transition")
    elif name == "go_live":
        go_live(session, trn, actor)


def _set_catalog_status(session: Session, key: str, status: str) -> ServiceRef | None:
    # The gate decided (its guard checked the actor); the system moves the catalog entry,
    # whose own permission (catalog.manage) the project manager need not hold.
    system = gate.system_service(session)
    return current_itsm().hook.itsm_service_status_requested(svc=system, key=key,
                                                             status=status)


def go_live(session: Session, trn: ServiceTransition, actor: Actor) -> None:
    """The gate passed (early-life support started, see :func:`prepare`): publish the
    catalog service."""
    session.flush()  # the catalog's guard asks for open transitions: this one has passed
    found = lookup(session, catalog_ref(trn))
    system = gate.system_service(session)
    if found is None:
        text = (f"The gate passed: {trn.service_name or trn.service} is live. No service "
                "catalog knows it (the catalog is not enabled or has no such service).")
    else:
        published = _set_catalog_status(session, found.key, "live")
        text = (f"The gate passed: the catalog service {found.key} is "
                f"{published.status if published else found.status}.")
    until = trn.support_until.date().isoformat()
    system.comment(trn, f"{text} Early-life support runs until {until} ({actor.email}).",
                   public=False)
    gate.emit(session, "transition.went_live", trn, actor,
              service=trn.service_name or trn.service, support_until=until)


# -- the catalog's own go-live ---------------------------------------------------------------


def service_status_refusals(session: Session, service: ServiceRef, status: str) -> list[str]:
    """A catalog service may not go live while an open transition for it has not passed
    the gate (``itsm_service_status_guard``)."""
    if status != "live":
        return []
    names = {service.key.lower(), service.name.lower()} - {""}
    # By the stable id first: a transition keeps its veto when the service is renamed.
    same = [ServiceTransition.catalog_key == service.key,
            func.lower(ServiceTransition.service).in_(names)]
    if service.id is not None:
        same.append(ServiceTransition.catalog_id == service.id)
    held = session.scalars(select(ServiceTransition).where(
        ServiceTransition.state.in_(OPEN_STATES), ServiceTransition.gate_passed_at.is_(None),
        or_(*same))
        .order_by(ServiceTransition.id))
    out = []
    for trn in held:
        count = len(missing(session, trn))
        out.append(f"{service.name} is held back by the operations gate of {trn.number} "
                   f"({trn.title}): {count} item{'s' if count != 1 else ''} missing; it goes "
                   "live when that transition passes the gate")
    return out


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
    value = str(getattr(record, field, "") or "").strip().lower()
    if not value:
        return
    now = utcnow()
    candidates = session.scalars(select(ServiceTransition).where(
        ServiceTransition.state == "early_life", ServiceTransition.support_until >= now,
        or_(func.lower(ServiceTransition.service) == value,
            func.lower(ServiceTransition.service_name) == value,
            func.lower(ServiceTransition.catalog_key) == value)))
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
