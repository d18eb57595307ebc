"""Queues: a record type's list as agents work it — views, totals, rows to show, bulk work.

The page and the API list the same query (:mod:`itsm.core.query`): filters, a sort on any
column, keyset paging. This module adds what a working queue needs on top of it:

- built-in views per type (:func:`builtin_views`) and the views people save
  (:class:`~itsm.core.models.SavedView`), each a set of query-string arguments;
- a total (:func:`count_total`): exact up to :data:`TOTAL_BOUND`, counted on a LIMITed
  subquery so that it never reads more rows than that, and beyond it the planner's own
  row estimate (PostgreSQL) or "more than" the bound (elsewhere);
- display rows (:func:`display_rows`): people by name, labels, and the next SLA target
  with the time left and whether it is warned or breached;
- bulk actions (:func:`bulk_apply`): each selected record in its own unit of work, so
  each one gets the record service's permission check, guard and journal, and a refusal
  of one never undoes another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ClauseElement,
    Executable,
    Integer,
    String,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session

from itsm.core import query as listing
from itsm.core.database import PLAN_EACH_RUN, plan_each_run
from itsm.core.errors import ItsmError, ValidationError
from itsm.core.models import (
    SLA_NONE,
    Agency,
    Group,
    Record,
    SavedView,
    User,
    UTCDateTime,
    utcnow,
)
from itsm.core.sla_models import SlaClock

TOTAL_BOUND = 1_000  # counted exactly up to this many records; estimated beyond
BREACHING_SOON = 120  # minutes ahead that count as "breaching soon"
VIEW_NAME_MAX = 100

COLUMN_LABELS = {"number": "Number", "title": "Title", "requester": "Requester",
                 "agency": "Agency", "group": "Group", "assignee": "Assignee",
                 "priority": "Priority", "state": "State", "sla_due": "SLA due",
                 "updated_at": "Updated", "created_at": "Created"}


# -- totals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Total:
    """How many records a list matches: ``exact``, an estimate, or more than ``count``."""

    count: int
    exact: bool
    more_than: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "exact": self.exact, "more_than": self.more_than}


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <select>``: the planner's estimate, nothing executed."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _explain_postgresql(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def _estimate(session: Session, statement: Any) -> int | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    # Planned for this run's values (a generic plan's estimate is the average group's).
    plan = session.scalar(_Explain(statement), execution_options={PLAN_EACH_RUN: True})
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def count_total(service: Any, rt: Any, query: listing.ListQuery,
                bound: int | None = None) -> Total:
    """How many records of ``rt`` the actor's ``query`` matches (its cursor ignored).

    Counted on ``SELECT ... LIMIT bound + 1``: a queue of a million records costs as much
    as one of a thousand. The scope is the record service's own (an agency's requesters
    count only their agency's records).
    """
    bound = bound or TOTAL_BOUND
    session = service.session
    query = replace(query, cursor=None, record_type=query.record_type or rt)
    scope = service.list_scope(rt, query)
    conditions = listing._filters(session, query, service.actor, scope)
    mapper = sa_inspect(rt.model)
    if mapper.inherits is not None and not (query.category or query.service):
        # The type's own table is joined only when a filter reads it: else each counted
        # record would cost a lookup there for nothing.
        conditions.append(Record.type.in_([m.polymorphic_identity
                                           for m in mapper.self_and_descendants]))
        statement = select(Record.id).where(*conditions)
    else:
        statement = select(rt.model.id).where(*conditions)
    if query.q:
        statement = statement.where(listing._text_search(session, query.q))
    limited = statement.limit(bound + 1).subquery("counted")
    found = session.scalar(plan_each_run(select(func.count()).select_from(limited))) or 0
    if found <= bound:
        return Total(found, True)
    estimate = _estimate(session, statement)  # the rows the planner expects it to give
    if estimate is None:
        return Total(bound, False, more_than=True)
    return Total(max(estimate, bound + 1), False)


# -- views --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueView:
    """A named set of list arguments: a built-in view (``key`` a word) or a saved one."""

    key: str
    title: str
    args: Mapping[str, str]
    saved_id: int | None = None


def customer_states(rt: Any) -> list[str]:
    """The states of ``rt``'s workflow that wait for the customer (``State.customer``)."""
    return [name for name, state in rt.workflow.states.items() if state.customer]


