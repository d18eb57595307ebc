"""The cmdb's console forms: add and change a configuration item, with its type's own
attributes as generated, labelled fields, and relate it to another CI picked by name.

The routes live on the pages' blueprint (``/cmdb/cis/new``, ``/cmdb/cis/<id>/edit``,
``/cmdb/cis/<id>/relations``); everything is saved through ``service.py`` as the API,
the command line and imports do. Bad input answers 422 with a message at each field and
the form as it was typed; no script is needed (the type is chosen first, with a small
form of its own, and the main form then shows that type's attributes).
"""

from __future__ import annotations

import json
from typing import Any

import marshmallow
from flask import flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    Agency,
    Group,
    ItsmError,
    NotFound,
    RecordService,
    User,
    current_itsm,
    field_messages,
    page_actor,
    render_page,
)
from itsm.plugins.cmdb import service as cmdb
from itsm.plugins.cmdb.models import LIFECYCLE, RELATION_KINDS, CiType, ConfigItem
from itsm.plugins.cmdb.pages import pages, render_detail
from itsm.plugins.cmdb.types import attribute_schema

PICKER_LIMIT = 200  # a longer list is a search's job; any name, key or #id may be typed
TEXT_MAX = 20000
# The input each attribute type gets, and what it says to people.
WIDGETS = {"string": "text", "text": "textarea", "integer": "number", "number": "number",
           "boolean": "select", "date": "date", "choice": "select", "json": "textarea"}
HINTS = {"integer": "A whole number.", "number": "A number, e.g. 2.5.",
         "date": "A date such as 2026-12-01.",
         "json": "JSON: a list such as [\"web\", \"db\"] or an object such as {\"port\": 80}."}


# -- what the form shows ------------------------------------------------------------------


def attribute_inputs(ci_type: CiType | None) -> list[dict[str, Any]]:
    """The type's attributes as form inputs (``attr-<name>``), in their defined order."""
    out = []
    for a in (ci_type.attributes if ci_type is not None else []):
        kind = a.get("type", "string")
        choices: list[tuple[str, str]] = []
        if kind == "choice":
            choices = [(str(c), str(c).replace("_", " ").capitalize())
                       for c in a.get("choices") or []]
        elif kind == "boolean":
            choices = [("true", "Yes"), ("false", "No")]
        out.append({"name": a["name"], "key": "attr-" + a["name"],
                    "label": a.get("label") or a["name"].replace("_", " ").capitalize(),
                    "kind": kind, "widget": WIDGETS.get(kind, "text"), "choices": choices,
                    "required": bool(a.get("required")), "hint": HINTS.get(kind, ""),
                    "step": "1" if kind == "integer" else "any"})
    return out


def attribute_text(kind: str, value: Any) -> str:
    """A stored attribute value as its input shows it."""
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, indent=1, ensure_ascii=False)
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def pickers(service: RecordService) -> dict[str, list[tuple[str, str]]]:
    """The choices of the owner, support group and agency pickers: people by name (the
    value is the e-mail address the service takes), groups and agencies by name."""
    session = service.session
    people = session.execute(select(User.email, User.name).where(
        User.active.is_(True), User.role != "requester")
        .order_by(User.name, User.email).limit(PICKER_LIMIT)).all()
    return {"people": [(e, f"{n} <{e}>" if n and n != e else e) for e, n in people],
            "groups": [(n, n) for n in session.scalars(select(Group.name).order_by(
                Group.name).limit(PICKER_LIMIT))],
            "agencies": [(code, f"{name} ({code})") for code, name in session.execute(
                select(Agency.code, Agency.name).order_by(Agency.name))]}


def ci_values(service: RecordService, ci: ConfigItem) -> dict[str, Any]:
    """A stored CI as the edit form shows it."""
    current = cmdb.current_dict(service, ci)
    types = cmdb.all_types(service.session)
    kinds = {a["name"]: a.get("type", "string") for a in (
        types[ci.type_key].attributes if ci.type_key in types else [])}
    return {"name": current["name"], "type": current["type"],
            "lifecycle": current["lifecycle"], "owner": current["owner"] or "",
            "support_group": current["support_group"] or "",
            "agency": (current["agency"] or {}).get("code", ""),
            "used_by": [a["code"] for a in current["used_by"]],
            "location": current["location"] or "", "external_key": current["external_key"]
            or "", "version": str(current["version"]),
            "attrs": {name: attribute_text(kinds.get(name, "string"), value)
                      for name, value in current["attributes"].items()}}


