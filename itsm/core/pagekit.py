"""The page kit: what the console's pages and every plugin's pages are built with — the
signed-in actor and CSRF, a plugin's page blueprint and rendering, navigation and
template filters, error pages, and forms built from marshmallow schemas.

Security: the session cookie (HttpOnly, SameSite=Lax, Secure with ``session.secure_cookie``)
names a session kept on the server (see :mod:`itsm.core.web`): signing out, changing the
password, the idle time and the maximum age end it, copies of the cookie included. It
also holds a CSRF token that every POST to the console must echo in the ``csrf_token``
field (and every unsafe API call made with the cookie in ``X-CSRF-Token``; pages carry it
in ``<meta name="csrf-token">``). Signing in starts a new session. Templates are
autoescaped, user content is never marked safe, and pages send a strict
Content-Security-Policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from marshmallow import fields as mf
from marshmallow import missing, validate
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import BadRequest, HTTPException

from itsm.core import inputs
from itsm.core.auth import Actor
from itsm.core.context import current_itsm
from itsm.core.display import local_time, person
from itsm.core.errors import ItsmError, Unauthorized
from itsm.core.migrate import missing_table
from itsm.core.navigation import navigation, navigation_groups
from itsm.core.navigation import plural as plural  # re-exported: the pages import it here
from itsm.core.records import STAFF_ONLY_FIELDS, RecordType, schema_instance
from itsm.core.schemas import CoreRecordIn
from itsm.core.web import (
    csrf_matches,
    csrf_token,
    web_session_actor,
)

log = logging.getLogger("itsm.console")

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")

CSRF_FIELD = "csrf_token"
OPEN_ENDPOINTS = ("console.login", "console.static")
# Script and styles only as files of the application itself (console.js makes pages
# quicker; each works without it), nothing inline, nothing from another origin: the
# network may be closed anyway. ``connect-src`` lets the script call the API.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
TEXTAREA_FROM = 300  # strings allowed to be longer than this get a text area
MESSAGE_MAX = 600  # flash messages live in the session cookie: keep them short


class CsrfRefused(BadRequest):
    description = ("This form could not be checked: it expired or did not come from this "
                   "site. Go back, reload the page and send it again.")


def _itsm():
    return current_itsm()


# -- session, actor and CSRF ---------------------------------------------------------------


def signed_in_actor() -> Actor | None:
    """The signed-in user of the web session (checked once per request), or None."""
    return web_session_actor()


def _actor() -> Actor:
    actor = signed_in_actor()
    if actor is None:  # the before_request guard sends these to the sign-in page
        raise Unauthorized("sign in first")
    return actor


bp.add_app_template_global(csrf_token, "csrf_token")  # for base.html's <meta name="csrf-token">


@bp.app_template_global()
def csrf_field() -> Markup:
    """The hidden input every console form needs."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def _check_csrf() -> None:
    if not csrf_matches(request.form.get(CSRF_FIELD, "")):
        raise CsrfRefused()


@bp.before_request
def _guard():
    if request.endpoint == "console.static":
        return None
    return _require_sign_in(OPEN_ENDPOINTS)


def _require_sign_in(open_endpoints: tuple[str, ...] = ()):
    actor = signed_in_actor()
    if actor is None and request.endpoint not in open_endpoints:
        if request.method == "POST":
            flash("Your session has ended. Sign in again.", "error")
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=target))
    if request.method == "POST":
        _check_csrf()
    return None


@bp.after_app_request
def _security_headers(response):
    # On every response of the application, not only the console's: an unknown URL's
    # error page, a plugin's page and the API's JSON get them too.
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not (request.endpoint or "").endswith("static"):
        response.headers["Cache-Control"] = "no-store"
    return response


# -- pages of plugins -----------------------------------------------------------------------


