"""Alembic wiring: the core's migration branch plus one branch per plugin.

The version locations are assembled at run time from the installed plugins, so each
plugin ships its own revisions beside its code. ``upgrade`` applies the core and every
enabled plugin; a disabled plugin's revisions stay locatable so its data is untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect

from itsm.core.errors import PluginError, SchemaMissing

# Alembic is imported where it is used: a server never migrates, and importing it is a
# fifth of the start-up time.
if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from itsm.core.plugins import PluginInfo
    from itsm.core.state import Itsm

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
    """The schema ``info``'s plugin owns: what its ``itsm_migrations`` declares, else the
    ``migrations/versions`` folder beside its module, else its record types' tables.

    The last default lets a small plugin with a record type and no migrations work from
    its first request: ``itsm plugins enable`` and ``itsm db upgrade`` create the tables
    when missing (and ``--purge`` drops them), as for ``Migrations(tables=...)``.
    """
    declared = call_plugin(info, "itsm_migrations")
    if declared is not None:
        return declared
    folder = info.path / "migrations" / "versions" if info.path else None
    if folder and folder.is_dir():
        return Migrations(branch=info.name, path=folder)
    tables = record_type_tables(call_plugin(info, "itsm_record_types") or ())
    return Migrations(branch=info.name, tables=tables) if tables else None


def record_type_tables(types: Sequence) -> list[Table]:
    """The tables of the record types' own models, each once, in declaration order;
    the core's ``record`` table (a type stored in it alone) is never a plugin's."""
    from itsm.core.models import Record

    out: list[Table] = []
    for rt in types:
        table = getattr(rt.model, "__table__", None)
        if isinstance(table, Table) and table is not Record.__table__ and table not in out:
            out.append(table)
    return out


# What SQLite, PostgreSQL and MariaDB/MySQL say of a table that is not there.
_MISSING_TABLE = re.compile(r"no such table: (?:\w+\.)?(\w+)"
                            r"|relation \"(?:\w+\.)?(\w+)\" does not exist"
                            r"|Table '(?:[^'.]+\.)?([^'.]+)' doesn't exist")


def missing_table(itsm: Itsm | None, exc: BaseException) -> SchemaMissing | None:
    """The error to show for a database error ``exc`` that says a table is missing, naming
    the table, the plugin that owns it and the fix; None for any other error."""
    found = _MISSING_TABLE.search(str(getattr(exc, "orig", None) or exc))
    if found is None:
        return None
    table = next(name for name in found.groups() if name)
    owner = _table_owner(itsm, table) if itsm is not None else None
    if owner == CORE_BRANCH:  # no schema at all, most likely: init migrates and sets up
        return SchemaMissing(f"table {table!r} of the core is missing: run `itsm init`")
    of = f" of plugin {owner!r}" if owner else ""
    return SchemaMissing(f"table {table!r}{of} is missing: run `itsm db upgrade`")


def _table_owner(itsm: Itsm, table: str) -> str | None:
    """The plugin (or ``core``) whose model or declared schema holds ``table``."""
    from itsm.core.models import Base

    for rt in itsm.types:
        if getattr(getattr(rt.model, "__table__", None), "name", None) == table:
            return rt.plugin or None
    plugins = itsm.host.plugins
    for mapper in Base.registry.mappers:
        if getattr(mapper.local_table, "name", None) != table:
            continue
        module = mapper.class_.__module__
        if module.startswith("itsm.core."):
            return CORE_BRANCH
        for name, info in plugins.items():
            top = info.module.__name__
            if module == top or module.startswith(top + "."):
                return name
    for name, info in plugins.items():
        try:
            found = plugin_migrations(info)
        except Exception:  # noqa: BLE001 - a broken plugin is reported elsewhere
            continue
        if found and any(t.name == table for t in found.tables):
            return name
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
