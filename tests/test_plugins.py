"""The plugin host: discovery, declarations, enable/disable, dependencies, purge."""

from __future__ import annotations

import json
import types

import pytest
import sample_plugin
from flask import Blueprint, jsonify
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from itsm.core import plugin_admin
from itsm.core.errors import PluginError
from itsm.core.models import Record
from itsm.core.plugins import Plugin, discover, inspect_module
from itsm.testing import make_plugin


def test_builtin_plugins_come_from_the_entry_point_group():
    found = discover()
    assert found["notify_log"].builtin is True
    assert found["notify_log"].distribution == "itsm"
    assert found["notify_log"].error is None
    assert "itsm_notification_channels" in found["notify_log"].hooks


def test_plugin_needing_a_newer_itsm_is_refused_with_the_fix():
    module = make_plugin("future", version="2.0", requires_itsm=">=9.0")
    info = inspect_module(module)
    assert info.error is not None
    assert "needs itsm>=9.0" in info.error and "upgrade itsm" in info.error


def test_misspelled_hook_refuses_the_plugin_by_name():
    module = make_plugin("typo", itsm_record_typez=lambda: [])
    info = inspect_module(module)
    assert info.error is not None
    assert "typo" in info.error and "itsm_record_typez" in info.error


def test_refused_plugins_leave_the_next_plugin_checked_as_if_alone():
    # Start-up checks every plugin on one scratch manager, emptied after each.
    typo = make_plugin("typo", itsm_record_typez=lambda: [])
    wrong = make_plugin("wrong", itsm_record_types=lambda nonsense: [])
    good = make_plugin("good", itsm_record_types=lambda: [])
    found = discover([typo, wrong, good, make_plugin("typo2", itsm_record_typez=lambda: [])])
    assert "itsm_record_typez" in found["typo"].error
    assert "nonsense" in found["wrong"].error
    assert found["good"].error is None and found["good"].hooks == ["itsm_record_types"]
    assert "itsm_record_typez" in found["typo2"].error
    assert found["notify_log"].error is None  # the built-in ones, checked before them


def test_module_without_declaration_is_reported():
    module = types.ModuleType("bare")
    info = inspect_module(module, name="bare")
    assert "has no declaration" in info.error


def test_entry_point_name_must_match_the_declaration():
    module = make_plugin("alpha")
    info = inspect_module(module, name="beta")
    assert "declares the name 'alpha'" in info.error


def test_broken_plugin_does_not_stop_the_others(itsm_config, runner):
    bad = make_plugin("broken", requires_itsm=">=99")
    from itsm.core.app import create_app

    app = create_app({**itsm_config, "plugins.extra": [bad, sample_plugin]})
    host = app.extensions["itsm"].host
    assert host.plugins["broken"].error
    assert host.plugins["tickets"].usable
    app.extensions["itsm"].engine.dispose()


