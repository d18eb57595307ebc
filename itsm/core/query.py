"""Record lists: filters, sorting and keyset pagination that stay fast at millions of rows.

A page ends with an opaque cursor holding the sort value and id of its last row; the next
page starts strictly after it, so no OFFSET scan ever grows with the page number.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from itsm.core import search
from itsm.core.auth import Actor
from itsm.core.errors import ValidationError
from itsm.core.models import Agency, Group, Record, User

SORTS = ("created_at", "updated_at", "priority", "number")
NO_PRIORITY = 99  # records without a priority sort after every real one
MAX_PRIORITY = 99
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


FILTER_ARGS = ("state", "assignee", "requester", "group", "agency", "priority",
               "updated_since", "q", "sort", "cursor", "limit")


def _bad(name: str, message: str) -> ValidationError:
    return ValidationError(f"{name}: {message}", fields={name: [message]})


def parse_args(args: dict[str, str], *, default_limit: int, max_limit: int) -> ListQuery:
    """Validate query-string arguments; unknown ones are refused, not ignored."""
    unknown = sorted(set(args) - set(FILTER_ARGS))
    with_nul = sorted(name for name, value in args.items() if "\x00" in value)
    if with_nul:  # no database stores it in text; PostgreSQL refuses the query outright
        raise ValidationError("query parameters may not contain NUL characters",
                              fields={name: ["contains a NUL character"] for name in with_nul})
    if unknown:
        raise ValidationError("unknown query parameters: " + ", ".join(unknown),
                              fields={name: ["unknown parameter"] for name in unknown})
    query = ListQuery(limit=default_limit)
    for name in ("assignee", "requester", "group", "agency", "q", "cursor"):
        if args.get(name):
            setattr(query, name, args[name][:300])
    if args.get("state"):
        query.state = [s for s in args["state"].split(",") if s][:50]
    if args.get("priority"):
        try:
            query.priority = [int(p) for p in args["priority"].split(",")][:10]
        except ValueError:
            raise _bad("priority", "a number or comma-separated numbers") from None
        if not all(0 <= p <= MAX_PRIORITY for p in query.priority):
            raise _bad("priority", f"between 0 and {MAX_PRIORITY}")
    if args.get("updated_since"):
        try:
            since = datetime.fromisoformat(args["updated_since"].replace("Z", "+00:00"))
        except ValueError:
            raise _bad("updated_since", "an ISO 8601 date-time") from None
        if since.tzinfo is None:
            raise _bad("updated_since", "needs a time zone, e.g. 2026-01-31T12:00:00Z")
        try:
            query.updated_since = since.astimezone(UTC)
        except OverflowError:
            raise _bad("updated_since", "a date-time between the years 1 and 9999") from None
    if "sort" in args:
        if args["sort"].removeprefix("-") not in SORTS:
            raise _bad("sort", "one of " + ", ".join(SORTS) + " (prefix - for descending)")
        query.sort = args["sort"]
    if "limit" in args:
        try:
            query.limit = int(args["limit"])
        except ValueError:
            raise _bad("limit", "a whole number") from None
        if not 1 <= query.limit <= max_limit:
            raise _bad("limit", f"between 1 and {max_limit}")
    return query


def _sort_column(name: str) -> ColumnElement:
    if name == "priority":
        # A literal, not a bound parameter: the queue index (core_0005) is on this very
        # expression, and a planner matches it only against a constant.
        return func.coalesce(Record.priority, literal_column(str(NO_PRIORITY)))
    return getattr(Record, name)


def encode_cursor(value: Any, id_: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, id_], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, id_ = json.loads(raw)
        if not isinstance(id_, int):
            raise ValueError
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
            if value.tzinfo is None:
                raise ValueError
            value = value.astimezone(UTC)
        expected = {"created_at": datetime, "updated_at": datetime, "priority": int,
                    "number": str}[sort.removeprefix("-")]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ValueError
        if not 0 < id_ <= MAX_ID or (expected is int and not 0 <= value <= NO_PRIORITY):
            raise ValueError
        if expected is str and (len(value) > 32 or "\x00" in value):
            raise ValueError
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error,
            UnicodeDecodeError):
        raise _bad("cursor", "not a cursor from this list; start again without it") from None
    return value, id_


NO_MATCH = 0  # an id no row has: the filter then matches nothing


def _lookup(session: Session, model, column, value: str, name: str, actor: Actor) -> int:
    found = session.scalar(select(model.id).where(column == value))
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


def build(session: Session, model: type[Record], query: ListQuery, actor: Actor,
          scope: ColumnElement | None) -> Select:
    """The SELECT for one page (``limit + 1`` rows, to know whether another page exists)."""
    stmt = select(model)
    if scope is not None:
        stmt = stmt.where(scope)
    if query.state:
        stmt = stmt.where(Record.state.in_(query.state))
    for name, column in (("assignee", Record.assignee_id), ("requester", Record.requester_id)):
        value = getattr(query, name)
        if value:
            user_id = _user_filter(session, actor, value, name)
            stmt = stmt.where(column.is_(None) if user_id is None else column == user_id)
    if query.group:
        stmt = stmt.where(Record.group_id == _lookup(session, Group, Group.name, query.group,
                                                     "group", actor))
    if query.agency:
        stmt = stmt.where(Record.agency_id == _lookup(session, Agency, Agency.code,
                                                      query.agency, "agency", actor))
    if query.priority:
        stmt = stmt.where(Record.priority.in_(query.priority))
    if query.updated_since:
        stmt = stmt.where(Record.updated_at >= query.updated_since)
    if query.q:
        # Full text over title and description (each database's own index), or the
        # record's number typed as it is.
        matches = search.matching(session, query.q)
        by_number = Record.number == query.q.strip().upper()
        stmt = stmt.where(or_(by_number, Record.id.in_(matches)) if matches is not None
                          else by_number)
    descending = query.sort.startswith("-")
    column = _sort_column(query.sort.removeprefix("-"))
    if query.cursor:
        value, last_id = decode_cursor(query.cursor, query.sort)
        key = tuple_(column, Record.id)
        # Bound with the column's own type: a timestamp must go to the database as the
        # naive UTC value it stores, whatever the session's time zone.
        after = tuple_(literal(value, type_=column.type), literal(last_id, type_=Integer()))
        stmt = stmt.where(key < after if descending else key > after)
    order = (column.desc(), Record.id.desc()) if descending else (column.asc(), Record.id.asc())
    return stmt.order_by(*order).limit(query.limit + 1)


def cursor_after(record: Record, sort: str) -> str:
    name = sort.removeprefix("-")
    value = record.priority if name == "priority" else getattr(record, name)
    if name == "priority" and value is None:
        value = NO_PRIORITY
    return encode_cursor(value, record.id)
