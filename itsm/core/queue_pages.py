"""The console's queue pages: a record type's list with views, a total, sorting and bulk work.

``/records/<collection>`` shows a queue (:func:`queue_page`, called by the console's list
view); ``?view=<key>`` opens a built-in or saved view, and any other argument refines it.
``POST /records/<collection>/bulk`` runs an action on the ticked rows and shows each row's
outcome; ``POST /records/<collection>/views`` keeps the current arguments under a name and
``.../views/<id>/delete`` removes one. Every page works without script.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from itsm.core import queues
from itsm.core.display import local_time, reader_zone
from itsm.core.errors import ItsmError, NotFound, ValidationError
from itsm.core.models import SavedView
from itsm.core.navigation import FRAME_SCALARS
from itsm.core.pagekit import (
    _actor,
    _itsm,
    _render,
    bp,
    error_text,
    plural,
    read_frame,
    schema_form,
)
from itsm.core.query import FILTER_ARGS, parse_args

PAGE_ARGS = (*FILTER_ARGS, "view")


def _record_type(collection: str) -> Any:
    rt = _itsm().types.by_collection.get(collection)
    if rt is None:
        raise NotFound(f"there is no list {collection!r} (is its plugin enabled?)")
    return rt


def _templates(rt: Any, page: str) -> list[str]:
    return [f"records/{rt.name}/{page}.html", f"records/{page}.html"]


def _query_args(source: MultiDict) -> dict[str, str]:
    return {k: v for k in PAGE_ARGS if (v := source.get(k, "").strip())}


_ANY_SAVED_VIEW = "itsm.any_saved_view"  # request.environ: read with the menu


def _any_saved_view(actor: Any) -> tuple[str, Any] | None:
    """Whether the actor keeps any view: read in the menu's statement, so the queue of
    someone who keeps none (most people) does not look for theirs."""
    if actor.id is None or actor.role == "requester":
        return None
    return _ANY_SAVED_VIEW, select(SavedView.id).where(SavedView.user_id == actor.id).limit(1)


FRAME_SCALARS.append(_any_saved_view)


def _saved_views(service: Any, actor: Any, rt: Any) -> list[queues.QueueView]:
    known = request.environ.get(_ANY_SAVED_VIEW)
    if known is not None and known[0] == actor.id and known[1] is None:
        return []
    return queues.saved_views(service.session, actor.id, rt)


def queue_page(collection: str):
    """The queue of one record type: the chosen view refined by the page's arguments."""
    rt = _record_type(collection)
    itsm = _itsm()
    actor = _actor()
    given = _query_args(request.args)
    error = None
    read_frame(actor)
    with itsm.unit_of_work(actor) as service:
        staff = service.is_staff
        views = (queues.builtin_views(rt) + _saved_views(service, actor, rt)
                 if staff else [])
        view = queues.find_view(views, given.get("view", ""))
        if given.get("view") and view is None:
            error = "That view does not exist (any more); showing every record."
        # Newest activity first unless asked otherwise: the order the "Updated" column shows.
        args = {"sort": "-updated_at", **(view.args if view else {}),
                **{k: v for k, v in given.items() if k != "view"}}
        total = None
        try:
            query = parse_args(args, default_limit=itsm.settings["api.page_size"],
                               max_limit=itsm.settings["api.max_page_size"], rt=rt)
            records, cursor = service.list(rt.name, query, prefetch=False)
            total = queues.count_total(service, rt, query)
        except ValidationError as exc:
            records, cursor, error = [], None, error_text(exc)
        rows = queues.display_rows(service.session, rt, records)
        detail = url_for(".record_detail", collection=collection, number="NUMBER")
        form = schema_form(rt, staff=True)
        labels = {f.name: f.label for f in form}
        # Each row's cells as one piece of markup: the template's per-cell lookups cost
        # more than the page's queries (50 rows x 10 columns).
        # Each column's opening tag and its formatter, chosen once per page, not per cell.
        cells = [(f'<td data-label="{escape(c["label"])}"'
                  f'{" class=title" if c["name"] == "title" else ""}>', _formatter(c["name"]))
                 for c in queues.columns_of(rt, labels)]
        can_create = service.can(f"{rt.name}.create")
        can_bulk = staff and service.can(f"{rt.name}.update")
        zone = reader_zone(actor)  # once, not per time cell
        for row in rows:
            row["url"] = detail.replace("NUMBER", row["number"])
            row["cells"] = Markup("".join([  # each piece escaped by its formatter
                f"{opening}{format_(row, zone)}</td>" for opening, format_ in cells]))
            row["markup"] = _row(row, can_bulk)
    base = {k: v for k, v in given.items() if k != "cursor"}
    sort = args["sort"]
    columns = []
    # One URL with a stand-in for the sort, filled in per column: a url_for per column
    # cost more than the rest of the header (column names need no quoting).
    sort_url = url_for(".record_list", collection=collection, **{**base, "sort": _SORT})
    for column in queues.columns_of(rt, labels):
        name = column["name"]
        ascending = sort == name
        column["sort_url"] = sort_url.replace(f"sort={_SORT}",  # a typed "=" is quoted
                                              f"sort=-{name}" if ascending else f"sort={name}")
        column["sorted"] = "ascending" if ascending else "descending" \
            if sort == f"-{name}" else None
        columns.append(column)
    states = [(s.name, s.title) for s in rt.workflow.states.values()]
    priority = next((f for f in form if f.name == "priority"), None)
    priorities = range(priority.attrs.get("min", 1), priority.attrs.get("max", 5) + 1) \
        if priority else []
    return _render(
        _templates(rt, "list"), 400 if error and total is None else 200, rt=rt,
        plural=plural(rt), records=rows, rows=rows, columns=columns, filters=args,
        given=given, states=states, priorities=priorities, error=error,
        can_create=can_create, can_bulk=can_bulk, staff=staff, views=views, view=view,
        total=total, sort=sort, bulk_transitions=list(rt.workflow.transitions.values()),
        open_states=",".join(s.name for s in rt.workflow.states.values() if not s.final),
        here=url_for(".record_list", collection=collection, **given),
        next_url=url_for(".record_list", collection=collection, **base, cursor=cursor)
        if cursor else None,
        first_url=url_for(".record_list", collection=collection, **base)
        if "cursor" in given else None)


