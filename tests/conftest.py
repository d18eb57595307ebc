"""Shared fixtures of itsm's own tests; the general ones come from itsm.testing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing():
    """Argon2 at the cost itsm sets for real passwords (0.1 to 0.2 s a hash or a check on a
    small machine) made up most of the set-up of the tests that sign people in. Here the
    hashes are argon2 still, with the least work: what the tests check (a wrong password
    is refused, a hash is no password) does not depend on the cost."""
    from argon2 import PasswordHasher

    from itsm.core import auth

    kept = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    auth._hasher = kept


@pytest.fixture
def live_server(app):
    """The test application served over HTTP on a free port of 127.0.0.1, in a thread."""
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="itsm-test-server",
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    """Debian's headless Chromium driven by Playwright (``ITSM_TEST_BROWSER=0``: skipped,
    for a second pass over another database that would only repeat the same pages)."""
    if os.environ.get("ITSM_TEST_BROWSER") == "0":
        pytest.skip("browser tests are off in this pass (ITSM_TEST_BROWSER=0)")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install it with `apt-get install -y chromium`")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install playwright")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
