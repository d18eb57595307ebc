"""REST plumbing under /api/v1: authentication, errors, the generic record routes, OpenAPI.

Every record type a plugin declares gets its collection here (``/api/v1/<collection>``):
list with filters and cursor, create, read by number, partial update, transitions,
comments, links, journal and attachments. Errors are always JSON:
``{"error": {"code", "message", "fields", "reasons"}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import suppress
from functools import wraps
from typing import Any

import marshmallow
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    send_file,
    url_for,
)
from sqlalchemy import update as sql_update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from itsm.core import idempotency, inputs
from itsm.core import query as listing
from itsm.core.auth import Actor, token_for_secret
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError, NotFound, Unauthorized, ValidationError
from itsm.core.models import Record, User
from itsm.core.numbering import RECORD_NUMBER_REGEX
from itsm.core.queues import count_total
from itsm.core.schemas import CommentIn, LinkIn, TransitionIn
from itsm.core.web import CSRF_HEADER, csrf_matches, web_session_actor

log = logging.getLogger("itsm.api")

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


def _itsm():
    return current_itsm()


# -- errors ------------------------------------------------------------------------------


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   reasons: list[str] | None = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    if reasons:
        body["reasons"] = reasons
    response = jsonify({"error": body})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def http_error_response(exc: HTTPException) -> Response:
    """The JSON answer to a routing or HTTP error, with a true ``Allow`` on a 405."""
    if isinstance(exc, MethodNotAllowed) and request.path.startswith(PREFIX):
        # Werkzeug's Allow lists the generic record routes' methods too (see
        # allowed_methods); none left means nothing lives at this path.
        valid = allowed_methods(request.path)
        if not valid:
            return error_response(404, "not_found", f"nothing at {request.path[:200]}")
        exc = MethodNotAllowed(valid_methods=valid)
    code = (exc.name or "error").lower().replace(" ", "_")
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(exc.code or 500, code, exc.description or exc.name, headers=headers)


def _wants_json() -> bool:
    return request.path.startswith(PREFIX) or request.accept_mimetypes.best == "application/json"


class RecordNumberConverter(BaseConverter):
    """``<record_number:number>``: letters then digits (INC0000042, inc42), the shape of
    every record number. A word (``/api/v1/changes/gate``) is then never taken for a
    number, so a plugin's own route of that shape answers a method it does not have with
    405 and its true ``Allow``, not with the generic record route's 404."""

    regex = RECORD_NUMBER_REGEX


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(path: str) -> list[str]:
    """The methods ``path`` really answers, for ``Allow``.

    Werkzeug lists every rule whose pattern matches the path, and the generic
    ``/<collection>`` routes match any word: ``POST /api/v1/me`` is no collection's create.
    A method counts when its rule is a route of an enabled plugin and, for a record route,
    when the collection is one of an enabled record type.
    """
    from flask import current_app

    itsm = _itsm()
    adapter = current_app.url_map.bind("localhost")
    allowed: set[str] = set()
    for method in HTTP_METHODS:
        try:
            endpoint, values = adapter.match(path, method=method)
        except HTTPException:
            continue
        if endpoint.startswith("api.") and "collection" in values \
                and values["collection"] not in itsm.types.by_collection:
            continue
        owner = itsm.blueprint_owners.get(endpoint.split(".")[0])
        if owner and not itsm.host.is_enabled(owner):
            continue
        allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    if allowed:
        allowed.add("OPTIONS")
    return sorted(allowed)


