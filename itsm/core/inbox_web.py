"""The inbox on the web: the bell's count, the notification list and preference pages,
and the API (``/api/v1/notifications``) that the list's script and other clients use.

Pages: ``/notifications`` (``?unread=1`` for the unread only; ``after=<id>`` pages on),
``POST /notifications/<id>/read``, ``POST /notifications/read`` (all), and
``/account/notifications``, which kinds also come by e-mail. Opening a record's page marks
one's notifications about it read. Each works without script;
``console.js`` marks read in place and refreshes the bell's count.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from itsm.core import inbox, inputs
from itsm.core.api import LARGEST_INTEGER, current_actor, document, flag_arg, json_body
from itsm.core.api import bp as api_bp
from itsm.core.auth import Actor
from itsm.core.errors import NotFound, Unauthorized
from itsm.core.navigation import FRAME_SCALARS, NAV_KEY, navigation
from itsm.core.pagekit import FRAME_READERS, _actor, _itsm, _render, bp, signed_in_actor
from itsm.core.schemas import Boolean

log = logging.getLogger("itsm.inbox")
TAGS = ["Notifications"]
PAGE = 50


def record_url(item: inbox.Notification) -> str | None:
    rt = _itsm().types.by_name.get(item.record_type)
    if rt is None or not item.record_number:
        return None
    return url_for("console.record_detail", collection=rt.collection,
                   number=item.record_number)


def _cursor(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    return inputs.parse_int(raw, name, minimum=1, maximum=LARGEST_INTEGER)


_UNREAD_KEY = "itsm.inbox_unread"  # request.environ: the bell's count, read once


def unread_for(actor: Actor | None) -> int:
    """The bell's count of ``actor`` (0 for none), read once per request."""
    if actor is None or actor.id is None:
        return 0
    cached = request.environ.get(_UNREAD_KEY)
    if cached is None and request.environ.get(NAV_KEY) is None:
        navigation(actor)  # the menu reads the bell's count in its own statement
        cached = request.environ.get(_UNREAD_KEY)
    if cached is not None and cached[0] == actor.id:
        return int(cached[1] or 0)
    try:
        with _itsm().read_session() as session:
            count = inbox.unread_count(session, actor.id)
    except SQLAlchemyError:  # an error page about the database (or a missed upgrade)
        log.warning("the bell's count could not be read", exc_info=True)
        return 0
    request.environ[_UNREAD_KEY] = (actor.id, count)
    return count


FRAME_READERS.append(unread_for)  # read with the menu, before a page's unit of work
# ... and in the menu's own statement (one round trip for the whole frame).
FRAME_SCALARS.append(lambda actor: (_UNREAD_KEY, inbox.unread_count_query(actor.id))
                     if actor.id is not None else None)


@bp.app_context_processor
def _bell() -> dict[str, Any]:
    return {"inbox_unread": lambda: unread_for(signed_in_actor()),
            "inbox_shown_up_to": inbox.UNREAD_SHOWN_UP_TO}


@bp.before_app_request
def _opened_record_is_read():
    """Opening a record's page reads its notifications (as a mail client marks a mail
    read when it is opened): when the bell's count says anything is unread, one indexed
    look-up and, if it finds some, an UPDATE; the bell then counts again."""
    if request.method != "GET" or request.endpoint != "console.record_detail":
        return
    actor = signed_in_actor()
    number = str((request.view_args or {}).get("number", "")).upper()[:32]
    if actor is None or actor.id is None or not number:
        return
    if unread_for(actor) == 0:  # the bell's count, read for the page anyway
        return
    try:
        with _itsm().read_session() as session:
            if inbox.mark_read_for_record(session, actor.id, number):
                session.commit()
                request.environ.pop(_UNREAD_KEY, None)  # the bell counts again
    except SQLAlchemyError:  # the page itself says what is wrong with the database
        log.warning("notifications of %s could not be marked read", number, exc_info=True)


# -- pages ------------------------------------------------------------------------------


@bp.get("/notifications")
def notifications():
    actor = _actor()
    itsm = _itsm()
    unread_only = request.args.get("unread", "") in ("1", "true", "yes")
    try:
        before = _cursor("after")
    except inputs.InputError:
        before = None
    with itsm.Session() as session:
        page = inbox.page_of(itsm, session, actor, unread=unread_only, limit=PAGE,
                             before=before)
        unread = inbox.unread_count(session, actor.id) if actor.id else 0
        items = [{**inbox.as_dict(n, record_url(n)), "created": n.created_at}
                 for n in page.items]
    more = url_for(".notifications", after=page.next_cursor,
                   **({"unread": "1"} if unread_only else {})) if page.next_cursor else None
    return _render("console/notifications.html", items=items, unread_only=unread_only,
                   unread=unread, more_url=more, kinds=inbox.KINDS)


def _back() -> str:
    target = request.form.get("next", "")
    if target.startswith("/notifications") and not target.startswith("//"):
        return target
    return url_for(".notifications")


@bp.post("/notifications/<int:notification_id>/read")
def notification_read(notification_id: int):
    actor = _actor()
    with _itsm().Session() as session:
        inbox.mark_read(session, actor.id, notification_id)
        session.commit()
    return redirect(_back())


