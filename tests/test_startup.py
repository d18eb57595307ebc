"""Start-up: the routes are registered when the application is first used, and what that
registers is exactly what registering them at start gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import sample_plugin

from itsm.core.app import create_app
from itsm.testing import make_plugin


def _ready(app) -> None:
    """An ``itsm_app_ready`` implementation: the application is complete when it runs."""


def _shape(application) -> dict:
    """What a request meets: rules in matching order, request hooks, handlers, templates."""
    return {
        "rules": [(r.rule, r.endpoint, sorted(r.methods or ())) for r in
                  application.url_map.iter_rules()],
        "blueprints": list(application.blueprints),
        "before": {str(k): [f.__qualname__ for f in v]
                   for k, v in application.before_request_funcs.items()},
        "after": {str(k): [f.__qualname__ for f in v]
                  for k, v in application.after_request_funcs.items()},
        "errors": {str(k): sorted(str(code) for code in v)
                   for k, v in application.error_handler_spec.items()},
        "filters": sorted(application.jinja_env.filters),
    }


def test_routes_registered_on_first_use_are_those_registered_at_start(with_plugin,
                                                                      itsm_config):
    # A plugin implementing itsm_app_ready gets the application complete at start;
    # without one the routes wait for the first use. Both must be the same application.
    module = make_plugin("ready", itsm_app_ready=_ready)
    with_plugin(module)
    at_start = create_app({**itsm_config, "plugins.extra": [sample_plugin, module]})
    on_use = create_app({**itsm_config, "plugins.extra": [sample_plugin]})
    try:
        document = on_use.test_client().get("/api/v1/openapi.json")
        assert document.status_code == 200
        assert document.json == at_start.test_client().get("/api/v1/openapi.json").json
        assert _shape(on_use) == _shape(at_start)
        assert any(r.endpoint.startswith("catalog_portal.")
                   for r in on_use.url_map.iter_rules())
    finally:
        for application in (at_start, on_use):
            application.extensions["itsm"].engine.dispose()


def test_a_plugin_whose_routes_fail_is_reported_without_a_request(with_plugin):
    def itsm_blueprints():
        raise ImportError("cannot import name 'charts'")

    application = with_plugin(make_plugin("halfdone", itsm_blueprints=itsm_blueprints))
    errors = application.extensions["itsm"].errors
    assert any("plugin 'halfdone': its pages and routes failed to load" in e for e in errors)


def test_first_requests_arriving_together_all_get_the_whole_application(app, itsm_config):
    fresh = create_app({**itsm_config, "plugins.extra": [sample_plugin]})
    start = threading.Barrier(6)
    answers: list[int] = []

    def first_request() -> None:
        client = fresh.test_client()
        start.wait()
        answers.append(client.get("/api/v1/").status_code)

    threads = [threading.Thread(target=first_request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert answers == [200] * 6
        assert len(list(fresh.url_map.iter_rules())) == len(list(app.url_map.iter_rules()))
    finally:
        fresh.extensions["itsm"].engine.dispose()


PROBE = """
import json, sys
from itsm.core.app import create_app

def loaded():
    return sorted(m for m in sys.modules if m.startswith("itsm.plugins.")
                  and m.rsplit(".", 1)[1] in ("pages", "api", "reports"))

application = create_app()
before = loaded()
status = application.test_client().get("/login").status_code
print(json.dumps({"before": before, "after": loaded(), "status": status}))
"""


def test_the_application_starts_without_the_plugins_pages(app, itsm_config):
    # A fresh interpreter: the test process has imported everything long ago.
    env = {**os.environ, "ITSM_HOME": itsm_config["home"],
           "ITSM_DATABASE_URL": itsm_config["database.url"],
           "ITSM_SECRET_KEY": itsm_config["secret_key"], "ITSM_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == []
    assert seen["status"] == 200
    assert "itsm.plugins.catalog.pages" in seen["after"]
    assert "itsm.plugins.incident.api" in seen["after"]
