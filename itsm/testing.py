"""Pytest fixtures for itsm and for vendors' plugin test suites (a ``pytest11`` plugin).

Fixtures: ``itsm_config`` (settings of a throwaway install), ``itsm_plugins`` (extra
plugin modules to register and enable; override it in a test module), ``app``,
``client``, ``runner`` (the ``itsm`` CLI bound to ``app``) and ``make_token`` (a user
and a Bearer header for them). :func:`make_plugin` builds a throwaway plugin module.

Set ``ITSM_TEST_DATABASE_URL`` to run against PostgreSQL or MariaDB instead of a SQLite
file; that database is emptied before every test.
"""

from __future__ import annotations

import os
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
    from itsm.adapters.storage import make_engine

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


@pytest.fixture
def app(itsm_config, itsm_plugins) -> Iterator[Flask]:
    """An initialised itsm application with ``itsm_plugins`` registered and enabled."""
    from itsm.core import plugin_admin
    from itsm.core.app import create_app
    from itsm.core.install import initialise

    if not itsm_config["database.url"].startswith("sqlite"):
        empty_database(itsm_config["database.url"])
    application = create_app({**itsm_config, "plugins.extra": list(itsm_plugins)})
    application.config["TESTING"] = True
    itsm = application.extensions["itsm"]
    with application.app_context():
        initialise(itsm)
        for module in itsm_plugins:
            plugin_admin.enable(itsm, module.plugin.name)
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
        from itsm.cli import CliState, cli

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
