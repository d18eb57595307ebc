"""The catalog as the provider of the reference kind ``service``: other plugins refer to
a catalog service by its stable id (the row id, as text), find it by id, slug or name,
reach the agencies that use it, and ask for its status to change, all through the core's
reference contract, never by importing this plugin."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    ImpactHit,
    RecordService,
    Ref,
    ReferenceKind,
)
from itsm.plugins.catalog.models import Service, ServiceAgency

KIND = "service"
PRIORITY = 100  # the catalog is the authority on services; a CMDB's fallback is lower


def service_ref(service: Service, lifecycle: str | None = None) -> Ref:
    """The service as other plugins see it; ``lifecycle`` overrides its status (the one
    it had before a change being checked)."""
    status = service.status if lifecycle is None else lifecycle
    group = getattr(service, "resolver_group_id", None)
    return Ref(KIND, str(service.id), service.name, f"/portal/catalog/services/{service.slug}",
               "retired" if service.status == "retired" else "active", None, status or "",
               str(group) if group is not None else None)


def _number(value: str) -> int | None:
    text = value[1:] if value.startswith("#") else value
    return int(text) if text.isdigit() and len(text) < 12 else None


def get(session: Session, id_: str) -> Ref | None:
    number = _number(str(id_))
    found = session.get(Service, number) if number is not None else None
    return service_ref(found) if found is not None else None


def find(session: Session, value: str) -> Service | None:
    """A service by ``#<id>``, id, slug or name (case-insensitive)."""
    value = (value or "").strip()[:200]
    number = _number(value)
    if number is not None and (found := session.get(Service, number)) is not None:
        return found
    return session.scalar(select(Service).where(Service.slug == value.lower()[:100])) \
        or session.scalar(select(Service).where(func.lower(Service.name) == value.lower())
                          .order_by(Service.id).limit(1))


def resolve(session: Session, value: str) -> Ref | None:
    found = find(session, value)
    return service_ref(found) if found is not None else None


def choices(session: Session, actor: Actor, text: str, limit: int) -> list[Ref]:
    query = select(Service)
    if not actor.is_system and actor.role == "requester":
        # A requester sees the live services their agency may request, as in the portal.
        limited = select(ServiceAgency.service_id).where(
            ServiceAgency.service_id == Service.id)
        mine = select(ServiceAgency.service_id).where(
            ServiceAgency.service_id == Service.id, ServiceAgency.agency_id == actor.agency_id)
        query = query.where(Service.status == "live",
                            or_(~limited.exists(), mine.exists()))
    if text:
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        query = query.where(or_(func.lower(Service.name).like(like, escape="\\"),
                                Service.slug.like(like, escape="\\")))
    return [service_ref(s) for s in session.scalars(query.order_by(Service.name).limit(limit))]


def impact(session: Session, ids: list[str]) -> list[ImpactHit]:
    """The agencies that use the services: those it is offered to, or every agency when
    it is offered to everyone."""
    numbers = [n for n in (_number(i) for i in ids) if n is not None]
    if not numbers:
        return []
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(numbers)))}
    listed: dict[int, list[int]] = {}
    for service_id, agency_id in session.execute(select(
            ServiceAgency.service_id, ServiceAgency.agency_id).where(
            ServiceAgency.service_id.in_(list(services)))):
        listed.setdefault(service_id, []).append(agency_id)
    agencies = {a.id: a for a in session.scalars(select(Agency))}
    out = []
    for service_id, service in services.items():
        start = service_ref(service)
        for agency_id in sorted(listed.get(service_id) or agencies):
            agency = agencies.get(agency_id)
            if agency is not None:
                ref = Ref("agency", str(agency.id), agency.name or agency.code)
                out.append(ImpactHit(ref, (start, ref)))
    return out


def set_status(svc: RecordService, id_: str, status: str) -> Ref | None:
    from itsm.plugins.catalog.service import set_service_status

    found = find(svc.session, id_)
    if found is None:
        return None
    return service_ref(set_service_status(svc, found.id, status))


def kinds() -> list[ReferenceKind]:
    return [ReferenceKind(KIND, "Service", get=get, resolve=resolve, choices=choices,
                          impact=impact, priority=PRIORITY, set_status=set_status)]