HOME_VIEWS = ("my_open", "my_groups_unassigned", "breaching_soon", "updated_by_customer")


def home_tiles(service: Any, rt: Any) -> list[dict[str, Any]]:
    """The home page's figures of one record type: a built-in view's total and its link."""
    out = []
    for view in queues.builtin_views(rt):
        if view.key in HOME_VIEWS:
            total = queues.view_total(service, rt, view.key)
            out.append({"title": view.title, "total": total,
                        "url": url_for(".record_list", collection=rt.collection,
                                       view=view.key)})
    return out


def _text(value: Any) -> str:
    """``value`` escaped as markupsafe's ``escape`` does, as a plain string: its Markup
    for each of a page's 500 cells was a third of the cells' cost."""
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return (str(value).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
            .replace("'", "&#39;").replace('"', "&#34;"))


_SORT = "SORT__COLUMN"  # stands for a column's sort in the header's links


def _row(row: dict[str, Any], can_bulk: bool) -> Markup:
    """One row of the queue as markup (its cells already escaped): one value for the
    template to print rather than half a dozen lookups per row."""
    classes = ("p1" if row["p1"] else "") + (" major" if row["major"] else "") \
        + (" customer-update" if row["updated_by_customer"] else "")
    pick = ""
    if can_bulk:
        number = _text(row["number"])
        pick = (f'<td data-label="Select"><input type="checkbox" name="number" '
                f'value="{number}" id="pick-{number}" aria-label="Select {number}"></td>')
    return Markup(f'<tr class="{classes}">\n      {pick}\n      {row["cells"]}\n    </tr>')


