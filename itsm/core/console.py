"""The web console: sign-in and generic list, form and detail pages for every record type.

The console knows no ITSM process. Each page is built from what a plugin declares — its
:class:`~itsm.core.records.RecordType`, the type's marshmallow "in" schema and its workflow
— and every write goes through :class:`~itsm.core.records.RecordService` inside
``itsm.unit_of_work(actor)``, the same service layer as the REST API.

Pages: ``/login``, ``/logout`` (signs out on POST only), ``/account/password``, ``/home``;
``/records/<collection>`` (filters and keyset paging), ``/records/<collection>/new``,
``/records/<collection>/<number>`` and its ``/edit`` page; the detail page posts its
transitions, comments, links and attachments to sub-paths of itself and redirects back
(POST-redirect-GET, with flash messages).

Replacing or extending a page of a plugin's record type
    Ship templates in the template folder of a blueprint the plugin returns from
    ``itsm_blueprints`` (``Blueprint("acme", __name__, template_folder="templates")``);
    Flask searches the template folder of every registered blueprint. For a record type
    named ``<type>`` the console renders the first template that exists of
    ``records/<type>/list.html`` and ``records/list.html`` (likewise ``detail.html`` and
    ``form.html``). The plugin's template may replace the page, or extend the generic one
    and override its blocks, keeping the core's content with ``{{ super() }}``::

        {% extends "records/detail.html" %}
        {% block sidebar %}{{ super() }}<section><h2>Site visit</h2>...</section>{% endblock %}

    Blocks: ``records/list.html`` has ``filters``, ``table`` and ``actions``;
    ``records/detail.html`` has ``fields``, ``actions``, ``conversation`` and ``sidebar``;
    ``records/form.html`` has ``fields``. The pages get ``rt`` (the RecordType), ``plural``
    and, on the detail page, ``record`` (``RecordService.to_dict``), ``transitions``,
    ``journal``, ``links``, ``attachments``, ``clocks`` and ``can`` (what the actor may
    do). Every template may call ``csrf_field()`` inside a console form. The core
    registers its blueprint before the plugins', so a plugin adds type-specific templates
    but cannot shadow the generic ones by accident.

Security: the session cookie (HttpOnly, SameSite=Lax, Secure with ``session.secure_cookie``)
holds the user id, a keyed fingerprint of the password hash (changing the password ends
every other session) and a CSRF token that every POST to the console must echo in the
``csrf_token`` field. Signing in starts a new session. Templates are autoescaped, user
content is never marked safe, and pages send a strict Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from marshmallow import fields as mf
from marshmallow import missing, validate
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import BadRequest, HTTPException

from itsm.core import auth, sla
from itsm.core.auth import Actor
from itsm.core.errors import ItsmError, NotFound, Unauthorized, ValidationError
from itsm.core.models import User
from itsm.core.query import FILTER_ARGS, parse_args
from itsm.core.records import STAFF_ONLY_FIELDS, RecordService, RecordType
from itsm.core.schemas import CoreRecordIn
from itsm.core.web import NavItem

log = logging.getLogger("itsm.console")

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")

CSRF_FIELD = "csrf_token"
ACTOR_KEY = "itsm.console.actor"
OPEN_ENDPOINTS = ("console.login", "console.static")
# No script at all, and nothing from another origin: the network may be closed anyway.
CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
TEXTAREA_FROM = 300  # strings allowed to be longer than this get a text area
MESSAGE_MAX = 600  # flash messages live in the session cookie: keep them short


class CsrfRefused(BadRequest):
    description = ("This form could not be checked: it expired or did not come from this "
                   "site. Go back, reload the page and send it again.")


def _itsm():
    from itsm.core.app import current_itsm

    return current_itsm()


# -- session, actor and CSRF ---------------------------------------------------------------


def _fingerprint(user: User) -> str:
    """Ties a session to the password it was opened with, without revealing the hash."""
    key = str(current_app.secret_key).encode()
    return hmac.new(key, (user.password_hash or "").encode(), "sha256").hexdigest()[:32]


def _load_actor() -> Actor | None:
    user_id = session.get("user_id")
    if not user_id:
        return None
    with _itsm().Session() as db:
        user = db.get(User, user_id)
        if user is None or not user.active or not hmac.compare_digest(
                str(session.get("auth", "")).encode(), _fingerprint(user).encode()):
            session.clear()
            return None
        return Actor.of(db, user)


def signed_in_actor() -> Actor | None:
    """The signed-in user of the web session (cached on the request), or None."""
    if ACTOR_KEY not in request.environ:
        request.environ[ACTOR_KEY] = _load_actor()
    return request.environ[ACTOR_KEY]


def _actor() -> Actor:
    actor = signed_in_actor()
    if actor is None:  # the before_request guard sends these to the sign-in page
        raise Unauthorized("sign in first")
    return actor


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


@bp.app_template_global()
def csrf_field() -> Markup:
    """The hidden input every console form needs."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def _check_csrf() -> None:
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
        raise CsrfRefused()


