"""Relations between CIs, merging duplicates, and the history that answers "as it was
on date D": the CI's snapshot from its history and the relations alive at that moment
(relations are ended, never deleted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from itsm.plugin import NotFound, RecordService, ValidationError, utcnow
from itsm.plugins.cmdb.models import RELATION_KINDS, CiHistory, ConfigItem, Relation
from itsm.plugins.cmdb.service import (
    RELATION_ACTIONS,
    WRITE,
    CiRelationIn,
    Names,
    _journal,
    announce_change,
    apply_values,
    ci_dict,
    get_ci,
    load,
    used_by,
    visible_ids,
)


def merge_ci(service: RecordService, ci: ConfigItem, into: ConfigItem) -> ConfigItem:
    """Merge a duplicate into another CI: its relations move, it is retired and points at
    the one kept, and every plugin is told (references are re-pointed there)."""
    from itsm.plugins.cmdb import kinds

    service.require(WRITE)
    if ci.id == into.id:
        raise ValidationError("a CI cannot be merged into itself",
                              fields={"into": ["choose another CI"]})
    session = service.session
    now = utcnow()
    for relation in list(session.scalars(select(Relation).where(
            or_(Relation.source_id == ci.id, Relation.target_id == ci.id),
            Relation.removed_at.is_(None)))):
        source = into.id if relation.source_id == ci.id else relation.source_id
        target = into.id if relation.target_id == ci.id else relation.target_id
        relation.removed_at = now
        if source != target:
            _add_relation(session, source, relation.kind, target, now)
    ci.merged_into_id = into.id
    agencies = used_by(session, [ci.id]).get(ci.id, [])
    apply_values(service, ci, {"lifecycle": "retired"}, agencies, action="merged",
                 note=f"merged into #{into.id} {into.name}")
    _journal(session, service, into, "merged", {"merged": [None, ci.id]},
             used_by(session, [into.id]).get(into.id, []), note=f"#{ci.id} {ci.name} merged in")
    session.flush()
    kinds.announce(session, ci, "merged", into)
    return ci


# -- relations -----------------------------------------------------------------------------


def _add_relation(session: Session, source: int, kind: str, target: int,
                  at: datetime) -> Relation:
    spec = RELATION_KINDS[kind]
    dependent, provider = (source, target) if spec.dependent == "source" else (target, source)
    relation = Relation(kind=kind, source_id=source, target_id=target, dependent_id=dependent,
                        provider_id=provider, created_at=at)
    session.add(relation)
    return relation


def relate(service: RecordService, ci: ConfigItem, data: Any) -> Relation:
    """Add ``ci <kind> target``; journaled on both CIs."""
    service.require(WRITE)
    values = load(CiRelationIn(), data)
    target = get_ci(service, values["target"])
    if target.id == ci.id:
        raise ValidationError("a CI cannot relate to itself", fields={"target": ["another CI"]})
    session = service.session
    if session.scalar(select(Relation.id).where(
            Relation.source_id == ci.id, Relation.target_id == target.id,
            Relation.kind == values["kind"], Relation.removed_at.is_(None))) is not None:
        raise ValidationError("relation exists", fields={"target": ["already related so"]})
    relation = _add_relation(session, ci.id, values["kind"], target.id, utcnow())
    session.flush()
    _journal_relation(service, relation, "related", ci, target)
    return relation


def unrelate(service: RecordService, ci: ConfigItem, relation_id: int) -> Relation:
    """End a relation of ``ci`` (kept for the history of the graph)."""
    service.require(WRITE)
    session = service.session
    relation = session.scalar(select(Relation).where(
        Relation.id == relation_id, Relation.removed_at.is_(None),
        or_(Relation.source_id == ci.id, Relation.target_id == ci.id)))
    if relation is None:
        raise NotFound(f"relation {relation_id} of configuration item {ci.id} not found")
    relation.removed_at = utcnow()
    source = session.get(ConfigItem, relation.source_id)
    target = session.get(ConfigItem, relation.target_id)
    _journal_relation(service, relation, "unrelated", source, target)
    return relation


def _journal_relation(service: RecordService, relation: Relation, action: str,
                      source: ConfigItem, target: ConfigItem) -> None:
    session = service.session
    spec = RELATION_KINDS[relation.kind]
    agencies = used_by(session, [source.id, target.id])
    described = {"id": relation.id, "kind": relation.kind, "source": source.id,
                 "target": target.id}
    before, after = (None, described) if action == "related" else (described, None)
    _journal(session, service, source, action, {"relation": [before, after]},
             agencies.get(source.id, []), note=f"{spec.label} #{target.id} {target.name}")
    _journal(session, service, target, action, {"relation": [before, after]},
             agencies.get(target.id, []), note=f"{spec.inverse} #{source.id} {source.name}")
    session.flush()
    announce_change(service, source, action, {"relation": [before, after]}, relation={
        "id": relation.id, "kind": relation.kind, "label": spec.label,
        "source": {"id": source.id, "name": source.name},
        "target": {"id": target.id, "name": target.name}})


def relations(service: RecordService, ci: ConfigItem, as_of: datetime | None = None) \
        -> list[dict[str, Any]]:
    """The CI's relations (now, or on ``as_of``), each from this CI's side, with the
    other CI's name; another agency's CIs are left out for requesters."""
    session = service.session
    query = select(Relation).where(or_(Relation.source_id == ci.id, Relation.target_id == ci.id))
    if as_of is None:
        query = query.where(Relation.removed_at.is_(None))
    else:
        query = query.where(Relation.created_at <= as_of, or_(
            Relation.removed_at.is_(None), Relation.removed_at > as_of))
    rows = list(session.scalars(query.order_by(Relation.id)))
    others = {r.target_id if r.source_id == ci.id else r.source_id for r in rows}
    allowed = visible_ids(service, sorted(others))
    found = {c.id: c for c in session.scalars(select(ConfigItem).where(
        ConfigItem.id.in_(sorted(allowed))))} if allowed else {}
    out = []
    for r in rows:
        outgoing = r.source_id == ci.id
        other = found.get(r.target_id if outgoing else r.source_id)
        if other is None:
            continue
        spec = RELATION_KINDS[r.kind]
        out.append({"id": r.id, "kind": r.kind,
                    "label": spec.label if outgoing else spec.inverse,
                    "direction": "outgoing" if outgoing else "incoming",
                    "other": {"id": other.id, "name": other.name, "type": other.type_key,
                              "lifecycle": other.lifecycle},
                    "created_at": r.created_at.isoformat(),
                    "removed_at": r.removed_at.isoformat() if r.removed_at else None})
    return out


# -- history -------------------------------------------------------------------------------


def history(service: RecordService, ci: ConfigItem, limit: int = 200) -> list[dict[str, Any]]:
    """The CI's changes, newest first."""
    rows = service.session.scalars(select(CiHistory).where(CiHistory.ci_id == ci.id)
                                   .order_by(CiHistory.at.desc(), CiHistory.id.desc())
                                   .limit(limit))
    return [{"at": h.at.isoformat(), "actor": h.actor or "system", "action": h.action,
             "changes": h.changes, "note": h.note} for h in rows]