def builtin_views(rt: Any) -> list[QueueView]:
    """The views every record type's queue has, most urgent work first."""
    views = [
        QueueView("my_open", "My open", {"assignee": "me", "state": "open",
                                         "sort": "sla_due"}),
        QueueView("my_groups_unassigned", "My groups' unassigned", {
            "group": "mine", "assignee": "none", "state": "open", "sort": "sla_due"}),
        QueueView("breaching_soon", "Breaching soon", {
            "state": "open", "breaching_within": str(BREACHING_SOON), "sort": "sla_due"}),
    ]
    waiting = customer_states(rt)
    if waiting:
        views.append(QueueView("waiting_for_customer", "Waiting for customer", {
            "state": ",".join(waiting), "sort": "updated_at"}))
    views += [
        QueueView("updated_by_customer", "Updated by customer", {
            "state": "open", "updated_by_customer": "true", "sort": "sla_due"}),
        QueueView("all_open", "All open", {"state": "open", "sort": "sla_due"}),
    ]
    return views


def saved_views(session: Session, user_id: int | None, rt: Any) -> list[QueueView]:
    if user_id is None:
        return []
    rows = session.scalars(select(SavedView).where(
        SavedView.user_id == user_id, SavedView.record_type == rt.name)
        .order_by(SavedView.name, SavedView.id))
    return [QueueView(f"saved-{v.id}", v.name, dict(v.query or {}), v.id) for v in rows]


def find_view(views: Iterable[QueueView], key: str) -> QueueView | None:
    return next((v for v in views if v.key == key), None)


def save_view(service: Any, rt: Any, name: str, args: Mapping[str, str]) -> SavedView:
    """Keep the actor's list arguments under ``name`` (replacing a view of that name)."""
    service.require(f"{rt.name}.read")
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("name the view", fields={"name": ["enter a name"]})
    if len(name) > VIEW_NAME_MAX:
        raise ValidationError("the name is too long", fields={
            "name": [f"at most {VIEW_NAME_MAX} characters"]})
    if service.actor.id is None:
        raise ValidationError("only a signed-in person keeps views")
    kept = {k: v for k, v in args.items() if k in listing.FILTER_ARGS
            and k not in ("cursor", "limit") and v}
    listing.parse_args(kept, default_limit=1, max_limit=1, rt=rt)  # refused as the list would
    session = service.session
    view = session.scalar(select(SavedView).where(
        SavedView.user_id == service.actor.id, SavedView.record_type == rt.name,
        SavedView.name == name))
    if view is None:
        view = SavedView(user_id=service.actor.id, record_type=rt.name, name=name)
        session.add(view)
    view.query = kept
    session.flush()
    return view


def delete_view(service: Any, rt: Any, view_id: int) -> str:
    """Remove one of the actor's own views; another person's is "not found"."""
    from itsm.core.errors import NotFound

    view = service.session.get(SavedView, view_id)
    if view is None or view.user_id != service.actor.id or view.record_type != rt.name:
        raise NotFound("no such view")
    name = view.name
    service.session.delete(view)
    return name


# -- rows as the queue shows them -----------------------------------------------------------


