"""Which agreement target applies to a record: the SLA policy of agencies and groups.

Rules (for records of any type but agreements themselves):

- **OLA.** A record of a type an active OLA names (``ola_types``, tasks by default)
  whose assignment group is the OLA's providing group, and that the OLA's customer group
  asked for, is measured against the OLA's targets: the work one internal group asks of
  another. The customer group asked for it when a member of it opened the record, or
  when the record was in that group before it was routed to the provider (the journal's
  group changes). A record the system opened straight into the provider's queue (a
  catalog's fulfilment task, say) is not covered by an OLA, but by its agency's MOU.
- **MOU.** Any other record of an agency is measured against the targets of that
  agency's *active* MOU. A target matches the record's service (read generically from
  ``affected_service``, ``service_name`` or ``service``: by the stable id the target
  recorded when a service provider knew its name, so a renamed service keeps its
  target, else by name or the provider's label; a target with no service covers
  any service, and is the only kind a record without a service name, such as a catalog
  request, matches) and its priority (a target with no priority covers any). The most specific
  target wins: service and priority, then service, then priority, then the catch-all.
- No active agreement, or no matching target with minutes for the metric: no answer, so
  the next policy decides (a catalog offering's targets, then the core default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from itsm.plugin import Group, GroupMember, JournalEntry, Record, SlaTarget, reference_label
from itsm.plugins.mou.models import LIVE_STATES, MOU, Mou, MouTarget
from itsm.plugins.mou.service import active_for_agency

SERVICE_FIELDS = ("affected_service", "service_name", "service")
METRICS = ("response", "resolution")


def service_of(record: Any) -> str:
    """The service a record concerns, from whichever field its type has."""
    for name in SERVICE_FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def best_target(goals: list[MouTarget], service: str, priority: int | None,
                metric: str, label: str = "") -> MouTarget | None:
    """The most specific target of ``goals`` for a service and priority with minutes.

    ``service`` is what the record stores (a provider's stable id, or free text) and
    ``label`` the provider's name for it: a target matches by the id it recorded (a
    renamed service keeps its target), else by name.
    """
    wanted = {service.casefold(), label.casefold()} - {""}

    def rank(t: MouTarget) -> int | None:
        if getattr(t, f"{metric}_minutes") is None:
            return None
        if t.service and not ((t.service_ref or "") == service and service) \
                and t.service.casefold() not in wanted:
            return None
        if t.priority is not None and t.priority != priority:
            return None
        return (2 if t.service else 0) + (1 if t.priority is not None else 0)

    ranked = [(r, -t.id, t) for t in goals if (r := rank(t)) is not None]
    return max(ranked, key=lambda item: item[:2])[2] if ranked else None


def _ola_for(session: Session, record: Any) -> Mou | None:
    group_id = getattr(record, "group_id", None)
    if group_id is None:
        return None
    olas = [o for o in _live_olas(session, group_id) if record.type in {
        t.strip() for t in (o.ola_types or "").split(",") if t.strip()}]
    if not olas:  # the usual case: no active OLA has the record's group as provider
        return None
    asking = _cached(session, ("asking", getattr(record, "id", None),
                               getattr(record, "created_by_id", None)),
                     lambda: _requesting_groups(session, record))
    return next((ola for ola in olas if ola.customer_group in asking), None)


def _requesting_groups(session: Session, record: Any) -> set[str]:
    """The groups that asked for the work: the creator's groups, and every group that
    held the record before it was routed on (from the journal's group changes)."""
    names: set[str] = set()
    creator = getattr(record, "created_by_id", None)
    if creator is not None:
        names.update(session.scalars(
            select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == creator)))
    record_id = getattr(record, "id", None)
    if record_id is not None:
        for data in session.scalars(select(JournalEntry.data).where(
                JournalEntry.record_id == record_id,
                JournalEntry.kind.in_(("created", "updated", "transitioned")))):
            data = data or {}
            if data.get("group"):
                names.add(data["group"])
            change = (data.get("changes") or {}).get("group")
            if isinstance(change, list) and change and change[0]:
                names.add(change[0])
    return names


