"""The record page for staff: what a record type declares, shown as people read it.

Built for every record type from its declared fields and workflow: a header with what
decides the next action (state, priority, SLA clocks, requester with agency and contact,
group, assignee), the type's other fields with labels instead of codes (empty ones
hidden), one activity stream of replies, work notes and changes, the workflow's actions
(the primary one first, destructive ones apart and confirmed) and pickers on the forms.

A type's schema fields may declare, in their marshmallow ``metadata``:

``label``
    what people read instead of the field's name;
``labels``
    ``{value: label}`` for coded values (``{"walk_in": "Walk-in"}``); a ``OneOf``
    validator's ``labels`` work too; the form offers them as a choice;
``choices``
    a function ``() -> [(value, label), ...]`` the form offers as a choice (categories);
    with ``depends_on``, ``() -> {parent value: [(value, label), ...]}``;
``depends_on``
    the field whose value the choices depend on (a subcategory's category);
``display``
    a function ``(session, record, value) -> text | [(label, text), ...] | None``: a
    value shown as a name (an offering's, for its id) or a labelled table (form answers);
``hidden``
    True: not shown among the record's details (bookkeeping a page need not show).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from flask import url_for
from marshmallow import validate
from sqlalchemy import select

from itsm.core.display import local_time, remember_names
from itsm.core.expectations import PRIORITY_WORDS, priority_label
from itsm.core.models import Agency, GroupMember, Record, User
from itsm.core.pagekit import FormField, schema_form
from itsm.core.records import RecordService, RecordType, schema_instance
from itsm.core.references import reference_choices

# Priority words for every type (a type's own ``labels`` on ``priority`` win).
PRIORITY_LABELS = {n: priority_label(n) for n in PRIORITY_WORDS}
HEADER = ("state", "state_label", "priority", "agency", "requester", "assignee", "group",
          "created_at", "updated_at", "closed_at")
NOT_SHOWN = {"number", "type", "title", "description", "version", "transitions",
             "customer_reply_at", *HEADER}
EMPTY = (None, "", [], {})


# -- what a type declares about its fields ----------------------------------------------------


def declared_fields(rt: RecordType) -> dict[str, Any]:
    """The marshmallow fields of the type's own schema (dump-only ones included)."""
    return dict(schema_instance(rt.schema).fields) if rt.schema else {}


def field_label(rt: RecordType, name: str) -> str:
    found = declared_fields(rt).get(name)
    label = found.metadata.get("label") if found is not None else None
    return label or {"state_label": "State", "group": "Group"}.get(
        name, name.replace("_", " ").capitalize())


def value_labels(rt: RecordType, name: str) -> dict[str, str]:
    """``{value as text: label}`` of a coded field ({} when the field has no codes)."""
    if name == "priority":
        return {str(k): v for k, v in PRIORITY_LABELS.items()}
    found = declared_fields(rt).get(name)
    if found is None:
        return {}
    meta = found.metadata
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    if callable(meta.get("choices")):
        chosen = meta["choices"]() or []
        if meta.get("depends_on"):  # {parent: [(value, label)]}: every parent's
            chosen = [pair for pairs in dict(chosen).values() for pair in pairs or []]
        labels.update({str(v): str(label) for v, label in chosen})
    for validator in found.validators:
        if isinstance(validator, validate.OneOf) and validator.labels:
            labels.update({str(v): str(label) for v, label in validator.options()
                           if v not in ("", None)})
    return labels


def text_of(rt: RecordType, name: str, value: Any) -> str:
    """One value as people read it: its label, Yes/No, a local time, a list joined."""
    if value in EMPTY:
        return ""
    if value is True or value is False:
        return "Yes" if value else "No"
    labels = value_labels(rt, name)
    if str(value) in labels:
        return labels[str(value)]
    if name == "state":
        return rt.workflow.state(str(value)).title
    if isinstance(value, datetime) or (name.endswith("_at") and isinstance(value, str)):
        try:
            return local_time(value)
        except ValueError:
            return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(text_of(rt, name, v) for v in value if not isinstance(v, dict))
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in value.items())
    return labels.get(str(value), str(value))