def init_app(app: Flask) -> None:
    app.url_map.converters["record_number"] = RecordNumberConverter
    app.register_blueprint(bp)
    app.add_url_rule("/", "root", lambda: redirect(url_for("console.home")))

    @app.before_request
    def authenticate_api_calls():
        # The OpenAPI document says every operation but the public ones needs a token:
        # the caller is checked before any view reads its body or path, so an anonymous
        # call gets 401, never a validation message or a hint of what exists.
        if request.url_rule is None or request.endpoint in PUBLIC_ENDPOINTS:
            return
        if request.endpoint in SIGN_IN_ENDPOINTS:
            return  # checks a token, a session or an e-mail and password itself
        view = app.view_functions.get(request.endpoint)
        if request.blueprint != "api" and not hasattr(view, "itsm_openapi"):
            return  # not in the document: the plugin's own business
        itsm = _itsm()
        owner = itsm.blueprint_owners.get((request.blueprint or "").split(".")[0])
        if owner and not itsm.host.is_enabled(owner):
            return  # a disabled plugin's route answers 404 (see itsm.core.app)
        current_actor()

    @app.after_request
    def true_allow_on_options(response: Response) -> Response:
        # Flask answers OPTIONS itself, with werkzeug's list of methods (see above).
        if request.method == "OPTIONS" and request.path.startswith(PREFIX) \
                and "Allow" in response.headers:
            valid = allowed_methods(request.path)
            if not valid:
                return error_response(404, "not_found", f"nothing at {request.path[:200]}")
            response.headers["Allow"] = ", ".join(valid)
        return response

    @app.errorhandler(ItsmError)
    def handle_itsm_error(exc: ItsmError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.fields,
                              getattr(exc, "reasons", None), headers)

    @app.errorhandler(marshmallow.ValidationError)
    def handle_schema_error(exc: marshmallow.ValidationError):
        fields = exc.messages if isinstance(exc.messages, dict) else {"_body": exc.messages}
        return error_response(422, "invalid", "invalid input: " + ", ".join(sorted(fields)),
                              fields)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        if not _wants_json():
            return exc
        return http_error_response(exc)

    def missing_table_response(exc: DBAPIError) -> Response | None:
        # A table the code needs is not there (an upgrade was not run): say which and
        # how to fix it, instead of "the database is unavailable" or an internal error.
        from itsm.core.migrate import missing_table

        missing = missing_table(_itsm(), exc)
        if missing is None:
            return None
        log.error("%s", missing.message)
        return handle_itsm_error(missing)

    @app.errorhandler(OperationalError)
    def handle_database_down(exc: DBAPIError):
        if (missing := missing_table_response(exc)) is not None:
            return missing
        # The transaction was rolled back; the pool drops the dead connections (pre-ping),
        # so the service comes back by itself once the database answers again.
        log.error("database unavailable: %s", " ".join(str(exc.orig).strip().splitlines()[:1]))
        if not _wants_json():
            return Response("Service unavailable: the database cannot be reached. Please "
                            "try again in a few seconds.\n", status=503,
                            mimetype="text/plain", headers={"Retry-After": "5"})
        return error_response(503, "unavailable", "the database is unavailable; retry soon",
                              headers={"Retry-After": "5"})

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        if (missing := missing_table_response(exc)) is not None:
            return missing  # PostgreSQL and MariaDB raise it as a ProgrammingError
        if exc.connection_invalidated:  # the connection broke: the database went away
            return handle_database_down(exc)
        log.exception("database error")
        return error_response(500, "internal", "internal error; it has been logged")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it has been logged")


# -- authentication ------------------------------------------------------------------------


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CREDENTIAL_EXPIRY = "itsm.credential_expires_at"  # request.environ: the token's expiry


class CsrfMissing(ItsmError):
    status = 403
    code = "csrf"


def current_actor(required: bool = True) -> Actor | None:
    """The caller: a Bearer token, else the browser's web session.

    A call made with the session cookie is a page's script, or another site's page riding
    on the cookie: every unsafe method then needs the session's CSRF token in the
    ``X-CSRF-Token`` header (a Bearer call needs none: no browser sends a token by
    itself). Cached on the request itself, not on ``g``: ``g`` lives as long as the
    application context, which can span several requests (tests, scripts).
    """
    if "itsm.actor" in request.environ:
        return request.environ["itsm.actor"]
    itsm = _itsm()
    actor = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("use the header Authorization: Bearer <token>")
        # The request's unit of work goes on with this session (and its connection):
        # no second checkout, ping and transaction for each API call.
        db = itsm.request_session()
        found = token_for_secret(db, secret.strip(), itsm.settings["auth.token_max_days"])
        if found is None:
            raise Unauthorized("the token is unknown, expired or revoked")
        actor, request.environ[_CREDENTIAL_EXPIRY] = found
    else:
        actor = web_session_actor()
        if (actor is not None and request.method not in SAFE_METHODS
                and not csrf_matches(request.headers.get(CSRF_HEADER))):
            raise CsrfMissing(f"a call made with the session cookie needs the page's CSRF "
                              f"token in the {CSRF_HEADER} header (or use a Bearer token)")
    if actor is None and required:
        raise Unauthorized("authentication required: send Authorization: Bearer <token>")
    request.environ["itsm.actor"] = actor
    return actor


