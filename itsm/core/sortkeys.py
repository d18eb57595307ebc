"""What a record list can be sorted by: each key's SQL expression and the type of its value.

Every key is an expression that is never NULL, so that keyset paging ((key, id) after the
cursor's) gives the same rows on every database without NULLS FIRST/LAST: missing people,
groups and agencies sort as an empty name, a missing priority as 99, a record with no
running SLA clock as :data:`~itsm.core.models.SLA_NONE`. The keys a queue shows as columns
are those of :attr:`RecordType.columns`; a type's own text and number columns sort too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, case, func, literal, literal_column, select
from sqlalchemy import inspect as sa_inspect

from itsm.core.models import Agency, Group, Record, User

NO_PRIORITY = 99  # records without a priority sort after every real one

# Sort keys every record type has, with the Python type of a cursor's value.
CORE_SORTS: dict[str, type] = {
    "number": str, "title": str, "requester": str, "assignee": str, "group": str,
    "agency": str, "priority": int, "state": int, "sla_due": datetime,
    "updated_at": datetime, "created_at": datetime}


def display_name(user_id: Any) -> ColumnElement:
    """A person's display name (their name, else their e-mail) for a user id column."""
    return (select(func.coalesce(func.nullif(User.name, ""), User.email))
            .where(User.id == user_id).scalar_subquery())


def _name_of(model: Any, column: Any, id_column: Any) -> ColumnElement:
    return select(column).where(model.id == id_column).scalar_subquery()


def own_sorts(rt: Any) -> dict[str, type]:
    """The record type's own columns that sort: text and whole numbers."""
    if rt is None or rt.model is Record:
        return {}
    shared = set(Record.__table__.columns.keys())
    out: dict[str, type] = {}
    for attr in sa_inspect(rt.model).column_attrs:
        column = attr.columns[0]
        if attr.key in shared or column.table is Record.__table__:
            continue
        if isinstance(column.type, String):
            out[attr.key] = str
        elif isinstance(column.type, Integer):
            out[attr.key] = int
    return out


def sort_types(rt: Any) -> dict[str, type]:
    """Every sort key of ``rt`` (the core's when ``rt`` is None) with its value's type."""
    return {**own_sorts(rt), **CORE_SORTS}


def sort_expression(rt: Any, name: str) -> ColumnElement:
    """The never-NULL SQL expression of sort key ``name``."""
    if name == "priority":
        # A literal, not a bound parameter: the queue index (core_0005) is on this very
        # expression, and a planner matches it only against a constant.
        return func.coalesce(Record.priority, literal_column(str(NO_PRIORITY)))
    if name == "sla_due":
        return Record.sla_due_at
    if name in ("number", "updated_at", "created_at"):
        return getattr(Record, name)
    if name == "title":
        return Record.title
    if name in ("requester", "assignee"):
        return func.coalesce(display_name(getattr(Record, f"{name}_id")), literal(""))
    if name == "group":
        return func.coalesce(_name_of(Group, Group.name, Record.group_id), literal(""))
    if name == "agency":
        return func.coalesce(_name_of(Agency, Agency.name, Record.agency_id), literal(""))
    if name == "state":
        # The workflow's own order (new, in progress, on hold ...), not the alphabet.
        order = {state: index for index, state in enumerate(rt.workflow.states)} \
            if rt is not None else {}
        if not order:
            return literal(0)
        return case(order, value=Record.state, else_=len(order))
    column = getattr(rt.model, name)
    empty: Any = "" if own_sorts(rt)[name] is str else 0
    return func.coalesce(column, literal(empty))
