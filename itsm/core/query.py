"""Record lists: filters, sorting and keyset pagination that stay fast at millions of rows.

A page ends with an opaque cursor holding the sort value and id of its last row; the next
page starts strictly after it, so no OFFSET scan ever grows with the page number.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    false,
    func,
    literal,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import column as sql_column
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Session

from itsm.core import inputs, search
from itsm.core.auth import Actor
from itsm.core.database import plan_each_run
from itsm.core.errors import ValidationError
from itsm.core.models import SLA_NONE, Agency, Group, GroupMember, Record, User, utcnow
from itsm.core.sortkeys import CORE_SORTS, NO_PRIORITY, sort_expression, sort_types

SORTS = tuple(CORE_SORTS)
MAX_PRIORITY = 99
MAX_WITHIN = 60 * 24 * 366  # "breaching within": up to a year ahead, in minutes
MAX_ID = 2**63 - 1


@dataclass
class ListQuery:
    """What a caller asks for; built from query-string arguments by :func:`parse_args`."""

    state: list[str] | None = None
    assignee: str | None = None
    requester: str | None = None
    group: str | None = None
    agency: str | None = None
    priority: list[int] | None = None
    updated_since: datetime | None = None
    q: str | None = None
    sort: str = "-created_at"
    cursor: str | None = None
    limit: int = 50
    category: str | None = None
    service: str | None = None
    breaching_within: int | None = None  # minutes; 0: already breached
    created_since: datetime | None = None
    created_before: datetime | None = None
    updated_before: datetime | None = None
    updated_by_customer: bool | None = None
    # The record type listed (its own sort keys, filter fields and states); set by the
    # record service when the caller left it out.
    record_type: Any = field(default=None, repr=False, compare=False)


FILTER_ARGS = ("state", "assignee", "requester", "group", "agency", "priority",
               "updated_since", "q", "sort", "cursor", "limit", "category", "service",
               "breaching_within", "created_since", "created_before", "updated_before",
               "updated_by_customer")
DATE_ARGS = ("updated_since", "updated_before", "created_since", "created_before")


def _bad(name: str, message: str) -> ValidationError:
    return ValidationError(f"{name}: {message}", fields={name: [message]})


def _date_arg(args: dict[str, str], name: str) -> datetime:
    text = args[name].strip()
    if len(text) == 10:  # a day (a page's date input): its start, in UTC
        text += "T00:00:00+00:00"
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(name, "an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise _bad(name, "needs a time zone, e.g. 2026-01-31T12:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _bad(name, "a date-time between the years 1 and 9999") from None


def parse_args(args: dict[str, str], *, default_limit: int, max_limit: int,
               rt: Any = None) -> ListQuery:
    """Validate query-string arguments; unknown ones are refused, not ignored.

    :param rt: the record type listed: its own columns sort too, and ``state=open``
        names its states that are not final.
    """
    unknown = sorted(set(args) - set(FILTER_ARGS))
    with_nul = sorted(name for name, value in args.items() if "\x00" in value)
    if with_nul:  # no database stores it in text; PostgreSQL refuses the query outright
        raise ValidationError("query parameters may not contain NUL characters",
                              fields={name: ["contains a NUL character"] for name in with_nul})
    if unknown:
        raise ValidationError("unknown query parameters: " + ", ".join(unknown),
                              fields={name: ["unknown parameter"] for name in unknown})
    query = ListQuery(limit=default_limit, record_type=rt)
    for name in ("assignee", "requester", "group", "agency", "q", "cursor", "category",
                 "service"):
        if args.get(name):
            setattr(query, name, args[name][:300])
    if query.assignee == "unassigned":
        query.assignee = "none"
    if args.get("state"):
        query.state = [s for s in args["state"].split(",") if s][:50]
        if rt is not None and "open" in query.state and "open" not in rt.workflow.states:
            query.state = [s for s in query.state if s != "open"] + [
                name for name, state in rt.workflow.states.items() if not state.final]
    if args.get("priority"):
        try:
            query.priority = [inputs.parse_int(p, "priority")
                              for p in args["priority"].split(",")][:10]
        except inputs.InputError:
            raise _bad("priority", "a number or comma-separated numbers") from None
        if not all(0 <= p <= MAX_PRIORITY for p in query.priority):
            raise _bad("priority", f"between 0 and {MAX_PRIORITY}")
    for name in DATE_ARGS:
        if name in args:  # present but empty is no date-time either
            setattr(query, name, _date_arg(args, name))
    if "breaching_within" in args:
        try:
            query.breaching_within = inputs.parse_int(args["breaching_within"],
                                                      "breaching_within")
        except inputs.InputError:
            raise _bad("breaching_within", "minutes, a whole number") from None
        if not 0 <= query.breaching_within <= MAX_WITHIN:
            raise _bad("breaching_within", f"minutes from 0 to {MAX_WITHIN}")
    if "updated_by_customer" in args:
        flag = args["updated_by_customer"].lower()
        if flag not in ("true", "false", "1", "0"):
            raise _bad("updated_by_customer", "true or false")
        query.updated_by_customer = flag in ("true", "1")
    if "sort" in args:
        keys = sort_types(rt)
        if args["sort"].removeprefix("-") not in keys:
            raise _bad("sort", "one of " + ", ".join(keys) + " (prefix - for descending)")
        query.sort = args["sort"]
    if "limit" in args:
        try:
            query.limit = inputs.parse_int(args["limit"], "limit")
        except inputs.InputError:
            raise _bad("limit", "a whole number") from None
        if not 1 <= query.limit <= max_limit:
            raise _bad("limit", f"between 1 and {max_limit}")
    return query


def _sort_column(query: ListQuery) -> ColumnElement:
    return sort_expression(query.record_type, query.sort.removeprefix("-"))


def encode_cursor(value: Any, id_: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, id_], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, rt: Any = None) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, id_ = inputs.load_json(raw, "cursor")  # an InputError is a ValueError
        if not isinstance(id_, int):
            raise ValueError
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
            if value.tzinfo is None:
                raise ValueError
            value = value.astimezone(UTC)
        expected = sort_types(rt)[sort.removeprefix("-")]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ValueError
        if not 0 < id_ <= MAX_ID or (expected is int and not -MAX_ID <= value <= MAX_ID):
            raise ValueError
        if expected is str and (len(value) > 500 or "\x00" in value):
            raise ValueError
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error,
            UnicodeDecodeError):
        raise _bad("cursor", "not a cursor from this list; start again without it") from None
    return value, id_


NO_MATCH = 0  # an id no row has: the filter then matches nothing


def _lookup(session: Session, model, column, value: str, name: str, actor: Actor) -> int:
    # A page asks twice (its rows and its total): one query per unit of work.
    known = session.info.setdefault("itsm_list_lookups", {})
    key = (model.__name__, value)
    if key not in known:
        known[key] = session.scalar(select(model.id).where(column == value))
    found = known[key]
    if found is None:
        if actor.role == "requester":
            # Requesters get an empty list, not "unknown": they must not learn which
            # agencies and users exist from the difference.
            return NO_MATCH
        raise _bad(name, f"unknown {name} {value!r}")
    return found


def _user_filter(session: Session, actor: Actor, value: str, name: str):
    if value == "none":
        return None
    if value == "me":
        return actor.id
    return _lookup(session, User, User.email, value.strip().lower(), name, actor)


def _text_search(session: Session, q: str) -> ColumnElement[bool]:
    """Full text over title and description (each database's own index), or the record's
    number typed as it is.

    The number is looked up first (its unique index, one row) rather than joined to the
    text match with OR: under an OR no database can walk the page's order and check each
    record's document, so every match of a common word was gathered for each page.
    """
    number = q.strip().upper()
    found = session.scalar(select(Record.id).where(Record.number == number)) \
        if number else None
    matches = search.matching(session, q)
    if matches is None:
        return Record.id == found if found is not None else false()
    if found is None:
        return Record.id.in_(matches)
    return Record.id.in_(union_all(select(literal(found, type_=Integer())), matches))


def _filters(session: Session, query: ListQuery, actor: Actor,
             scope: ColumnElement | None) -> list[ColumnElement]:
    """The page's conditions on ``record``, the text search and the model's type apart."""
    conditions = [] if scope is None else [scope]
    if query.state:
        rt = query.record_type
        open_states = {name for name, state in rt.workflow.states.items()
                       if not state.final} if rt is not None else None
        if open_states and set(query.state) == open_states:
            # Every open state: the same as "not closed" (closed_at is set exactly in
            # final states), which the open-records indexes hold without a look at
            # each row's state.
            conditions.append(Record.closed_at.is_(None))
        else:
            conditions.append(Record.state.in_(query.state))
    for name, column in (("assignee", Record.assignee_id), ("requester", Record.requester_id)):
        value = getattr(query, name)
        if value:
            user_id = _user_filter(session, actor, value, name)
            conditions.append(column.is_(None) if user_id is None else column == user_id)
    if query.group == "mine":  # the groups the actor is a member of
        conditions.append(Record.group_id.in_(
            select(GroupMember.group_id).where(GroupMember.user_id == actor.id)))
    elif query.group == "none":
        conditions.append(Record.group_id.is_(None))
    elif query.group:
        conditions.append(Record.group_id == _lookup(session, Group, Group.name, query.group,
                                                     "group", actor))
    if query.agency:
        conditions.append(Record.agency_id == _lookup(session, Agency, Agency.code,
                                                      query.agency, "agency", actor))
    if query.priority:
        conditions.append(Record.priority.in_(query.priority))
    conditions.extend(_queue_filters(session, query, actor))
    if query.cursor:
        value, last_id = decode_cursor(query.cursor, query.sort, query.record_type)
        column = _sort_column(query)
        key = tuple_(column, Record.id)
        # Bound with the column's own type: a timestamp must go to the database as the
        # naive UTC value it stores, whatever the session's time zone.
        after = tuple_(literal(value, type_=column.type), literal(last_id, type_=Integer()))
        conditions.append(key < after if query.sort.startswith("-") else key > after)
    return conditions


def _type_field(query: ListQuery, name: str) -> Any:
    """The model column behind filter ``name`` (``category``, ``service``) of the type."""
    rt = query.record_type
    field_name = (getattr(rt, "filter_fields", None) or {}).get(name, name) if rt else name
    column = getattr(rt.model, field_name, None) if rt is not None else None
    if column is None or not hasattr(column, "expression"):
        title = rt.title if rt is not None else "These"
        raise _bad(name, f"{title} records have no {name}")
    return column


def _queue_filters(session: Session, query: ListQuery, actor: Actor) -> list[ColumnElement]:
    """The queue's filters beyond the original list's: dates, SLA, type fields."""
    out: list[ColumnElement] = []
    for name, column, before in (("updated_since", Record.updated_at, False),
                                 ("updated_before", Record.updated_at, True),
                                 ("created_since", Record.created_at, False),
                                 ("created_before", Record.created_at, True)):
        value = getattr(query, name)
        if value is not None:
            out.append(column < value if before else column >= value)
    if query.breaching_within is not None:
        # Already breached records are "breaching within" any window: most urgent of all.
        horizon = min(utcnow() + timedelta(minutes=query.breaching_within), SLA_NONE)
        out.append(Record.sla_due_at <= horizon)
        out.append(Record.sla_due_at < SLA_NONE)
    if query.updated_by_customer is not None:
        out.append(Record.customer_reply_at.is_not(None) if query.updated_by_customer
                   else Record.customer_reply_at.is_(None))
    for name in ("category", "service"):
        value = getattr(query, name)
        if value:
            out.append(_type_field(query, name) == value)
    return out


def _order(query: ListQuery) -> tuple[ColumnElement, ColumnElement]:
    column = _sort_column(query)
    if query.sort.startswith("-"):
        return column.desc(), Record.id.desc()
    return column.asc(), Record.id.asc()


def build(session: Session, model: type[Record], query: ListQuery, actor: Actor,
          scope: ColumnElement | None) -> Select:
    """The SELECT for one page (``limit + 1`` rows, to know whether another page exists)."""
    stmt = select(model).where(*_filters(session, query, actor, scope))
    if query.q:
        stmt = stmt.where(_text_search(session, query.q))
    return plan_each_run(stmt.order_by(*_order(query)).limit(query.limit + 1))


# Records of a search page's order checked one by one (PostgreSQL) before the full-text
# index is asked for every match: first SEARCH_WALK_FIRST, enough for a page of a word
# found in one record in 25; on up to SEARCH_WALK (one in 200) only when the first ones
# held at least SEARCH_WALK_FIRST / SEARCH_WALK of a page, a word that fills a page
# within them; then ten times as many, for a word that the newest records happen to lack.
SEARCH_WALK_FIRST = 2_000
SEARCH_WALK = 10_000
SEARCH_WALK_WIDER = 10
# Matches in all up to which they are gathered and sorted at once: 5 x the square root of
# the records of the desk, never fewer than SEARCH_GATHER. Gathering M matches costs about
# M lookups; walking for a page of 50 costs about 50 x N / M records checked, each about
# half a lookup: the two meet near M = 5 x sqrt(N) (1,600 at 100,000, 5,000 at a million).
SEARCH_GATHER = 1_000
SEARCH_GATHER_PER_ROOT = 5


def search_page(session: Session, model: type[Record], query: ListQuery, actor: Actor,
                scope: ColumnElement | None) -> list[Record] | None:
    """A search page's records (``limit + 1``, as :func:`build` selects) where each
    record's document is stored apart (PostgreSQL); ``None`` elsewhere, or when a record
    number was typed: :func:`build` then gives the page.

    First the newest :data:`SEARCH_WALK_FIRST` records of the page's order (after its
    other filters) are walked and each one's document checked: a common word fills the
    page after a few hundred records, however large the desk, where gathering its every
    match grows with the desk. A word that matched often enough among them to fill the
    page within :data:`SEARCH_WALK` records is walked on for that far. When the walk
    holds too few (a rare word or a rare pair of words, a word of a topic that began
    last week, or a burst of new records about something else at the head of the list),
    the full-text index gathers every match at once, unless there are more than
    :func:`gather_cap`, which it counts in the same statement: then they are frequent
    enough to fill a page further on, and the walk goes on from the record after the
    last one walked, up to :data:`SEARCH_WALK_WIDER` times :data:`SEARCH_WALK` records
    in all. Only when those too hold too few are all matches gathered.

    The planner is not left to choose between the two: its estimate multiplies each
    word's share, but words that come together ("docking station") match far more often,
    and words that never do ("vpn printer") far less, so that it gathered tens of
    thousands of matches for one, or walked the whole desk to find none for the other.
    """
    q = query.q or ""
    if search.row_matches(session, q, Record.id) is None or \
            session.scalar(select(Record.id).where(Record.number == q.strip().upper())):
        return None
    conditions = _filters(session, query, actor, scope)
    mapper = sa_inspect(model)
    if mapper.inherits is not None:  # the model's own table is joined for the page only
        conditions.append(Record.type.in_([m.polymorphic_identity
                                           for m in mapper.self_and_descendants]))
    column = _sort_column(query)
    descending = query.sort.startswith("-")
    page = query.limit + 1

    def first(candidates) -> Select:
        """The ids of the page's first candidates, in the page's order."""
        keys = (candidates.c.sort_key, candidates.c.id)
        return (select(candidates.c.id)
                .order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(page))

    def load(ids) -> list[Record]:
        return list(session.scalars(plan_each_run(
            select(model).where(Record.id.in_(ids)).order_by(*_order(query)).limit(page))))

    def walk(size: int, *beyond: ColumnElement[bool]) -> list[Record]:
        candidates = (select(Record.id.label("id"), column.label("sort_key"))
                      .where(*conditions, *beyond).order_by(*_order(query)).limit(size)
                      .subquery("search_walk"))
        return load(first(candidates).where(search.row_matches(session, q, candidates.c.id)))

    def gather(cap: int | None = None) -> list[Record] | None:
        """Every match from the full-text index, sorted at once; ``None`` when there are
        more than ``cap``, counted in the same statement, which then looks up none."""
        found = search.matching(session, q)
        if cap is not None:
            found = found.limit(cap + 1)
        found = found.cte("search_found").prefix_with("MATERIALIZED")
        # Each match's record looked up by its key (OFFSET 0 keeps the planner from
        # turning that into a scan of every record to join with), materialised in no
        # order so that no index walk can be chosen.
        record = (select(Record.id.label("id"), column.label("sort_key"))
                  .where(Record.id == found.c.record_id, *conditions)
                  .offset(0).lateral("search_record"))
        hits = select(record.c.id, record.c.sort_key).select_from(found.join(record, true()))
        if cap is None:
            return load(first(hits.cte("search_hits").prefix_with("MATERIALIZED")))
        counted = select(func.count()).select_from(found).scalar_subquery()
        hits = hits.where(counted <= cap).cte("search_hits").prefix_with("MATERIALIZED")
        ids = first(hits).subquery("search_page")
        total, page_ids = session.execute(plan_each_run(
            select(counted, func.array_agg(ids.c.id)).select_from(ids))).one()
        if total > cap:
            return None
        return load(page_ids) if page_ids else []

    def edge(offset: int) -> tuple[Any, int] | None:
        """The sort key and id of the record ``offset`` places down the list."""
        return session.execute(select(column, Record.id).where(*conditions)
                               .order_by(*_order(query)).offset(offset).limit(1)).first()

    def after(key: tuple[Any, int]) -> ColumnElement[bool]:
        last = tuple_(literal(key[0], type_=column.type), literal(key[1], type_=Integer()))
        return tuple_(column, Record.id) < last if descending \
            else tuple_(column, Record.id) > last

    first_walk = min(SEARCH_WALK_FIRST, SEARCH_WALK)
    rows = walk(first_walk)
    if len(rows) > query.limit:
        return rows
    walked = first_walk
    # As many matches again in each first_walk records would fill the page within
    # SEARCH_WALK: the walk goes on from the record after the last one it checked.
    if len(rows) * SEARCH_WALK >= page * first_walk and walked < SEARCH_WALK:
        last = edge(walked - 1)
        if last is None:  # the walk checked every record of the list
            return rows
        rows += walk(SEARCH_WALK - walked, after(last))
        if len(rows) > query.limit:
            return rows[:page]
        walked = SEARCH_WALK
    gathered = gather(gather_cap(session))
    if gathered is not None:
        return gathered
    last = edge(walked - 1)
    if last is None:
        return rows
    rows += walk(SEARCH_WALK * SEARCH_WALK_WIDER - walked, after(last))
    if len(rows) > query.limit:
        return rows[:page]
    return gather()


def gather_cap(session: Session) -> int:
    """How many matches a search gathers and sorts at once rather than walk on for them
    (see :data:`SEARCH_GATHER_PER_ROOT`), by the database's own estimate of the records
    of the desk, which costs no count."""
    estimate = session.scalar(
        select(sql_column("reltuples")).select_from(sql_table("pg_class"))
        .where(sql_column("oid") == func.to_regclass(Record.__tablename__)))
    return max(SEARCH_GATHER, round(SEARCH_GATHER_PER_ROOT * math.sqrt(max(estimate or 0, 0))))


def cursor_after(session: Session, record: Record, query: ListQuery) -> str:
    """The cursor of the page after ``record``: its sort key as the database computes
    it (a person's display name, a state's place in the workflow) and its id."""
    value = session.scalar(select(_sort_column(query)).where(Record.id == record.id))
    if value is None:  # the record went meanwhile; a key no row has still pages on
        value = NO_PRIORITY if query.sort.removeprefix("-") == "priority" else ""
    return encode_cursor(value, record.id)
