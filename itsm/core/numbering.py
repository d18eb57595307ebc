"""Human record numbers (INC0000042): one counter row per prefix in ``number_sequence``.

A number is never given twice, on any back end. On PostgreSQL and MariaDB it is taken
in a transaction of its own, committed at once: the counter row is locked for one
statement, not for the whole transaction of the record that uses the number, so
concurrent creates do not wait for each other's work (they did: numbering serialised
every create behind the slowest). A command that fails after taking its number leaves a
gap, as a failed bulk import batch does. On PostgreSQL that transaction does not wait for
its WAL to reach the disk (``synchronous_commit`` off on the numbering connection only):
the record's own commit, later, flushes it too. SQLite serialises writers anyway, and a second
connection would wait on the session's own write lock: there the number is taken inside
the session's transaction.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from itsm.core.models import NumberSequence

# The shape of every record number (INC0000042, inc42): letters then digits. The API's
# route converter and the OpenAPI document both use it.
RECORD_NUMBER_REGEX = r"[A-Za-z]+[0-9]+"
NUMBER_PATTERN = "^" + RECORD_NUMBER_REGEX + "$"

# Built once: building a statement and its cache key costs more than running it.
_SEQ = NumberSequence.__table__
_BUMP = update(_SEQ).where(_SEQ.c.prefix == bindparam("seq_prefix")) \
    .values(last_value=_SEQ.c.last_value + bindparam("step"))
_BUMP_RETURNING = _BUMP.returning(_SEQ.c.last_value)
_SEQ_VALUE = select(_SEQ.c.last_value).where(_SEQ.c.prefix == bindparam("seq_prefix"))


def next_number(session: Session, prefix: str) -> str:
    """Hand out the next human number for ``prefix`` (see the module's notes)."""
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name != "sqlite":
        value = take_numbers(bind, prefix)
    else:
        value = _bump(session, prefix)
        if value is None:
            try:
                with session.begin_nested():
                    session.execute(insert(_SEQ).values(prefix=prefix, last_value=1))
                value = 1
            except IntegrityError:  # another transaction created the row first
                value = _bump(session, prefix)
    return f"{prefix}{value:07d}"


def take_numbers(engine: Engine, prefix: str, count: int = 1) -> int:
    """Take ``count`` numbers of ``prefix`` in a transaction of their own and return the
    last one: the UPDATE takes the row's write lock before the value is read, so no
    number is given twice, and the commit right after frees the row."""
    value = _bump_alone(engine, prefix, count)
    if value is None:
        try:
            with engine.begin() as conn:
                conn.execute(insert(_SEQ).values(prefix=prefix, last_value=count))
            return count
        except IntegrityError:  # another transaction created the row first
            value = _bump_alone(engine, prefix, count)
    return value


def _bump(session: Session, prefix: str) -> int | None:
    """Take the next value inside the session's transaction, or None without a row.
    One round trip where the database returns updated values (PostgreSQL, SQLite)."""
    params = {"seq_prefix": prefix, "step": 1}
    if session.get_bind().dialect.update_returning:
        return session.execute(_BUMP_RETURNING, params).scalar()
    if session.execute(_BUMP, params).rowcount == 0:
        return None
    return session.scalar(_SEQ_VALUE, params)


def _bump_alone(engine: Engine, prefix: str, count: int) -> int | None:
    params = {"seq_prefix": prefix, "step": count}
    if not engine.dialect.update_returning:  # MariaDB: UPDATE, then read, one transaction
        with engine.begin() as conn:
            if conn.execute(_BUMP, params).rowcount == 0:
                return None
            return conn.scalar(_SEQ_VALUE, params)
    if engine.dialect.name == "sqlite":  # the bulk import's blocks
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            return conn.execute(_BUMP_RETURNING, params).scalar()
    return _counter(engine).bump(params)


class _Counter:
    """The connection that takes an engine's numbers in this process: one UPDATE ..
    RETURNING in autocommit each time. Kept open rather than checked out of the pool for
    every number, which cost a health-check round trip and a tenth of a create's time;
    the threads of a process take turns on it (the row lock orders them anyway). A
    connection lost (a server restart) is replaced and the number asked again once; a
    process forked from the one that opened it opens its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pid = 0
        self._inherited: list[Connection] = []  # kept, never closed: the parent's

    def bump(self, params: dict) -> int | None:
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return conn.execute(_BUMP_RETURNING, params).scalar()
                except DBAPIError as exc:
                    self.close()
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    def _connection(self) -> Connection:
        if self._conn is not None:
            if self._pid == os.getpid():
                return self._conn
            # Inherited over fork(): the parent's. Closing it, or letting it be collected,
            # would end the parent's session on the server; it is kept and left alone.
            self._inherited.append(self._conn)
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine of this counter is gone")
        conn = engine.connect()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        # Out of the pool for good: the setting below must never reach a record's work.
        conn.detach()
        # A number's commit need not wait for its WAL to reach the disk: whatever uses the
        # number commits after it, and that commit's flush writes all the WAL before it;
        # a number lost in a crash was used by nothing that lasted, and is taken again.
        conn.exec_driver_sql("SET synchronous_commit TO off")
        self._conn, self._pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._pid != os.getpid():
            self._inherited.append(conn)
            return
        with contextlib.suppress(Exception):  # already broken: nothing left to free
            conn.close()


_COUNTERS: weakref.WeakKeyDictionary[Engine, _Counter] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()


def _counter(engine: Engine) -> _Counter:
    counter = _COUNTERS.get(engine)
    if counter is None:
        with _COUNTERS_LOCK:
            counter = _COUNTERS.get(engine)
            if counter is None:
                counter = _COUNTERS[engine] = _Counter(engine)
                event.listen(engine, "engine_disposed", lambda _engine: counter.close())
                weakref.finalize(engine, counter.close)
    return counter