class UnsupportedMedia(ItsmError):
    status = 415
    code = "unsupported_media_type"


# The largest value of an INTEGER column (signed 32 bits on PostgreSQL and MariaDB): ids
# and numbers of the API are such columns, and a larger one would fail in the database.
LARGEST_INTEGER = 2**31 - 1


def _huge_number_fields(value: Any, path: str = "") -> list[str]:
    """The fields (innermost keys) holding an integer no database column can store."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [path or "_body"] if abs(value) > LARGEST_INTEGER else []
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _huge_number_fields(v, k)]
    if isinstance(value, list):
        return [f for item in value for f in _huge_number_fields(item, path)]
    return []


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def flag_arg(name: str, *, default: bool) -> bool:
    """A true/false query parameter; anything else is refused with the parameter named."""
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return _FLAGS[value.strip().lower()]
    except KeyError:
        raise ValidationError(f"{name} must be true or false",
                              fields={name: ["use true or false"]}) from None


def json_body() -> dict[str, Any]:
    """The request's JSON object, through the input gate (:mod:`itsm.core.inputs`): nesting
    bounded before parsing, every text checked for NUL characters and lone
    surrogates and normalised (422 naming the field)."""
    if not request.is_json and (request.content_length or request.mimetype):
        raise UnsupportedMedia("send the body as application/json")
    raw = request.get_data(cache=True)
    if not raw:
        raise ValidationError("the request needs a JSON body", fields={"_body": ["missing"]})
    inputs.check_json_depth(raw)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError("the body is not valid JSON", fields={"_body": ["invalid JSON"]})\
            from None
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object", fields={"_body": ["not an object"]})
    data = inputs.check_tree(data)
    huge = sorted(set(_huge_number_fields(data)))
    if huge:
        raise ValidationError("a number is too large",
                              fields={name: ["too large a number"] for name in huge})
    return data


def if_match() -> int | None:
    """The version the client last read (If-Match), or None when it did not say."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    try:
        return inputs.parse_int(value, "If-Match", minimum=0, maximum=LARGEST_INTEGER)
    except inputs.InputError:
        raise ValidationError("If-Match must be the ETag the record was read with, e.g. \"3\"",
                              fields={"If-Match": ["not an ETag of this API"]}) from None


def with_etag(response: Response, version: int) -> Response:
    response.headers["ETag"] = f'"{version}"'
    return response


# -- OpenAPI documentation of plugin routes --------------------------------------------


def document(*, summary: str, body: type | None = None, response: type | str | None = None,
             status: int = 200, tags: list[str] | None = None,
             params: list[dict] | None = None, also: tuple[int, ...] = (),
             partial: bool = False, media: dict[str, dict] | None = None) -> Callable:
    """Describe a plugin's API view for the OpenAPI document.

    :param summary: one line shown in the document.
    :param body: marshmallow schema class of the JSON request body.
    :param response: marshmallow schema class of the success response, or the name of a
        schema of the document (a record type's, e.g. ``RequestOut``).
    :param status: the success status code.
    :param tags: OpenAPI tags (default: the blueprint name).
    :param params: extra OpenAPI parameter objects (query parameters).
    :param also: other success status codes with the same response (e.g. 201 when the
        call created something, 200 when it updated).
    :param partial: the body is a change: any of ``body``'s fields, none required (the
        view loads it with ``partial=True``).
    :param media: other media types of the success answer, as OpenAPI content objects
        (``{"text/csv": {"schema": {"type": "string"}}}``) for a ``format=`` parameter.
    """

    def mark(view: Callable) -> Callable:
        view.itsm_openapi = {"summary": summary, "body": body, "response": response,
                             "status": status, "tags": tags, "params": params or [],
                             "also": tuple(also), "partial": partial,
                             "media": dict(media or {})}
        return view

    return mark


# -- record routes -------------------------------------------------------------------------


PUBLIC_ENDPOINTS = {"api.index", "api.openapi"}  # documented with "security": []
# A token from an e-mail address and password: the view asks for a token or a session
# unless the body carries them, before it reads anything else of the body.
SIGN_IN_ENDPOINTS = {"api.create_token"}


