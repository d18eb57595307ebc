"""The record page's own routes: "Assign to me", the confirmation step of a destructive
transition, the suggestions that may help, and the pickers' type-ahead choices (JSON).

Each writes through the record service in one unit of work, like every console page; the
confirmation step is a page of its own, so it works without script.
"""

from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, request, url_for

from itsm.core.errors import ItsmError, NotFound, ValidationError
from itsm.core.pagekit import _actor, _itsm, _render, bp, error_text, plural
from itsm.core.record_page import (
    PICKER_KINDS,
    declared_fields,
    picker_choices,
    transitions,
    value_labels,
)
from itsm.core.records import RecordType

CHOICES_MAX = 50


def _record_type(collection: str) -> RecordType:
    rt = _itsm().types.by_collection.get(collection)
    if rt is None:
        raise NotFound(f"there is no list {collection!r} (is its plugin enabled?)")
    return rt


def _detail(rt: RecordType, number: str, anchor: str = "") -> str:
    return url_for("console.record_detail", collection=rt.collection, number=number) + anchor


@bp.post("/records/<collection>/<number>/assign-to-me")
def record_assign_to_me(collection: str, number: str):
    rt = _record_type(collection)
    number = number.upper()
    actor = _actor()
    try:
        with _itsm().unit_of_work(actor) as service:
            record = service.get(number, rt.name)
            if record.assignee_id == actor.id:
                flash(f"{number} is already yours.", "success")
                return redirect(_detail(rt, number))
            service.update(record, {"assignee": actor.email})
    except NotFound:
        raise
    except ItsmError as exc:
        flash(error_text(exc), "error")
    else:
        flash(f"{number} is now assigned to you.", "success")
    return redirect(_detail(rt, number))


@bp.get("/records/<collection>/<number>/transition/<name>")
def record_confirm_transition(collection: str, number: str, name: str):
    """The confirmation step of a transition: its inputs and what it does, asked first."""
    rt = _record_type(collection)
    with _itsm().unit_of_work(_actor()) as service:
        record = service.get(number.upper(), rt.name)
        data = service.to_dict(record)
        offered = {t["name"]: t for t in transitions(service, rt, record, data)}
    transition = offered.get(name)
    if transition is None:
        raise NotFound(f"{rt.title} {record.number} offers no {name!r} now")
    declared = rt.workflow.transitions[name]
    return _render("records/confirm.html", rt=rt, plural=plural(rt), record=data,
                   transition=transition, destructive=declared.destructive,
                   here=_detail(rt, record.number))


@bp.get("/records/<collection>/<number>/suggestions")
def record_suggestions(collection: str, number: str):
    """Knowledge articles and known errors that may help with an open record: a page of
    its own (the record page links here), or with ``?fragment=1`` only the list, which
    the console's script puts in place on the record page. The record page does not run
    these full-text searches itself: they do not decide the next action."""
    rt = _record_type(collection)
    with _itsm().unit_of_work(_actor()) as service:
        record = service.get(number.upper(), rt.name)
        found = [s.to_dict() for s in service.suggestions(record)] \
            if rt.suggest and record.closed_at is None else []
        data = {"number": record.number, "title": record.title}
    if request.args.get("fragment"):
        return render_template("records/_suggestions.html", suggestions=found)
    return _render("records/suggestions.html", rt=rt, plural=plural(rt), record=data,
                   suggestions=found, here=_detail(rt, record.number))


@bp.get("/records/<collection>/choices/<field>")
def record_choices(collection: str, field: str):
    """``{"items": [{"value", "label"}]}`` for a picker's type-ahead; agency data kept
    apart as in :func:`itsm.core.record_page.picker_choices`."""
    rt = _record_type(collection)
    text = request.args.get("q", "")[:100]
    try:
        limit = max(1, min(int(request.args.get("limit", "20")), CHOICES_MAX))
    except ValueError:
        limit = 20
    try:
        items = _choices(rt, field, text, limit)
    except ValidationError as exc:
        return jsonify({"error": {"message": error_text(exc), "fields": exc.fields}}), 422
    return jsonify({"items": [{"value": v, "label": label} for v, label in items]})


def _choices(rt: RecordType, field: str, text: str, limit: int) -> list[tuple[str, str]]:
    with _itsm().unit_of_work(_actor()) as service:
        service.require(f"{rt.name}.read")
        group_id = None
        if request.args.get("record") and field == "assignee":
            group_id = service.get(request.args["record"].upper()[:32], rt.name).group_id
        kind = PICKER_KINDS.get(field)
        if field in (rt.references or {}):
            items = picker_choices(service, rt.references[field], text, limit)
        elif kind is not None:
            if not service.is_staff:
                raise ValidationError("pickers of staff fields are for IT staff",
                                      fields={"field": ["only IT staff pick this"]})
            items = picker_choices(service, kind, text, limit, group_id)
        elif field in declared_fields(rt) or field == "priority":
            needle = text.strip().lower()
            items = [(v, label) for v, label in value_labels(rt, field).items()
                     if needle in label.lower() or needle in v.lower()][:limit]
        else:
            raise ValidationError(f"{rt.title} has no field {field!r} to pick",
                                  fields={"field": ["unknown field"]})
    return items
