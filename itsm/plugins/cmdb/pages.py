"""The cmdb's console pages (server-rendered, no script needed).

- ``/cmdb/cis``: the CIs the reader may see, searchable and filtered by type and lifecycle;
- ``/cmdb/cis/<id>``: a CI's facts, attributes, relations, impact and history, and the
  same CI as it was on a date (``?as_of=``); forms to relate and retire;
- ``/cmdb/cis/<id>/graph``: the dependency picture with its numbers beside it.

Every read and write goes through ``service.py``, as the API's do.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    ItsmError,
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
from itsm.plugins.cmdb.models import LIFECYCLE, RELATION_KINDS

pages = page_blueprint("cmdb_pages", __name__, url_prefix="/cmdb", static_folder="static")
PAGE_SIZE = 50


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
    return render_page("cmdb/list.html", 400 if error else 200, items=items, total=total,
                       cursor=cursor, q=text, type_key=type_key, lifecycle=lifecycle,
                       types=types, lifecycles=LIFECYCLE, error=error, can_write=can_write)


@pages.get("/cis/<int(max=2147483647):ci_id>")
def ci_detail(ci_id: int):
    """A CI now, or as it was on ``?as_of=``."""
    raw_as_of = _arg("as_of", 40)
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
        attribute_labels = {a["name"]: a.get("label") or a["name"] for a in (
            cmdb.all_types(service.session).get(ci.type_key).attributes
            if ci.type_key in cmdb.all_types(service.session) else [])}
    return render_page("cmdb/detail.html", 400 if error else 200, ci=data, current=current,
                       impact=impact, history=history, as_of=raw_as_of, error=error,
                       can_write=can_write, kinds=RELATION_KINDS,
                       attribute_labels=attribute_labels)


@pages.post("/cis/<int(max=2147483647):ci_id>/relations")
def add_relation(ci_id: int):
    """Relate the CI to another."""
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            ci = cmdb.get_ci(service, ci_id)
            rel.relate(service, ci, {"kind": request.form.get("kind", ""),
                                      "target": request.form.get("target", "").strip()
                                      .lstrip("#")[:12]})
        flash("Relation added.", "success")
    except ItsmError as exc:
        flash(error_text(exc), "error")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#relations")


@pages.post("/cis/<int(max=2147483647):ci_id>/relations/<int(max=2147483647):relation_id>"
            "/end")
def end_relation(ci_id: int, relation_id: int):
    """End a relation (kept in the history)."""
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            rel.unrelate(service, cmdb.get_ci(service, ci_id), relation_id)
        flash("Relation ended.", "success")
    except ItsmError as exc:
        flash(error_text(exc), "error")
    return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#relations")


@pages.post("/cis/<int(max=2147483647):ci_id>/retire")
def retire(ci_id: int):
    """Retire the CI, once the box saying so is ticked."""
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm that this CI is retired.", "error")
        return redirect(url_for("cmdb_pages.ci_detail", ci_id=ci_id) + "#retire")
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            cmdb.retire_ci(service, cmdb.get_ci(service, ci_id),
                           note=request.form.get("note", "")[:500])
        flash("Configuration item retired.", "success")
    except ItsmError as exc:
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