def record_route(view: Callable) -> Callable:
    """Resolve ``<collection>`` to an enabled record type and open a unit of work."""

    @wraps(view)
    def wrapper(collection: str, **kwargs):
        itsm = _itsm()
        rt = itsm.types.by_collection.get(collection)
        if rt is None:
            valid = allowed_methods(request.path)
            if valid:  # e.g. POST /api/v1/me: another route's path, not a collection
                raise MethodNotAllowed(valid_methods=valid)
            raise NotFound(f"no collection {collection!r} (is its plugin enabled?)")
        actor = current_actor()
        with itsm.unit_of_work(actor) as service:
            if "number" in kwargs:
                number = kwargs.pop("number").upper()
                if "\x00" in number or len(number) > 32:
                    raise NotFound(f"no {rt.title.lower()} {number[:32]!r}")
                kwargs["record"] = service.get(number, rt.name)
            result = view(service, rt, **kwargs)
        return result

    return wrapper


@bp.get("/")
def index():
    itsm = _itsm()
    return jsonify({
        "name": "itsm", "openapi": f"{PREFIX}/openapi.json",
        "collections": {rt.collection: {"type": rt.name, "label": rt.title,
                                        "prefix": rt.prefix, "plugin": rt.plugin}
                        for rt in itsm.types},
    })


@bp.get("/openapi.json")
def openapi():
    from flask import current_app

    from itsm.core.openapi import build_spec

    return jsonify(build_spec(current_app, _itsm()))


@bp.get("/<collection>")
@record_route
def list_records(service, rt):
    settings = service.itsm.settings
    query = listing.parse_args(request.args.to_dict(), default_limit=settings["api.page_size"],
                               max_limit=settings["api.max_page_size"], rt=rt)
    records, cursor = service.list(rt.name, query)
    total = count_total(service, rt, query)
    return jsonify({"items": [service.to_dict(r) for r in records], "next": cursor,
                    "total": total.to_dict()})


@bp.post("/<collection>")
@record_route
def create_record(service, rt):
    suggest = rt.suggest and flag_arg("suggest", default=True)
    data = json_body()
    held = None
    key = idempotency.key_of(request.headers.get(idempotency.HEADER))
    if key is not None and service.actor.id is not None:
        held = idempotency.claim(service.itsm, service.actor.id, key, idempotency.fingerprint(
            "POST", request.path, data))
        if isinstance(held, Response):
            return held  # the first answer to this key
    try:
        record = service.create(rt.name, data)
        body = service.to_dict(record)
        headers = {"Location": f"{PREFIX}/{rt.collection}/{record.number}",
                   "ETag": f'"{record.version}"'}
        if held is not None:
            idempotency.store(service.session, held, 201, _jsonable(body), headers)
        # Committed here, before the suggestions are looked up: the record's number keeps
        # its sequence row locked until the commit, and every other create waits on it.
        service.session.commit()
    except BaseException:
        if held is not None:
            service.session.rollback()  # first: SQLite lets one writer in at a time
            idempotency.release(service.itsm, held)
        raise
    # The record is stored: whatever fails from here on, the answer is 201 with it, or a
    # client would retry and make a second one.
    if suggest:
        body.update(_suggestions(service, record))
    response = jsonify(body)
    response.status_code = 201
    response.headers.update(headers)
    return response


SUGGESTIONS_SKIPPED = "suggestions could not be looked up this time; the record is created"


def _suggestions(service, record) -> dict[str, Any]:
    """The suggestions for a record just created, best-effort: when they fail (a plugin's
    bug, the database connection dropped) the answer says they were skipped."""
    try:
        return {"suggestions": [s.to_dict() for s in service.suggestions(record)]}
    except Exception:
        log.exception("suggestions for %s failed", record.number)
        with suppress(Exception):  # the connection may be gone; the pool replaces it
            service.session.rollback()
        return {"suggestions": [], "suggestions_skipped": SUGGESTIONS_SKIPPED}