def agreement_for(session: Session, record: Any) -> Mou | None:
    """The agreement governing ``record``: an OLA, else its agency's active MOU."""
    return _ola_for(session, record) or _active_mou(session, getattr(record, "agency_id", None))


def source_label(mou: Mou, target: MouTarget) -> str:
    """How a clock names its target; the compliance report reads it back."""
    return f"{mou.number} {target_key(target)}"[:200]


def target_key(target: Any) -> str:
    """A target's name, stable across amendments: its service and priority."""
    return f"{target.service or 'any service'} P{target.priority or '*'}"


# What the policy read, kept on the session while nothing is written through it: the
# policy is asked once per metric (and per priority when a history is replayed) for each
# record, and a bulk import asks for thousands of records of a few groups and agencies.
# Any flush or bulk statement on the session forgets it all.
_CACHE = "itsm_mou_policy"


@event.listens_for(Session, "after_flush")
def _forget_after_flush(session: Session, _context: Any) -> None:
    session.info.pop(_CACHE, None)


@event.listens_for(Session, "do_orm_execute")
def _forget_on_bulk_write(state: Any) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        state.session.info.pop(_CACHE, None)


def _cached(session: Session, key: tuple, read: Callable[[], Any]) -> Any:
    cache = session.info.setdefault(_CACHE, {})
    if key not in cache:
        cache[key] = read()
    return cache[key]


# The policy is asked on every record created or moved, and the usual answer is "no
# agreement": this plain statement (built once, no ORM entity) finds the ids, and only
# agreements that exist are loaded as objects (the agency's MOU: active_for_agency).
_MOU, _RECORD, _GROUP = Mou.__table__, Record.__table__, Group.__table__
_LIVE_OLA_IDS = (
    select(_MOU.c.id).join(_RECORD, _RECORD.c.id == _MOU.c.id)
    .join(_GROUP, _GROUP.c.name == _MOU.c.provider_group)
    .where(_GROUP.c.id == bindparam("group_id"), _MOU.c.kind == "ola",
           _RECORD.c.state.in_(LIVE_STATES)))


def _live_olas(session: Session, group_id: int) -> list[Mou]:
    """The live OLAs whose providing group is ``group_id``, newest first."""
    def read() -> list[Mou]:
        ids = session.scalars(_LIVE_OLA_IDS, {"group_id": group_id}).all()
        if not ids:
            return []
        return list(session.scalars(select(Mou).where(Mou.id.in_(ids))
                                    .order_by(Mou.id.desc())))
    return _cached(session, ("olas", group_id), read)


def _active_mou(session: Session, agency_id: int | None) -> Mou | None:
    if agency_id is None:
        return None
    return _cached(session, ("mou", agency_id),
                   lambda: active_for_agency(session, agency_id))


def _targets(session: Session, mou: Mou) -> list[MouTarget]:
    return _cached(session, ("targets", mou.id), lambda: list(
        session.scalars(select(MouTarget).where(MouTarget.mou_id == mou.id))))


def target_for(session: Session, record: Any, metric: str) -> SlaTarget | None:
    """The agreement's target of ``metric`` for ``record``, or None."""
    if metric not in METRICS or getattr(record, "type", None) == MOU.name:
        return None
    with session.no_autoflush:
        mou = agreement_for(session, record)
        if mou is None:
            return None
        service = service_of(record)
        goals = _targets(session, mou)
        label = _cached(session, ("label", service), lambda: reference_label(
            session, "service", service)) if service and any(t.service for t in goals) else ""
        target = best_target(goals, service, getattr(record, "priority", None), metric,
                             label)
        if target is None:
            return None
        return SlaTarget(metric=metric, minutes=int(getattr(target, f"{metric}_minutes")),
                         calendar=target.support_hours or "default",
                         source=source_label(mou, target))