def page_blueprint(name: str, import_name: str, *, url_prefix: str | None = None,
                   template_folder: str | None = "templates",
                   static_folder: str | None = None,
                   public: tuple[str, ...] = ()) -> Blueprint:
    """A blueprint for a plugin's own console or portal pages, protected like the core's.

    Every page requires a signed-in user (else a redirect to the sign-in page, except
    the view names in ``public``), every POST must carry ``csrf_field()``, responses get
    the console's security headers, and errors render the console's error page. Templates
    extend ``console/base.html`` (blocks ``title``, ``head`` for a plugin stylesheet
    from ``static_folder``, and ``content``) and get ``actor`` and the navigation. In
    views, :func:`page_actor` gives the signed-in :class:`~itsm.core.auth.Actor`; write
    through ``current_itsm().unit_of_work(actor)``. Return the blueprint from
    ``itsm_blueprints``.
    """
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix,
                          template_folder=template_folder, static_folder=static_folder)
    open_endpoints = tuple(f"{name}.{view}" for view in (*public, "static"))
    blueprint.before_request(lambda: _require_sign_in(open_endpoints))
    blueprint.after_request(_security_headers)
    blueprint.register_error_handler(ItsmError, _itsm_error)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(OperationalError, _database_down)
    blueprint.register_error_handler(Exception, _unexpected)
    return blueprint


def page_actor() -> Actor:
    """The signed-in user of a page (see :func:`page_blueprint`)."""
    return _actor()


def render_page(template: str | list[str], status: int = 200, **context: Any):
    """Render a plugin page's template with the console's context: ``(body, status)``."""
    return _render(template, status, **context)


def continue_to(url: str, message: str, link: str = "Continue") -> tuple[str, int]:
    """A page that sends the browser on to ``url`` on another site (an identity provider)
    at once, by a meta refresh, with ``message`` and a ``link`` to follow by hand.

    Forms may only be sent to itsm itself (``form-action 'self'``), and browsers apply
    that to a redirect answering a form too: a form whose answer leads to another site
    (sign out at the provider, the provider chosen by e-mail address) answers with this
    page instead of a redirect."""
    return _render("console/continue.html", 200, url=url, message=message, link=link)


# -- page context: navigation and filters ---------------------------------------------------


FRAME_READERS: list[Callable[[Actor], Any]] = []  # the frame's other reads: the bell


def read_frame(actor: Actor) -> None:
    """Read what the frame of every page shows (the menu, the bell) now, before the
    page's unit of work: they then run on the request's session, which the unit of work
    takes over, so a page reads on one connection and in one transaction. The results
    are kept for the request; a page that does not call this reads them as it renders.
    """
    navigation(actor)
    for reader in FRAME_READERS:
        reader(actor)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    try:
        actor = signed_in_actor()
    except SQLAlchemyError:  # an error page about the database itself
        actor = None
    return {"actor": actor, "navigation": lambda: navigation(actor) if actor else [],
            "navigation_groups": lambda: navigation_groups(actor) if actor else []}


@bp.app_template_filter("when")
def when(value: str | datetime | None) -> str:
    """A stored moment in the reader's time zone (see :mod:`itsm.core.display`)."""
    return local_time(value)


bp.add_app_template_filter(person, "person")  # a user by display name


@bp.app_template_filter("sentence")
def sentence(text: Any) -> str:
    text = str(text or "")
    return text[:1].upper() + text[1:]


@bp.app_template_filter("duration")
def duration(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    total = round(abs(minutes))
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{mins} min" if mins or not (days or hours) else ""]
    return " ".join(p for p in parts if p)


@bp.app_template_filter("filesize")
def filesize(size: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


# The template that answers a list of names (a type's own page, else the core's), per
# list and set of blueprints: Jinja caches the templates it finds but not the names it
# misses, so each page looked for a type's own template in every plugin's folder again.
_CHOSEN: dict[tuple[Any, ...], str] = {}


def _render(names: str | list[str], http_status: int = 200, **context):
    if isinstance(names, list) and not current_app.jinja_env.auto_reload:
        key = (*names, *current_app.blueprints)
        chosen = _CHOSEN.get(key)
        if chosen is None:
            chosen = current_app.jinja_env.select_template(names).name
            _CHOSEN[key] = chosen
        names = chosen
    return render_template(names, **context), http_status


# -- errors -----------------------------------------------------------------------------------

TITLES = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found",
          409: "Refused", 412: "Changed meanwhile", 413: "Too large", 422: "Invalid input",
          429: "Too many attempts", 500: "Something went wrong", 503: "Unavailable"}


def _error_page(status: int, message: str, reasons: list[str] | None = None):
    return _render("console/error.html", status, status=status,
                   title=TITLES.get(status, "Error"), message=message, reasons=reasons or [])


@bp.errorhandler(ItsmError)
def _itsm_error(exc: ItsmError):
    if isinstance(exc, Unauthorized):
        return redirect(url_for("console.login"))
    return _error_page(exc.status, error_text(exc), getattr(exc, "reasons", None))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error_page(exc.code or 500, exc.description or exc.name)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _no_such_page(exc: HTTPException):
    """Unknown paths outside the API get a console page; the API keeps its JSON errors."""
    from itsm.core.api import _wants_json, http_error_response

    if _wants_json():
        return http_error_response(exc)
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}  # Allow
    body, status = _error_page(exc.code or 404, exc.description or exc.name)
    return body, status, headers