def detail_rows(service: RecordService, rt: RecordType, record: Record,
                data: dict[str, Any]) -> list[dict[str, Any]]:
    """The type's own fields that hold something, labelled: ``{name, label, text}`` or
    ``{name, label, table: [(label, text)]}``."""
    fields = declared_fields(rt)
    references = dict(rt.references or {})
    ref_keys = {f"{n}_ref" for n in references} | {f"{n}_refs" for n in references}
    rows = []
    for name, value in data.items():
        declared = fields.get(name)
        meta = declared.metadata if declared is not None else {}
        if name in NOT_SHOWN or name in ref_keys or meta.get("hidden") or value in EMPTY:
            continue
        if value is False or (value == 0 and declared is not None and declared.dump_only):
            continue  # an unset flag or a count at zero says nothing
        if name in references:  # a stable id: shown by the thing's label, never the id
            rows.append({"name": name, "label": field_label(rt, name),
                         "text": reference_text(data, name)})
            continue
        shown = meta["display"](service.session, record, value) if meta.get("display") \
            else None
        if shown in EMPTY and meta.get("display"):
            shown = None
        row = {"name": name, "label": field_label(rt, name)}
        if isinstance(shown, list):
            row["table"] = [(str(k), str(v)) for k, v in shown]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            continue  # a structure of the plugin's own (a timeline): its own page shows it
        elif isinstance(value, dict) and shown is None:
            row["table"] = [(k.replace("_", " ").capitalize(), text_of(rt, k, v))
                            for k, v in value.items() if v not in EMPTY]
        else:
            row["text"] = str(shown) if shown is not None else text_of(rt, name, value)
        rows.append(row)
    return rows


def reference_text(data: dict[str, Any], name: str) -> str:
    """A reference field's label(s) from the record's ``<field>_ref(s)``."""
    one, many = data.get(f"{name}_ref"), data.get(f"{name}_refs")
    refs = [one] if one else list(many or [])
    words = [r["label"] + (" (retired)" if r.get("status") == "retired" else "")
             for r in refs if r]
    return ", ".join(words) or str(data.get(name) or "")


def form_values(rt: RecordType, data: dict[str, Any]) -> dict[str, Any]:
    """A record's values as its edit form shows them: reference fields by label (the
    record service resolves a label back to the same stable id)."""
    out = dict(data)
    for name in rt.references or {}:
        if data.get(name) not in EMPTY:
            out[name] = reference_text(data, name)
    return out


# -- people ------------------------------------------------------------------------------------


def people(service: RecordService, ids: set[int | None]) -> dict[int, dict[str, str]]:
    """Name, e-mail, phone and agency of these users, in one query; those the service
    looked up before (the activity stream asks for the header's people too) in none."""
    wanted = {i for i in ids if i is not None}
    known: dict[int, dict[str, str] | None] = service.__dict__.setdefault("_people", {})
    missing = wanted - known.keys()
    if missing:
        rows = service.session.execute(
            select(User.id, User.email, User.name, User.phone, Agency.name)
            .outerjoin(Agency, Agency.id == User.agency_id).where(User.id.in_(missing)))
        found = {r[0]: {"email": r[1], "name": r[2] or r[1], "phone": r[3] or "",
                        "agency": r[4] or ""} for r in rows}
        remember_names({p["email"]: p["name"] for p in found.values()})
        known.update({i: found.get(i) for i in missing})
    return {i: dict(known[i]) for i in wanted if known[i] is not None}


def header(service: RecordService, rt: RecordType, record: Record,
           data: dict[str, Any], who: dict[int, dict[str, str]]) -> dict[str, Any]:
    """What decides the next action, as people read it."""
    # Read with the record's other references (RecordService.prefetch_refs).
    agency = service.ref("agency_name", record.agency_id)
    group = service.ref("group", record.group_id)
    state = rt.workflow.state(record.state)
    return {
        "state": state.title, "state_name": record.state, "waiting": state.waiting,
        "final": state.final,
        "priority": text_of(rt, "priority", record.priority) if record.priority else "",
        "priority_value": record.priority,
        "major": bool(getattr(record, "major", False)),
        "requester": who.get(record.requester_id),
        "agency": agency or "",
        "group": group or "", "assignee": who.get(record.assignee_id),
        "created_at": record.created_at, "updated_at": record.updated_at,
        "closed_at": record.closed_at,
        "customer_reply_at": record.customer_reply_at,
        "mine": record.assignee_id is not None and record.assignee_id == service.actor.id,
    }


# -- the activity stream -----------------------------------------------------------------------

KIND_WORDS = {"created": "opened the record", "updated": "changed",
              "commented": "replied", "work_noted": "added a work note",
              "attached": "attached a file", "linked": "linked a record"}
PEOPLE_FIELDS = ("requester", "assignee")


