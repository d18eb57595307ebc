"""The Flask application factory: the application, its routes registered on first use.

The per-install state (:class:`Itsm`) lives in :mod:`itsm.core.state` and the accessor
:func:`current_itsm` in :mod:`itsm.core.context`; both stay importable from here.
"""

from __future__ import annotations

import gc
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from itsm.core.plugins import collector_paused

with collector_paused():  # the bulk of the start-up's imports
    from flask import Flask, abort, request
    from werkzeug.datastructures import ImmutableMultiDict, MultiDict
    from werkzeug.routing import Map, Rule
    from werkzeug.routing.converters import IntegerConverter

    from itsm.core import inputs
    from itsm.core.context import current_itsm
    from itsm.core.errors import ValidationError
    from itsm.core.migrate import call_plugin
    from itsm.core.state import Itsm, _close_request_session

# Itsm and current_itsm have modules of their own; they stay importable from here.
__all__ = ["Itsm", "ItsmApp", "create_app", "current_itsm"]

log = logging.getLogger("itsm")


def _deferring(name: str) -> property:
    """An attribute of :class:`ItsmApp` that runs the deferred registration when read."""
    slot = f"_itsm_{name}"

    def get(self: ItsmApp) -> Any:
        if self._deferred is not None:
            self.register_deferred()
        return self.__dict__[slot]

    def set(self: ItsmApp, value: Any) -> None:
        self.__dict__[slot] = value

    return property(get, set, doc=f"Flask's ``{name}``, complete with the deferred routes.")


