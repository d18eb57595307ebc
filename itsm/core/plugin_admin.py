"""Admin operations on plugins: enable, disable, preflight check, uninstall with purge.

Each operation checks everything before it changes anything, so every step can be
undone: a disable keeps all data, an enable brings everything back, and a purge is
refused while another enabled plugin still needs the one being removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from sqlalchemy import delete, select

from itsm.core import migrate
from itsm.core.errors import PluginError
from itsm.core.migrate import call_plugin
from itsm.core.models import Attachment, PluginState, Record

if TYPE_CHECKING:
    from itsm.core.state import Itsm


def _settings_of(itsm: Itsm):
    return lambda info: itsm.settings.plugin_settings(info.name, info.declaration.settings)


def _store(itsm: Itsm, names: list[str], enabled: bool) -> None:
    with itsm.Session() as session:
        for name in names:
            row = session.get(PluginState, name) or PluginState(name=name)
            row.enabled = enabled
            row.version = itsm.host.plugins[name].version
            session.merge(row)
        session.commit()


def record_builtin_state(itsm: Itsm) -> None:
    """Write the current state of every built-in plugin and every enabled one without a
    row (``itsm init``), so that every process of the install agrees on it whatever its
    own ``plugins.initial`` says."""
    with itsm.Session() as session:
        stored = itsm.host.stored_state(session)
        for name, info in sorted(itsm.host.plugins.items()):
            enabled = itsm.host.is_enabled(name)
            if name in stored or not (enabled or info.builtin) or not info.usable:
                continue
            session.add(PluginState(name=name, enabled=enabled, version=info.version))
        session.commit()
    itsm.refresh_plugins(force=True)


def enable(itsm: Itsm, name: str) -> list[str]:
    """Enable ``name`` and what it depends on; migrate and install defaults. Returns the
    plugins that were newly enabled."""
    from itsm.core.demo import DemoContext

    order = itsm.host.resolve_enable(name, _settings_of(itsm))
    newly = [n for n in order if not itsm.host.is_enabled(n)]
    itsm.refresh_plugins(force=True)
    _store(itsm, order, True)
    itsm.refresh_plugins(force=True)
    migrate.upgrade(itsm)
    with itsm.Session() as session:
        ctx = DemoContext(itsm, session)
        for plugin in newly:
            call_plugin(itsm.host.plugins[plugin], "itsm_install_defaults", ctx=ctx)
        session.commit()
    return newly


def disable(itsm: Itsm, name: str) -> bool:
    """Disable ``name``, keeping all its data; refused while enabled plugins need it."""
    itsm.host.get(name)
    itsm.refresh_plugins(force=True)
    itsm.host.refuse_disable(name, itsm.host.enabled)
    was = itsm.host.is_enabled(name)
    _store(itsm, [name], False)
    itsm.refresh_plugins(force=True)
    return was


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(itsm: Itsm) -> CheckReport:
    """Preflight for an upgrade: plugins load, versions fit, dependencies met, migrations."""
    report = CheckReport()
    itsm.refresh_plugins(force=True)
    enabled = itsm.host.enabled
    with itsm.Session() as session:
        stored = itsm.host.stored_state(session)
    for name, info in sorted(itsm.host.plugins.items()):
        if info.error:
            where = "enabled in this install" if stored.get(name) else "not enabled"
            report.problems.append(f"{name}: {info.error} ({where})")
            continue
        if name not in enabled:
            continue
        for dep, rng in info.declaration.depends.items():
            dep_info = itsm.host.plugins.get(dep)
            if dep_info is None or not dep_info.usable:
                report.problems.append(f"{name}: needs plugin {dep!r}, which is not installed "
                                       "or does not load")
            elif not SpecifierSet(rng).contains(Version(dep_info.version), prereleases=True):
                report.problems.append(f"{name}: needs {dep}{rng}, installed {dep} is "
                                       f"{dep_info.version}")
            elif dep not in enabled:
                report.problems.append(f"{name}: needs plugin {dep!r}, which is disabled: "
                                       f"itsm plugins enable {dep}")
        if stored.get(name) is not None:
            with itsm.Session() as session:
                row = session.get(PluginState, name)
            if row and row.version and row.version != info.version:
                report.notes.append(f"{name}: enabled at {row.version}, installed "
                                    f"{info.version}")
    for name, enabled_flag in sorted(stored.items()):
        if enabled_flag and name not in itsm.host.plugins:
            report.problems.append(f"{name}: enabled in this install but not installed: "
                                   "reinstall it, or `itsm plugins uninstall "
                                   f"{name} --purge` to remove its data")
    for revision in migrate.unknown_revisions(itsm):
        report.problems.append(f"the database holds migration {revision} of a plugin that is "
                               "not installed: reinstall it, then uninstall it with --purge")
    for branch, revisions in migrate.pending(itsm).items():
        report.notes.append(f"pending migrations for {branch}: {', '.join(revisions)} "
                            "(itsm db upgrade)")
    report.problems.extend(itsm.errors)
    return report


def record_types_of(itsm: Itsm, name: str) -> list[str]:
    info = itsm.host.get(name)
    return [rt.name for rt in call_plugin(info, "itsm_record_types") or ()]


def purge(itsm: Itsm, name: str, progress=None) -> list[str]:
    """Remove a plugin's records, files and tables, then forget it. Irreversible."""
    info = itsm.host.get(name)
    itsm.refresh_plugins(force=True)
    itsm.host.refuse_disable(name, itsm.host.enabled)
    done = []
    types = record_types_of(itsm, name) if info.usable else []
    if info.usable:
        done += migrate.purge(itsm, info)  # the plugin's own tables go first (they FK record)
    if types:
        with itsm.Session() as session:
            ids = select(Record.id).where(Record.type.in_(types)).scalar_subquery()
            for attachment in session.scalars(select(Attachment).where(
                    Attachment.record_id.in_(ids))):
                itsm.attachments.delete(attachment.storage_key)
            table = Record.__table__
            count = session.execute(delete(table).where(table.c.type.in_(types))).rowcount
            session.commit()
        done.append(f"{count} record(s) of type {', '.join(types)} with their journal, "
                    "links and attachments")
        if progress:
            progress(count)
    with itsm.Session() as session:
        row = session.get(PluginState, name)
        if name in itsm.host.plugins and itsm.host.plugins[name].builtin:
            # A built-in plugin stays installed: without a row it would count as enabled
            # again, with its tables gone. It stays disabled until enabled (and migrated).
            session.merge(PluginState(name=name, enabled=False, version=info.version))
        elif row is not None:
            session.delete(row)
        session.commit()
    itsm.refresh_plugins(force=True)
    if not done:
        done.append("no data")
    return done


def require_known(itsm: Itsm, name: str) -> None:
    if name not in itsm.host.plugins:
        with itsm.Session() as session:
            if session.get(PluginState, name) is None:
                itsm.host.get(name)  # raises with the list of installed plugins
        raise PluginError(f"plugin {name!r} is not installed (its data is still here)")
