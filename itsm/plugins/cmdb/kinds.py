"""The reference kinds the cmdb provides: "configuration_item", and "service" as a
fallback (priority 50) below a service catalog's, so a business-service CI and a catalog
service are one service with one id.

When a catalog (any plugin providing "service" above this one) is enabled, a business
service CI carries the catalog service's stable id in ``service_id``; without one, the
cmdb gives the CI an id of its own (``ci-<id>``), which it keeps.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    ImpactHit,
    Ref,
    ReferenceKind,
    ValidationError,
    reference_changed,
    reference_kind,
)
from itsm.plugins.cmdb import graph
from itsm.plugins.cmdb.models import CiAgency, CiType, ConfigItem, Relation

CI_KIND, SERVICE_KIND = "configuration_item", "service"
SERVICE_PRIORITY = 50


def _status(lifecycle: str) -> str:
    return "retired" if lifecycle == "retired" else "active"


def ci_ref(ci: Any) -> Ref:
    return Ref(kind=CI_KIND, id=str(ci.id), label=ci.name, url=f"/cmdb/cis/{ci.id}",
               status=_status(ci.lifecycle),
               merged_into=str(ci.merged_into_id) if ci.merged_into_id else None)


def service_ref(ci: Any, merged_into: str | None = None) -> Ref:
    return Ref(kind=SERVICE_KIND, id=ci.service_id or f"ci-{ci.id}", label=ci.name,
               url=f"/cmdb/cis/{ci.id}", status=_status(ci.lifecycle), merged_into=merged_into)


def _other_service_kind() -> ReferenceKind | None:
    """The winning "service" kind when it is not the cmdb's own (a catalog), else None."""
    try:
        kind = reference_kind(SERVICE_KIND)
    except RuntimeError:  # outside an application (a bare script): no catalog to ask
        return None
    if kind is None or kind.get is service_get:
        return None
    return kind


def service_id_for(session: Session, ci: ConfigItem, given: str | None) -> str:
    """The stable service id of a business-service CI: the catalog's service named by
    ``given`` (or, failing that, by the CI's name) when a catalog provides services,
    else the cmdb's own."""
    other = _other_service_kind()
    if other is not None:
        ref = other.resolve(session, given or ci.name)
        if ref is not None:
            taken = session.scalar(select(ConfigItem.id).where(
                ConfigItem.service_id == ref.id, ConfigItem.id != ci.id))
            if taken is None:
                return ref.id
            if given:
                raise ValidationError("service taken", fields={
                    "service": [f"CI #{taken} already is the service {ref.label}"]})
        elif given:
            raise ValidationError("unknown service", fields={
                "service": [f"the catalog has no service {given[:80]!r}"]})
    elif given:
        raise ValidationError("no catalog", fields={
            "service": ["no catalog provides services: leave this empty"]})
    return ci.service_id or f"ci-{ci.id}"


def announce(session: Session, ci: ConfigItem, change: str, into: Any = None) -> None:
    """Tell every plugin a CI (and the service it is, when the cmdb provides services)
    was renamed, retired or merged."""
    reference_changed(session, ci_ref(ci), change, ci_ref(into) if into else None)
    if not ci.service_id or _other_service_kind() is not None:
        return  # the catalog announces its own services
    if change != "merged":
        reference_changed(session, service_ref(ci), change, None)
    elif into is not None and into.service_id:
        reference_changed(session, service_ref(ci, into.service_id), change,
                          service_ref(into))


# -- configuration_item --------------------------------------------------------------------


def _by_id(text: str) -> int | None:
    raw = text.strip().lstrip("#")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31 else None


def ci_get(session: Session, id_: str) -> Any:
    number = _by_id(str(id_))
    ci = session.get(ConfigItem, number) if number is not None else None
    return ci_ref(ci) if ci is not None else None


