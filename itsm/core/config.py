"""Settings from the instance's itsm.toml, overridden by ITSM_* environment variables.

A setting has a dotted name (``database.url``) that is a TOML table path in itsm.toml and
an environment variable with the dots turned into underscores (``ITSM_DATABASE_URL``).
Precedence, lowest first: built-in defaults, itsm.toml, environment, the mapping passed to
``create_app`` (tests and scripts).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from itsm.core.errors import ConfigError

CONFIG_FILE = "itsm.toml"

SLA_DEFAULTS = {
    # Working minutes per priority: an ITIL-style starting point an admin adjusts.
    "response": {"p1": 15, "p2": 60, "p3": 240, "p4": 480, "p5": 960},
    "resolution": {"p1": 240, "p2": 480, "p3": 1440, "p4": 2880, "p5": 7200},
}

DEFAULTS: dict[str, Any] = {
    "database.url": "",  # empty: sqlite file itsm.db in the instance folder
    "secret_key": "",
    "attachments.path": "",  # empty: attachments/ in the instance folder
    "attachments.max_bytes": 25 * 1024 * 1024,
    "api.page_size": 50,
    "api.max_page_size": 200,
    "api.max_body_bytes": 30 * 1024 * 1024,
    # How long a create's answer is kept for a retry with the same Idempotency-Key.
    "api.idempotency_hours": 24,
    "auth.token_days": 90,  # an API token's lifetime when the request names none
    "auth.token_max_days": 365,  # no token lives longer, whatever was asked
    "auth.session_idle_minutes": 480,  # a web session ends after this long unused
    "auth.session_max_hours": 24 * 7,  # and this long after its sign-in, used or not
    # Off: users made by a sign-in method (a directory) sign in only through it, never
    # with a local password; local users (the admins of the install) keep theirs.
    "auth.local_passwords": True,
    # How long a "forgot password" link works; a newer one or a new password ends it sooner.
    "auth.password_reset_minutes": 60,
    # The console's address for links in mails (https://itsm.example.org); empty: the
    # e-mail plugin's base_url, else the address the request came to.
    "auth.base_url": "",
    "plugins.refresh_seconds": 5.0,
    "plugins.strict": False,
    # Built-in plugins enabled on a fresh install: "*" for all, or a list of names
    # (ITSM_PLUGINS_INITIAL=incident,knowledge). Later, enable/disable decides.
    "plugins.initial": "*",
    # A satisfaction score at or below this opens a follow-up for the group's manager.
    "satisfaction.follow_up_at": 2,
    "outbox.max_attempts": 8,
    "outbox.backoff_seconds": 30.0,
    "outbox.lease_seconds": 300.0,
    # Per-cycle budgets of the background work, so that a backlog (an import, a mail
    # server down for hours) is worked off over several cycles and never holds the web
    # process's own worker thread for minutes: the rest waits for the next cycle.
    "outbox.batch": 500,  # events fanned out and deliveries run per cycle (0: no limit)
    "outbox.drain_seconds": 10.0,
    "sla.sweep_batch": 2000,  # warnings and breaches announced per cycle (0: no limit)
    "sla.sweep_seconds": 5.0,
    # When `itsm doctor` (and the health checks) warn: events or deliveries waiting longer
    # than this or more of them than that; due SLA announcements late by more than this.
    "health.outbox_minutes": 15.0,
    "health.outbox_waiting": 1000,
    "health.sweep_lag_minutes": 15.0,
    # Who may read /metrics without an admin token: client addresses in these networks.
    "metrics.allow": ["127.0.0.1/32", "::1/128"],
    # The zone pages show times in for people who chose none (an IANA name).
    "time_zone": "UTC",
    "log.level": "WARNING",
    "trace_plugins": False,
    **{f"sla.{metric}.{p}": minutes for metric, table in SLA_DEFAULTS.items()
       for p, minutes in table.items()},
}

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def instance_path(home: str | os.PathLike | None = None) -> Path:
    """The instance folder: ``$ITSM_HOME``, else ``./instance``."""
    return Path(home or os.environ.get("ITSM_HOME") or "instance").resolve()


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _coerce(name: str, raw: str, default: Any) -> Any:
    """Turn an environment string into the type of the setting's default."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in _BOOL_TRUE:
            return True
        if low in _BOOL_FALSE:
            return False
        raise ConfigError(f"setting {name}: expected true or false, got {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"setting {name}: expected a number ({kind}), got {raw!r}") from None
    if isinstance(default, list):  # ITSM_METRICS_ALLOW=10.0.0.0/8,127.0.0.1/32
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def env_name(name: str) -> str:
    return "ITSM_" + name.replace(".", "_").replace("-", "_").upper()


class Settings(dict):
    """A flat mapping of dotted setting names to values, with the instance folder."""

    def __init__(self, home: Path, values: Mapping[str, Any],
                 overridden: frozenset[str] = frozenset()) -> None:
        super().__init__(values)
        self.home = home
        self.overridden = overridden  # names set by the caller of create_app: they win
        # plugin -> (its defaults, its settings): read once, forgotten on any change
        self._plugins: dict[str, tuple[Mapping[str, Any], dict[str, Any]]] = {}

    def _changed(self) -> None:
        self._plugins.clear()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)

    def popitem(self) -> tuple[str, Any]:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def __ior__(self, other: Any) -> Settings:
        self.update(other)
        return self

    @property
    def database_url(self) -> str:
        return self["database.url"] or f"sqlite:///{self.home / 'itsm.db'}"

    @property
    def attachments_path(self) -> Path:
        return Path(self["attachments.path"] or self.home / "attachments")

    def plugin_settings(self, plugin: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """A plugin's settings: its declared defaults, itsm.toml ``[plugins.<name>]``, env.

        Read once per plugin (hooks ask on every event: a sweep asks thousands of times);
        each caller gets its own copy."""
        kept = self._plugins.get(plugin)
        if kept is None or kept[0] is not defaults:
            kept = self._plugins[plugin] = (defaults, self._read_plugin(plugin, defaults))
        return {k: dict(v) if isinstance(v, dict) else v for k, v in kept[1].items()}

    def _read_plugin(self, plugin: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(defaults)
        prefix = f"plugins.{plugin}."
        for key, value in self.items():
            if key.startswith(prefix):
                out[key[len(prefix):]] = value
        for key, default in defaults.items():
            raw = os.environ.get(env_name(prefix + key))
            if raw is not None and prefix + key not in self.overridden:
                out[key] = _coerce(prefix + key, raw, default)
        return fold_tables(out, defaults)


def fold_tables(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Fold TOML tables back into dictionaries: a setting whose default is a dict (e.g.
    ``routing``) arrives from ``[plugins.x.routing]`` flattened as ``routing.network``;
    the plugin gets ``{"routing": {..., "network": ...}}``."""
    out = {k: v for k, v in values.items() if "." not in k}
    for key, default in defaults.items():
        if isinstance(default, Mapping):
            table = dict(out.get(key) or {})
            prefix = key + "."
            table.update({k[len(prefix):]: v for k, v in values.items()
                          if k.startswith(prefix)})
            out[key] = table
    return out


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings in precedence order; raise ConfigError naming a bad file or value."""
    overrides = dict(overrides or {})
    home = instance_path(overrides.pop("home", None))
    values = dict(DEFAULTS)
    path = home / CONFIG_FILE
    if path.exists():
        try:
            values.update(_flatten(tomllib.loads(path.read_text(encoding="utf-8"))))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for name, default in DEFAULTS.items():
        raw = os.environ.get(env_name(name))
        if raw is not None:
            values[name] = _coerce(name, raw, default)
    values.update(overrides)
    _check_time_zone(values.get("time_zone"))
    return Settings(home, values, frozenset(overrides))


def _check_time_zone(name: Any) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"setting time_zone = {name!r} is not an IANA time zone: use a "
                          "name like \"Europe/Berlin\" or \"UTC\"") from None
