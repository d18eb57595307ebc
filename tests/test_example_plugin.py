"""The vendor example in examples/itsm-facilities, installed with pip and driven for real.

It is discovered through its ``itsm.plugins`` entry point like any third-party package,
starts disabled, and is enabled, used, disabled and purged through the CLI and the API.
Its own test suite, written with ``itsm.testing``, runs as a vendor's CI would run it.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tokenize
from importlib import metadata
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from itsm.core.migrate import plugin_migrations
from itsm.core.models import Record
from itsm.testing import schema_drift

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "itsm-facilities"
URL = "/api/v1/facility-requests"


def _installed() -> bool:
    return any(ep.name == "facilities" for ep in metadata.entry_points(group="itsm.plugins"))


@pytest.fixture(scope="session", autouse=True)
def facilities_installed() -> None:
    """pip-install the example into this interpreter's environment once, if missing."""
    if _installed():
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-e", str(EXAMPLE)],
                   check=True)
    importlib.invalidate_caches()
    # An editable install is made importable by a .pth file, which Python reads only at
    # start-up; have this already running interpreter read the new one too.
    site.addsitedir(sysconfig.get_paths()["purelib"])
    assert _installed(), "pip installed itsm-facilities but its entry point is not visible"


@pytest.fixture
def itsm_plugins():
    """No extra modules: the installed entry point is found by discovery, as in production."""
    return []


@pytest.fixture
def facilities(runner):
    """The plugin enabled by an admin, as `itsm plugins enable facilities` does it."""
    result = runner.invoke(["plugins", "enable", "facilities"])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent")


def open_request(client, headers, **fields) -> dict:
    body = {"title": "Leaking tap in the kitchen", "building": "Headquarters", **fields}
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def summary(runner) -> dict[str, int]:
    result = runner.invoke(["facilities"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def code_lines(path: Path) -> int:
    """Lines of code of a module: no blank lines, comments or docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
               tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


# -- the plugin's own tests and size ---------------------------------------------------------


def test_the_examples_own_tests_pass_on_a_pip_installed_copy(tmp_path):
    # As a vendor's CI runs them: the package built and installed by pip (not the source
    # folder), its tests and pytest settings in a checkout of their own, the itsm
    # fixtures coming from the installed itsm through its pytest11 entry point.
    site_dir, checkout = tmp_path / "site", tmp_path / "checkout"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site_dir), str(EXAMPLE)], check=True, capture_output=True)
    shutil.copytree(EXAMPLE / "tests", checkout / "tests")
    shutil.copy(EXAMPLE / "pyproject.toml", checkout / "pyproject.toml")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir), env.get("PYTHONPATH")]))

    used = subprocess.run([sys.executable, "-c", "import itsm_facilities as m; print(m.__file__)"],
                          cwd=checkout, env=env, capture_output=True, text=True, check=True)
    assert Path(used.stdout.strip()).is_relative_to(site_dir)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "6 passed" in done.stdout


def test_a_whole_vendor_plugin_takes_at_most_50_lines_of_code():
    modules = sorted((EXAMPLE / "itsm_facilities").rglob("*.py"))
    assert sum(code_lines(path) for path in modules) <= 50
    source = (EXAMPLE / "itsm_facilities" / "__init__.py").read_text(encoding="utf-8")
    for hook in ("itsm_record_types", "itsm_notification_channels", "itsm_cli_commands"):
        assert f"def {hook}(" in source
    assert not (EXAMPLE / "itsm_facilities" / "migrations").exists()


# -- installing and enabling ----------------------------------------------------------------


def test_installed_plugin_is_listed_as_disabled_third_party(runner, client, agent):
    result = runner.invoke(["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    row = {r["name"]: r for r in json.loads(result.output)}["facilities"]
    assert row["builtin"] is False
    assert row["enabled"] is False
    assert row["error"] is None
    assert (row["version"], row["distribution"]) == ("0.2.0", "itsm-facilities")
    assert {"itsm_record_types", "itsm_cli_commands", "itsm_notification_channels",
            "itsm_notification_recipients"} <= set(row["hooks"])
    assert "disabled third-party" in runner.invoke(["plugins", "list"]).output
    assert client.get(URL, headers=agent).status_code == 404


def test_without_migrations_the_plugin_owns_its_record_types_table(app):
    info = app.extensions["itsm"].host.plugins["facilities"]
    assert not hasattr(info.module, "itsm_migrations")
    found = plugin_migrations(info)
    assert (found.branch, found.path) == ("facilities", None)
    assert [table.name for table in found.tables] == ["facility_request"]


def test_enable_creates_the_table_and_the_first_post_works(app, client, runner, agent):
    assert not inspect(app.extensions["itsm"].engine).has_table("facility_request")
    result = runner.invoke(["plugins", "enable", "facilities"])
    assert result.exit_code == 0, result.output
    assert "enabled facilities 0.2.0" in result.output
    assert inspect(app.extensions["itsm"].engine).has_table("facility_request")
    assert open_request(client, agent)["number"].startswith("FAC")
    current = runner.invoke(["db", "current"]).output
    assert "facilities" not in current  # no Alembic branch of its own
    check = runner.invoke(["plugins", "check"])
    assert check.exit_code == 0, check.output
    assert "ok: plugins are consistent" in check.output


def test_the_created_table_is_exactly_what_the_model_describes(app, facilities):
    assert schema_drift(app.extensions["itsm"].engine, ["facility_request"]) == []


def test_collection_is_in_the_openapi_document(client, facilities):
    assert URL in client.get("/api/v1/openapi.json").get_json()["paths"]


# -- lifecycle -------------------------------------------------------------------------------


def test_disable_hides_requests_and_enable_brings_them_back(client, runner, facilities, agent):
    number = open_request(client, agent, title="Move desk to 3.14")["number"]

    result = runner.invoke(["plugins", "disable", "facilities"])
    assert result.exit_code == 0, result.output
    assert "disabled facilities (data kept)" in result.output
    assert client.get(URL, headers=agent).status_code == 404
    assert client.get(f"{URL}/{number}", headers=agent).status_code == 404
    hidden = runner.invoke(["facilities"])
    assert hidden.exit_code != 0
    assert "No such command 'facilities'" in hidden.output

    assert runner.invoke(["plugins", "enable", "facilities"]).exit_code == 0
    back = client.get(f"{URL}/{number}", headers=agent)
    assert back.status_code == 200
    assert back.get_json()["title"] == "Move desk to 3.14"
    assert summary(runner) == {"new": 1}


def test_uninstall_purge_removes_table_and_records(app, client, runner, facilities, agent):
    open_request(client, agent)
    open_request(client, agent, building="Annex")
    itsm = app.extensions["itsm"]

    result = runner.invoke(["plugins", "uninstall", "facilities", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    assert "2 record(s) of type facility_request" in result.output
    with itsm.Session() as session:
        left = session.scalar(select(func.count()).select_from(Record)
                              .where(Record.type == "facility_request"))
    assert left == 0
    row = {r["name"]: r for r in json.loads(
        runner.invoke(["plugins", "list", "--json"]).output)}["facilities"]
    assert row["enabled"] is False
    assert not inspect(itsm.engine).has_table("facility_request")


def test_channel_delivers_through_the_worker(app, client, runner, facilities, agent):
    number = open_request(client, agent)["number"]
    result = runner.invoke(["worker", "--once"])
    assert result.exit_code == 0, result.output
    log = Path(app.extensions["itsm"].settings.home) / "facilities.log"
    assert log.read_text(encoding="utf-8").splitlines() == [
        f"record.created {number} facilities-desk"]
