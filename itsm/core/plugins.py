"""Plugin discovery, declaration checks, enable/disable state and the pluggy host.

Plugins are found through the ``itsm.plugins`` entry-point group (the built-in ones are
declared there by itsm's own package, exactly as a vendor declares theirs). Each plugin
module carries a :class:`Plugin` declaration. A plugin that fails to import, declares an
itsm version it does not support, or implements a hook that does not exist is recorded
with the reason and left out; the rest still start.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from itsm.core import hookspecs
from itsm.core.errors import PluginError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("itsm.plugins")

ENTRY_POINT_GROUP = "itsm.plugins"
CORE_DISTRIBUTION = "itsm"
# Registered always, like pytest's essential plugins: the core's overridable defaults.
ESSENTIAL_PLUGINS = ("itsm.core.defaults",)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, if it runs, for the ``with`` block.

    For start-up work (importing modules, mapping models, building the application):
    it makes many objects that live as long as the process and next to no garbage, so
    collecting meanwhile only walks the same objects again and again. The collector is
    turned back on at the end of the outermost block, even when the block fails.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class Plugin:
    """A plugin's declaration, the module attribute ``plugin`` of every itsm plugin.

    :param name: unique name, also the entry-point name (``incident``, ``acme_cmdb``).
    :param version: the plugin's own version (PEP 440).
    :param description: one sentence an admin sees in ``itsm plugins list``.
    :param requires_itsm: the itsm versions it works with, as a PEP 440 specifier
        (``">=0.1,<1"``); empty means any.
    :param depends: other plugins it needs, name to version specifier (``{"incident":
        ">=0.1"}``); enabling this plugin enables them, and they cannot be disabled
        while this one is enabled.
    :param settings: its settings with their defaults, read from ``[plugins.<name>]`` in
        itsm.toml and ``ITSM_PLUGINS_<NAME>_<KEY>``.
    :param required_settings: settings that must have a non-empty value to enable it.
    """

    name: str
    version: str
    description: str = ""
    requires_itsm: str = ""
    depends: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    required_settings: tuple[str, ...] = ()


@dataclass
class PluginInfo:
    """What discovery learned about one installed plugin."""

    name: str
    module: ModuleType | None = None
    declaration: Plugin | None = None
    distribution: str = ""
    builtin: bool = False
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    host: PluginHost | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.declaration.version if self.declaration else ""

    @property
    def description(self) -> str:
        return self.declaration.description if self.declaration else ""

    @property
    def path(self) -> Path | None:
        file = getattr(self.module, "__file__", None)
        return Path(file).parent if file else None

    @property
    def usable(self) -> bool:
        return self.error is None and self.module is not None

    def call(self, hook: str, **kwargs: Any) -> Any:
        """This plugin's result of ``hook``, enabled or not, called through pluggy (so
        tracing and pluggy's argument checks see the call): what its implementation
        returned, or None when it has none."""
        if not self.usable:
            return None
        if self.host is not None:
            return self.host.call(self.name, hook, **kwargs)
        pm = new_plugin_manager()  # discovered outside a host (tests, scripts)
        pm.register(self.module, name=self.name)
        return _one_result(getattr(pm.hook, hook), kwargs)


def _one_result(caller: pluggy.HookCaller, kwargs: dict[str, Any]) -> Any:
    """Call a hook caller that reaches one implementation; unwrap an all-results list."""
    result = caller(**kwargs)
    if caller.spec is not None and caller.spec.opts.get("firstresult"):
        return result
    return result[0] if result else None


def _alone(pm: pluggy.PluginManager, hook: str, plugin: object) -> pluggy.HookCaller:
    """A caller of ``hook`` that reaches only ``plugin``'s implementation, through pluggy
    (``subset_hook_caller``: tracing and the checks as for any other call)."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)


def _itsm_version() -> Version:
    from itsm import __version__

    return Version(__version__)


