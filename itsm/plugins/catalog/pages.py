"""The catalog's web pages.

Portal (any signed-in user, works without JavaScript):
``/portal/catalog`` (search, categories, most requested, ``?q=``, ``?category=``),
``/portal/catalog/agencies/<code>``, ``/portal/catalog/services/<slug>``,
``/portal/catalog/services/<slug>/offerings/<id>`` (the request form),
``/portal/catalog/services/<slug>/feedback``, ``/portal/requests`` and
``/portal/requests/<number>``, ``/portal/approvals``.

Staff: ``/catalog/feedback`` (the review queue), ``/catalog/technical`` and
``/catalog/technical/documents/<id>`` (the technical catalog).
"""

from __future__ import annotations

from typing import Any

import marshmallow
from flask import Blueprint, flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    MAX_DB_INTEGER,
    Agency,
    InputError,
    ItsmError,
    ListQuery,
    NotFound,
    RecordService,
    current_itsm,
    error_text,
    expectations,
    field_messages,
    page_actor,
    page_blueprint,
    parse_int,
    reader_zone,
    render_page,
)
from itsm.plugins.catalog import service as catalog
from itsm.plugins.catalog.forms import summary_of
from itsm.plugins.catalog.hooks import REQUEST_WORKFLOW, TASK_WORKFLOW, tasks_of
from itsm.plugins.catalog.models import (
    FEEDBACK_KINDS,
    FEEDBACK_STATES,
    Category,
    Offering,
    Service,
    ServiceRequest,
)

portal = page_blueprint("catalog_portal", __name__, url_prefix="/portal",
                        static_folder="static")
staff = page_blueprint("catalog_staff", __name__, url_prefix="/catalog")

PLAIN_STATES = {
    "submitted": "Waiting for approval",
    "in_fulfillment": "Being prepared",
    "waiting": "Waiting for your answer",
    "fulfilled": "Done",
    "rejected": "Not approved",
    "cancelled": "Cancelled",
}


def _text(name: str, limit: int = 5000) -> str:
    return request.form.get(name, "").replace("\r\n", "\n").replace("\x00", "").strip()[:limit]


# -- finding a service ---------------------------------------------------------------------------


@portal.get("/catalog")
def home():
    """Search, categories, most requested; with ``q`` or ``category`` the matches."""
    q = request.args.get("q", "").strip()[:200]
    try:
        category_id = parse_int(request.args.get("category", ""), "category", minimum=1,
                                maximum=MAX_DB_INTEGER)
    except InputError:
        category_id = None  # an unknown category shows the catalog's home, as before
    with current_itsm().unit_of_work(page_actor()) as svc:
        category = svc.session.get(Category, category_id) if category_id else None
        results = None
        if q or category is not None:
            results = [catalog.service_dict(svc, s) for s in catalog.portal_services(
                svc, q=q, category_id=category.id if category else None)]
        agency = svc.ref("agency", svc.actor.agency_id)
        context = {"q": q, "category": category, "results": results, "agency": agency,
                   "categories": [(c, n) for c, n in catalog.categories(svc) if n],
                   "popular": [(catalog.service_dict(svc, s), n)
                               for s, n in catalog.most_requested(svc)]}
    return render_page("catalog/home.html", **context)


@portal.get("/catalog/agencies/<code>")
def agency_view(code: str):
    """The services one agency may request (requesters: their own agency only)."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        agency = svc.session.scalar(select(Agency).where(Agency.code == code[:32]))
        if agency is None or (svc.actor.role == "requester"
                              and agency.id != svc.actor.agency_id):
            raise NotFound(f"no agency {code[:32]}")
        rows = [catalog.service_dict(svc, s)
                for s in catalog.portal_services(svc, agency_id=agency.id)]
        name = agency.name
    return render_page("catalog/home.html", q="", category=None, results=rows,
                       agency=code, agency_name=name, categories=[], popular=[])


@portal.get("/catalog/services/<slug>")
def service_page(slug: str):
    with current_itsm().unit_of_work(page_actor()) as svc:
        service = catalog.get_service(svc, slug)
        context = {"service": catalog.service_dict(svc, service, full=True),
                   "live": service.status == "live"}
    return render_page("catalog/service.html", **context)


# -- requesting ------------------------------------------------------------------------------------


def _offering(svc: RecordService, slug: str, offering_id: int) -> tuple[Service, Offering]:
    service = catalog.get_service(svc, slug)
    return service, catalog.get_offering(svc, offering_id, service)


def _form_errors(exc: ItsmError, names: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    answers = (exc.fields or {}).get("answers")
    if isinstance(answers, dict):
        for name, messages in field_messages(answers).items():
            out.setdefault(name if name in names else "_", []).extend(messages)
    if not out:
        out["_"] = [error_text(exc)]
    return out


@portal.route("/catalog/services/<slug>/offerings/<int:offering_id>", methods=["GET", "POST"])
def request_form(slug: str, offering_id: int):
    """The offering's form, built from its definition; errors inline, values kept."""
    from itsm.plugins.catalog.forms import from_form

    actor = page_actor()
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    with current_itsm().unit_of_work(actor) as svc:
        service, offering = _offering(svc, slug, offering_id)
        context = {"service": catalog.service_dict(svc, service),
                   "offering": catalog.offering_dict(svc, offering)}
        form = list(offering.form)
    if request.method == "POST":
        values = from_form(form, request.form)
        note = _text("note", 5000)
        try:
            with current_itsm().unit_of_work(actor) as svc:
                _, offering = _offering(svc, slug, offering_id)
                number = catalog.submit_request(svc, offering, values, description=note).number
        except ItsmError as exc:
            if exc.status in (401, 403, 404):
                raise
            errors = _form_errors(exc, {f["name"] for f in form})
            values["note"] = note
        else:
            flash(f"Thank you: your request {number} has been sent.", "success")
            return redirect(url_for(".request_page", number=number))
    return render_page("catalog/request_form.html", 422 if errors else 200,
                       values=values, errors=errors, **context)


