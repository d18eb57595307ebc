"""Incidents on the service spine: the affected service and configuration item are
references (kinds ``service`` and ``configuration_item``), so routing, the service's
group and the agencies a major incident reaches follow the thing, not its spelling."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from itsm.plugin import (
    ImpactHit,
    Ref,
    reference_get,
    reference_impact,
    reference_kind,
    reference_ref,
)

SERVICE, CI = "service", "configuration_item"
REFERENCES = {"affected_service": SERVICE, "config_item": CI}


def _hits(session: Session, record: Any) -> list[ImpactHit]:
    out: list[ImpactHit] = []
    if getattr(record, "config_item", "") and reference_kind(CI) is not None:
        out += reference_impact(session, CI, [record.config_item])
    if getattr(record, "affected_service", "") and reference_kind(SERVICE) is not None:
        out += reference_impact(session, SERVICE, [record.affected_service])
    return out


def fill_service(session: Session, record: Any) -> None:
    """An incident on a configuration item and no service named: the nearest service
    that depends on the item (so its group, MOU targets and early life apply)."""
    if getattr(record, "affected_service", "") or not getattr(record, "config_item", ""):
        return
    if reference_kind(CI) is None:
        return
    services = [h for h in reference_impact(session, CI, [record.config_item])
                if h.ref.kind == SERVICE]
    if services:
        record.affected_service = min(services, key=lambda h: len(h.path)).ref.id


def route_group(session: Session, record: Any) -> int | None:
    """The resolver group of the incident's service, else of its configuration item
    (routing by service comes before routing by category)."""
    for kind, value in ((SERVICE, getattr(record, "affected_service", "")),
                        (CI, getattr(record, "config_item", ""))):
        found = reference_get(session, kind, value) if value else None
        group = found.support_group if found is not None else None
        if group and group.isdigit():
            return int(group)
    return None


def _as_dict(ref: Ref) -> dict[str, Any]:
    return {"kind": ref.kind, "id": ref.id, "label": ref.label, "url": ref.url}


def impact(session: Session, record: Any) -> dict[str, Any]:
    """The services and agencies the incident's service and item reach, with paths."""
    hits = _hits(session, record)
    services = {h.ref.id: h for h in hits if h.ref.kind == SERVICE}
    own = getattr(record, "affected_service", "")
    if own and own not in services:
        services = {own: ImpactHit(reference_ref(session, SERVICE, own), ()), **services}
    agencies = {h.ref.id: h for h in hits if h.ref.kind == "agency"}
    return {
        "services": [{**_as_dict(h.ref), "path": [r.label for r in h.path]}
                     for h in services.values()],
        "agencies": [{**_as_dict(h.ref), "path": [r.label for r in h.path]}
                     for h in sorted(agencies.values(), key=lambda h: h.ref.label)],
    }