def ci_resolve(session: Session, value: str) -> Any:
    text = str(value).strip()
    if not text:
        return None
    number = _by_id(text)
    if number is not None:
        ci = session.get(ConfigItem, number)
        if ci is not None:
            return ci_ref(ci)
    for column in (ConfigItem.external_key, func.lower(ConfigItem.name)):
        wanted = text.lower() if column is not ConfigItem.external_key else text
        ci = session.scalar(select(ConfigItem).where(column == wanted)
                            .order_by(ConfigItem.lifecycle == "retired", ConfigItem.id)
                            .limit(1))
        if ci is not None:
            return ci_ref(ci)
    return None


def _scoped(query: Any, actor: Actor) -> Any:
    if actor.role != "requester":
        return query
    return query.where(or_(ConfigItem.agency_id == actor.agency_id, ConfigItem.id.in_(
        select(CiAgency.ci_id).where(CiAgency.agency_id == actor.agency_id))))


def ci_choices(session: Session, actor: Actor, text: str, limit: int) -> list[Any]:
    query = select(ConfigItem).where(ConfigItem.lifecycle != "retired")
    if text:
        query = query.where(ConfigItem.name.ilike(f"%{_escape(text)}%", escape="\\"))
    rows = session.scalars(_scoped(query, actor).order_by(ConfigItem.name).limit(limit))
    return [ci_ref(ci) for ci in rows]


def _escape(text: str) -> str:
    return text[:100].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _service_types(session: Session) -> list[str]:
    return list(session.scalars(select(CiType.key).where(CiType.is_service.is_(True))))


# -- impact, remembered per session ---------------------------------------------------------
# A change's page asks for the impact of its CIs several times (conflicts, freeze windows,
# CAB rules, the impact shown): the session remembers each answer until the cmdb's tables
# change in it, or its transaction ends.
_MEMO = "cmdb.impact"
_GRAPH = (ConfigItem, Relation, CiAgency, CiType)


def forget_impacts(session: Session) -> None:
    """Drop the impacts this session remembers (after writes that bypass the ORM)."""
    session.info.pop(_MEMO, None)


def _graph_pending(session: Session) -> bool:
    return any(isinstance(o, _GRAPH) for o in chain(session.new, session.dirty,
                                                     session.deleted))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if _MEMO in session.info and _graph_pending(session):
        forget_impacts(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, _transaction: Any) -> None:
    forget_impacts(session)


def _hits(session: Session, start: list[int], direction: str, *, everything: bool,
          from_service: bool = False) -> list[ImpactHit]:
    """:func:`_walk_hits`, remembered for the session (see above)."""
    if _graph_pending(session):
        session.flush()  # the walk reads the tables: let it see (and the memo forget)
    key = (tuple(start), direction, everything, from_service)
    memo = session.info.setdefault(_MEMO, {})
    if key not in memo:
        memo[key] = _walk_hits(session, start, direction, everything=everything,
                               from_service=from_service)
    return list(memo[key])


def _walk_hits(session: Session, start: list[int], direction: str, *, everything: bool,
               from_service: bool = False) -> list[ImpactHit]:
    """Impact hits of a walk: the services and agencies reached (or every CI reached),
    each with its path from the start. A service's own CI stands in a path as the
    service (one thing, one id), so the core can join paths across providers."""
    if not start:
        return []
    service_types = _service_types(session)
    result = graph.analyse(session, start, direction, service_types,
                           named=None if everything else 0)
    service_types = set(service_types)

    refs: dict[tuple[int, bool], Ref] = {}  # a hub's paths share most of their steps

    def as_ref(ci_id: int, as_service: bool) -> Ref:
        node = result.nodes[ci_id]
        as_service = as_service and node["type"] in service_types
        found = refs.get((ci_id, as_service))
        if found is None:
            found = refs[ci_id, as_service] = Ref(
                kind=SERVICE_KIND if as_service else CI_KIND,
                id=(node["service_id"] or f"ci-{ci_id}") if as_service else str(ci_id),
                label=node["name"], url=f"/cmdb/cis/{ci_id}",
                status=_status(node["lifecycle"]))
        return found

    def path(ids: list[int], last_as_service: bool = False) -> tuple[Ref, ...]:
        ids = [i for i in ids if i in result.nodes]
        return tuple(as_ref(i, (n == 0 and from_service)
                            or (n == len(ids) - 1 and last_as_service))
                     for n, i in enumerate(ids))

    hits: list[ImpactHit] = []
    if everything:
        for ci_id in sorted(result.walk.parent, key=lambda c: (result.walk.depth[c], c)):
            if ci_id not in start and ci_id in result.nodes:
                hits.append(ImpactHit(ref=as_ref(ci_id, False),
                                      path=path(result.walk.path(ci_id))))
    # The walk went on through the services it reached (they are CIs of the same graph):
    # when the services are the cmdb's own kind and the walk was not cut short, the core
    # need not walk each of a hub's hundreds of services again.
    walked = not result.walk.truncated and _other_service_kind() is None
    for found in result.services:
        ci_id = found["ci"]["id"]
        hits.append(ImpactHit(ref=as_ref(ci_id, True), path=path(found["path"], True),
                              walked=walked))
    agency = reference_kind("agency")
    for found in result.agencies:
        ref = agency.get(session, str(found["agency_id"])) if agency else None
        if ref is not None:
            hits.append(ImpactHit(ref=ref, path=path(found["path"]) + (ref,)))
    return hits