def activity(service: RecordService, rt: RecordType, record: Record) -> list[dict[str, Any]]:
    """Replies, work notes and changes in one stream, newest first, in words."""
    entries = service.journal(record)
    # The header's people in the same query: the page shows both.
    who = people(service, {e.actor_id for e in entries}
                 | {record.requester_id, record.assignee_id})
    emails = {new for e in entries for name, pair in ((e.data or {}).get("changes") or {})
              .items() if name in PEOPLE_FIELDS for new in (pair if isinstance(pair, list)
                                                            else [pair]) if new}
    names = {}
    if emails:
        names = {e: n or e for e, n in service.session.execute(
            select(User.email, User.name).where(User.email.in_(emails)))}
    out = []
    for entry in reversed(entries):
        data = entry.data or {}
        changes = []
        for name, pair in (data.get("changes") or {}).items():
            old, new = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            if name in PEOPLE_FIELDS:
                old, new = names.get(old, old) or "", names.get(new, new) or ""
            changes.append({"label": field_label(rt, name),
                            "old": text_of(rt, name, old) if name not in PEOPLE_FIELDS else old,
                            "new": text_of(rt, name, new) if name not in PEOPLE_FIELDS else new})
        headline = KIND_WORDS.get(entry.kind, entry.kind.replace("_", " "))
        if entry.kind == "transitioned":
            transition = rt.workflow.transitions.get(data.get("transition", ""))
            headline = f"ran “{transition.title if transition else data.get('transition')}”"
            changes = [c for c in changes if c["label"] != "State"] + [
                c for c in changes if c["label"] == "State"]
        elif entry.kind == "attached":
            headline = f"attached {data.get('filename', 'a file')}"
        elif entry.kind == "linked":
            kind = service.itsm.link_kinds.get(data.get("kind", ""))
            headline = f"linked: {kind.label if kind else data.get('kind')} {data.get('target')}"
        elif entry.kind == "created":
            changes = []  # the record's fields are on the page itself
        author = who.get(entry.actor_id)
        out.append({"id": entry.id, "kind": entry.kind, "headline": headline,
                    "actor": author["name"] if author else "itsm",
                    "by_requester": entry.actor_id is not None
                    and entry.actor_id == record.requester_id,
                    "created_at": entry.created_at, "public": entry.public,
                    "body": entry.body, "changes": changes})
    return out


# -- the workflow's actions --------------------------------------------------------------------


def actions(transitions: list[dict[str, Any]], rt: RecordType) -> dict[str, Any]:
    """Transitions sorted for the page: one primary, the others, the destructive ones
    apart (never primary, always confirmed), and those refused now with their reasons."""
    declared = rt.workflow.transitions
    for t in transitions:
        t["destructive"] = declared[t["name"]].destructive if t["name"] in declared else False
    allowed = [t for t in transitions if not t["reasons"]]
    safe = [t for t in allowed if not t["destructive"]]
    return {"primary": safe[0] if safe else None, "others": safe[1:],
            "destructive": [t for t in allowed if t["destructive"]],
            # A destructive move refused now is not shown at all: nothing to learn there.
            "refused": [t for t in transitions if t["reasons"] and not t["destructive"]]}


def transitions(service: RecordService, rt: RecordType, record: Record,
                data: dict) -> list[dict]:
    """Each transition from here, its inputs, and the reasons it is refused right now.

    A missing required field is not a refusal on this page: the transition's form asks
    for it. The text matched is the one :meth:`itsm.core.workflow.Workflow.check` words.
    """
    offered = service.available_transitions(record)
    # Pickers only for the fields a transition from here asks for: building every
    # field's choices (people, services, items) cost more than the rest of the page.
    wanted = {name for transition, _ in offered for name in transition.settable}
    inputs = {f.name: f for f in with_pickers(
        service, rt, [f for f in schema_form(rt, staff=True) if f.name in wanted], record)}
    out = []
    for transition, reasons in offered:
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


# -- pickers -----------------------------------------------------------------------------------

PICKER_LIMIT = 200  # a longer list is a type-ahead's job; the form still takes any value


def picker_choices(service: RecordService, kind: str, text: str = "",
                   limit: int = 20, group_id: int | None = None) -> list[tuple[str, str]]:
    """``(value, label)`` a picker offers for ``text``: people, groups, agencies or any
    declared reference kind, through the reference contract's ``reference_choices``
    (agency data kept apart there: a requester sees only their own agency's people).

    ``staff`` (an assignee) is people who are not requesters, and with ``group_id``
    only that group's members: the contract's choices have no such filter, so they are
    read here. The core's fields take e-mail addresses, group names and agency codes;
    a declared reference field takes the thing's label (resolved back to its id).
    """
    if kind in ("user", "group", "agency"):
        refs = reference_choices(service.session, service.actor, kind, text, limit)
        return _core_values(service, kind, refs)
    if kind != "staff":
        refs = reference_choices(service.session, service.actor, kind, text, limit)
        return [(r.label, r.label + (" (retired)" if r.status == "retired" else ""))
                for r in refs]
    if not service.is_staff:
        return []
    query = select(User.email, User.name).where(User.active.is_(True),
                                                User.role != "requester")
    if text.strip():
        like = f"%{text.strip().lower()}%"
        query = query.where(User.name.ilike(like) | User.email.ilike(like))
    if group_id is not None:
        query = query.where(User.id.in_(select(GroupMember.user_id).where(
            GroupMember.group_id == group_id)))
    rows = service.session.execute(query.order_by(User.name, User.email).limit(limit))
    return _people_choices(rows.all())