@portal.get("/requests")
def my_requests():
    itsm = current_itsm()
    with itsm.unit_of_work(page_actor()) as svc:
        records, _ = svc.list("request", ListQuery(requester="me", sort="-created_at",
                                                   limit=200))
        rows = [{"number": r.number, "title": r.title, "state": r.state,
                 "plain_state": PLAIN_STATES.get(r.state, r.state),
                 "created_at": r.created_at, "updated_at": r.updated_at} for r in records]
    return render_page("catalog/my_requests.html", requests=rows)


def _request(svc: RecordService, number: str) -> ServiceRequest:
    record = svc.get(number.upper()[:32], "request")
    if not isinstance(record, ServiceRequest):
        raise NotFound(f"no request {number[:32]}")
    return record


def _conversation(svc: RecordService, record: ServiceRequest) -> list[dict[str, Any]]:
    out = []
    for entry in svc.journal(record):
        if not entry.public or entry.kind not in ("created", "commented", "transitioned"):
            continue
        if entry.kind == "created":
            headline = "sent the request"
        elif entry.kind == "commented":
            headline = "wrote"
        else:
            new = ((entry.data or {}).get("changes") or {}).get("state", [None, ""])[1]
            headline = f"changed the status to “{PLAIN_STATES.get(new, new)}”"
        author = ("you" if entry.actor_id and entry.actor_id == svc.actor.id
                  else svc.ref("user", entry.actor_id) or "the service desk")
        out.append({"headline": headline, "body": entry.body, "author": author,
                    "created_at": entry.created_at})
    return out