def _number(row: dict[str, Any], zone: Any) -> str:
    out = f'<a href="{_text(row["url"])}">{_text(row["number"])}</a>'
    if row["major"]:
        out += ' <span class="badge major">Major</span>'
    if row["updated_by_customer"]:
        out += ' <span class="badge customer">Updated by customer</span>'
    return out


def _state(row: dict[str, Any], zone: Any) -> str:
    return (f'<span class="badge state-{_text(row["state"])}">'
            f'{_text(row["state_label"])}</span>')


def _priority(row: dict[str, Any], zone: Any) -> str:
    if row["priority"] is None:
        return "—"
    priority = int(row["priority"])
    return f'<span class="badge priority p{priority}">P{priority}</span>'


def _sla_due(row: dict[str, Any], zone: Any) -> str:
    sla = row["sla"]
    if not sla:
        return "—"
    warned = ' <span class="visually-hidden">(warning)</span>' \
        if sla["status"] == "warned" else ""
    return (f'<span class="sla sla-{_text(sla["status"])}"><time datetime='
            f'"{sla["due_at"].isoformat()}">{_text(sla["left"])}</time>{warned}</span>')


def _moment(name: str) -> Any:
    return lambda row, zone: _text(local_time(row[name], zone))


def _value(name: str) -> Any:
    def value(row: dict[str, Any], zone: Any) -> str:
        found = row[name] if name in row else getattr(row["record"], name, None)
        return _text("—" if found in (None, "") else found)
    return value


_FORMATTERS = {"number": _number, "state": _state, "priority": _priority,
               "sla_due": _sla_due, "updated_at": _moment("updated_at"),
               "created_at": _moment("created_at")}


def _formatter(name: str) -> Any:
    """How a queue shows column ``name``: ``(row, zone) -> HTML``, every value escaped.
    Cells are built here rather than by a chain of tests in the template, which cost as
    much as the page's queries for 50 rows of 10 columns (plain strings, joined once:
    Markup's own + escapes each piece again)."""
    return _FORMATTERS.get(name) or _value(name)


def _back(collection: str) -> str:
    back = request.form.get("back", "")
    prefix = url_for(".record_list", collection=collection)
    return back if back.startswith(prefix) and "//" not in back else prefix


@bp.post("/records/<collection>/bulk")
def record_bulk(collection: str):
    """Run an action on every ticked row; show each row's outcome."""
    rt = _record_type(collection)
    itsm = _itsm()
    numbers = request.form.getlist("number")
    try:
        results = queues.bulk_apply(itsm, _actor(), rt, numbers, request.form.get("action", ""),
                                    request.form)
    except ItsmError as exc:
        flash(error_text(exc), "error")
        return redirect(_back(collection))
    done = sum(r.done for r in results)
    return _render(_templates(rt, "bulk"), 200, rt=rt, plural=plural(rt), results=results,
                   done=done, refused=len(results) - done, back=_back(collection))


@bp.post("/records/<collection>/views")
def record_view_save(collection: str):
    """Keep the queue's current arguments as a view of the person's own."""
    rt = _record_type(collection)
    args = {k: v for k, v in _query_args(request.form).items() if k != "view"}
    try:
        with _itsm().unit_of_work(_actor()) as service:
            view = queues.save_view(service, rt, request.form.get("name", ""), args)
            key = f"saved-{view.id}"
    except ItsmError as exc:
        flash(error_text(exc), "error")
        return redirect(_back(collection))
    flash(f"The view {view.name!r} has been saved.", "success")
    return redirect(url_for(".record_list", collection=collection, view=key))


@bp.post("/records/<collection>/views/<int:view_id>/delete")
def record_view_delete(collection: str, view_id: int):
    rt = _record_type(collection)
    with _itsm().unit_of_work(_actor()) as service:
        name = queues.delete_view(service, rt, view_id)
    flash(f"The view {name!r} has been deleted.", "success")
    return redirect(url_for(".record_list", collection=collection))