def _start_session(user: User) -> None:
    """A fresh session on sign-in: nothing a visitor planted before survives (fixation)."""
    session.clear()
    session["user_id"] = user.id
    session["auth"] = _fingerprint(user)
    session["csrf"] = secrets.token_urlsafe(32)


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


# -- page context: navigation and filters ---------------------------------------------------


def navigation(actor: Actor) -> list[dict[str, Any]]:
    """Home, one entry per record type the actor may read, and the plugins' entries."""
    itsm = _itsm()
    items = [NavItem("Home", url_for("console.home"), 0)]
    with itsm.Session() as db:
        service = RecordService(itsm, db, actor)
        items += [NavItem(plural(rt), url_for("console.record_list", collection=rt.collection),
                          10) for rt in itsm.types if service.can(f"{rt.name}.read")]
    try:
        results = itsm.hook.itsm_navigation(actor=actor)
    except Exception:  # one broken plugin must not take every page down
        log.exception("itsm_navigation failed; plugin entries are left out of the menu")
        results = []
    for result in results:
        items += [item for item in result or () if isinstance(item, NavItem)]
    items.sort(key=lambda item: (item.order, item.label.lower()))
    current = max((i.url for i in items if _is_under(request.path, i.url)), key=len, default="")
    return [{"label": i.label, "url": i.url, "current": i.url == current} for i in items]


def _is_under(path: str, url: str) -> bool:
    url = url.rstrip("/")
    return path == url or path.startswith(url + "/")


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    try:
        actor = signed_in_actor()
    except SQLAlchemyError:  # an error page about the database itself
        actor = None
    return {"actor": actor, "navigation": lambda: navigation(actor) if actor else []}


def plural(rt: RecordType) -> str:
    """The name of a type's list, from its collection (``change_requests``)."""
    return rt.collection.replace("_", " ").replace("-", " ").capitalize()


@bp.app_template_filter("when")
def when(value: str | datetime | None) -> str:
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


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


def _render(names: str | list[str], http_status: int = 200, **context):
    return render_template(names, **context), http_status


def _templates(rt: RecordType, page: str) -> list[str]:
    return [f"records/{rt.name}/{page}.html", f"records/{page}.html"]


def _record_type(collection: str) -> RecordType:
    rt = _itsm().types.by_collection.get(collection)
    if rt is None:
        raise NotFound(f"there is no list {collection!r} (is its plugin enabled?)")
    return rt


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


@bp.errorhandler(OperationalError)
def _database_down(exc: OperationalError):
    log.error("database unavailable: %s", exc.orig)
    body, status = _error_page(503, "The database is unavailable. Try again in a minute.")
    return body, status, {"Retry-After": "5"}


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
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
    schema = _itsm().types.schemas[rt.name]["in"]()
    later = {name for t in rt.workflow.transitions.values() for name in t.settable} \
        if creating else set()
    described = [f for f in (describe(n, sf) for n, sf in schema.load_fields.items())
                 if f and not (f.name in later and not f.required)]
    core = [n for n in CoreRecordIn().fields if n not in STAFF_ONLY_FIELDS]
    described.sort(key=lambda f: (f.name in STAFF_ONLY_FIELDS,
                                  core.index(f.name) if f.name in core else len(core)))
    return [f for f in described if staff or f.name not in STAFF_ONLY_FIELDS]


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
            return int(raw)
        except ValueError:
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