def ci_impact(session: Session, ids: list[str]) -> list[Any]:
    return _hits(session, [n for n in (_by_id(str(i)) for i in ids) if n], "impact",
                 everything=False)


def ci_depends(session: Session, ids: list[str]) -> list[Any]:
    return _hits(session, [n for n in (_by_id(str(i)) for i in ids) if n], "depends",
                 everything=True)


# -- service (fallback) --------------------------------------------------------------------


def _service_ci(session: Session, id_: str) -> ConfigItem | None:
    return session.scalar(select(ConfigItem).where(ConfigItem.service_id == str(id_)))


def service_get(session: Session, id_: str) -> Ref | None:
    ci = _service_ci(session, id_)
    if ci is None:
        return None
    merged = None
    if ci.merged_into_id:
        into = session.get(ConfigItem, ci.merged_into_id)
        merged = into.service_id if into is not None else None
    return service_ref(ci, merged)


def service_resolve(session: Session, value: str) -> Any:
    text = str(value).strip()
    if not text:
        return None
    ci = _service_ci(session, text.lstrip("#"))
    if ci is None:
        ci = session.scalar(select(ConfigItem).where(
            ConfigItem.service_id.is_not(None), func.lower(ConfigItem.name) == text.lower())
            .order_by(ConfigItem.lifecycle == "retired", ConfigItem.id).limit(1))
    return service_ref(ci) if ci is not None else None


def service_choices(session: Session, actor: Actor, text: str, limit: int) -> list[Any]:
    query = select(ConfigItem).where(ConfigItem.service_id.is_not(None),
                                     ConfigItem.lifecycle != "retired")
    if text:
        query = query.where(ConfigItem.name.ilike(f"%{_escape(text)}%", escape="\\"))
    return [service_ref(ci) for ci in session.scalars(
        _scoped(query, actor).order_by(ConfigItem.name).limit(limit))]


def _service_cis(session: Session, ids: list[str]) -> list[int]:
    wanted = [str(i).lstrip("#") for i in ids if str(i).strip()]
    if not wanted:
        return []
    return list(session.connection().scalars(select(ConfigItem.id).where(
        graph.among(session, ConfigItem.service_id, wanted))))


def service_impact(session: Session, ids: list[str]) -> list[Any]:
    return _hits(session, _service_cis(session, ids), "impact", everything=False,
                 from_service=True)


def service_depends(session: Session, ids: list[str]) -> list[Any]:
    return _hits(session, _service_cis(session, ids), "depends", everything=True,
                 from_service=True)


def reference_kinds() -> list[ReferenceKind]:
    """The two kinds, as the core's ``ReferenceKind`` declarations."""
    return [ReferenceKind(name=CI_KIND, label="Configuration item", get=ci_get,
                               resolve=ci_resolve, choices=ci_choices, impact=ci_impact,
                               depends=ci_depends),
            ReferenceKind(name=SERVICE_KIND, label="Service", get=service_get,
                               resolve=service_resolve, choices=service_choices,
                               impact=service_impact, depends=service_depends,
                               priority=SERVICE_PRIORITY)]
