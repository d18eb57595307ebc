"""The cmdb's console pages (server-rendered, no script needed).

- ``/cmdb/cis``: the CIs the reader may see, searchable and filtered by type and lifecycle;
- ``/cmdb/cis/<id>``: a CI's facts, attributes, relations, impact and history, and the
  same CI as it was on a date (``?as_of=``); forms to relate and retire (the forms that
  add, change and relate a CI are in ``forms.py``);
- ``/cmdb/cis/<id>/graph``: the dependency picture with its numbers beside it.

Every read and write goes through ``service.py``, as the API's do.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    ItsmError,
    RecordService,
    current_itsm,
    error_text,
    page_actor,
    page_blueprint,
    parse_int,
    render_page,
)
from itsm.plugins.cmdb import graph, svg
from itsm.plugins.cmdb import relations as rel
from itsm.plugins.cmdb import service as cmdb
from itsm.plugins.cmdb.api import impact_data
from itsm.plugins.cmdb.models import LIFECYCLE, RELATION_KINDS, ConfigItem

pages = page_blueprint("cmdb_pages", __name__, url_prefix="/cmdb", static_folder="static")
PAGE_SIZE = 50
PICKER_LIMIT = 200  # a longer list is a search's job


def _arg(name: str, limit: int = 200) -> str:
    return request.args.get(name, "").strip()[:limit].replace("\x00", "")


@pages.get("/cis")
def ci_list():
    """Search and filter the CIs."""
    text, type_key, lifecycle = _arg("q"), _arg("type", 64), _arg("lifecycle", 20)
    error = None
    try:
        after = parse_int(request.args.get("after") or "0", "after", minimum=0,
                          maximum=2**31 - 1)
    except ItsmError as exc:
        error, after = error_text(exc), 0
    with current_itsm().unit_of_work(page_actor()) as service:
        rows, cursor, total = cmdb.list_cis(service, text=text, type_key=type_key or None,
                                            lifecycle=lifecycle or None, after=after,
                                            limit=PAGE_SIZE)
        names = cmdb.Names(service.session)
        items = [cmdb.current_dict(service, ci, names) for ci in rows]
        types = [(t.key, t.label) for t in names.types.values()]
        can_write = service.can(cmdb.WRITE)
        can_admin = service.can(cmdb.ADMIN)
    return render_page("cmdb/list.html", 400 if error else 200, items=items, total=total,
                       cursor=cursor, q=text, type_key=type_key, lifecycle=lifecycle,
                       types=types, lifecycles=LIFECYCLE, error=error, can_write=can_write,
                       can_admin=can_admin)


@pages.get("/cis/<int(max=2147483647):ci_id>")
def ci_detail(ci_id: int):
    """A CI now, or as it was on ``?as_of=``."""
    return render_detail(ci_id, _arg("as_of", 40))


def render_detail(ci_id: int, raw_as_of: str = "", *,
                  relation_form: dict[str, Any] | None = None, status: int = 200):
    """The CI's page; ``relation_form`` holds a relation typed and refused (its values
    and field messages), shown again at the relation form."""
    error = None
    with current_itsm().unit_of_work(page_actor()) as service:
        ci = cmdb.get_ci(service, ci_id)
        current = cmdb.current_dict(service, ci)
        data = None
        if raw_as_of:
            try:
                data = rel.as_of(service, ci, rel.parse_when(raw_as_of))
            except ItsmError as exc:
                error = error_text(exc)
        if data is None:
            data = dict(current, relations=rel.relations(service, ci))
        impact = impact_data(service, ci, "impact")
        history = rel.history(service, ci, limit=100)
        can_write = service.can(cmdb.WRITE)
        types = cmdb.all_types(service.session)
        attribute_labels = {a["name"]: a.get("label") or a["name"] for a in (
            types[ci.type_key].attributes if ci.type_key in types else [])}
        # A name typed and not found narrows the list to the CIs whose names hold it.
        choices = relation_choices(service, ci, (relation_form or {}).get("search", "")) \
            if can_write else []
    return render_page("cmdb/detail.html", 400 if error else status, ci=data,
                       current=current, impact=impact, history=history, as_of=raw_as_of,
                       error=error, can_write=can_write, kinds=RELATION_KINDS,
                       attribute_labels=attribute_labels, relation_choices=choices,
                       relation_form=relation_form or {"values": {}, "errors": {}})


def relation_choices(service: RecordService, ci: ConfigItem, text: str = "") \
        -> list[tuple[str, str]]:
    """CIs the relation form offers by name (not retired, not the CI itself), those whose
    name holds ``text`` when given; any other name, key or ``#id`` may still be typed."""
    query = select(ConfigItem.name, ConfigItem.type_key).where(
        ConfigItem.lifecycle != "retired", ConfigItem.id != ci.id)
    if text:
        like = "%" + text[:100].replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        query = query.where(ConfigItem.name.ilike(like, escape="\\"))
    condition = cmdb.scope(service)
    if condition is not None:
        query = query.where(condition)
    names = cmdb.Names(service.session)
    rows = service.session.execute(query.order_by(ConfigItem.name).limit(PICKER_LIMIT))
    return [(name, names.type_label(type_key)) for name, type_key in rows]