# -- sign-in, sign-out, password -----------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an open redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(c) < 32 for c in target) or urlsplit(target).netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if signed_in_actor() is not None:
            return redirect(next_url or url_for("console.home"))
        return _render("console/login.html", next=next_url, email="")
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not email or not password:
        return _render("console/login.html", 400, next=next_url, email=email,
                       error="Enter your e-mail address and your password.")
    itsm = _itsm()
    with itsm.Session() as db:
        try:
            user = auth.sign_in(db, email, password, request.remote_addr or "")
        except auth.TooManyAttempts as exc:
            return _render("console/login.html", 429, next=next_url, email=email,
                           error=sentence(exc.message) + ".")
        except Unauthorized:
            db.commit()  # the failure counts towards the throttle
            return _render("console/login.html", 401, next=next_url, email=email,
                           error="Wrong e-mail address or password.")
        _start_session(user)
        db.commit()
    return redirect(next_url or url_for("console.home"))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "GET":  # a link or a prefetch must never sign anyone out
        return _render("console/logout.html")
    session.clear()
    flash("You have signed out.", "success")
    return redirect(url_for("console.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    actor = _actor()
    if request.method == "GET":
        return _render("console/password.html", errors={})
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        return _render("console/password.html", 422, errors={
            "confirm_password": ["does not match the new password"]})
    itsm = _itsm()
    with itsm.Session() as db:
        user = db.get(User, actor.id)
        try:
            auth.change_password(db, user, current, new)
        except ValidationError as exc:
            return _render("console/password.html", 422, errors=field_messages(exc.fields),
                           message=sentence(exc.message))
        db.commit()
        _start_session(user)  # this session goes on; every other one ends
    flash("Your password has been changed.", "success")
    return redirect(url_for("console.home"))


# -- pages ------------------------------------------------------------------------------------


@bp.get("/home")
def home():
    itsm = _itsm()
    with itsm.Session() as db:
        service = RecordService(itsm, db, _actor())
        types = [{"rt": rt, "plural": plural(rt), "can_create": service.can(f"{rt.name}.create"),
                  "url": url_for("console.record_list", collection=rt.collection)}
                 for rt in itsm.types if service.can(f"{rt.name}.read")]
        staff = service.is_staff
    return _render("console/home.html", types=types, staff=staff)


@bp.get("/records/<collection>")
def record_list(collection: str):
    rt = _record_type(collection)
    itsm = _itsm()
    args = {k: v for k in FILTER_ARGS if (v := request.args.get(k, "").strip())}
    error = None
    with itsm.unit_of_work(_actor()) as service:
        try:
            query = parse_args(args, default_limit=itsm.settings["api.page_size"],
                               max_limit=itsm.settings["api.max_page_size"])
            records, cursor = service.list(rt.name, query)
        except ValidationError as exc:
            records, cursor, error = [], None, error_text(exc)
        rows = [{**service.to_dict(r), "url": url_for(
            ".record_detail", collection=collection, number=r.number)} for r in records]
        can_create, staff = service.can(f"{rt.name}.create"), service.is_staff
    page_args = {k: v for k, v in args.items() if k != "cursor"}
    states = [(s.name, s.title) for s in rt.workflow.states.values()]
    open_states = ",".join(s.name for s in rt.workflow.states.values() if not s.final)
    priority = next((f for f in schema_form(rt, staff=True) if f.name == "priority"), None)
    priorities = range(priority.attrs.get("min", 1), priority.attrs.get("max", 5) + 1) \
        if priority else []
    return _render(
        _templates(rt, "list"), 400 if error else 200, rt=rt, plural=plural(rt), records=rows,
        filters=args, states=states, open_states=open_states, priorities=priorities,
        error=error, can_create=can_create, staff=staff,
        next_url=url_for(".record_list", collection=collection, **page_args, cursor=cursor)
        if cursor else None,
        first_url=url_for(".record_list", collection=collection, **page_args)
        if "cursor" in args else None)


@bp.route("/records/<collection>/new", methods=["GET", "POST"])
def record_new(collection: str):
    rt = _record_type(collection)
    itsm = _itsm()
    errors: dict = {}
    with itsm.unit_of_work(_actor()) as service:
        service.require(f"{rt.name}.create")
        form_fields = schema_form(rt, staff=service.is_staff, creating=True)
    if request.method == "POST":
        try:
            with itsm.unit_of_work(_actor()) as service:
                number = service.create(rt.name, new_values(form_fields, request.form)).number
        except ItsmError as exc:
            errors = exc.fields or {"_": [error_text(exc)]}
        else:
            flash(f"{number} has been created.", "success")
            return redirect(url_for(".record_detail", collection=collection, number=number))
    values = request.form if request.method == "POST" else {}
    filled, general = fill(form_fields, values, errors, submitted=request.method == "POST")
    return _render(_templates(rt, "form"), 422 if errors else 200, rt=rt, plural=plural(rt),
                   form=filled, general_errors=general, record=None,
                   heading=f"New {rt.title.lower()}", action=request.path)


@bp.route("/records/<collection>/<number>/edit", methods=["GET", "POST"])
def record_edit(collection: str, number: str):
    rt = _record_type(collection)
    itsm = _itsm()
    number = number.upper()
    errors: dict = {}
    with itsm.unit_of_work(_actor()) as service:
        record = service.get(number, rt.name)
        service.require(f"{rt.name}.update", record)
        current = service.to_dict(record)
        form_fields = schema_form(rt, staff=service.is_staff)
    if request.method == "POST":
        data = changed_values(form_fields, request.form, current)
        try:
            with itsm.unit_of_work(_actor()) as service:
                record = service.get(number, rt.name)
                service.update(record, data, expected_version=_version())
        except NotFound:
            raise
        except ItsmError as exc:
            errors = exc.fields or {"_": [error_text(exc)]}
        else:
            flash(f"{number} has been saved." if data else "Nothing was changed.", "success")
            return redirect(url_for(".record_detail", collection=collection, number=number))
    values = request.form if request.method == "POST" else current
    filled, general = fill(form_fields, values, errors, submitted=request.method == "POST")
    return _render(_templates(rt, "form"), 422 if errors else 200, rt=rt, plural=plural(rt),
                   form=filled, general_errors=general, record=current,
                   heading=f"Edit {number}", action=request.path)


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() else None


@bp.get("/records/<collection>/<number>")
def record_detail(collection: str, number: str):
    rt = _record_type(collection)
    with _itsm().unit_of_work(_actor()) as service:
        record = service.get(number.upper(), rt.name)
        context = detail_context(service, rt, record)
    return _render(_templates(rt, "detail"), rt=rt, plural=plural(rt), **context)


def detail_context(service: RecordService, rt: RecordType, record) -> dict[str, Any]:
    """What the detail page shows; also what a plugin's own detail template gets."""
    can = {action: service.can(f"{rt.name}.{action}", record)
           for action in ("update", "comment", "transition")}
    data = service.to_dict(record)
    labels = {f.name: f.label for f in schema_form(rt, staff=True)}
    core = ("state_label", "priority", "agency", "requester", "assignee", "group",
            "created_at", "updated_at", "closed_at")
    hidden = {"number", "type", "title", "description", "state", "version", "transitions",
              *core}
    shown = [*core, *(k for k in data if k not in hidden)]
    field_rows = [{"name": k, "label": "State" if k == "state_label" else labels.get(
        k, k.replace("_", " ").capitalize()), "value": data.get(k)} for k in shown]
    return {
        "here": url_for(".record_detail", collection=rt.collection, number=record.number),
        # A namespace, not a dict: in Jinja ``can.update`` would find dict.update.
        "record": data, "fields": field_rows, "can": SimpleNamespace(**can,
                                                                     staff=service.is_staff),
        "transitions": transitions(service, rt, record, data) if can["transition"] else [],
        "journal": journal(service, rt, record, labels),
        "links": [{**link, "url": _record_url(link["record"]),
                   "state": _state_title(link["record"])} for link in service.links(record)],
        "link_kinds": [(k.name, k.label) for k in service.itsm.link_kinds.values()],
        "attachments": [{"name": a.filename, "size": a.size, "created_at": a.created_at,
                         "author": service.ref("user", a.created_by_id),
                         "url": url_for("api.download_attachment", collection=rt.collection,
                                        number=record.number, attachment_id=a.id)}
                        for a in service.attachments(record)],
        "clocks": clocks(service, record),
        "suggestions": _suggestions(service, rt, record),
        "actions": record_actions(service, record),
    }


def _suggestions(service: RecordService, rt: RecordType, record) -> list[dict[str, Any]]:
    if not rt.suggest or record.closed_at is not None:
        return []
    return [s.to_dict() for s in service.suggestions(record)]


def record_actions(service: RecordService, record) -> list[NavItem]:
    """The links plugins add to this record's page (``itsm_record_actions``)."""
    items = [item for _plugin, item in service.itsm.results(
        "itsm_record_actions", record=record, actor=service.actor)
        if isinstance(item, NavItem)]
    return sorted(items, key=lambda item: (item.order, item.label))


def _record_url(ref: dict[str, Any]) -> str | None:
    rt = _itsm().types.by_name.get(ref["type"])
    if rt is None or not ref.get("available", True):
        return None
    return url_for(".record_detail", collection=rt.collection, number=ref["number"])


def _state_title(ref: dict[str, Any]) -> str:
    rt = _itsm().types.by_name.get(ref["type"])
    return rt.workflow.state(ref["state"]).title if rt else ref["state"]


def transitions(service: RecordService, rt: RecordType, record, data: dict) -> list[dict]:
    """Each transition from here, its inputs, and the reasons it is refused right now.

    A missing required field is not a refusal on this page: the transition's form asks
    for it. The text matched is the one :meth:`itsm.core.workflow.Workflow.check` words.
    """
    inputs = {f.name: f for f in schema_form(rt, staff=True)}
    out = []
    for transition, reasons in service.available_transitions(record):
        asked = {f"{name} is required to {transition.title.lower()}"
                 for name in transition.required}
        form_fields = []
        for name in transition.settable:
            base = inputs.get(name) or FormField(name, name.replace("_", " ").capitalize(),
                                                 "text")
            form_fields.append(replace(base, required=name in transition.required,
                                       value=data.get(name)))
        out.append({"name": transition.name, "title": transition.title,
                    "target": rt.workflow.state(transition.target).title,
                    "reasons": [r for r in reasons if r not in asked], "fields": form_fields})
    return out


JOURNAL_WORDS = {"created": "created the record", "updated": "changed fields",
                 "commented": "commented", "work_noted": "added a work note",
                 "attached": "attached a file", "linked": "linked a record"}


def journal(service: RecordService, rt: RecordType, record, labels: dict) -> list[dict]:
    """The record's history, newest first, in words."""
    out = []
    for entry in reversed(service.journal(record)):
        data = entry.data or {}
        changes = []
        for name, pair in (data.get("changes") or {}).items():
            old, new = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            if name == "state":
                old, new = rt.workflow.state(str(old)).title, rt.workflow.state(str(new)).title
            changes.append({"label": labels.get(name, name.replace("_", " ").capitalize()),
                            "old": old, "new": new})
        headline = JOURNAL_WORDS.get(entry.kind, entry.kind.replace("_", " "))
        if entry.kind == "transitioned":
            transition = rt.workflow.transitions.get(data.get("transition", ""))
            headline = f"ran {transition.title if transition else data.get('transition')}"
        elif entry.kind == "attached":
            headline = f"attached {data.get('filename', 'a file')}"
        elif entry.kind == "linked":
            kind = service.itsm.link_kinds.get(data.get("kind", ""))
            headline = f"linked: {kind.label if kind else data.get('kind')} {data.get('target')}"
        out.append({"id": entry.id, "kind": entry.kind, "headline": headline,
                    "actor": service.ref("user", entry.actor_id) or "system",
                    "created_at": entry.created_at, "public": entry.public,
                    "body": entry.body, "changes": changes})
    return out


# -- actions on one record (POST, then back to the record) -----------------------------------


def _act(collection: str, number: str, action: Callable, anchor: str = ""):
    """Run ``action(service, rt, record)`` in one unit of work; flash its outcome."""
    rt = _record_type(collection)
    number = number.upper()
    loaded = False
    try:
        with _itsm().unit_of_work(_actor()) as service:
            record = service.get(number, rt.name)
            loaded = True
            message = action(service, rt, record)
    except ItsmError as exc:
        if not loaded:  # a record the actor may not see: the 404 page, not a message
            raise
        flash(error_text(exc), "error")
    else:
        flash(message, "success")
    return redirect(url_for(".record_detail", collection=collection, number=number) + anchor)


@bp.post("/records/<collection>/<number>/transition")
def record_transition(collection: str, number: str):
    name = request.form.get("name", "")

    def run(service: RecordService, rt: RecordType, record):
        transition = rt.workflow.transitions.get(name)
        if transition is None:
            raise ValidationError(f"{rt.title} has no transition {name!r}")
        inputs = {f.name: f for f in schema_form(rt, staff=True)}
        data = {}
        for field_name in transition.settable:
            form_field = inputs.get(field_name) or FormField(field_name, field_name, "text")
            value = form_value(form_field, request.form)
            if value is not _MISSING:
                data[field_name] = value
        service.transition(record, name, data, expected_version=_version())
        return f"{record.number}: {transition.title} done; the state is now " \
               f"{rt.workflow.state(record.state).title}."

    return _act(collection, number, run)


@bp.post("/records/<collection>/<number>/comment")
def record_comment(collection: str, number: str):
    public = request.form.get("visibility", "public") != "work_note"

    def run(service: RecordService, rt: RecordType, record):
        body = request.form.get("body", "").replace("\r\n", "\n")
        service.comment(record, body, public=public)
        return "Your comment has been added." if public else "Your work note has been added."

    return _act(collection, number, run, "#activity")


@bp.post("/records/<collection>/<number>/links")
def record_link(collection: str, number: str):
    def run(service: RecordService, rt: RecordType, record):
        target = request.form.get("target", "").strip().upper()
        if not target:
            raise ValidationError("enter the number of the record to link to")
        service.link(record, target, request.form.get("kind", "relates_to"))
        return f"{record.number} is now linked to {target}."

    return _act(collection, number, run, "#links")


@bp.post("/records/<collection>/<number>/attachments")
def record_attach(collection: str, number: str):
    def run(service: RecordService, rt: RecordType, record):
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise ValidationError("choose a file to attach")
        attachment = service.attach(record, upload.filename, upload.mimetype, upload.stream)
        return f"{attachment.filename} has been attached."

    return _act(collection, number, run, "#attachments")


def clocks(service: RecordService, record) -> list[dict[str, Any]]:
    """The record's SLA clocks, when the SLA engine provides them."""
    clocks_for = getattr(sla, "clocks_for", None)
    if clocks_for is None:
        return []
    try:
        return list(clocks_for(service.session, record) or [])
    except Exception:  # the clocks are a side panel: never lose the whole page to them
        log.exception("SLA clocks of %s could not be read", record.number)
        return []