def _jsonable(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the JSON answer carries it (dates as text), for keeping in a JSON column."""
    return json.loads(current_app.json.dumps(body))


@bp.get("/<collection>/<record_number:number>")
@record_route
def read_record(service, rt, record):
    return with_etag(jsonify(service.to_dict(record)), record.version)


@bp.patch("/<collection>/<record_number:number>")
@record_route
def update_record(service, rt, record):
    body = json_body()
    expected = if_match()
    if expected is not None:  # the client wrote against what it read: 412 when stale
        service.update(record, body, expected_version=expected)
        return with_etag(jsonify(service.to_dict(record)), record.version)
    # Without If-Match the client asked to set these fields whatever the version: a write
    # that lost the race to another writer is applied again to the record as it is now,
    # instead of answering 412 to a client that has no ETag to retry with.
    for attempt in range(1, UNCONDITIONAL_ATTEMPTS + 1):
        try:
            service.update(record, body)
            service.session.commit()
            break
        except StaleDataError:
            service.session.rollback()
            if attempt == UNCONDITIONAL_ATTEMPTS:
                raise  # 412 from the unit of work
            _lock_and_reload(service, record)
    return with_etag(jsonify(service.to_dict(record)), record.version)


# An unconditional write that lost the race is tried again with the record's row locked
# (see _lock_and_reload), so the second attempt normally wins; the rest is for deadlocks.
UNCONDITIONAL_ATTEMPTS = 4


def _lock_and_reload(service, record) -> None:
    """Take the record's row for this transaction, then read it as it is now.

    A no-op UPDATE locks the row on PostgreSQL and MariaDB and takes the write lock on
    SQLite (where ``SELECT ... FOR UPDATE`` does not exist), so no other writer can move
    the version between this read and the write that follows."""
    service.session.execute(sql_update(Record).where(Record.id == record.id)
                            .values(version=Record.version))
    service.session.refresh(record)


@bp.get("/<collection>/<record_number:number>/transitions")
@record_route
def list_transitions(service, rt, record):
    return jsonify({"items": [
        {"name": t.name, "label": t.title, "target": t.target, "required": list(t.required),
         "fields": list(t.settable), "allowed": not reasons, "reasons": reasons}
        for t, reasons in service.available_transitions(record)]})


@bp.post("/<collection>/<record_number:number>/transitions")
@record_route
def run_transition(service, rt, record):
    data = TransitionIn().load(json_body())
    expected = if_match()
    if expected is None:
        expected = data.get("version")
    service.transition(record, data["name"], data.get("fields"), comment=data.get("comment"),
                       expected_version=expected)
    return with_etag(jsonify(service.to_dict(record)), record.version)


def _comment_dict(service, entry) -> dict[str, Any]:
    return {"id": entry.id, "body": entry.body, "public": entry.public,
            "author": service.ref("user", entry.actor_id),
            "created_at": entry.created_at.isoformat()}


@bp.get("/<collection>/<record_number:number>/comments")
@record_route
def list_comments(service, rt, record):
    entries = [e for e in service.journal(record) if e.kind in ("commented", "work_noted")]
    return jsonify({"items": [_comment_dict(service, e) for e in entries]})


@bp.post("/<collection>/<record_number:number>/comments")
@record_route
def add_comment(service, rt, record):
    data = CommentIn().load(json_body())
    entry = service.comment(record, data["body"], public=data["public"])
    response = jsonify(_comment_dict(service, entry))
    response.status_code = 201
    return response


@bp.get("/<collection>/<record_number:number>/links")
@record_route
def list_links(service, rt, record):
    return jsonify({"items": service.links(record)})


@bp.post("/<collection>/<record_number:number>/links")
@record_route
def add_link(service, rt, record):
    data = LinkIn().load(json_body())
    link = service.link(record, data["target"].upper(), data["kind"])
    response = jsonify(next(item for item in service.links(record) if item["id"] == link.id))
    response.status_code = 201
    return response


@bp.get("/<collection>/<record_number:number>/journal")
@record_route
def read_journal(service, rt, record):
    return jsonify({"items": [
        {"id": e.id, "kind": e.kind, "actor": service.ref("user", e.actor_id) or "system",
         "created_at": e.created_at.isoformat(), "public": e.public, "body": e.body,
         "data": e.data} for e in service.journal(record)]})


@bp.get("/<collection>/<record_number:number>/sla")
@record_route
def read_sla(service, rt, record):
    from itsm.core.sla import clocks_for

    return jsonify({"items": clocks_for(service.session, record)})


@bp.get("/<collection>/<record_number:number>/suggestions")
@record_route
def read_suggestions(service, rt, record):
    limit = inputs.parse_int(request.args.get("limit", "5"), "limit", minimum=1, maximum=20)
    return jsonify({"items": [s.to_dict() for s in service.suggestions(record, limit)]})


def _attachment_dict(a) -> dict[str, Any]:
    return {"id": a.id, "filename": a.filename, "content_type": a.content_type,
            "size": a.size, "sha256": a.sha256, "created_at": a.created_at.isoformat()}


@bp.get("/<collection>/<record_number:number>/attachments")
@record_route
def list_attachments(service, rt, record):
    return jsonify({"items": [_attachment_dict(a) for a in service.attachments(record)]})


@bp.post("/<collection>/<record_number:number>/attachments")
@record_route
def add_attachment(service, rt, record):
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError("send the file as multipart/form-data field 'file'",
                              fields={"file": ["missing"]})
    attachment = service.attach(record, upload.filename or "", upload.mimetype, upload.stream)
    response = jsonify(_attachment_dict(attachment))
    response.status_code = 201
    return response


@bp.get("/<collection>/<record_number:number>/attachments/<int:attachment_id>")
@record_route
def download_attachment(service, rt, record, attachment_id):
    attachment = service.attachment(record, attachment_id)
    return send_file(service.itsm.attachments.open(attachment.storage_key),
                     mimetype=attachment.content_type, as_attachment=True,
                     download_name=attachment.filename)


# -- the caller and their tokens -----------------------------------------------------------


@bp.get("/me")
def me():
    from sqlalchemy import select

    from itsm.core.models import Agency, Group

    actor = current_actor()
    with _itsm().Session() as db:
        agency = db.get(Agency, actor.agency_id) if actor.agency_id is not None else None
        groups = sorted(db.scalars(select(Group.name).where(Group.id.in_(actor.group_ids))))
    return jsonify({"email": actor.email, "name": actor.name, "role": actor.role,
                    "agency": agency.code if agency else None, "groups": groups})


def _token_dict(token) -> dict[str, Any]:
    from itsm.core.auth import effective_expiry

    expires = effective_expiry(token.created_at, token.expires_at,
                               _itsm().settings["auth.token_max_days"])
    return {"id": token.id, "name": token.name, "prefix": token.prefix,
            "created_at": token.created_at.isoformat(),
            "expires_at": expires.isoformat(),
            "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
            "revoked": token.revoked_at is not None}


@bp.get("/tokens")
def list_tokens():
    from sqlalchemy import select

    from itsm.core.models import ApiToken

    actor = current_actor()
    with _itsm().Session() as db:
        tokens = db.scalars(select(ApiToken).where(ApiToken.user_id == actor.id)
                            .order_by(ApiToken.id)).all()
    return jsonify({"items": [_token_dict(t) for t in tokens]})


@bp.post("/tokens")
def create_token():
    from itsm.core.auth import create_token as make
    from itsm.core.schemas import TokenIn
    from itsm.core.web import sign_in

    actor = current_actor(required=False)  # a cookie call still needs its CSRF token
    try:
        body = json_body()
    except ItsmError:
        if actor is None:  # nothing of the body is answered before the caller is known
            raise Unauthorized(
                "authentication required: send Authorization: Bearer <token>") from None
        raise
    password_given = isinstance(body, dict) and ("email" in body or "password" in body)
    if actor is None and not password_given:
        raise Unauthorized("authentication required: send Authorization: Bearer <token> "
                           "or an e-mail address and password")
    data = TokenIn().load(body)
    if actor is not None and password_given:
        raise ValidationError("send either a token (or a session) or an e-mail address and "
                              "password, not both", fields={"password": ["not with a token"]})
    if actor is not None and actor.id is None:
        raise Unauthorized("the system actor has no tokens")
    if actor is None and not (data.get("email") and data.get("password")):
        raise ValidationError("send the e-mail address and the password", fields={
            key: ["missing"] for key in ("email", "password") if not data.get(key)})
    itsm = _itsm()
    with itsm.Session() as db:
        user = db.get(User, actor.id) if actor is not None else \
            sign_in(db, data["email"], data["password"])
        # Never longer than auth.token_max_days, nor than the token making this one.
        token, secret = make(db, user, name=data["name"],
                             days=data.get("days", itsm.settings["auth.token_days"]),
                             max_days=itsm.settings["auth.token_max_days"],
                             not_after=request.environ.get(_CREDENTIAL_EXPIRY))
        db.commit()
        body = {**_token_dict(token), "token": secret}
    response = jsonify(body)
    response.status_code = 201
    return response


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    from itsm.core.auth import revoke_token as revoke

    actor = current_actor()
    with _itsm().Session() as db:
        token = revoke(db, token_id, owner=db.get(User, actor.id) if actor.id else None)
        db.commit()
        return jsonify(_token_dict(token))