# -- what was typed -----------------------------------------------------------------------


def _text(name: str, limit: int = 500) -> str:
    return request.form.get(name, "").replace("\r\n", "\n").replace("\x00", "")[:limit].strip()


def typed_values() -> dict[str, Any]:
    """The form as typed, to show again (every attribute input, of any type)."""
    form = request.form
    return {"name": _text("name", 200), "type": _text("type", 64),
            "lifecycle": _text("lifecycle", 20), "owner": _text("owner", 254),
            "support_group": _text("support_group", 100), "agency": _text("agency", 32),
            "used_by": [v.strip()[:32] for v in form.getlist("used_by")[:200] if v.strip()],
            "location": _text("location", 200), "external_key": _text("external_key", 200),
            "version": _text("version", 12),
            "attrs": {key[5:]: _text(key, TEXT_MAX) for key in form
                      if key.startswith("attr-") and len(key) <= 70}}


def _owner(session, typed: str) -> str | None:
    """An owner typed by name instead of picked: a name exactly one user bears becomes
    their address; anything else goes on as typed (the service words the message)."""
    if not typed or "@" in typed:
        return typed or None
    found = session.scalars(select(User.email).where(User.name == typed).limit(2)).all()
    return found[0] if len(found) == 1 else typed


def service_data(session, values: dict[str, Any], inputs: list[dict[str, Any]]) \
        -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The data :func:`~itsm.plugins.cmdb.service.create_ci` takes, and the attribute
    problems found before (JSON that does not parse)."""
    attributes: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for item in inputs:
        raw = values["attrs"].get(item["name"], "")
        if raw == "":
            continue  # left empty: the attribute is not set (the schema says if it must)
        if item["kind"] == "json":
            try:
                attributes[item["name"]] = json.loads(raw)
            except ValueError:
                problems[item["key"]] = ["not valid JSON"]
        else:  # text as typed: the type's schema parses numbers, dates, yes/no
            attributes[item["name"]] = raw
    data = {"name": values["name"], "type": values["type"],
            "lifecycle": values["lifecycle"] or "in_use",
            "owner": _owner(session, values["owner"]),
            "support_group": values["support_group"] or None,
            "agency": values["agency"] or None, "used_by": values["used_by"],
            "location": values["location"], "external_key": values["external_key"] or None,
            "attributes": attributes}
    return data, problems


def form_errors(exc: ItsmError) -> dict[str, list[str]]:
    """The service's field messages by input name; attributes by ``attr-<name>``."""
    fields = dict(exc.fields or {})
    out: dict[str, list[str]] = {}
    attributes = fields.pop("attributes", None)
    for item in attributes if isinstance(attributes, list) else [attributes]:
        if isinstance(item, dict):
            for name, messages in field_messages(item).items():
                key = "attributes" if name.startswith("_") else "attr-" + name
                out.setdefault(key, []).extend(messages)
        elif item:
            out.setdefault("attributes", []).append(str(item))
    for name, messages in field_messages(fields).items():
        out.setdefault(name if not name.startswith("_") else "_", []).extend(messages)
    return out or {"_": [exc.message]}


# -- the views ----------------------------------------------------------------------------


def _render(service: RecordService, ci: ConfigItem | None, values: dict[str, Any],
            errors: dict[str, list[str]], status: int = 200):
    types = cmdb.all_types(service.session)
    ci_type = types.get(values["type"])
    lifecycles = {k: v for k, v in LIFECYCLE.items()
                  if k != "retired" or (ci is not None and ci.lifecycle == "retired")}
    return render_page("cmdb/form.html", status, ci=ci, values=values, errors=errors,
                       types=[(t.key, t.label) for t in types.values()],
                       type_label=ci_type.label if ci_type else "",
                       attributes=attribute_inputs(ci_type), lifecycles=lifecycles,
                       pick=pickers(service))


