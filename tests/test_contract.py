"""Meta-tests that keep the plugin contract honest: every hook tested and documented,
and the core's migrations describing exactly the core's models."""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from itsm.core import hookspecs
from itsm.core.admin import models as _admin_models  # noqa: F401  (their tables too)
from itsm.core.models import Base

ROOT = Path(__file__).resolve().parent.parent
CORE_TABLES = {"agency", "support_group", "user_account", "group_member", "api_token",
               "plugin_state", "number_sequence", "record", "journal", "record_link",
               "attachment", "outbox_event", "outbox_delivery", "login_failure",
               "access_denial", "sla_clock", "web_session", "admin_audit",
               "password_reset"}


def hook_nodes() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(inspect.getsource(hookspecs))
    return {node.name: node for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("itsm_")}


HOOKS = sorted(hook_nodes())


def test_the_hook_list_is_what_the_docs_promise():
    expected = {"itsm_migrations", "itsm_app_ready", "itsm_blueprints", "itsm_cli_commands",
                "itsm_record_types", "itsm_link_kinds", "itsm_transition_guard",
                "itsm_record_prepare", "itsm_record_changed", "itsm_event_committed",
                "itsm_notification_channels",
                "itsm_notification_recipients", "itsm_permissions", "itsm_permission_check",
                "itsm_sla_policy", "itsm_install_defaults", "itsm_demo_data",
                "itsm_navigation", "itsm_record_actions", "itsm_suggestions",
                "itsm_periodic", "itsm_attachment_store",
                "itsm_reference_kinds", "itsm_reference_changed",
                "itsm_reference_status_guard",
                "itsm_authenticate", "itsm_sign_in_methods", "itsm_sign_out",
                "itsm_auth_commands", "itsm_admin_pages",
                "itsm_service_rates", "itsm_billable_charges", "itsm_escalation_path",
                "itsm_satisfaction_ratings",
                "itsm_agency_sections", "itsm_agency_contacts"}
    assert set(HOOKS) == expected


@functools.cache
def _test_sources() -> list[str]:
    """The source of every test function in the suite (not helpers, not fixtures), except
    this module's, which names every hook without testing any."""
    sources = []
    for path in (ROOT / "tests").glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                sources.append(ast.get_source_segment(text, node) or "")
    return sources


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_has_a_test(hook):
    assert any(hook in source for source in _test_sources()), f"no test exercises {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_has_a_docstring_with_its_contract(hook):
    doc = ast.get_docstring(hook_nodes()[hook]) or ""
    assert len(doc) > 120, f"{hook}: docstring too thin for vendors"
    assert re.search(r"return|Return", doc), f"{hook}: the docstring must state the result"


def signature_line(node: ast.FunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"def {node.name}({ast.unparse(node.args)}){returns}"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_is_documented_with_its_exact_signature(hook):
    docs = (ROOT / "docs" / "plugins.md").read_text()
    normalised = re.sub(r"\s+", " ", docs).replace("( ", "(").replace(", )", ")")
    line = signature_line(hook_nodes()[hook])
    assert line in normalised, f"docs/plugins.md lacks `{line}`"


def test_core_migrations_match_the_core_models(itsm):
    with itsm.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        # The full-text index (core_0004) and the partial expression index of the queue
        # (core_0005) are each database's own: not in the models.
        own = ("ix_record_fulltext", "ix_record_group_queue")
        diffs = [d for d in compare_metadata(context, Base.metadata)
                 if _table_of(d) in CORE_TABLES and not any(n in str(d) for n in own)]
    assert diffs == []


def _table_of(diff) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return table.name
        if isinstance(part, str) and part in CORE_TABLES:
            return part
        if name in CORE_TABLES:
            return name
    return None