@pages.post("/cis/<int(max=2147483647):ci_id>/relations/<int(max=2147483647):relation_id>"
            "/end")
def end_relation(ci_id: int, relation_id: int):
    """End a relation (kept in the history)."""
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            rel.unrelate(service, cmdb.get_ci(service, ci_id), relation_id)
        flash("Relation ended.", "success")
    except ItsmError as exc:
        if exc.status in (401, 403):
            raise
        flash(error_text(exc), "error")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#relations")


@pages.post("/cis/<int(max=2147483647):ci_id>/retire")
def retire(ci_id: int):
    """Retire the CI, once the box saying so is ticked (a destructive action asks)."""
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            service.require(cmdb.WRITE)
            ci = cmdb.get_ci(service, ci_id)
            if request.form.get("confirm") != "yes":
                flash("Tick the box to confirm that this CI is retired.", "error")
                return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#retire")
            cmdb.retire_ci(service, ci, note=request.form.get("note", "")[:500])
        flash("Configuration item retired.", "success")
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        flash(error_text(exc), "error")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id))


@pages.get("/cis/<int(max=2147483647):ci_id>/graph")
def ci_graph(ci_id: int):
    """The dependency picture of a CI and its numbers."""
    with current_itsm().unit_of_work(page_actor()) as service:
        ci = cmdb.get_ci(service, ci_id)
        picture = graph.neighbourhood(service.session, ci.id)
        allowed = cmdb.visible_ids(service, sorted(picture["layers"]))
        if len(allowed) < len(picture["layers"]):  # a requester: only their agency's CIs
            picture["layers"] = {k: v for k, v in picture["layers"].items() if k in allowed}
            picture["edges"] = [e for e in picture["edges"]
                                if e["source"] in allowed and e["target"] in allowed]
        types = cmdb.all_types(service.session)
        labels = {k: t.label for k, t in types.items()}
        service_types = {k for k, t in types.items() if t.is_service}
        image = svg.render(picture, ci.id, labels, service_types)
        counts = svg.layer_counts(picture, labels)
        relation_counts = {}
        for edge in picture["edges"]:
            label = RELATION_KINDS[edge["kind"]].label
            relation_counts[label] = relation_counts.get(label, 0) + 1
    return render_page("cmdb/graph.html", ci={"id": ci.id, "name": ci.name}, image=image,
                       counts=counts, relation_counts=sorted(relation_counts.items()),
                       nodes=len(picture["layers"]), edges=len(picture["edges"]),
                       truncated=picture["truncated"])