def _missing_table(exc: Exception):
    """The error page for a table that is not there (an upgrade was not run), or None."""
    schema = missing_table(_itsm(), exc) if isinstance(exc, DBAPIError) else None
    if schema is None:
        return None
    log.error("%s", schema.message)
    return _error_page(schema.status, schema.message)


@bp.errorhandler(OperationalError)
def _database_down(exc: OperationalError):
    if (page := _missing_table(exc)) is not None:
        return page
    log.error("database unavailable: %s", exc.orig)
    body, status = _error_page(503, "The database is unavailable. Try again in a minute.")
    return body, status, {"Retry-After": "5"}


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    if (page := _missing_table(exc)) is not None:
        return page  # PostgreSQL and MariaDB raise it as a ProgrammingError
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error_page(500, "An unexpected error happened; it has been logged.")


def error_text(exc: ItsmError) -> str:
    """A service error as one readable sentence, with its field messages."""
    text = sentence(exc.message)
    details = "; ".join(f"{name.replace('_', ' ')}: {' '.join(messages)}"
                        for name, messages in field_messages(exc.fields).items())
    if details and details.lower() not in text.lower():
        text += f" ({details})"
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 1] + "…"


def field_messages(fields: dict) -> dict[str, list[str]]:
    out = {}
    for name, messages in (fields or {}).items():
        if isinstance(messages, dict):
            messages = [str(m) for value in messages.values()
                        for m in (value if isinstance(value, list) else [value])]
        elif not isinstance(messages, list):
            messages = [str(messages)]
        out[str(name)] = [str(m) for m in messages]
    return out


def row_field_messages(fields: dict, rows: str, prefix: str,
                       sent: list[int]) -> dict[str, list[str]]:
    """Field messages for a form with repeated rows (a CI type's attributes, a checklist's
    items): what marshmallow says of the list field ``rows`` at a position lands on the
    inputs ``<prefix>-<row>-<field>`` of the row the form sent there (``sent``: the
    form's row numbers, in order); anything else said of ``rows`` stays on ``rows``."""
    out: dict[str, list[str]] = {}
    fields = dict(fields or {})
    given = fields.pop(rows, None)
    if isinstance(given, dict):
        for position, messages in given.items():
            if str(position).isdigit() and int(position) < len(sent) and \
                    isinstance(messages, dict):
                for field, texts in field_messages(messages).items():
                    out.setdefault(f"{prefix}-{sent[int(position)]}-{field}", []).extend(texts)
            else:
                out.setdefault(rows, []).extend(field_messages({"_": messages})["_"])
    elif given:
        out[rows] = field_messages({"_": given})["_"]
    out.update(field_messages(fields))
    return out


# -- forms built from marshmallow schemas ---------------------------------------------------


@dataclass
class FormField:
    """One input of a form, described from a marshmallow field."""

    name: str
    label: str
    widget: str  # text, textarea, email, number, checkbox, select, date
    required: bool = False
    allow_none: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    hint: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    errors: list[str] = field(default_factory=list)
    integer: bool = False  # sent as int: strict Integer fields refuse "3"


def _widget(schema_field: mf.Field) -> str | None:
    """The input for a simple field type; None for types a generic form cannot edit."""
    for kind, widget in ((mf.Boolean, "checkbox"), (mf.Email, "email"), (mf.Integer, "number"),
                         (mf.Float, "number"), (mf.Decimal, "number"), (mf.Date, "date"),
                         (mf.DateTime, None), (mf.String, "text")):
        if isinstance(schema_field, kind):
            return widget
    return None