def check_declaration(module: ModuleType, name: str | None = None) -> Plugin:
    """Return the module's valid :class:`Plugin` declaration or raise PluginError why not."""
    declaration = getattr(module, "plugin", None)
    label = name or module.__name__
    if not isinstance(declaration, Plugin):
        raise PluginError(f"plugin {label!r} has no declaration: add "
                          f"`plugin = itsm.Plugin(name=..., version=...)` to {module.__name__}")
    if name and declaration.name != name:
        raise PluginError(f"plugin {name!r} declares the name {declaration.name!r}: make the "
                          "entry-point name and Plugin(name=...) the same")
    try:
        Version(declaration.version)
    except InvalidVersion:
        raise PluginError(f"plugin {label!r} has an invalid version "
                          f"{declaration.version!r}") from None
    if declaration.requires_itsm:
        try:
            spec = SpecifierSet(declaration.requires_itsm)
        except InvalidSpecifier:
            raise PluginError(f"plugin {label!r} has an invalid requires_itsm "
                              f"{declaration.requires_itsm!r}") from None
        current = _itsm_version()
        if not spec.contains(current, prereleases=True):
            raise PluginError(
                f"plugin {label!r} {declaration.version} needs itsm{declaration.requires_itsm} "
                f"(this is {current}): upgrade itsm or install a {label} release made for "
                f"itsm {current}")
    for dep, rng in declaration.depends.items():
        try:
            SpecifierSet(rng)
        except InvalidSpecifier:
            raise PluginError(f"plugin {label!r} has an invalid version range {rng!r} "
                              f"for its dependency {dep!r}") from None
    return declaration


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def check_hooks(module: ModuleType, name: str,
                scratch: pluggy.PluginManager | None = None) -> list[str]:
    """Register ``module`` on a scratch manager; return its hooks or raise on a bad one.

    ``scratch`` (from :func:`new_plugin_manager`) is used and left empty again: reading
    the hook specifications for a new manager costs more than checking a plugin, and
    start-up checks every installed plugin.
    """
    pm = scratch if scratch is not None else new_plugin_manager()
    try:
        pm.register(module, name=name)
        pm.check_pending()
        return sorted(h.name for h in pm.get_hookcallers(module) or [])
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r}: {exc}") from None
    finally:
        if pm.has_plugin(name):
            pm.unregister(name=name)


def inspect_module(module: ModuleType, *, name: str | None = None,
                   distribution: str = "", builtin: bool = False,
                   scratch: pluggy.PluginManager | None = None) -> PluginInfo:
    """Check an imported plugin module; never raises, errors go into ``PluginInfo.error``."""
    info = PluginInfo(name=name or getattr(getattr(module, "plugin", None), "name", "")
                      or module.__name__, module=module, distribution=distribution,
                      builtin=builtin)
    try:
        info.declaration = check_declaration(module, name)
        info.hooks = check_hooks(module, info.name, scratch)
    except PluginError as exc:
        info.error = exc.message
    return info


def discover(extra: Iterable[ModuleType] = ()) -> dict[str, PluginInfo]:
    """Find every installed plugin (entry points) plus ``extra`` modules (tests, scripts)."""
    found: dict[str, PluginInfo] = {}
    scratch = new_plugin_manager()
    names: dict[int, str] = {}  # a distribution's name reads its metadata file each time
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is None:
            dist = ""
        elif id(ep.dist) in names:
            dist = names[id(ep.dist)]
        else:
            dist = names[id(ep.dist)] = ep.dist.name
        builtin = dist == CORE_DISTRIBUTION
        if ep.name in found:
            other = found[ep.name].distribution
            log.warning("plugin %r is installed twice (%s and %s); keeping the first",
                        ep.name, other, dist)
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not stop the others
            found[ep.name] = PluginInfo(
                name=ep.name, distribution=dist, builtin=builtin,
                error=f"plugin {ep.name!r} failed to import: {type(exc).__name__}: {exc}")
            log.warning("%s", found[ep.name].error)
            continue
        found[ep.name] = inspect_module(module, name=ep.name, distribution=dist,
                                        builtin=builtin, scratch=scratch)
    for module in extra:
        if isinstance(module, str):
            module = importlib.import_module(module)
        info = inspect_module(module, distribution="(registered at run time)",
                              scratch=scratch)
        found[info.name] = info
    for info in found.values():
        if info.error:
            log.warning("%s", info.error)
    return found


