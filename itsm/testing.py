"""Pytest fixtures for itsm and for vendors' plugin test suites (a ``pytest11`` plugin).

Fixtures: ``itsm_config`` (settings of a throwaway install), ``itsm_plugins`` (extra
plugin modules to register and enable; override it in a test module), ``app``,
``client``, ``runner`` (the ``itsm`` CLI bound to ``app``) and ``make_token`` (a user
and a Bearer header for them). :func:`make_plugin` builds a throwaway plugin module.

Set ``ITSM_TEST_DATABASE_URL`` to run against PostgreSQL or MariaDB instead of a SQLite
file; that database is emptied before every test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import MetaData

from itsm.core.hookspecs import hookimpl
from itsm.core.plugins import Plugin

TEST_DATABASE_ENV = "ITSM_TEST_DATABASE_URL"


def make_plugin(name: str, *, version: str = "1.0.0", description: str = "test plugin",
                requires_itsm: str = "", depends: dict | None = None,
                settings: dict | None = None, **hooks: Callable) -> types.ModuleType:
    """A plugin module made at run time: ``make_plugin("acme", itsm_record_types=f)``."""
    module = types.ModuleType(f"itsm_test_plugin_{name}")
    module.plugin = Plugin(name=name, version=version, description=description,
                           requires_itsm=requires_itsm, depends=depends or {},
                           settings=settings or {})
    for hook_name, function in hooks.items():
        function.__name__ = hook_name
        setattr(module, hook_name, hookimpl(function))
    return module


def empty_database(url: str) -> None:
    """Drop every table of a server database so each test starts from nothing."""
    from itsm.core.database import make_engine

    engine = make_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def itsm_plugins() -> list[types.ModuleType]:
    """Extra plugin modules registered and enabled in ``app``; override per module."""
    return []


@pytest.fixture
def itsm_config(tmp_path) -> dict[str, Any]:
    """Settings of the test install; the outbox is drained explicitly by tests."""
    url = os.environ.get(TEST_DATABASE_ENV) or f"sqlite:///{tmp_path / 'itsm.db'}"
    return {"home": str(tmp_path / "instance"), "database.url": url,
            "secret_key": "test-secret", "plugins.refresh_seconds": 0.0,
            "attachments.path": str(tmp_path / "attachments"),
            # Only the log channel of the built-ins: a test enables what it exercises
            # through ``itsm_plugins``, so each plugin is tested alone as well.
            "plugins.initial": ["notify_log"]}


class InstallTemplates:
    """Initialised databases kept for the rest of the test session, one per install shape.

    Migrating the core and the enabled plugins and installing their defaults is most of
    a test's set-up. The first test of a shape (the same settings, plugin modules and
    ``ITSM_*`` environment) initialises as an admin would and keeps a copy: a SQLite
    file, or a PostgreSQL database used as ``CREATE DATABASE ... TEMPLATE``. Later tests
    of that shape start from a copy. Shapes with throwaway plugin modules (built by
    :func:`make_plugin`) are never copied, and any failure to copy falls back to a full
    initialisation, so a test sees exactly what ``itsm init`` gives. A shape whose copy
    failed twice (a busy server, say) is initialised in full from then on.
    """

    MAX_FAILURES = 2

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.kept: dict[str, str | None] = {}  # shape -> template (None: given up)
        self.failures: dict[str, int] = {}
        self.server_templates: list[tuple[str, str]] = []  # (admin url, database)

    def _failed(self, shape: str) -> None:
        self.failures[shape] = self.failures.get(shape, 0) + 1
        if self.failures[shape] >= self.MAX_FAILURES:
            self.kept[shape] = None

    @staticmethod
    def shape(config: dict[str, Any], plugins: list[types.ModuleType]) -> str | None:
        if any(sys.modules.get(m.__name__) is not m or not getattr(m, "__file__", None)
               for m in plugins):
            return None
        stable = sorted((k, repr(v)) for k, v in config.items()
                        if k not in ("home", "database.url", "attachments.path"))
        env = sorted((k, v) for k, v in os.environ.items()
                     if k.startswith("ITSM_") and not k.startswith("ITSM_TEST_"))
        url = config["database.url"]
        server = "sqlite" if url.startswith("sqlite") else url
        text = repr((stable, [m.__name__ for m in plugins], env, server))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def restore(self, shape: str | None, url: str) -> bool:
        """Put the kept copy of ``shape`` at ``url``; False when there is none."""
        template = self.kept.get(shape) if shape else None
        if template is None:
            return False
        try:
            if url.startswith("sqlite"):
                _sqlite_copy(template, _sqlite_path(url))
            else:
                _server_copy(url, template, replace=True)
        except Exception:  # noqa: BLE001 - any trouble: initialise in full instead
            self._failed(shape)
            return False
        return True

    def keep(self, shape: str | None, url: str, engine) -> None:
        """Keep a copy of the freshly initialised database at ``url`` for ``shape``."""
        if shape is None or shape in self.kept:  # kept already, or given up
            return
        try:
            if url.startswith("sqlite"):
                template = os.path.join(self.folder, f"{shape}.db")
                _sqlite_copy(_sqlite_path(url), template)
            else:
                engine.dispose()  # a template database must have no open connection
                template = _server_copy(url, f"{shape}", replace=False)
                self.server_templates.append((url, template))
        except Exception:  # noqa: BLE001 - keeping a copy is only a speed-up
            self._failed(shape)
            return
        self.kept[shape] = template

    def drop_server_templates(self) -> None:
        for url, database in self.server_templates:
            # Best effort: the next session replaces a template left behind anyway.
            with contextlib.suppress(Exception):
                _admin_execute(url, f"DROP DATABASE IF EXISTS {_quoted(database)}")


def _sqlite_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def _sqlite_copy(source: str, target: str) -> None:
    # The backup API copies a consistent database, whatever its WAL holds.
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected database name {name!r}")
    return f'"{name}"'


def _admin_execute(url: str, *statements: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from itsm.core.database import normalize_url

    admin = make_url(normalize_url(url)).set(database="postgres")
    from sqlalchemy import create_engine

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def _server_copy(url: str, template: str, *, replace: bool) -> str:
    """PostgreSQL: recreate the test database from ``template`` (``replace``), or keep
    the test database as template ``<database>__tpl_<template>``. Returns its name."""
    from sqlalchemy.engine import make_url

    if not make_url(url).drivername.startswith("postgres"):
        raise ValueError("templates are a PostgreSQL feature")
    database = make_url(url).database or ""
    if replace:
        _admin_execute(url, f"DROP DATABASE IF EXISTS {_quoted(database)} WITH (FORCE)",
                       f"CREATE DATABASE {_quoted(database)} TEMPLATE {_quoted(template)} "
                       "STRATEGY FILE_COPY")
        return database
    name = f"{database}__tpl_{template}"[:63]
    _admin_execute(url, f"DROP DATABASE IF EXISTS {_quoted(name)}",
                   f"CREATE DATABASE {_quoted(name)} TEMPLATE {_quoted(database)} "
                   "STRATEGY FILE_COPY")
    return name


@pytest.fixture(scope="session")
def itsm_install_templates(tmp_path_factory) -> Iterator[InstallTemplates]:
    """The session's kept initialised databases (see :class:`InstallTemplates`)."""
    templates = InstallTemplates(str(tmp_path_factory.mktemp("itsm-templates")))
    yield templates
    templates.drop_server_templates()


