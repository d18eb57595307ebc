"""The public face holds: plugins and adapters reach the core only through ``itsm.plugin``.

Every module of the package (and the example vendor plugin) is read with ``ast``, imports
inside functions included, and checked against the rules of docs/plugins.md:

- a plugin never imports another plugin;
- a plugin or adapter never imports ``itsm.cli`` or ``itsm.commands``;
- a plugin or adapter imports the core only through ``itsm.plugin`` (``itsm.testing`` in
  tests), never ``itsm.core.*``;
- ``itsm.commands`` never imports ``itsm.cli`` (both take their helpers from the core);
- ``itsm.plugin`` exports exactly the names in its ``__all__``.

The core's own layering (core -> adapters, import cycles) is tests/test_layers.py's.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

import itsm.plugin

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "itsm-facilities"
ALLOWED = ("itsm.plugin", "itsm.testing")  # all of itsm a plugin or adapter may import


def modules(folder: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module under ``folder`` (the package ``package``)."""
    out = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def imported(name: str, path: Path) -> list[tuple[int, str]]:
    """Every module ``name`` imports (absolute, relative ones resolved), with its line.

    ``from a import b`` is read as ``a.b``, whether ``b`` is a module (``from itsm.core
    import search``) or a name in ``a``: either way it comes from ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out += [(node.lineno, f"{module}.{alias.name}" if alias.name != "*" else module)
                    for alias in node.names]
    return out


def _area(module: str) -> tuple[str, str] | None:
    """("plugin" | "adapter", its package) for a module of a plugin or an adapter."""
    parts = module.split(".")
    if parts[:2] == ["itsm", "plugins"] and len(parts) > 2:
        return "plugin", ".".join(parts[:3])
    if parts[:2] == ["itsm", "adapters"] and len(parts) > 2:
        return "adapter", ".".join(parts[:3])
    if not module.startswith("itsm.") and module != "itsm":
        return "plugin", parts[0]  # a vendor's plugin package
    return None


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def broken_rules(found: dict[str, Path]) -> list[str]:
    """Every import in ``found`` that breaks a rule, as ``file:line: module imports x (why)``."""
    problems = []
    for name, path in found.items():
        area = _area(name)
        for line, target in imported(name, path):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
            if not _under(target, "itsm"):
                continue
            if area is not None:
                kind, own = area
                one = "an adapter" if kind == "adapter" else "a plugin"
                if _under(target, own) or any(_under(target, a) for a in ALLOWED):
                    continue
                if kind == "plugin" and _under(target, "itsm.plugins"):
                    why = "a plugin imports another plugin; cooperate through hooks"
                elif _under(target, "itsm.cli") or _under(target, "itsm.commands"):
                    why = f"{one} imports the command line; use itsm.plugin's CLI helpers"
                else:
                    why = f"{one} reaches past the public face; import from itsm.plugin"
                problems.append(f"{where}: {name} imports {target} ({why})")
            elif _under(name, "itsm.commands") and _under(target, "itsm.cli"):
                problems.append(f"{where}: {name} imports {target} (itsm.commands takes its "
                                "helpers from itsm.core.cli_kit, never from itsm.cli)")
    return problems


def all_modules() -> dict[str, Path]:
    return {**modules(ROOT / "itsm", "itsm"),
            **modules(EXAMPLE / "itsm_facilities", "itsm_facilities")}


# -- the rules hold in the package --------------------------------------------------------


def test_plugins_adapters_and_commands_import_only_what_the_rules_allow():
    found = all_modules()
    assert any(name.startswith("itsm.plugins.incident.") for name in found)
    assert "itsm_facilities" in found
    assert broken_rules(found) == []


def test_the_face_exports_exactly_its_all():
    # Every exported name resolves (a typo in the table would only show at a plugin's
    # first use otherwise), and once all are loaded no other public name is left over.
    for name in itsm.plugin.__all__:
        assert getattr(itsm.plugin, name) is not None, name
    # (names that are no identifiers, "@py_builtins", are pytest's assertion rewriting)
    public = {name for name in vars(itsm.plugin)
              if name.isidentifier() and not name.startswith("_")}
    assert public - set(itsm.plugin.__all__) == set()
    assert set(dir(itsm.plugin)) >= set(itsm.plugin.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Incident'"):
        itsm.plugin.Incident  # noqa: B018


def test_the_face_offers_what_a_vendor_plugin_is_written_with():
    wanted = {"Plugin", "hookimpl", "RecordType", "Record", "Workflow", "State",
              "Transition", "Permission", "EventMessage", "Recipient", "NavItem",
              "page_blueprint", "render_page", "pass_itsm", "emit_json", "Migrations",
              "current_itsm", "unit_of_work", "with_service", "ValidationError"}
    assert wanted <= set(itsm.plugin.__all__)


# -- the checker finds what it is for -------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for relative, source in files.items():
        path = tmp_path / "itsm" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return modules(tmp_path / "itsm", "itsm")


def test_checker_reports_each_broken_rule_with_its_line(tmp_path):
    found = _package(tmp_path, {
        "plugins/acme/__init__.py": """\
            from itsm.plugin import Plugin
            from itsm.plugins.incident.models import Incident
            """,
        "plugins/acme/cli.py": """\
            def command():
                from itsm.cli import pass_itsm
                from itsm.core import search
            """,
        "plugins/acme/hooks.py": "from ..incident import hooks\nfrom . import models\n",
        "plugins/acme/models.py": "",
        "adapters/fax/__init__.py": "from itsm.core.records import RecordType\n",
        "adapters/fax/channel.py": "from itsm import Plugin\nimport itsm.commands.admin\n",
        "commands/extra.py": "from itsm.cli import emit_json\n",
        "core/cli_kit.py": "",
    })
    lines = sorted(problem.split(": ", 1)[1] for problem in broken_rules(found))
    assert lines == sorted([
        "itsm.plugins.acme imports itsm.plugins.incident.models.Incident (a plugin imports "
        "another plugin; cooperate through hooks)",
        "itsm.plugins.acme.cli imports itsm.cli.pass_itsm (a plugin imports the command "
        "line; use itsm.plugin's CLI helpers)",
        "itsm.plugins.acme.cli imports itsm.core.search (a plugin reaches past the public "
        "face; import from itsm.plugin)",
        "itsm.plugins.acme.hooks imports itsm.plugins.incident.hooks (a plugin imports "
        "another plugin; cooperate through hooks)",
        "itsm.adapters.fax imports itsm.core.records.RecordType (an adapter reaches past "
        "the public face; import from itsm.plugin)",
        "itsm.adapters.fax.channel imports itsm.Plugin (an adapter reaches past the public "
        "face; import from itsm.plugin)",
        "itsm.adapters.fax.channel imports itsm.commands.admin (an adapter imports the "
        "command line; use itsm.plugin's CLI helpers)",
        "itsm.commands.extra imports itsm.cli.emit_json (itsm.commands takes its helpers "
        "from itsm.core.cli_kit, never from itsm.cli)",
    ])


# -- the view decorator of the face opens the unit of work ---------------------------------


def _routes_plugin():
    from flask import Blueprint, jsonify

    from itsm.plugin import Conflict, document, page_blueprint, with_service
    from itsm.testing import make_plugin

    api = Blueprint("face_probe", __name__, url_prefix="/api/v1/face-probe")

    @api.post("/comment/<number>")
    @document(summary="comment, then succeed or fail")
    @with_service
    def comment(service, number):
        service.comment(service.get(number), "noted by the probe", public=True)
        if number.endswith("1"):
            return jsonify({"actor": service.actor.email})
        raise Conflict("refused after writing")

    pages = page_blueprint("face_probe_pages", __name__, url_prefix="/face-probe",
                           template_folder=None)

    @pages.get("/whoami")
    @with_service(page=True)
    def whoami(service):
        return service.actor.email

    def itsm_blueprints():
        return [api, pages]

    return make_plugin("face_probe", itsm_blueprints=itsm_blueprints)


@pytest.fixture
def itsm_plugins():
    """The tickets of the core's tests and a plugin whose route uses ``with_service``."""
    import sample_plugin

    return [sample_plugin, _routes_plugin()]


