"""Database engines for the supported back ends: SQLite (default), PostgreSQL, MariaDB/MySQL.

The database URL is the only switch. Short URLs are completed with the driver itsm ships
for that back end (``postgresql://`` -> psycopg 3, ``mariadb://`` -> PyMySQL).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from itsm.plugin import ConfigError

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalize_url(url: str) -> str:
    """Give a bare back-end name the driver itsm installs for it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"database URL {url!r} has no scheme: use sqlite:///path/itsm.db "
                          "or postgresql://user@host/db")
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer commits; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), before SQLite creates it
    with the umask's mode (0644 as a rule): it holds every record, hashed passwords and
    token hashes. SQLite gives its -wal and -shm files the database file's mode. An
    existing file is left as its admin set it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str, **kwargs) -> Engine:
    """Create the engine for ``url`` with the settings each back end needs."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not valid: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:" and "mode=memory" not in url:
            _create_private(Path(parsed.database))
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 10},
                               **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend in ("mysql", "mariadb"):
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600, **kwargs)
    if backend == "postgresql" and "options" not in parsed.query:
        # No JIT compilation: our statements stop after a page, but a walk over many
        # records is estimated costly enough to be compiled first, which took 300 ms
        # for a search that then ran in 56.
        kwargs.setdefault("connect_args", {}).setdefault("options", "-c jit=off")
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the driver for {backend} is not installed ({exc.name}): "
                          f"pip install 'itsm[{backend}]'") from None
    if backend == "postgresql":
        event.listen(engine, "do_execute", _plan_each_run)
    return engine


PLAN_EACH_RUN = "plan_each_run"


def plan_each_run(statement: Executable) -> Executable:
    """Mark ``statement`` to be planned for the values of each run.

    psycopg prepares a statement after five runs, and the server may then plan it once
    for all values. That suits a lookup by key or an insert, and saves planning them on
    every request; it does not suit a search's words or a queue's group, which differ too
    much in how many rows they match for one plan to serve them all. A marked statement
    is never prepared, so the server plans it with the values it is given.
    """
    return statement.execution_options(**{PLAN_EACH_RUN: True})


def _plan_each_run(cursor, statement: str, parameters, context) -> bool:
    if context is None or not context.execution_options.get(PLAN_EACH_RUN):
        return False
    cursor.execute(statement, parameters, prepare=False)
    return True
