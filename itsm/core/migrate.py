"""Alembic wiring: the core's migration branch plus one branch per plugin.

The version locations are assembled at run time from the installed plugins, so each
plugin ships its own revisions beside its code. ``upgrade`` applies the core and every
enabled plugin; a disabled plugin's revisions stay locatable so its data is untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect

from itsm.core.errors import PluginError

# Alembic is imported where it is used: a server never migrates, and importing it is a
# fifth of the start-up time.
if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from itsm.core.app import Itsm
    from itsm.core.plugins import PluginInfo

SCRIPT_LOCATION = Path(__file__).parent / "migrations"
CORE_BRANCH = "core"
CORE_BASE_REVISION = "core_0001"


@dataclass(frozen=True)
class Migrations:
    """The schema a plugin owns (returned by ``itsm_migrations``).

    :param branch: the Alembic branch label, usually the plugin's name.
    :param path: folder of Alembic revision files for that branch.
    :param tables: tables created when missing, for plugins without revision files.
    """

    branch: str
    path: Path | None = None
    tables: Sequence[Table] = field(default_factory=tuple)


def call_plugin(info: PluginInfo, hook: str, **kwargs):
    """One plugin's result of ``hook``, enabled or not, called through pluggy (see
    :meth:`itsm.core.plugins.PluginInfo.call`); None when it does not implement it."""
    return info.call(hook, **kwargs)


def plugin_migrations(info: PluginInfo) -> Migrations | None:
    declared = call_plugin(info, "itsm_migrations")
    if declared is not None:
        return declared
    folder = info.path / "migrations" / "versions" if info.path else None
    if folder and folder.is_dir():
        return Migrations(branch=info.name, path=folder)
    return None


def _config(itsm: Itsm, connection) -> Config:
    from alembic.config import Config
    locations = [str(SCRIPT_LOCATION / "versions")]
    for info in itsm.host.plugins.values():
        if info.usable:
            found = plugin_migrations(info)
            if found and found.path:
                locations.append(str(found.path))
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Alembic splits this option on the separator; a path holding it would break.
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.attributes["connection"] = connection
    return cfg


def enabled_migrations(itsm: Itsm) -> list[tuple[str, Migrations]]:
    out = []
    for name in sorted(itsm.host.enabled):
        found = plugin_migrations(itsm.host.plugins[name])
        if found:
            out.append((name, found))
    return out


def upgrade(itsm: Itsm, progress=None) -> list[str]:
    """Bring the core and every enabled plugin to their newest schema; return steps done."""
    from alembic import command
    done = []
    missing = unknown_revisions(itsm)
    if missing:
        raise PluginError(f"the database holds migrations ({', '.join(missing)}) of a plugin "
                          "that is not installed: reinstall that plugin (and then "
                          "`itsm plugins uninstall NAME --purge` to remove it for good)")
    with itsm.engine.begin() as connection:
        cfg = _config(itsm, connection)
        before = current(itsm, connection)
        command.upgrade(cfg, f"{CORE_BRANCH}@head")
        for name, found in enabled_migrations(itsm):
            if progress:
                progress(name)
            if found.path:
                command.upgrade(cfg, f"{found.branch}@head")
            for table in found.tables:
                table.create(connection, checkfirst=True)
        after = current(itsm, connection)
    for branch, rev in after.items():
        if before.get(branch) != rev:
            done.append(f"{branch}: {before.get(branch) or 'empty'} -> {rev}")
    return done


def upgrade_to(itsm: Itsm, connection, revisions: Sequence[str]) -> None:
    """Build the schema at exactly ``revisions`` (the heads another database stored),
    on ``connection``: what ``itsm import`` restores before loading the rows."""
    from alembic import command
    cfg = _config(itsm, connection)
    for revision in revisions:
        command.upgrade(cfg, revision)


def _applied(script: ScriptDirectory, connection) -> tuple[set[str], list[str]]:
    """Every applied revision (ancestors of the stored heads, dependencies included) and
    the stored heads no installed plugin provides any more."""
    from alembic.runtime.migration import MigrationContext
    applied: set[str] = set()
    unknown: list[str] = []
    for head in MigrationContext.configure(connection).get_current_heads():
        try:
            applied |= {r.revision for r in script.revision_map.iterate_revisions(
                head, "base", inclusive=True, assert_relative_length=False)}
        except Exception:  # alembic raises several types for an unknown revision
            unknown.append(head)
    return applied, unknown


def current(itsm: Itsm, connection=None) -> dict[str, str]:
    """The newest applied revision of each branch, by branch label.

    Alembic stores only the heads; a plugin branch that ``depends_on`` the core hides
    the core's revision behind it, so each branch is read from the applied set.
    """
    from alembic.script import ScriptDirectory
    if connection is None:
        with itsm.engine.connect() as conn:
            return current(itsm, conn)
    script = ScriptDirectory.from_config(_config(itsm, connection))
    applied, unknown = _applied(script, connection)
    out: dict[str, str] = {}
    for revision in script.walk_revisions():  # newest first
        if revision.revision not in applied:
            continue
        for label in revision.branch_labels or ():
            out.setdefault(label, revision.revision)
    for head in unknown:
        out[f"(revision {head} of a plugin that is not installed)"] = head
    return out


def unknown_revisions(itsm: Itsm) -> list[str]:
    from alembic.script import ScriptDirectory
    with itsm.engine.connect() as connection:
        script = ScriptDirectory.from_config(_config(itsm, connection))
        return _applied(script, connection)[1]


def pending(itsm: Itsm) -> dict[str, list[str]]:
    """Revisions not yet applied, per branch of the core and each enabled plugin."""
    from alembic.script import ScriptDirectory
    with itsm.engine.connect() as connection:
        script = ScriptDirectory.from_config(_config(itsm, connection))
        applied, _ = _applied(script, connection)
        out: dict[str, list[str]] = {}
        branches = [CORE_BRANCH] + [m.branch for _, m in enabled_migrations(itsm) if m.path]
        for branch in branches:
            try:
                revs = script.iterate_revisions(f"{branch}@head", "base")
                todo = [r.revision for r in revs if r.revision not in applied]
            except Exception as exc:
                raise PluginError(f"migrations of {branch!r} are broken: {exc}") from None
            if todo:
                out[branch] = list(reversed(todo))
        inspector = sa_inspect(connection)
        for _, found in enabled_migrations(itsm):
            missing = [t.name for t in found.tables if not inspector.has_table(t.name)]
            if missing:
                out.setdefault(found.branch, []).extend(f"create {t}" for t in missing)
        return out


def purge(itsm: Itsm, info: PluginInfo) -> list[str]:
    """Drop the tables a plugin owns (its branch downgraded to base); return what went."""
    from alembic import command
    found = plugin_migrations(info)
    if not found:
        return []
    dropped = []
    with itsm.engine.begin() as connection:
        if found.path:
            cfg = _config(itsm, connection)
            if found.branch in current(itsm, connection):
                command.downgrade(cfg, f"{found.branch}@base")
                dropped.append(f"{found.branch} migrations downgraded to base")
        for table in reversed(list(found.tables)):
            if sa_inspect(connection).has_table(table.name):
                table.drop(connection)
                dropped.append(f"table {table.name}")
    return dropped