def _people_choices(rows: Any) -> list[tuple[str, str]]:
    return [(email, f"{name} <{email}>" if name and name != email else email)
            for email, name in rows]


def _core_values(service: RecordService, kind: str, refs: list) -> list[tuple[str, str]]:
    """The core's reference kinds as the values its fields take: e-mail addresses,
    group names, agency codes (the refs carry stable ids and labels)."""
    ids = [int(r.id) for r in refs if r.id.isdigit()]
    if not ids:
        return []
    if kind == "group":
        return [(r.label, r.label) for r in refs]
    if kind == "agency":
        codes = dict(service.session.execute(select(Agency.id, Agency.code)
                                             .where(Agency.id.in_(ids))).all())
        return [(codes[int(r.id)], r.label) for r in refs if int(r.id) in codes]
    found = {i: (e, n) for i, e, n in service.session.execute(
        select(User.id, User.email, User.name).where(User.id.in_(ids)))}
    return _people_choices([found[int(r.id)] for r in refs if int(r.id) in found])


PICKER_KINDS = {"requester": "user", "assignee": "staff", "group": "group",
                "agency": "agency"}


def with_pickers(service: RecordService, rt: RecordType, form_fields: list[FormField],
                 record: Record | None = None) -> list[FormField]:
    """The form's fields with pickers: people as a list to pick from by name or e-mail,
    groups and agencies as choices, coded values and categories with their labels."""
    declared = declared_fields(rt)
    out = []
    for f in form_fields:
        meta = declared[f.name].metadata if f.name in declared else {}
        kind = PICKER_KINDS.get(f.name) or (rt.references or {}).get(f.name)
        source = url_for("console.record_choices", collection=rt.collection, field=f.name,
                         **({"record": record.number} if record is not None else {}))
        if kind and f.name in (rt.references or {}):
            f = replace(f, widget="datalist", hint="Type a name to pick from the list.",
                        attrs={**f.attrs, "source": source},
                        choices=picker_choices(service, kind, limit=PICKER_LIMIT))
        elif kind in ("user", "staff"):
            group_id = record.group_id if record is not None and f.name == "assignee" \
                else None
            options = picker_choices(service, kind, limit=PICKER_LIMIT, group_id=group_id)
            hint = "Type a name or an e-mail address." + (
                " The list shows the members of the record's group." if group_id else "")
            f = replace(f, widget="datalist", choices=options, hint=hint,
                        attrs={**f.attrs, "source": source})
        elif kind:
            f = replace(f, widget="select", hint="", choices=picker_choices(
                service, kind, limit=PICKER_LIMIT))
        elif meta.get("depends_on") and callable(meta.get("choices")):
            groups = meta["choices"]() or {}
            parents = value_labels(rt, meta["depends_on"])
            f = replace(f, widget="grouped", choices=[
                (parents.get(str(parent), str(parent)),
                 [(str(v), str(label)) for v, label in options])
                for parent, options in groups.items() if options])
        elif callable(meta.get("choices")):  # the labels say what the API's hint did
            f = replace(f, widget="select", hint="",
                        choices=[(str(v), str(label)) for v, label in meta["choices"]()])
        elif f.name == "priority" or meta.get("labels") or (
                f.widget == "select" and value_labels(rt, f.name)):
            labels = value_labels(rt, f.name)
            low, high = f.attrs.get("min"), f.attrs.get("max")
            if f.widget == "number" and low is not None and high is not None:
                labels = {str(v): labels.get(str(v), str(v)) for v in range(low, high + 1)}
            if labels:
                f = replace(f, widget="select", choices=list(labels.items()))
        out.append(f)
    return out


def typed_people(service: RecordService, values: dict[str, Any]) -> dict[str, Any]:
    """People typed by display name instead of picked: a name that exactly one user
    bears becomes their address; anything else goes on as typed (the record service
    words the field message)."""
    out = dict(values)
    for name in PEOPLE_FIELDS:
        typed = out.get(name)
        if not isinstance(typed, str) or not typed.strip() or "@" in typed:
            continue
        found = service.session.execute(select(User.email).where(
            User.name.ilike(typed.strip()), User.active.is_(True)).limit(2)).scalars().all()
        if len(found) == 1:
            out[name] = found[0]
    return out


def staff_form(service: RecordService, rt: RecordType, record: Record | None = None,
               creating: bool = False) -> list[FormField]:
    """The type's form with its pickers, as :func:`itsm.core.pagekit.schema_form` lists it."""
    return with_pickers(service, rt, schema_form(rt, staff=service.is_staff,
                                                 creating=creating), record)