def _save(ci_id: int | None):
    """Validate and save the posted form; the form again with its messages otherwise."""
    values = typed_values()
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    status = 422
    try:
        with itsm.unit_of_work(page_actor()) as service:
            service.require(cmdb.WRITE)
            ci = cmdb.get_ci(service, ci_id) if ci_id is not None else None
            types = cmdb.all_types(service.session)
            if values["type"] not in types:
                return _render(service, ci, values, {
                    "type": ["choose the type of configuration item"]}, 422)
            inputs = attribute_inputs(types[values["type"]])
            data, problems = service_data(service.session, values, inputs)
            if problems:  # the other attributes' messages too, in one answer
                try:
                    attribute_schema(types[values["type"]].attributes).load(
                        data["attributes"], partial=tuple(
                            k[5:] for k in problems))
                except marshmallow.ValidationError as exc:
                    for name, messages in field_messages(exc.messages).items():
                        problems.setdefault("attr-" + name, []).extend(messages)
                return _render(service, ci, values, problems, 422)
            if ci is None:
                saved = cmdb.create_ci(service, data)
            else:
                version = values["version"]
                saved = cmdb.update_ci(service, ci, data, expected_version=int(
                    version) if version.isdigit() else None)
            saved_id, name = saved.id, saved.name
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        errors = form_errors(exc)  # the change was rolled back: nothing was written
        status = exc.status if exc.status in (409, 412) else 422
    if errors:
        with itsm.unit_of_work(page_actor()) as service:
            ci = cmdb.get_ci(service, ci_id) if ci_id is not None else None
            return _render(service, ci, values, errors, status)
    flash(f"Configuration item {name} {'added' if ci_id is None else 'saved'}.", "success")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=saved_id))


@pages.route("/cis/new", methods=["GET", "POST"])
def ci_new():
    """Add a configuration item: its type first (``?type=``), then its fields."""
    if request.method == "POST":
        return _save(None)
    with current_itsm().unit_of_work(page_actor()) as service:
        service.require(cmdb.WRITE)
        types = cmdb.all_types(service.session)
        chosen = request.args.get("type", "")[:64]
        values = {"name": "", "type": chosen if chosen in types else "",
                  "lifecycle": "in_use", "owner": "", "support_group": "", "agency": "",
                  "used_by": [], "location": "", "external_key": "", "version": "",
                  "attrs": {}}
        return _render(service, None, values, {})


@pages.route("/cis/<int(max=2147483647):ci_id>/edit", methods=["GET", "POST"])
def ci_edit(ci_id: int):
    """Change a configuration item's fields and attributes."""
    if request.method == "POST":
        return _save(ci_id)
    with current_itsm().unit_of_work(page_actor()) as service:
        service.require(cmdb.WRITE)
        ci = cmdb.get_ci(service, ci_id)
        values = ci_values(service, ci)
        chosen = request.args.get("type", "")[:64]
        if chosen in cmdb.all_types(service.session):
            values["type"] = chosen  # another type: its attributes are asked for
        return _render(service, ci, values, {})


@pages.post("/cis/<int(max=2147483647):ci_id>/relations")
def add_relation(ci_id: int):
    """Relate the CI to another, picked by name (or typed as its key or ``#id``)."""
    from itsm.plugins.cmdb import relations as rel

    typed = {"kind": request.form.get("kind", "")[:32],
             "target": request.form.get("target", "").replace("\x00", "").strip()[:200]}
    errors: dict[str, list[str]] = {}
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            service.require(cmdb.WRITE)
            ci = cmdb.get_ci(service, ci_id)
            if not typed["target"]:
                errors["target"] = ["type or pick the name of a configuration item"]
            else:
                try:
                    target = cmdb.find_ci(service, typed["target"])
                except NotFound:
                    errors["target"] = [f"no configuration item {typed['target']!r}: pick "
                                        "one from the list (it now shows the names that "
                                        "hold what you typed), or give its #id"]
            if not errors:
                rel.relate(service, ci, {"kind": typed["kind"], "target": target.id})
                label = RELATION_KINDS[typed["kind"]].label
                other = target.name
    except ItsmError as exc:
        if exc.status in (401, 403) or (exc.status == 404 and not exc.fields):
            raise
        errors = field_messages(exc.fields) or {"_": [exc.message]}
    if errors:
        return render_detail(ci_id, status=422, relation_form={
            "values": typed, "errors": errors,
            "search": typed["target"] if "target" in errors else ""})
    flash(f"Relation added: {label} {other}.", "success")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#relations")
