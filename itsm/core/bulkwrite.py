"""Writing many rows at once, below the ORM: PostgreSQL's COPY (several times faster
than multi-row INSERTs; what the bulk import and the SLA sweep write with there), and the
conversion of values SQLAlchemy would otherwise apply to each bound parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session


def bind_processors(table: Table, keys: Iterable[str], dialect: Any) \
        -> list[Callable[[Any], Any] | None]:
    """Each column's own conversion of a value to the driver's (aware timestamps to naive
    UTC, JSON to text ...): what SQLAlchemy applies to a bound parameter; None where the
    value goes as it is."""
    return [table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys]


def converted(processors: Iterable[Callable[[Any], Any] | None],
              values: Iterable[Any]) -> tuple[Any, ...]:
    """``values`` through their :func:`bind_processors` (None stays None)."""
    return tuple(value if fn is None or value is None else fn(value)
                 for fn, value in zip(processors, values, strict=True))


def _is_timestamp(column: Any) -> bool:
    type_ = getattr(column.type, "impl_instance", column.type)  # a TypeDecorator's own
    try:
        return type_.python_type is datetime
    except NotImplementedError:
        return False


def _as_text(convert: Callable[[Any], Any] | None) -> Callable[[Any], str]:
    """A timestamp's value for COPY's text format (``2026-01-31 12:00:00.000001``), after
    the column's own conversion (aware to naive UTC)."""
    if convert is None:
        return lambda value: value.isoformat(" ")
    return lambda value: convert(value).isoformat(" ")


class Copier:
    """One table's rows written with COPY.

    :meth:`row` converts a row's values as SQLAlchemy would bind them (aware timestamps
    to naive UTC, JSON to text ...), so that it can be done ahead of the write, by
    another thread; :meth:`copy` streams the rows, each behind the ``lead`` values known
    only at write time (ids, numbers).
    """

    def __init__(self, table: Table, lead: tuple[str, ...], dialect: Any) -> None:
        self.table = table
        self.keys = [c.key for c in table.columns if c.key != "id" and c.key not in lead]
        self.convert = bind_processors(table, self.keys, dialect)
        # Only the columns that convert, by position: most of a row goes as it is. A
        # timestamp goes as the text COPY reads: a string is several times cheaper than a
        # datetime to pickle (an import's worker processes send their rows so) and to write.
        self._converting: list[tuple[int, Callable[[Any], Any]]] = []
        for i, (key, fn) in enumerate(zip(self.keys, self.convert, strict=True)):
            if _is_timestamp(table.c[key]):
                fn = _as_text(fn)
            if fn is not None:
                self._converting.append((i, fn))
        quote = dialect.identifier_preparer.quote
        self.sql = (f"COPY {quote(table.name)} "
                    f"({', '.join(quote(k) for k in (*lead, *self.keys))}) FROM STDIN")

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """``values`` (by column key; a missing one is NULL) in COPY order, converted."""
        row = [values.get(key) for key in self.keys]
        for i, fn in self._converting:
            if row[i] is not None:
                row[i] = fn(row[i])
        return tuple(row)

    def copy(self, session: Session, rows: Iterable[tuple[Any, ...]]) -> None:
        """Write ``rows`` (lead values, then :meth:`row`'s) in the session's transaction."""
        cursor = session.connection().connection.driver_connection.cursor()
        with cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row(row)


def new_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` ids from the table's sequence, in order."""
    return sorted(session.scalars(
        select(func.nextval(func.pg_get_serial_sequence(table.name, "id")))
        .select_from(func.generate_series(1, count))))
