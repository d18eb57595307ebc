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
    ``records/detail.html`` has ``summary``, ``fields``, ``actions``, ``conversation`` and
    ``sidebar``; ``records/form.html`` has ``fields``. The pages get ``rt`` (the
    RecordType), ``plural`` and, on the detail page, ``record`` (``RecordService.to_dict``),
    ``header`` (state, priority, people by name, group), ``details`` (the type's fields
    that hold something, labelled: see :mod:`itsm.core.record_page`), ``acts`` (the
    transitions sorted: primary, others, destructive, refused), ``transitions``,
    ``activity`` (also ``journal``), ``links``, ``attachments``, ``clocks``,
    ``suggestions_url`` (the page of knowledge articles and known errors that may help,
    when the type asks for suggestions; see :mod:`itsm.core.record_views`) and ``can``
    (what the actor may do). "Assign to me", the confirmation step of a destructive
    transition and the pickers' JSON choices are in :mod:`itsm.core.record_views`; the
    account page (name and time zone) in :mod:`itsm.core.account`.
    Every template may call ``csrf_field()`` inside a console form. The core
    registers its blueprint before the plugins', so a plugin adds type-specific templates
    but cannot shadow the generic ones by accident.

Sessions, CSRF, navigation, error pages and forms come from the page kit
(:mod:`itsm.core.pagekit`), which plugins' pages use too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from flask import (
    flash,
    redirect,
    request,
    url_for,
)

from itsm.core import account as account  # the account page: name and time zone
from itsm.core import auth, inputs, record_page, sla
from itsm.core import record_views as record_views  # assign to me, confirmations, choices
from itsm.core.errors import ItsmError, NotFound, Unauthorized, ValidationError
from itsm.core.models import User
from itsm.core.pagekit import (
    _MISSING,
    FormField,
    _actor,
    _itsm,
    _render,
    bp,
    changed_values,
    continue_to,
    error_text,
    field_messages,
    fill,
    form_value,
    new_values,
    plural,
    read_frame,
    schema_form,
    sentence,
    signed_in_actor,
)
from itsm.core.pagekit import page_actor as page_actor  # re-exported: plugins' pages
from itsm.core.pagekit import page_blueprint as page_blueprint  # import these from here
from itsm.core.pagekit import render_page as render_page
from itsm.core.queue_pages import home_tiles, queue_page
from itsm.core.record_page import transitions as transitions  # plugins' pages use it
from itsm.core.records import RecordService, RecordType
from itsm.core.web import (
    NavItem,
    end_web_session,
    sign_in_methods,
    sign_out_destination,
    start_web_session,
)
from itsm.core.web import sign_in as check_sign_in

log = logging.getLogger("itsm.console")


def _templates(rt: RecordType, page: str) -> list[str]:
    return [f"records/{rt.name}/{page}.html", f"records/{page}.html"]


def _record_type(collection: str) -> RecordType:
    rt = _itsm().types.by_collection.get(collection)
    if rt is None:
        raise NotFound(f"there is no list {collection!r} (is its plugin enabled?)")
    return rt


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
        return _render("console/login.html", next=next_url, email="",
                       methods=sign_in_methods())
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not email or not password:
        return _render("console/login.html", 400, next=next_url, email=email,
                       methods=sign_in_methods(),
                       error="Enter your e-mail address and your password.")
    itsm = _itsm()
    with itsm.Session() as db:
        try:
            user = check_sign_in(db, email, password)
        except auth.TooManyAttempts as exc:
            return _render("console/login.html", 429, next=next_url, email=email,
                           methods=sign_in_methods(), error=sentence(exc.message) + ".")
        except Unauthorized:  # the failure stays counted towards the limit
            return _render("console/login.html", 401, next=next_url, email=email,
                           methods=sign_in_methods(),
                           error="Wrong e-mail address or password.")
        except ValidationError as exc:  # a sign-in method's rules name what is missing
            return _render("console/login.html", 422, next=next_url, email=email,
                           methods=sign_in_methods(), error=sentence(exc.message) + ".")
        start_web_session(db, user)
        db.commit()
    return redirect(next_url or url_for("console.home"))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "GET":  # a link or a prefetch must never sign anyone out
        return _render("console/logout.html")
    destination = sign_out_destination()  # read before the session's values are gone
    end_web_session()
    if destination is None:
        flash("You have signed out.", "success")
        return redirect(url_for("console.login"))
    page = continue_to(destination, "You have signed out of itsm. Your organization's "
                       "sign-in service signs you out too, then brings you back here.")
    flash("You have signed out.", "success")  # after the page: shown back on the sign-in page
    return page


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
        start_web_session(db, user)  # this browser goes on; every other session ended
        db.commit()
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
        if staff:  # each tile's number is its view's total, and links to that view
            for t in types:
                t["tiles"] = home_tiles(service, t["rt"])
    return _render("console/home.html", types=types, staff=staff)