@bp.post("/notifications/read")
def notifications_read_all():
    actor = _actor()
    with _itsm().Session() as session:
        count = inbox.mark_read(session, actor.id)
        session.commit()
    flash("Every notification is marked read." if count else "Nothing was unread.", "success")
    return redirect(_back())


@bp.route("/account/notifications", methods=["GET", "POST"])
def notification_preferences():
    actor = _actor()
    itsm = _itsm()
    email_on = "email" in itsm.channels
    with itsm.Session() as session:
        if request.method == "POST":
            chosen = {k for k in request.form.getlist("email") if k in inbox.KINDS}
            inbox.set_email_kinds(session, actor.id, chosen)
            session.commit()
            flash("Your notification preferences have been saved.", "success")
            return redirect(url_for(".notification_preferences"))
        chosen = inbox.email_kinds(session, [actor.id]).get(actor.id, set())
    return _render("console/notification_preferences.html", kinds=inbox.KINDS,
                   chosen=chosen, email_on=email_on)


# -- API ----------------------------------------------------------------------------------


class NotifiedRecordOut(Schema):
    class Meta:
        unknown = RAISE

    number = fields.String(required=True)
    type = fields.String(required=True)
    title = fields.String(required=True)
    url = fields.String(allow_none=True, metadata={"description": "its console page"})


class NotificationOut(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(list(inbox.KINDS)))
    kind_label = fields.String(required=True)
    summary = fields.String(required=True)
    excerpt = fields.String(required=True)
    actor = fields.String(required=True)
    record = fields.Nested(NotifiedRecordOut, required=True)
    created_at = fields.String(required=True)
    read = fields.Boolean(required=True)
    read_at = fields.String(allow_none=True, required=True)


class NotificationPage(Schema):
    class Meta:
        unknown = RAISE

    items = fields.List(fields.Nested(NotificationOut), required=True)
    next_cursor = fields.Integer(allow_none=True, required=True,
                                 metadata={"description": "give as ?cursor= for the next page"})
    unread = fields.Integer(required=True)


class UnreadOut(Schema):
    class Meta:
        unknown = RAISE

    unread = fields.Integer(required=True, metadata={
        "description": f"unread notifications, counted up to {inbox.UNREAD_SHOWN_UP_TO + 1}"})


class MarkReadIn(Schema):
    class Meta:
        unknown = RAISE

    ids = fields.List(fields.Integer(strict=True, validate=validate.Range(1, LARGEST_INTEGER)),
                      validate=validate.Length(min=1, max=500),
                      metadata={"description": "the notifications to mark read"})
    all = Boolean(metadata={"description": "true: mark every notification read"})

    @validates_schema
    def one_of(self, data, **kwargs):
        if bool(data.get("ids")) == bool(data.get("all")):
            raise ValidationError("give ids, or all: true", "ids")


class MarkReadOut(Schema):
    class Meta:
        unknown = RAISE

    marked = fields.Integer(required=True)
    unread = fields.Integer(required=True)


def _caller() -> Actor:
    actor = current_actor()
    if actor.id is None:
        raise Unauthorized("the system actor has no inbox")
    return actor


@api_bp.get("/notifications")
@document(summary="The caller's notifications, newest first", response=NotificationPage,
          tags=TAGS, params=[
              {"name": "unread", "in": "query", "schema": {"type": "boolean"},
               "description": "only the unread ones"},
              {"name": "limit", "in": "query",
               "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
              {"name": "cursor", "in": "query",
               "schema": {"type": "integer", "minimum": 1, "maximum": LARGEST_INTEGER}}])
def api_notifications():
    actor = _caller()
    unread_only = flag_arg("unread", default=False)
    raw = request.args.get("limit", "").strip()
    limit = inputs.parse_int(raw, "limit", minimum=1, maximum=200) if raw else PAGE
    before = _cursor("cursor")
    itsm = _itsm()
    with itsm.Session() as session:
        page = inbox.page_of(itsm, session, actor, unread=unread_only, limit=limit,
                             before=before)
        return jsonify({"items": [inbox.as_dict(n, record_url(n)) for n in page.items],
                        "next_cursor": page.next_cursor,
                        "unread": inbox.unread_count(session, actor.id)})


@api_bp.get("/notifications/unread-count")
@document(summary="How many notifications the caller has not read", response=UnreadOut,
          tags=TAGS)
def api_unread_count():
    actor = _caller()
    with _itsm().Session() as session:
        return jsonify({"unread": inbox.unread_count(session, actor.id)})


@api_bp.post("/notifications/read")
@document(summary="Mark some or all of the caller's notifications read", body=MarkReadIn,
          response=MarkReadOut, tags=TAGS)
def api_mark_read():
    actor = _caller()
    data = MarkReadIn().load(json_body())
    with _itsm().Session() as session:
        if data.get("all"):
            marked = inbox.mark_read(session, actor.id)
        else:
            mine = set(session.scalars(select(inbox.Notification.id).where(
                inbox.Notification.user_id == actor.id,
                inbox.Notification.id.in_(data["ids"]))))
            unknown = sorted(set(data["ids"]) - mine)
            if unknown:  # another person's notification is as unknown as a missing one
                raise NotFound(f"no notification {unknown[0]}")
            marked = sum(inbox.mark_read(session, actor.id, i) for i in sorted(mine))
        session.commit()
        return jsonify({"marked": marked, "unread": inbox.unread_count(session, actor.id)})
