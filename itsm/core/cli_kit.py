"""What every ``itsm`` command is built with, the core's and the plugins' alike: the
per-invocation state that makes the application on first use, ``pass_itsm`` and
``emit_json``.

It lives in the core, below both ``itsm.cli`` (the top-level group) and
``itsm.commands`` (the core's command groups), so neither has to import the other and a
plugin's commands get the same helpers through :mod:`itsm.plugin`.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

# The applications this process's commands made: their connections are closed on exit.
made_apps: weakref.WeakSet = weakref.WeakSet()


class CliState:
    """Per-invocation state: the application, created on first use."""

    def __init__(self) -> None:
        self._app = None
        self.plugin_commands: dict[str, click.Command] | None = None
        self.plugin_of: dict[str, str] = {}

    def app(self):
        if self._app is None:
            from itsm.core.app import create_app

            self._app = create_app()
            made_apps.add(self._app)
        return self._app

    def reset(self) -> None:
        self._app = None


def pass_itsm(f: Callable) -> Callable:
    """Run a command inside the application context, passing the Itsm state first."""

    @wraps(f)
    @click.pass_context
    def wrapper(ctx: click.Context, *args, **kwargs):
        state = ctx.find_object(CliState) or ctx.ensure_object(CliState)
        app = state.app()
        ctx.with_resource(app.app_context())
        return f(app.extensions["itsm"], *args, **kwargs)

    return wrapper


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (what a command's ``--json`` switch shows)."""
    click.echo(json.dumps(data, indent=2, default=str))