def test_plugins_list_shows_version_state_origin_and_errors(runner):
    result = runner.invoke(["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["notify_log"]["builtin"] is True and rows["notify_log"]["enabled"] is True
    assert rows["tickets"]["version"] == "1.2.0"
    assert rows["tickets"]["enabled"] is True and rows["tickets"]["builtin"] is False
    text = runner.invoke(["plugins", "list"]).output
    assert "tickets" in text and "third-party" in text


def test_disable_hides_record_type_and_enable_brings_records_back(client, agent, runner):
    created = client.post("/api/v1/tickets", json={"title": "VPN down"}, headers=agent)
    assert created.status_code == 201
    assert runner.invoke(["plugins", "disable", "tickets"]).exit_code == 0
    assert client.get("/api/v1/tickets", headers=agent).status_code == 404
    assert "tickets" not in client.get("/api/v1/").json["collections"]
    assert "/api/v1/tickets" not in client.get("/api/v1/openapi.json").json["paths"]
    result = runner.invoke(["plugins", "enable", "tickets"])
    assert result.exit_code == 0, result.output
    listed = client.get("/api/v1/tickets", headers=agent).json["items"]
    assert [t["title"] for t in listed] == ["VPN down"]


def test_disabled_record_type_shows_as_record_of_a_disabled_process(app, itsm, client, agent):
    first = client.post("/api/v1/tickets", json={"title": "A"}, headers=agent).json["number"]
    second = client.post("/api/v1/tickets", json={"title": "B"}, headers=agent).json["number"]
    assert client.post(f"/api/v1/tickets/{first}/links", json={"target": second},
                       headers=agent).status_code == 201
    plugin_admin.disable(itsm, "tickets")
    from itsm.core.auth import Actor

    with itsm.unit_of_work(Actor.system()) as service:
        record = service.session.scalar(select(Record).where(Record.number == first))
        ref = service.links(record)[0]["record"]
    assert ref == {"number": second, "type": "ticket", "available": False,
                   "title": "record of a disabled process", "state": "new"}


def test_record_of_an_uninstalled_plugin_loads_as_a_plain_record(itsm):
    from itsm.core.models import utcnow

    with itsm.Session() as session:
        session.execute(Record.__table__.insert().values(
            type="gone_type", number="GONE0000001", title="left behind", description="",
            state="open", created_at=utcnow(), updated_at=utcnow(), version=1))
        session.commit()
        record = session.scalar(select(Record).where(Record.number == "GONE0000001"))
    assert type(record) is Record and record.title == "left behind"


def test_dependencies_are_enabled_first_and_block_disable(app, itsm_config):
    base = make_plugin("base_proc", version="1.4.0")
    addon = make_plugin("addon", depends={"base_proc": ">=1.0"})
    from itsm.core.app import create_app

    application = create_app({**itsm_config, "plugins.extra": [base, addon]})
    itsm = application.extensions["itsm"]
    with application.app_context():
        assert plugin_admin.enable(itsm, "addon") == ["base_proc", "addon"]
        with pytest.raises(PluginError, match="needed by addon"):
            plugin_admin.disable(itsm, "base_proc")
        assert plugin_admin.disable(itsm, "addon") is True
        assert plugin_admin.disable(itsm, "base_proc") is True
    itsm.engine.dispose()


def test_dependency_version_mismatch_and_missing_dependency_are_refused(app, itsm_config):
    old = make_plugin("old_base", version="0.5")
    wants_new = make_plugin("wants_new", depends={"old_base": ">=1.0"})
    orphan = make_plugin("orphan", depends={"nowhere": ">=1"})
    from itsm.core.app import create_app

    application = create_app({**itsm_config, "plugins.extra": [old, wants_new, orphan]})
    itsm = application.extensions["itsm"]
    with application.app_context():
        with pytest.raises(PluginError, match=r"needs old_base>=1.0, but old_base 0.5"):
            plugin_admin.enable(itsm, "wants_new")
        with pytest.raises(PluginError, match="'nowhere', which is not installed"):
            plugin_admin.enable(itsm, "orphan")
        assert not itsm.host.is_enabled("old_base")
    itsm.engine.dispose()


def test_enable_unknown_plugin_is_one_clear_line(runner):
    result = runner.invoke(["plugins", "enable", "nosuch"])
    assert result.exit_code != 0
    assert "no plugin named 'nosuch' is installed" in str(result.exception)


def test_plugins_check_reports_consistent_install(runner):
    result = runner.invoke(["plugins", "check"])
    assert result.exit_code == 0, result.output
    assert "ok: plugins are consistent" in result.output


def test_plugins_check_lists_enabled_plugin_that_vanished(itsm, runner):
    from itsm.core.models import PluginState

    with itsm.Session() as session:
        session.add(PluginState(name="vanished", enabled=True, version="1.0"))
        session.commit()
    result = runner.invoke(["plugins", "check"])
    assert result.exit_code != 0
    assert "vanished: enabled in this install but not installed" in result.output


def test_uninstall_purge_removes_records_and_tables_after_confirmation(itsm, client, agent,
                                                                      runner):
    client.post("/api/v1/tickets", json={"title": "to be purged"}, headers=agent)
    refused = runner.invoke(["plugins", "uninstall", "tickets", "--purge"], input="n\n")
    assert refused.exit_code != 0
    assert sa_inspect(itsm.engine).has_table("test_ticket")
    without_flag = runner.invoke(["plugins", "uninstall", "tickets"])
    assert without_flag.exit_code != 0 and "--purge" in without_flag.output
    result = runner.invoke(["plugins", "uninstall", "tickets", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 record(s) of type ticket" in result.output
    assert not sa_inspect(itsm.engine).has_table("test_ticket")
    with itsm.Session() as session:
        assert session.scalar(select(Record.id).where(Record.type == "ticket")) is None


def test_plugin_blueprint_answers_only_while_enabled(app, itsm_config):
    bp = Blueprint("hello_bp", __name__, url_prefix="/api/v1/hello")

    @bp.get("/")
    def hello():
        return jsonify({"hello": "world"})

    module = make_plugin("hello", itsm_blueprints=lambda: [bp])
    from itsm.core.app import create_app

    application = create_app({**itsm_config, "plugins.extra": [module]})
    itsm = application.extensions["itsm"]
    web = application.test_client()
    assert web.get("/api/v1/hello/").status_code == 404  # third-party: disabled at first
    with application.app_context():
        plugin_admin.enable(itsm, "hello")
    assert web.get("/api/v1/hello/").json == {"hello": "world"}
    with application.app_context():
        plugin_admin.disable(itsm, "hello")
    assert web.get("/api/v1/hello/").status_code == 404
    itsm.engine.dispose()


def test_plugin_declaration_is_plain_data():
    declaration = Plugin(name="x", version="1.0", settings={"a": 1})
    assert declaration.requires_itsm == "" and declaration.depends == {}


def test_plugin_settings_from_toml_tables_come_back_as_dictionaries(tmp_path, monkeypatch):
    from itsm.core.config import load_settings

    home = tmp_path / "instance"
    home.mkdir()
    (home / "itsm.toml").write_text(
        '[plugins.acme]\nlimit = 3\n[plugins.acme.routing]\nnetwork = "Net"\n')
    monkeypatch.setenv("ITSM_PLUGINS_ACME_LIMIT", "7")
    settings = load_settings({"home": str(home)})
    got = settings.plugin_settings("acme", {"limit": 1, "routing": {"hardware": "Desk"},
                                            "other": {}})
    assert got == {"limit": 7, "routing": {"hardware": "Desk", "network": "Net"},
                   "other": {}}