def _trace(pm: pluggy.PluginManager) -> None:
    """Log every hook call of ``pm`` with its arguments and results (``trace_plugins``)."""
    pm.trace.root.setwriter(lambda msg: log.info("%s", msg.rstrip()))
    pm.enable_tracing()


class PluginHost:
    """The install's plugins: which exist, which are enabled, and the live pluggy manager.

    The enabled set lives in the database (``plugin_state``); a plugin with no row yet is
    enabled when it is built in and disabled when it comes from another package, so a
    vendor package installed with pip takes effect only when an admin enables it.
    """

    def __init__(self, plugins: dict[str, PluginInfo], *, trace: bool = False,
                 refresh_seconds: float = 5.0, initial: str | Iterable[str] = "*") -> None:
        self.plugins = plugins
        if isinstance(initial, str):
            initial = [] if initial.strip() == "" else (
                None if initial.strip() == "*" else initial.split(","))
        self.initial: set[str] | None = (None if initial is None
                                         else {n.strip() for n in initial if n.strip()})
        self.pm = new_plugin_manager()
        self.trace = trace
        self._installed: pluggy.PluginManager | None = None  # every usable plugin, see call
        self._by_plugin: dict[str, list[tuple[str, pluggy.HookCaller]]] = {}
        self._lock = threading.RLock()
        self._enabled: set[str] = set()
        self._checked_at = 0.0
        self.refresh_seconds = refresh_seconds
        self.on_change: list[Callable[[], None]] = []
        for path in ESSENTIAL_PLUGINS:
            self.pm.register(importlib.import_module(path), name="core")
        for info in plugins.values():
            info.host = self
            if info.usable:
                self.pm.register(info.module, name=info.name)
        # Everything starts registered so check_pending covers all; then block disabled.
        self.pm.check_pending()
        for info in plugins.values():
            if info.usable:
                self._block(info.name)
        if trace:
            _trace(self.pm)

    # -- state -----------------------------------------------------------------------

    @property
    def hook(self):
        return self.pm.hook

    def by_plugin(self, hook: str) -> list[tuple[str, pluggy.HookCaller]]:
        """``(plugin, caller)`` for each enabled plugin implementing ``hook``, in the order
        pluggy calls them; each caller reaches that plugin's implementation alone, through
        pluggy. For what needs each plugin's own answer (its name beside its results, a
        check after each implementation)."""
        with self._lock:
            found = self._by_plugin.get(hook)
            if found is None:
                impls = getattr(self.pm.hook, hook).get_hookimpls()
                # pluggy calls the last registered (and the tryfirst ones) first
                found = self._by_plugin[hook] = [
                    (impl.plugin_name, _alone(self.pm, hook, impl.plugin))
                    for impl in reversed(impls)]
            return found

    def call(self, name: str, hook: str, **kwargs: Any) -> Any:
        """The result of the installed plugin ``name``'s implementation of ``hook``,
        enabled or not, called through pluggy; None when it has none.

        An enabled plugin is called on the live manager; a disabled one, which the live
        manager does not hold, on a second manager that holds every usable plugin, made
        on first need (most installs never need it).
        """
        info = self.get(name)
        if not info.usable:
            return None
        with self._lock:
            pm = self.pm if self.pm.has_plugin(name) else self._every_plugin()
            caller = _alone(pm, hook, pm.get_plugin(name))
        return _one_result(caller, kwargs)

    def _every_plugin(self) -> pluggy.PluginManager:
        if self._installed is None:
            pm = new_plugin_manager()
            for info in self.plugins.values():
                if info.usable:
                    pm.register(info.module, name=info.name)
            if self.trace:
                _trace(pm)
            self._installed = pm
        return self._installed

    @property
    def enabled(self) -> frozenset[str]:
        return frozenset(self._enabled)

    def is_enabled(self, name: str) -> bool:
        return name in self._enabled

    def get(self, name: str) -> PluginInfo:
        try:
            return self.plugins[name]
        except KeyError:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise PluginError(f"no plugin named {name!r} is installed (installed: {known})")\
                from None

    def stored_state(self, session: Session) -> dict[str, bool]:
        from sqlalchemy import select

        from itsm.core.models import PluginState

        # The table, not the mapped class: an ORM query would configure every model's
        # mapper first, work that a process which reads no record never needs.
        table = PluginState.__table__
        return {name: enabled
                for name, enabled in session.execute(select(table.c.name, table.c.enabled))}

    def wanted(self, stored: dict[str, bool]) -> set[str]:
        """The plugins that should be active given the stored state and the defaults."""
        return {name for name, info in self.plugins.items()
                if info.usable and stored.get(name, info.builtin and self.initially(name))}

    def initially(self, name: str) -> bool:
        """Whether built-in ``name`` starts enabled on an install with no state for it."""
        return self.initial is None or name in self.initial

    def apply(self, names: set[str]) -> bool:
        """Register exactly ``names`` with pluggy; return True when anything changed."""
        with self._lock:
            if names == self._enabled:
                return False
            for name in self._enabled - names:
                self._block(name)
            for name in sorted(names - self._enabled):
                self.pm.unblock(name)
                self.pm.register(self.plugins[name].module, name=name)
            self._enabled = set(names)
            self._by_plugin = {}
        for callback in self.on_change:
            callback()
        return True

    def _block(self, name: str) -> None:
        self.pm.set_blocked(name)  # unregisters it too

    def refresh(self, session_factory: Callable[[], Session], *, force: bool = False) -> None:
        """Re-read the enabled state, at most every ``refresh_seconds`` unless forced.

        This is how ``itsm plugins disable`` reaches a running server without a restart.
        """
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_seconds:
            return
        self._checked_at = now
        with session_factory() as session:
            stored = self.stored_state(session)
        self.apply(self.wanted(stored))

    # -- admin operations --------------------------------------------------------------

    def _dependents(self, name: str, among: Iterable[str]) -> list[str]:
        return sorted(other for other in among
                      if self.plugins[other].declaration
                      and name in self.plugins[other].declaration.depends)

    def resolve_enable(self, name: str, settings_lookup: Callable[[PluginInfo], dict]) \
            -> list[str]:
        """The plugins to enable for ``name``, dependencies first; raise why it cannot be."""
        order: list[str] = []

        def visit(current: str, wanted_by: str | None, chain: tuple[str, ...]) -> None:
            if current in chain:
                raise PluginError("plugins depend on each other in a circle: "
                                  + " -> ".join((*chain, current)))
            if current not in self.plugins and wanted_by is None:
                self.get(current)  # raises, naming the installed plugins
            if current not in self.plugins:
                raise PluginError(f"plugin {wanted_by!r} needs plugin {current!r}, which is "
                                  f"not installed: pip install the package that provides it")
            info = self.plugins[current]
            if info.error:
                raise PluginError(info.error)
            decl = info.declaration
            for key in decl.required_settings:
                if not settings_lookup(info).get(key):
                    raise PluginError(
                        f"plugin {current!r} needs the setting {key!r}: set "
                        f"[plugins.{current}] {key} in itsm.toml or "
                        f"ITSM_PLUGINS_{current.upper()}_{key.upper()}")
            for dep, rng in decl.depends.items():
                if dep in self.plugins and self.plugins[dep].declaration:
                    have = Version(self.plugins[dep].version)
                    if not SpecifierSet(rng).contains(have, prereleases=True):
                        raise PluginError(f"plugin {current!r} needs {dep}{rng}, but {dep} "
                                          f"{have} is installed: upgrade {dep}")
                visit(dep, current, (*chain, current))
            if current not in order:
                order.append(current)

        visit(name, None, ())
        return order

    def refuse_disable(self, name: str, enabled: Iterable[str]) -> None:
        needed_by = self._dependents(name, [n for n in enabled if n != name])
        if needed_by:
            raise PluginError(f"plugin {name!r} is needed by {', '.join(needed_by)}: "
                              "disable those first")
