"""Shared fixtures of itsm's own tests; the general ones come from itsm.testing."""

from __future__ import annotations

import pytest
import sample_plugin

from itsm.core import plugin_admin
from itsm.core.app import create_app
from itsm.core.install import initialise
from itsm.testing import empty_database


@pytest.fixture
def itsm_plugins():
    """Core tests run with the sample "tickets" plugin enabled."""
    return [sample_plugin]


@pytest.fixture
def itsm(app):
    """The Itsm state of the test application, inside an application context."""
    with app.app_context():
        yield app.extensions["itsm"]


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent")


@pytest.fixture
def admin(make_token):
    return make_token("admin@example.org", role="admin")


@pytest.fixture
def with_plugin(itsm_config):
    """Start an app with the tickets plugin plus ``module``, both enabled."""
    made = []

    def start(module):
        if not itsm_config["database.url"].startswith("sqlite"):
            empty_database(itsm_config["database.url"])
        application = create_app({**itsm_config, "plugins.extra": [sample_plugin, module]})
        itsm = application.extensions["itsm"]
        with application.app_context():
            initialise(itsm)
            plugin_admin.enable(itsm, "tickets")
            plugin_admin.enable(itsm, module.plugin.name)
        made.append(itsm)
        return application

    yield start
    for itsm in made:
        itsm.engine.dispose()