@portal.get("/requests/<number>")
def request_page(number: str):
    """A request as its requester sees it: status, progress of the tasks, conversation."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        record = _request(svc, number)
        offering = svc.session.get(Offering, record.offering_id) if record.offering_id else None
        service = svc.session.get(Service, record.service_id) if record.service_id else None
        allowed = {t.name for t, reasons in svc.available_transitions(record) if not reasons}
        context = {
            "request": svc.to_dict(record), "state": record.state,
            "expect": expectations(svc.session, record, reader_zone()),
            "plain_state": PLAIN_STATES.get(record.state, record.state),
            "service": service.name if service else "", "service_slug": service.slug
            if service else "", "offering": offering.name if offering else "",
            "answers": summary_of(offering.form if offering else [], record.answers or {}),
            "tasks": [{"title": t.title.rsplit(" (", 1)[0],
                       "state": TASK_WORKFLOW.state(t.state).title, "done": t.state == "done"}
                      for t in tasks_of(svc.session, record)],
            "conversation": _conversation(svc, record),
            "can_comment": svc.can("request.comment", record),
            "can_cancel": "cancel" in allowed,
            "can_decide": "approve" in allowed,
            "can_rate": record.state == "fulfilled" and record.requester_id is not None
            and record.requester_id == svc.actor.id,
            "satisfaction": record.satisfaction,
            "satisfaction_comment": record.satisfaction_comment or "",
            "ratings": RATINGS,
        }
    return render_page("catalog/request.html", **context)


def _act(number: str, action, message: str):
    loaded = False
    try:
        with current_itsm().unit_of_work(page_actor()) as svc:
            record = _request(svc, number)
            loaded = True
            action(svc, record)
    except ItsmError as exc:
        if not loaded:
            raise
        flash(error_text(exc), "error")
    else:
        flash(message, "success")
    return redirect(url_for(".request_page", number=number.upper()[:32]))


@portal.post("/requests/<number>/comment")
def add_comment(number: str):
    body = _text("body")
    return _act(number, lambda svc, r: svc.comment(r, body, public=True),
                "Your message has been added.")


RATINGS = [(5, "Very good"), (4, "Good"), (3, "All right"), (2, "Poor"), (1, "Very poor")]


@portal.post("/requests/<number>/rate")
def rate(number: str):
    from itsm.plugins.catalog.api import RequestRatingIn, rate_fulfilment

    try:
        data = RequestRatingIn().load({"rating": request.form.get("rating", ""),
                                      "comment": _text("comment", 2000)})
    except marshmallow.ValidationError:
        flash("Choose a rating from 1 to 5 (a comment may have up to 2000 characters).",
              "error")
        return redirect(url_for(".request_page", number=number.upper()[:32]) + "#rate")
    return _act(number, lambda svc, r: rate_fulfilment(svc, r, data["rating"],
                                                       data["comment"]),
                "Thank you for your rating.")


@portal.post("/requests/<number>/cancel")
def cancel(number: str):
    return _act(number, lambda svc, r: svc.transition(r, "cancel", comment=_text("reason")
                                                      or None),
                "Your request is cancelled.")


@portal.post("/requests/<number>/decide")
def decide(number: str):
    decision = "approve" if request.form.get("decision") == "approve" else "reject"
    return _act(number, lambda svc, r: svc.transition(r, decision, comment=_text("reason")
                                                      or None),
                "Approved: the work starts now." if decision == "approve"
                else "Rejected: the requester is told.")


@portal.get("/approvals")
def approvals():
    with current_itsm().unit_of_work(page_actor()) as svc:
        rows = [{"number": r.number, "title": r.title, "requester": svc.ref(
            "user", r.requester_id), "created_at": r.created_at}
            for r in catalog.waiting_for(svc)]
    return render_page("catalog/approvals.html", requests=rows)


# -- feedback ---------------------------------------------------------------------------------


@portal.route("/catalog/services/<slug>/feedback", methods=["GET", "POST"])
def feedback_form(slug: str):
    actor = page_actor()
    errors: dict[str, list[str]] = {}
    values = {"kind": request.form.get("kind", request.args.get("kind", "comment")),
              "body": _text("body")}
    with current_itsm().unit_of_work(actor) as svc:
        service = catalog.service_dict(svc, catalog.get_service(svc, slug))
        mine = [catalog.feedback_dict(svc, f) for f in catalog.my_feedback(svc)
                if f.service_id == service["id"]]
    if request.method == "POST":
        try:
            with current_itsm().unit_of_work(actor) as svc:
                catalog.give_feedback(svc, catalog.get_service(svc, slug), values)
        except ItsmError as exc:
            if exc.status in (401, 403, 404):
                raise
            errors = field_messages(exc.fields) or {"_": [error_text(exc)]}
        else:
            flash("Thank you: the service management team will review your feedback.",
                  "success")
            return redirect(url_for(".feedback_form", slug=slug))
    return render_page("catalog/feedback_form.html", 422 if errors else 200,
                       service=service, values=values, errors=errors, mine=mine,
                       kinds=FEEDBACK_KINDS)


@staff.get("/feedback")
def feedback_queue():
    state = request.args.get("state", "new")
    state = state if state in FEEDBACK_STATES else "new"
    with current_itsm().unit_of_work(page_actor()) as svc:
        rows = [catalog.feedback_dict(svc, f) for f in catalog.review_queue(svc, state)]
    return render_page("catalog/feedback_queue.html", items=rows, state=state,
                       states=FEEDBACK_STATES)


@staff.post("/feedback/<int:feedback_id>")
def review(feedback_id: int):
    try:
        with current_itsm().unit_of_work(page_actor()) as svc:
            catalog.review_feedback(svc, feedback_id, {"state": request.form.get("state", ""),
                                                       "answer": _text("answer")})
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        flash(error_text(exc), "error")
    else:
        flash(f"Feedback {feedback_id} is saved.", "success")
    return redirect(url_for(".feedback_queue", state=request.args.get("state", "new")))


# -- technical catalog --------------------------------------------------------------------------


@staff.get("/technical")
def technical():
    q = request.args.get("q", "").strip()[:200]
    with current_itsm().unit_of_work(page_actor()) as svc:
        rows = [catalog.document_dict(svc, d) for d in catalog.documents(svc, q=q)]
        overdue = [catalog.document_dict(svc, d) for d in catalog.overdue_documents(svc)]
    return render_page("catalog/technical.html", documents=rows, overdue=overdue, q=q)


@staff.route("/technical/documents/<int:document_id>", methods=["GET", "POST"])
def document_page(document_id: int):
    actor = page_actor()
    if request.method == "POST":
        try:
            with current_itsm().unit_of_work(actor) as svc:
                catalog.add_version(svc, catalog.get_document(svc, document_id), {
                    "body": request.form.get("body", "").replace("\r\n", "\n"),
                    "note": _text("note", 500)})
        except ItsmError as exc:
            if exc.status in (401, 403, 404):
                raise
            flash(error_text(exc), "error")
        else:
            flash("A new version is saved.", "success")
        return redirect(url_for(".document_page", document_id=document_id))
    with current_itsm().unit_of_work(actor) as svc:
        document = catalog.get_document(svc, document_id)
        context = {"document": catalog.document_dict(svc, document, body=True),
                   "versions": [{"number": v.number, "note": v.note, "created_at": v.created_at,
                                 "author": svc.ref("user", v.author_id)}
                                for v in catalog.versions(svc, document)]}
    return render_page("catalog/document.html", **context)


def blueprints() -> list[Blueprint]:
    """The portal and staff page blueprints."""
    return [portal, staff]


__all__ = ["REQUEST_WORKFLOW", "blueprints"]
