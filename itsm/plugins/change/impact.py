"""A change's impact on the service spine: its services and configuration items are
references (kinds ``service`` and ``configuration_item``), and what they reach through
``reference_impact`` (services, agencies) is what CAB rules, freeze windows, conflicts
and the agencies' relationship managers consider. With no provider, names are compared
as typed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from itsm.plugin import (
    ImpactHit,
    InputError,
    reference_impact,
    reference_kind,
    reference_ref,
    resolve_reference,
)

SERVICE, CI, AGENCY = "service", "configuration_item", "agency"
REFERENCES = {"services": SERVICE, "config_items": CI}
_MEMO = "change.service_keys"


def service_keys(session: Session, names: Iterable[str]) -> set[str]:
    """What names (a CAB rule's, a freeze window's, a pipeline's) stand for: each name
    itself and, when a provider knows it, the service's stable id (so a rule written
    with a service's old name or any of its names matches by id)."""
    memo = session.info.setdefault(_MEMO, {})
    out: set[str] = set()
    provided = reference_kind(SERVICE) is not None
    for name in names or ():
        if not isinstance(name, str) or not name:
            continue
        out.add(name)
        if not provided:
            continue
        if name not in memo:
            try:
                memo[name] = resolve_reference(session, SERVICE, name).id
            except InputError:
                memo[name] = None
        if memo[name]:
            out.add(memo[name])
    return out


def _hits(session: Session, services: Iterable[str], items: Iterable[str]) -> list[ImpactHit]:
    out: list[ImpactHit] = []
    items = [i for i in items or () if i]
    services = [s for s in services or () if s]
    if items and reference_kind(CI) is not None:
        out += reference_impact(session, CI, items)
    if services and reference_kind(SERVICE) is not None:
        out += reference_impact(session, SERVICE, services)
    return out


def impacted_services(session: Session, services: Iterable[str],
                      items: Iterable[str]) -> set[str]:
    """The change's own services and every service its items and services reach."""
    own = set(services or ())
    return service_keys(session, own) | {h.ref.id for h in _hits(session, own, items)
                                         if h.ref.kind == SERVICE}


def shares(session: Session, names: Iterable[str], impacted: set[str]) -> bool:
    """Whether a rule's or window's service names meet the impacted services."""
    return bool(service_keys(session, names) & impacted)


def affected_agencies(session: Session, change: Any) -> list[str]:
    """Stable ids of the agencies the change's impact reaches."""
    return sorted({h.ref.id for h in _hits(session, change.services, change.config_items)
                   if h.ref.kind == AGENCY})


def _row(ref: Any, path: tuple = ()) -> dict[str, Any]:
    return {"kind": ref.kind, "id": ref.id, "label": ref.label, "url": ref.url,
            "path": [r.label for r in path]}


def impact(session: Session, change: Any) -> dict[str, Any]:
    """Everything the change reaches: its services and items, the services and agencies
    they reach (each with the path it is reached by)."""
    hits = _hits(session, change.services, change.config_items)
    services: dict[str, dict[str, Any]] = {}
    for value in change.services or ():
        ref = reference_ref(session, SERVICE, value)
        services[ref.id] = _row(ref, (ref,))
    for hit in hits:
        if hit.ref.kind == SERVICE and hit.ref.id not in services:
            services[hit.ref.id] = _row(hit.ref, hit.path)
    agencies = {h.ref.id: _row(h.ref, h.path) for h in hits if h.ref.kind == AGENCY}
    items = [_row(reference_ref(session, CI, v)) for v in change.config_items or ()]
    reached = [_row(h.ref, h.path) for h in hits if h.ref.kind == CI]
    return {"services": list(services.values()),
            "agencies": sorted(agencies.values(), key=lambda a: a["label"]),
            "config_items": items, "reached_items": reached}