@bp.get("/records/<collection>")
def record_list(collection: str):
    """The record type's queue (see :mod:`itsm.core.queue_pages`)."""
    return queue_page(collection)


@bp.route("/records/<collection>/new", methods=["GET", "POST"])
def record_new(collection: str):
    rt = _record_type(collection)
    itsm = _itsm()
    errors: dict = {}
    with itsm.unit_of_work(_actor()) as service:
        service.require(f"{rt.name}.create")
        form_fields = record_page.staff_form(service, rt, creating=True)
    if request.method == "POST":
        try:
            with itsm.unit_of_work(_actor()) as service:
                number = service.create(rt.name, record_page.typed_people(
                    service, new_values(form_fields, request.form))).number
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
        current = record_page.form_values(rt, service.to_dict(record))
        form_fields = record_page.staff_form(service, rt, record)
    if request.method == "POST":
        data = changed_values(form_fields, request.form, current)
        try:
            with itsm.unit_of_work(_actor()) as service:
                record = service.get(number, rt.name)
                service.update(record, record_page.typed_people(service, data),
                               expected_version=_version())
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
    try:
        return inputs.parse_int(request.form.get("version", ""), "version", minimum=0)
    except inputs.InputError:
        return None  # the edit is then unconditional, as from a client without an ETag


@bp.get("/records/<collection>/<number>")
def record_detail(collection: str, number: str):
    rt = _record_type(collection)
    read_frame(_actor())
    with _itsm().unit_of_work(_actor()) as service:
        record = service.get(number.upper(), rt.name)
        replied = record.customer_reply_at  # shown on this visit, then it is seen
        service.opened(record)
        context = detail_context(service, rt, record)
        context["header"]["customer_reply_at"] = replied
    return _render(_templates(rt, "detail"), rt=rt, plural=plural(rt), **context)


def detail_context(service: RecordService, rt: RecordType, record) -> dict[str, Any]:
    """What the detail page shows; also what a plugin's own detail template gets."""
    can = {action: service.can(f"{rt.name}.{action}", record)
           for action in ("update", "comment", "transition")}
    service.prefetch_refs([record], agency_names=True)  # the header's agency: same query
    data = service.to_dict(record)
    labels = {f.name: f.label for f in schema_form(rt, staff=True)}
    core = ("state_label", "priority", "agency", "requester", "assignee", "group",
            "created_at", "updated_at", "closed_at")
    hidden = {"number", "type", "title", "description", "state", "version", "transitions",
              *core}
    shown = [*core, *(k for k in data if k not in hidden)]
    field_rows = [{"name": k, "label": "State" if k == "state_label" else labels.get(
        k, k.replace("_", " ").capitalize()), "value": data.get(k)} for k in shown]
    offered = transitions(service, rt, record, data) if can["transition"] else []
    stream = record_page.activity(service, rt, record)
    who = record_page.people(service, {record.requester_id, record.assignee_id})
    return {
        "here": url_for(".record_detail", collection=rt.collection, number=record.number),
        # A namespace, not a dict: in Jinja ``can.update`` would find dict.update.
        "record": data, "fields": field_rows, "can": SimpleNamespace(**can,
                                                                     staff=service.is_staff),
        "header": record_page.header(service, rt, record, data, who),
        "details": record_page.detail_rows(service, rt, record, data),
        "acts": record_page.actions(offered, rt),
        "transitions": offered,
        "journal": stream, "activity": stream,
        "links": [{**link, "url": _record_url(link["record"]),
                   "state": _state_title(link["record"])} for link in service.links(record)],
        "link_kinds": [(k.name, k.label) for k in service.itsm.link_kinds.values()],
        "attachments": [{"name": a.filename, "size": a.size, "created_at": a.created_at,
                         "author": service.ref("user", a.created_by_id),
                         "url": url_for("api.download_attachment", collection=rt.collection,
                                        number=record.number, attachment_id=a.id)}
                        for a in service.attachments(record)],
        "clocks": clocks(service, record),
        # Found by full-text searches that do not decide the next action: the page
        # links to them (loaded in place by script) instead of running them each visit.
        "suggestions_url": url_for("console.record_suggestions", collection=rt.collection,
                                   number=record.number)
        if rt.suggest and record.closed_at is None else None,
        "actions": record_actions(service, record),
    }


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
        if transition.destructive and request.form.get("confirmed") != "yes":
            raise _AskFirst()
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

    try:
        return _act(collection, number, run)
    except _AskFirst:  # a destructive move posted without its confirmation step
        return redirect(url_for("console.record_confirm_transition", collection=collection,
                                number=number.upper(), name=name))


class _AskFirst(Exception):
    """A destructive transition arrived without the confirmation step's answer."""


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