@pytest.fixture
def app(itsm_config, itsm_plugins, itsm_install_templates) -> Iterator[Flask]:
    """An initialised itsm application with ``itsm_plugins`` registered and enabled."""
    from itsm.core import plugin_admin
    from itsm.core.app import create_app
    from itsm.core.install import initialise

    url = itsm_config["database.url"]
    # `itsm init` creates the instance folder; plugins may write files there.
    os.makedirs(itsm_config["home"], exist_ok=True)
    shape = itsm_install_templates.shape(itsm_config, list(itsm_plugins))
    restored = itsm_install_templates.restore(shape, url)
    if not restored and not url.startswith("sqlite"):
        empty_database(url)
    application = create_app({**itsm_config, "plugins.extra": list(itsm_plugins)})
    application.config["TESTING"] = True
    itsm = application.extensions["itsm"]
    with application.app_context():
        if restored:
            itsm.refresh_plugins(force=True)
        else:
            initialise(itsm)
            for module in itsm_plugins:
                plugin_admin.enable(itsm, module.plugin.name)
            itsm_install_templates.keep(shape, url, itsm.engine)
    yield application
    itsm.outbox.stop_thread()
    itsm.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class ItsmRunner(CliRunner):
    """Runs ``itsm`` commands against the fixture's application."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app

    def invoke(self, args, **kwargs) -> Result:  # type: ignore[override]
        from itsm.cli import cli
        from itsm.core.cli_kit import CliState

        state = CliState()
        state._app = self.app
        return super().invoke(cli, args, obj=state, **kwargs)


@pytest.fixture
def runner(app) -> ItsmRunner:
    return ItsmRunner(app)


@pytest.fixture
def make_token(app) -> Callable[..., dict[str, str]]:
    """``make_token("pat@x.org", role="requester", agency="DOT")`` -> auth headers.

    Creates the user (and agency) when missing.
    """
    from sqlalchemy import select

    from itsm.core import auth
    from itsm.core.demo import ensure_agency
    from itsm.core.models import User

    def factory(email: str, role: str = "agent", agency: str | None = None,
                password: str | None = None) -> dict[str, str]:
        itsm = app.extensions["itsm"]
        with app.app_context(), itsm.Session() as session:
            if agency:
                ensure_agency(session, agency, f"Agency {agency}")
            user = session.scalar(select(User).where(User.email == email.lower()))
            if user is None:
                user = auth.create_user(session, email, role=role, agency=agency,
                                        password=password,
                                        roles=auth.known_roles(list(itsm.permissions.values())))
            _, secret = auth.create_token(session, user, name="test")
            session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return factory


def schema_drift(engine, tables: Iterable[str]) -> list:
    """Differences between the database's schema and the models for ``tables``.

    A plugin's test asserts ``schema_drift(engine, ["my_table"]) == []`` after its
    migrations ran: the migrations create exactly what the models describe.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from itsm.core.models import Base

    names = set(tables)

    def touches(diff) -> bool:
        for item in diff if isinstance(diff, list) else [diff]:
            for part in item[1:]:
                if names & {part if isinstance(part, str) else None,
                            getattr(part, "name", None),
                            getattr(getattr(part, "table", None), "name", None)}:
                    return True
        return False

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata) if touches(d)]
