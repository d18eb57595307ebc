"""The ``itsm`` command as an admin runs it: a real process, its output and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from itsm.testing import TEST_DATABASE_ENV, empty_database

ITSM = [sys.executable, "-c", "from itsm.cli import main; main()"]


@pytest.fixture
def itsm_cli(tmp_path):
    """Run ``itsm`` in a fresh instance folder; returns a function (args) -> result."""
    env = {**os.environ, "ITSM_HOME": str(tmp_path / "instance")}
    url = os.environ.get(TEST_DATABASE_ENV)
    if url:
        empty_database(url)
        env["ITSM_DATABASE_URL"] = url
    env.pop("ITSM_DEBUG", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*ITSM, *args], env=env, capture_output=True, text=True,
                              input=input, timeout=120)

    run.home = Path(env["ITSM_HOME"])
    return run


def test_init_is_safe_to_run_twice_and_token_is_scriptable(itsm_cli):
    first = itsm_cli("init", "--admin-email", "Admin@Example.org",
                     "--admin-password", "a s3cret admin pw")
    assert first.returncode == 0, first.stderr
    assert "admin admin@example.org created" in first.stdout
    config = (itsm_cli.home / "itsm.toml").read_text()
    assert "secret_key" in config and "[sla.resolution]" in config
    assert "[calendars.default]" in config
    assert oct((itsm_cli.home / "itsm.toml").stat().st_mode & 0o777) == "0o600"
    second = itsm_cli("init", "--admin-email", "admin@example.org")
    assert second.returncode == 0, second.stderr
    assert "admin admin@example.org exists" in second.stdout
    assert (itsm_cli.home / "itsm.toml").read_text() == config  # secret key kept
    token = itsm_cli("users", "token", "admin@example.org")
    assert token.returncode == 0
    assert token.stdout.startswith("itsm_") and len(token.stdout.strip().split()) == 1


def test_errors_are_one_line_with_non_zero_exit(itsm_cli):
    assert itsm_cli("init").returncode == 0
    cases = [
        ("users", "token", "nobody@example.org"),
        ("users", "add", "not-an-email"),
        ("users", "set-role", "nobody@example.org", "agent"),
        ("plugins", "enable", "nosuch"),
        ("agencies", "add", "bad code!", "Bad"),
    ]
    for args in cases:
        result = itsm_cli(*args)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_commands_before_init_say_what_to_do(itsm_cli):
    if os.environ.get(TEST_DATABASE_ENV):
        pytest.skip("a server database always exists; this is about a fresh SQLite file")
    result = itsm_cli("users", "list")
    assert result.returncode == 1
    assert "itsm init" in result.stderr and "Traceback" not in result.stderr


def test_bad_configuration_is_reported_in_one_line(itsm_cli):
    itsm_cli.home.mkdir(parents=True)
    (itsm_cli.home / "itsm.toml").write_text("this is = = not toml")
    result = itsm_cli("plugins", "list")
    assert result.returncode == 1
    assert "is not valid TOML" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_admin_round_trip_users_agencies_groups_plugins_doctor(itsm_cli):
    assert itsm_cli("init").returncode == 0
    assert itsm_cli("agencies", "add", "dot", "Department of Transportation").returncode == 0
    assert itsm_cli("groups", "add", "Network").returncode == 0
    added = itsm_cli("users", "add", "pat@dot.example", "--agency", "DOT", "--name", "Pat")
    assert added.returncode == 0, added.stderr
    agent = itsm_cli("users", "add", "al@example.org", "--role", "agent", "--group", "Network")
    assert agent.returncode == 0, agent.stderr
    users = json.loads(itsm_cli("users", "list", "--json").stdout)
    assert {"email": "pat@dot.example", "name": "Pat", "role": "requester", "agency": "DOT",
            "active": True} in users
    assert itsm_cli("users", "set-role", "pat@dot.example", "agent").returncode == 0
    assert itsm_cli("users", "token", "al@example.org", "--name", "ci").returncode == 0
    tokens = json.loads(itsm_cli("users", "tokens", "al@example.org", "--json").stdout)
    assert tokens[0]["name"] == "ci" and tokens[0]["revoked"] is False
    assert itsm_cli("users", "revoke", str(tokens[0]["id"])).returncode == 0
    tokens = json.loads(itsm_cli("users", "tokens", "al@example.org", "--json").stdout)
    assert tokens[0]["revoked"] is True
    assert "Network" in itsm_cli("groups", "list").stdout
    plugins = json.loads(itsm_cli("plugins", "list", "--json").stdout)
    assert any(p["name"] == "notify_log" and p["enabled"] for p in plugins)
    assert itsm_cli("plugins", "disable", "notify_log").returncode == 0
    plugins = json.loads(itsm_cli("plugins", "list", "--json").stdout)
    assert not next(p for p in plugins if p["name"] == "notify_log")["enabled"]
    assert itsm_cli("plugins", "enable", "notify_log").returncode == 0
    info = itsm_cli("plugins", "info", "notify_log")
    assert "itsm_notification_channels" in info.stdout
    doctor = itsm_cli("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "all checks passed" in doctor.stdout
    assert "ok: calendars 24x7, default" in doctor.stdout
    current = itsm_cli("db", "current")
    assert "core: core_0" in current.stdout
    assert "database is up to date" in itsm_cli("db", "upgrade").stdout


def test_demo_loads_users_who_can_use_the_api(itsm_cli):
    assert itsm_cli("init").returncode == 0
    demo = itsm_cli("demo")
    assert demo.returncode == 0, demo.stderr
    assert "pat@dot.demo.invalid" in demo.stdout
    again = itsm_cli("demo")
    assert again.returncode == 0, again.stderr  # idempotent
    users = json.loads(itsm_cli("users", "list", "--json").stdout)
    assert len([u for u in users if u["email"].endswith("demo.invalid")]) == 4


def test_worker_once_drains_the_outbox(itsm_cli):
    assert itsm_cli("init").returncode == 0
    result = itsm_cli("worker", "--once")
    assert result.returncode == 0
    assert result.stdout.startswith("events 0, delivered 0")


def test_help_lists_the_admin_commands(itsm_cli):
    result = itsm_cli("--help")
    assert result.returncode == 0
    for command in ("init", "serve", "db", "plugins", "users", "agencies", "doctor", "demo",
                    "worker"):
        assert f"  {command}" in result.stdout