def parse_when(raw: str, field: str = "as_of") -> datetime:
    """A date or date-time typed by people (``2026-12-01``, ISO 8601); the end of the
    day for a bare date, UTC when no zone is given."""
    text = (raw or "").strip()[:40]
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d")
            return day.replace(hour=23, minute=59, second=59, tzinfo=UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("not a date", fields={
            field: [f"{text!r} is not a date such as 2026-12-01 or 2026-12-01T09:30Z"]}) \
            from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def as_of(service: RecordService, ci: ConfigItem, when: datetime) -> dict[str, Any]:
    """The CI as it was at ``when`` (its fields and relations); 404 before it existed."""
    # Relation rows carry no snapshot (the relation table keeps the graph's dates).
    row = service.session.scalar(select(CiHistory).where(
        CiHistory.ci_id == ci.id, CiHistory.at <= when,
        CiHistory.action.not_in(RELATION_ACTIONS))
        .order_by(CiHistory.at.desc(), CiHistory.id.desc()).limit(1))
    if row is None:
        raise NotFound(f"configuration item {ci.id} did not exist on {when.isoformat()}")
    out = ci_dict(Names(service.session), row.snapshot, ci.id)
    out["as_of"] = when.isoformat()
    out["relations"] = relations(service, ci, when)
    return out