def test_with_service_commits_the_views_writes_or_none(client, make_token):
    agent = make_token("agent@example.org", role="agent")
    numbers = [client.post("/api/v1/tickets", json={"title": f"T{i}"}, headers=agent)
               .get_json()["number"] for i in (1, 2)]
    assert [n[-1] for n in numbers] == ["1", "2"]

    assert client.post(f"/api/v1/face-probe/comment/{numbers[0]}").status_code == 401
    done = client.post(f"/api/v1/face-probe/comment/{numbers[0]}", headers=agent)
    assert (done.status_code, done.get_json()) == (200, {"actor": "agent@example.org"})
    refused = client.post(f"/api/v1/face-probe/comment/{numbers[1]}", headers=agent)
    assert refused.status_code == 409

    def comments(number):
        return client.get(f"/api/v1/tickets/{number}/comments", headers=agent).get_json()

    assert [c["body"] for c in comments(numbers[0])["items"]] == ["noted by the probe"]
    assert comments(numbers[1])["items"] == []  # rolled back with the refusal


def test_with_service_on_a_page_acts_as_the_signed_in_user(client, make_token):
    make_token("agent@example.org", role="agent", password="Agent-pass-1234")
    assert client.get("/face-probe/whoami").status_code == 302  # to the sign-in page
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    signed_in = client.post("/login", data={"email": "agent@example.org",
                                            "password": "Agent-pass-1234",
                                            "csrf_token": token})
    assert signed_in.status_code == 302
    page = client.get("/face-probe/whoami")
    assert (page.status_code, page.get_data(as_text=True)) == (200, "agent@example.org")