class _Rule(Rule):
    """A URL rule whose URL builders (for ``url_for``) are compiled on first use.

    Werkzeug compiles two small functions per rule when it is added, most of the cost of
    adding it; most rules are never built from in a process. Matching is unchanged.
    """

    def _compile_builder(self, *args: Any, **kwargs: Any) -> Callable[..., tuple[str, str]]:
        compile_builder = super()._compile_builder
        compiled: Callable[..., tuple[str, str]] | None = None

        def build(rule: Rule, *values: Any, **named: Any) -> tuple[str, str]:
            nonlocal compiled
            if compiled is None:
                compiled = compile_builder(*args, **kwargs)
            return compiled(rule, *values, **named)

        return build


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` in a route: ASCII digits only, as :func:`itsm.core.inputs.parse_int`
    reads numbers (werkzeug's ``\\d+`` also matches ``٣`` and ``５``, so ``/x/٣`` was
    ``/x/3``)."""

    regex = r"[0-9]+"


class ItsmMap(Map):
    default_converters = {**Map.default_converters, "int": AsciiIntegerConverter}


class ItsmApp(Flask):
    """The itsm Flask application, whose routes are registered when it is first used.

    Importing the API, console and every plugin's page and API modules and building
    their URL rules is a large part of the start-up, and a command or a worker that
    serves no request does not need them. They are registered (see ``_web``) the first
    time the URL map, the view functions or the blueprints are read, or anything a
    blueprint adds to: every request (its URL is matched before anything else runs),
    ``url_for``, a template lookup, a handler added later and any inspection of
    ``app.url_map`` see exactly the application an eager registration makes, in the
    same order.
    """

    # What registering the routes reads or changes: reading or changing any of them first
    # completes the registration, so nothing added later lands before the routes.
    url_map_class = ItsmMap
    url_map = _deferring("url_map")
    view_functions = _deferring("view_functions")
    blueprints = _deferring("blueprints")
    error_handler_spec = _deferring("error_handler_spec")
    before_request_funcs = _deferring("before_request_funcs")
    after_request_funcs = _deferring("after_request_funcs")
    teardown_request_funcs = _deferring("teardown_request_funcs")
    template_context_processors = _deferring("template_context_processors")
    url_value_preprocessors = _deferring("url_value_preprocessors")
    url_default_functions = _deferring("url_default_functions")

    url_rule_class = _Rule
    _deferred: Callable[[], None] | None = None

    def defer(self, register: Callable[[], None]) -> None:
        """Run ``register`` (routes, request hooks, error handlers) on first use."""
        self._deferred_lock = threading.RLock()
        self._deferred_running = False
        self._deferred_error: BaseException | None = None
        self._deferred = register

    def register_deferred(self) -> None:
        """Run the deferred registration now, once; other threads wait for it."""
        if self._deferred is None:
            return
        with self._deferred_lock:
            if self._deferred_error is not None:
                raise self._deferred_error
            if self._deferred is None or self._deferred_running:
                return  # done meanwhile, or read by the registration itself
            self._deferred_running = True
            try:
                with collector_paused():
                    self._deferred()
            except BaseException as exc:  # as eager registration would: never half-served
                self._deferred_error = exc
                raise
            finally:
                self._deferred_running = False
            self._deferred = None
            _freeze_start_up(self)


_FROZEN: list[bool] = []  # once per process: the start-up's objects are out of sight


def _freeze_start_up(app: Flask) -> None:
    """Take what the start-up built out of the cyclic collector's sight, once per process.

    The modules, models, plugins and routes live as long as the process, and a full
    collection walked all of them (some 200,000 objects), a pause of up to 450 ms on a
    busy 2-core machine that fell on about one request in a hundred. Now it walks only
    what requests left behind. Not under tests, which build many applications in one
    process.
    """
    if app.testing or _FROZEN:
        return
    _FROZEN.append(True)
    gc.freeze()


def _plugin_blueprints(app: Flask, itsm: Itsm) -> None:
    """Register every installed plugin's blueprints; a disabled plugin's answer 404."""
    owners: dict[str, str] = {}
    for info in itsm.host.plugins.values():
        if not info.usable:
            continue
        try:
            declared = call_plugin(info, "itsm_blueprints") or ()
        except Exception as exc:  # one broken plugin must not keep the others down
            message = (f"plugin {info.name!r}: its pages and routes failed to load: "
                       f"{type(exc).__name__}: {exc}")
            log.exception("%s", message)
            itsm.load_errors.append(message)
            itsm._errors.append(message)
            continue
        for blueprint in declared:
            app.register_blueprint(blueprint)
            owners[blueprint.name] = info.name
    itsm.blueprint_owners = owners

    @app.before_request
    def gate_disabled_plugins():
        itsm.refresh_plugins()
        owner = owners.get((request.blueprint or "").split(".")[0])
        if owner and not itsm.host.is_enabled(owner):
            abort(404)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the itsm application.

    :param config: settings that override itsm.toml and the environment, by dotted name
        (``{"database.url": ..., "home": ...}``); ``plugins.extra`` adds plugin modules
        that are not installed as packages (tests, scripts).
    """
    with collector_paused():  # plugin modules, models, schemas: long-lived objects
        return _create_app(config)


def _create_app(config: Mapping[str, Any] | None) -> Flask:
    from itsm.core.config import load_settings

    config = dict(config or {})
    extra = config.pop("plugins.extra", ())
    settings = load_settings(config)
    logging.basicConfig(level=settings["log.level"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = ItsmApp("itsm", instance_path=str(settings.home))
    secret = settings["secret_key"]
    if not secret:
        log.warning("no secret_key configured (run `itsm init`): sessions last until restart")
        secret = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret,
        MAX_CONTENT_LENGTH=settings["api.max_body_bytes"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.get("session.secure_cookie", False)),
        JSON_SORT_KEYS=False,
    )
    itsm = Itsm(settings, extra)
    itsm.app = app
    app.extensions["itsm"] = itsm
    app.defer(lambda: _web(app, itsm))
    if itsm.hook.itsm_app_ready.get_hookimpls():
        # A plugin that sees the application sees it complete: routes, request hooks
        # and error handlers in place before whatever it adds.
        app.register_deferred()
    itsm.hook.itsm_app_ready(app=app)
    return app


def _gated(values: MultiDict) -> ImmutableMultiDict:
    """Query parameters or form fields through the input gate: every value (and name)
    checked and normalised; the first refused one raises, naming the parameter."""
    if any(name is None for name in values):  # a multipart part whose header was cut short
        raise ValidationError("a form part has no readable name",
                              fields={"_form": ["a part without a name"]})
    bad = sorted({name for name, value in values.items(multi=True) if "\x00" in value})
    if bad:
        raise ValidationError("parameters may not contain NUL characters",
                              fields={name: ["contains a NUL character"] for name in bad})
    return ImmutableMultiDict([(inputs.check_text(name, name), inputs.check_text(value, name))
                               for name, value in values.items(multi=True)])


def _web(app: Flask, itsm: Itsm) -> None:
    """The routes, request hooks and error handlers: the API's, the console's, then every
    plugin's. Registered when the application is first used (see :class:`ItsmApp`)."""
    from itsm.core import (  # noqa: F401
        api,
        console,
        groups_api,
        inbox_web,
        ops,
        password_reset,
        satisfaction_web,
    )
    from itsm.core.admin import area as admin_area

    ops.init_app(app)  # first: its timer starts before any other request hook runs
    api.init_app(app)
    app.register_blueprint(groups_api.bp)
    app.teardown_request(_close_request_session)

    @app.before_request
    def gate_parameters_and_forms():
        # The input gate for every route, the plugins' included: a NUL character (no
        # database stores it, PostgreSQL refuses the whole query) is one clear 422 instead
        # of a 500 deep down, and each view reads text already normalised (see
        # itsm.core.inputs), so a form and the API store the same text.
        request.args = _gated(request.args)
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            request.form = _gated(request.form)
        # An <int:...> path value larger than any database integer names nothing there.
        if any(isinstance(value, int) and value > api.LARGEST_INTEGER
               for value in (request.view_args or {}).values()):
            abort(404)

    # Before the plugins' blueprints: the generic templates come first, a plugin adds
    # records/<type>/*.html beside them (see itsm.core.console).
    app.register_blueprint(console.bp)
    admin_area.register(app)
    app.register_blueprint(password_reset.bp)
    _plugin_blueprints(app, itsm)