def time_left(due: datetime, now: datetime) -> str:
    """"in 1 h 20 min", or "breached 3 d 2 h ago" once past."""
    seconds = (due - now).total_seconds()
    minutes = round(abs(seconds) / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{mins} min" if not days and (mins or not hours) else ""]
    text = " ".join(p for p in parts if p)
    return f"breached {text} ago" if seconds < 0 else f"in {text}"


def next_clocks(session: Session, record_ids: list[int]) -> dict[int, Any]:
    """Each record's running clock that falls due first."""
    return _lookups(session, [], record_ids)[1]


def sla_status(clock: Any, now: datetime) -> dict[str, Any] | None:
    if clock is None or clock.breach_due_at is None or clock.breach_due_at >= SLA_NONE:
        return None
    breached = clock.breached or clock.breach_due_at <= now
    warned = breached or clock.warned or (clock.warn_due_at is not None
                                          and clock.warn_due_at <= now)
    return {"due_at": clock.breach_due_at, "metric": clock.metric,
            "left": time_left(clock.breach_due_at, now),
            "minutes_left": round((clock.breach_due_at - now).total_seconds() / 60, 1),
            "status": "breached" if breached else "warned" if warned else "ok"}


def _among(dialect: str, key: str) -> Any:
    """``column IN (ids)`` for this database, the ids bound as ``key``. On PostgreSQL as
    ``= ANY`` of one array: an IN of a page's 200 ids was 200 parameters to render, convert
    and parse on every page (a third of the queue's own Python), and a text that changed
    with the number of ids, so never prepared."""
    if dialect != "postgresql":
        return lambda column: column.in_(bindparam(key, expanding=True))
    return lambda column: column == any_(bindparam(key, type_=ARRAY(Integer())))


# The lookups' statement per (database dialect, which of its parts a page needs): built
# once per process, its ids bound at each run, rather than rebuilt for every page.
_LOOKUP_STATEMENTS: dict[tuple[str, bool, bool, bool, bool], Any] = {}


def _lookup_statement(dialect: str, users: bool, groups: bool, agencies: bool,
                      clocks: bool) -> Any:
    key = (dialect, users, groups, agencies, clocks)
    statement = _LOOKUP_STATEMENTS.get(key)
    if statement is not None:
        return statement
    none_text = cast(null(), String(300))
    none_time = cast(null(), UTCDateTime())
    zero = literal(0, Integer())

    def named(kind: str, id_column: Any, name: Any) -> Any:
        return select(literal(kind).label("kind"), id_column.label("id"),
                      cast(name, String(300)).label("name"), none_text.label("metric"),
                      none_time.label("due"), none_time.label("warn_due"),
                      zero.label("flags")).where(_among(dialect, f"{kind}_ids")(id_column))

    parts = []
    if users:
        parts.append(named("user", User.id, func.coalesce(func.nullif(User.name, ""),
                                                          User.email)))
    if groups:
        parts.append(named("group", Group.id, Group.name))
    if agencies:
        parts.append(named("agency", Agency.id, Agency.name))
    if clocks:
        flags = (case((SlaClock.warned, 1), else_=0) + case((SlaClock.breached, 2), else_=0))
        parts.append(select(literal("clock").label("kind"), SlaClock.record_id,
                            none_text, cast(SlaClock.metric, String(300)),
                            SlaClock.breach_due_at, SlaClock.warn_due_at, flags)
                     .where(_among(dialect, "clock_ids")(SlaClock.record_id),
                            SlaClock.state == "running",
                            SlaClock.breach_due_at.is_not(None)))
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    _LOOKUP_STATEMENTS[key] = statement
    return statement


def _lookups(session: Session, records: list[Record], clock_ids: list[int]) \
        -> tuple[dict[tuple[str, int], str], dict[int, Any]]:
    """Display names of the page's people, groups and agencies and each record's next
    running clock, in one round trip: a page costs the list, this, and nothing per row."""
    users = {i for r in records for i in (r.requester_id, r.assignee_id) if i is not None}
    groups = {r.group_id for r in records if r.group_id is not None}
    agencies = {r.agency_id for r in records if r.agency_id is not None}
    names: dict[tuple[str, int], str] = {}
    clocks: dict[int, Any] = {}
    if not (users or groups or agencies or clock_ids):
        return names, clocks
    statement = _lookup_statement(session.get_bind().dialect.name, bool(users), bool(groups),
                                  bool(agencies), bool(clock_ids))
    params = {f"{kind}_ids": sorted(ids) for kind, ids in (
        ("user", users), ("group", groups), ("agency", agencies), ("clock", clock_ids)) if ids}
    for kind, id_, name, metric, due, warn_due, flag in session.execute(statement, params):
        if kind != "clock":
            names[(kind, id_)] = name
        elif id_ not in clocks or due < clocks[id_].breach_due_at:
            clocks[id_] = SimpleNamespace(metric=metric, breach_due_at=due,
                                          warn_due_at=warn_due, warned=bool(flag & 1),
                                          breached=bool(flag & 2))
    return names, clocks


def columns_of(rt: Any, labels: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    labels = labels or {}
    return [{"name": c, "label": COLUMN_LABELS.get(c) or labels.get(c)
             or c.replace("_", " ").capitalize()} for c in rt.columns]


def display_rows(session: Session, rt: Any, records: list[Record],
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """What the queue shows of each record: labels and names, never codes or ids."""
    now = now or utcnow()
    names, clocks = _lookups(session, records, [r.id for r in records])
    rows = []
    for r in records:
        state = rt.workflow.state(r.state)
        rows.append({
            "record": r, "number": r.number, "title": r.title,
            "requester": names.get(("user", r.requester_id)),
            "assignee": names.get(("user", r.assignee_id)),
            "group": names.get(("group", r.group_id)),
            "agency": names.get(("agency", r.agency_id)),
            "priority": r.priority, "state": r.state, "state_label": state.title,
            "updated_at": r.updated_at, "created_at": r.created_at,
            "sla": sla_status(clocks.get(r.id), now),
            "updated_by_customer": r.customer_reply_at is not None,
            "major": bool(rt.major and getattr(r, rt.major, False)),
            "p1": r.priority == 1,
        })
    return rows


# -- "breaching soon", as the CLI and the dashboards ask for it ------------------------------


def breaching_soon(service: Any, rt: Any, within: int = BREACHING_SOON,
                   group: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Open records of ``rt`` whose next SLA target falls due within ``within`` minutes
    (breached ones first), the same query as the queue's "Breaching soon" view."""
    args = {**find_view(builtin_views(rt), "breaching_soon").args,
            "breaching_within": str(within), "limit": str(limit)}
    if group:
        args["group"] = group
    query = listing.parse_args(args, default_limit=limit, max_limit=limit, rt=rt)
    records, _ = service.list(rt.name, query)
    return display_rows(service.session, rt, records)


def view_total(service: Any, rt: Any, key: str, extra: Mapping[str, str] | None = None) \
        -> Total:
    """The total of built-in view ``key`` of ``rt`` for the service's actor (a dashboard's
    tile), refined by ``extra`` arguments as the view's link would be."""
    view = find_view(builtin_views(rt), key)
    if view is None:
        raise ValidationError(f"no view {key!r}", fields={"view": [f"no view {key!r}"]})
    query = listing.parse_args({**view.args, **(extra or {})}, default_limit=1, max_limit=1,
                               rt=rt)
    return count_total(service, rt, query)


# -- bulk actions ---------------------------------------------------------------------------

BULK_ACTIONS = ("assign", "transition", "comment")
BULK_MAX = 200


@dataclass
class BulkResult:
    number: str
    done: bool
    message: str


def bulk_apply(itsm: Any, actor: Any, rt: Any, numbers: list[str], action: str,
               form: Mapping[str, str]) -> list[BulkResult]:
    """Run one action on each record, each in its own unit of work through the record
    service (permission check, workflow guard, journal); one result per record."""
    if action not in BULK_ACTIONS:
        raise ValidationError("choose what to do", fields={"action": [
            "one of " + ", ".join(BULK_ACTIONS)]})
    numbers = list(dict.fromkeys(n.strip().upper()[:32] for n in numbers if n.strip()))
    if not numbers:
        raise ValidationError("select at least one record", fields={
            "number": ["select at least one record"]})
    if len(numbers) > BULK_MAX:
        raise ValidationError(f"at most {BULK_MAX} records at once", fields={
            "number": [f"at most {BULK_MAX} records at once"]})
    if action == "transition" and form.get("transition", "") not in rt.workflow.transitions:
        raise ValidationError("choose a step", fields={"transition": ["choose a step"]})
    if action == "comment" and not form.get("body", "").strip():
        raise ValidationError("write the comment", fields={"body": ["write the comment"]})
    if action == "assign" and not form.get("assignee", "").strip():
        raise ValidationError("choose whom to assign to", fields={
            "assignee": ["choose whom to assign to"]})
    results = []
    for number in numbers:
        try:
            with itsm.unit_of_work(actor) as service:
                record = service.get(number, rt.name)
                message = _bulk_one(service, rt, record, action, form)
        except ItsmError as exc:
            reasons = getattr(exc, "reasons", None) or []
            results.append(BulkResult(number, False, "; ".join(reasons) or exc.message))
        else:
            results.append(BulkResult(number, True, message))
    return results


def _bulk_one(service: Any, rt: Any, record: Record, action: str,
              form: Mapping[str, str]) -> str:
    if action == "assign":
        who = form["assignee"].strip()
        email = service.actor.email if who == "me" else who.lower()
        service.update(record, {"assignee": email})
        return "assigned to you" if who == "me" else f"assigned to {email}"
    if action == "transition":
        transition = rt.workflow.transitions[form["transition"]]
        service.transition(record, transition.name)
        return f"{transition.title} done; now {rt.workflow.state(record.state).title}"
    public = form.get("visibility", "public") != "work_note"
    service.comment(record, form["body"].replace("\r\n", "\n"), public=public)
    return "comment added" if public else "work note added"