def describe(name: str, schema_field: mf.Field) -> FormField | None:
    widget = _widget(schema_field)
    if widget is None:
        return None
    attrs: dict[str, Any] = {}
    if widget == "number":
        attrs["step"] = 1 if isinstance(schema_field, mf.Integer) else "any"
    choices: list[tuple[str, str]] = []
    for validator in schema_field.validators:
        if isinstance(validator, validate.OneOf):
            choices = [(value, label or value) for value, label in validator.options()]
            widget = "select" if widget != "checkbox" else widget
        elif isinstance(validator, validate.Range):
            attrs.update({k: v for k, v in (("min", validator.min), ("max", validator.max))
                          if v is not None})
        elif isinstance(validator, validate.Length) and validator.max is not None:
            attrs["maxlength"] = validator.max
            if widget == "text" and validator.max > TEXTAREA_FROM:
                widget = "textarea"
    default = schema_field.load_default
    return FormField(
        name=name, widget=widget, required=schema_field.required,
        integer=isinstance(schema_field, mf.Integer),
        allow_none=schema_field.allow_none, choices=choices, attrs=attrs,
        label=schema_field.metadata.get("label") or name.replace("_", " ").capitalize(),
        hint=schema_field.metadata.get("description", ""),
        value=None if default is missing or callable(default) else default)


def schema_form(rt: RecordType, *, staff: bool, creating: bool = False) -> list[FormField]:
    """The inputs of a type's "in" schema: the core's fields, the type's own, then the
    staff-only assignment fields (for staff only).

    On the create form, optional fields that a transition sets (``resolution`` of a
    "resolve") are left out: the transition asks for them when it is their time.
    """
    later = frozenset(name for t in rt.workflow.transitions.values()
                      for name in t.settable) if creating else frozenset()
    # Copies of fields described once per schema: building the schemas and describing
    # their fields took 0.8 ms a call, twice a record page; callers change their copies.
    return [replace(f, choices=list(f.choices), attrs=dict(f.attrs), errors=list(f.errors))
            for f in _described(_itsm().types.schemas[rt.name]["in"], later, staff)]


@lru_cache(maxsize=256)
def _described(schema: type, later: frozenset[str], staff: bool) -> tuple[FormField, ...]:
    described = [f for f in (describe(n, sf) for n, sf
                             in schema_instance(schema).load_fields.items())
                 if f and not (f.name in later and not f.required)]
    core = [n for n in schema_instance(CoreRecordIn).fields if n not in STAFF_ONLY_FIELDS]
    described.sort(key=lambda f: (f.name in STAFF_ONLY_FIELDS,
                                  core.index(f.name) if f.name in core else len(core)))
    return tuple(f for f in described if staff or f.name not in STAFF_ONLY_FIELDS)


_MISSING = object()


def form_value(form_field: FormField, form) -> Any:
    """The submitted value, typed for the schema; ``_MISSING`` when left empty."""
    if form_field.widget == "checkbox":
        return form_field.name in form
    raw = form.get(form_field.name, "").replace("\r\n", "\n")  # browsers send CRLF
    raw = raw.rstrip() if form_field.widget == "textarea" else raw.strip()
    if raw == "":
        return _MISSING
    if form_field.integer:
        try:
            return inputs.parse_int(raw, form_field.name)
        except inputs.InputError:
            return raw  # the schema words the error
    return raw


def new_values(form_fields: list[FormField], form) -> dict[str, Any]:
    return {f.name: value for f in form_fields
            if (value := form_value(f, form)) is not _MISSING}


def changed_values(form_fields: list[FormField], form, current: dict) -> dict[str, Any]:
    """Only what the user changed: an edit never rewrites a field nobody touched."""
    out = {}
    for f in form_fields:
        value, before = form_value(f, form), current.get(f.name)
        if value is _MISSING:
            if before in (None, ""):
                continue
            if f.allow_none:
                out[f.name] = None
            elif f.widget in ("text", "textarea"):
                out[f.name] = ""  # the schema says whether the field may be empty
        elif f.widget == "checkbox":
            if bool(value) != bool(before):
                out[f.name] = value
        elif str(value) != str(before if before is not None else ""):
            out[f.name] = value
    return out


def fill(form_fields: list[FormField], values: Any, errors: dict | None = None,
         submitted: bool = False) -> tuple[list[FormField], list[str]]:
    """Copies of the fields holding ``values`` and their messages; other messages apart."""
    messages = field_messages(errors or {})
    filled = []
    for f in form_fields:
        if f.widget == "checkbox" and submitted:
            value = f.name in values
        else:
            value = values.get(f.name, f.value)
        filled.append(replace(f, value=value, errors=messages.pop(f.name, [])))
    general = [" ".join(m) if name == "_" else f"{name.replace('_', ' ')}: {' '.join(m)}"
               for name, m in messages.items()]
    return filled, general
