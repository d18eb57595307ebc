"""The catalog's administration pages, in the admin area for catalog managers: categories,
services (rates, FAQ and help links, owner, status, who may request them) and their
request offerings with a form builder, approval and fulfilment tasks, and a preview of the
portal page. Every change goes through :mod:`itsm.plugins.catalog.service`, as the API's
and ``itsm catalog``'s do.

``/admin/catalog`` (services and categories), ``/admin/catalog/services/new``,
``/admin/catalog/services/<slug>``, ``/admin/catalog/services/<slug>/offerings/new`` and
``/admin/catalog/services/<slug>/offerings/<id>``.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    AdminPage,
    Agency,
    Group,
    ItsmError,
    User,
    admin_view,
    current_itsm,
    field_messages,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.catalog import service as catalog
from itsm.plugins.catalog.forms import FIELD_TYPES
from itsm.plugins.catalog.models import (
    APPROVALS,
    BILLING_PERIODS,
    SERVICE_STATUSES,
    TASK_ORDERS,
    Category,
    Service,
)

MANAGE = "catalog.manage"
bp = page_blueprint("catalog_admin", __name__, url_prefix="/admin/catalog")

PAGES = [AdminPage("Services and categories", "catalog_admin.services", "Service catalog",
                   permission=MANAGE, description="the catalog's services, their rates, "
                   "owners, links, status and request offerings")]

STATUS_LABELS = {"planned": "Planned", "in_transition": "In transition", "live": "Live",
                 "retired": "Retired"}
PERIOD_LABELS = {"": "—", "one_time": "Once", "monthly": "Monthly", "quarterly": "Quarterly",
                 "yearly": "Yearly", "per_use": "Per use", "hourly": "Per hour worked"}
APPROVAL_LABELS = {"none": "No approval", "manager": "The requester's manager",
                   "service_owner": "The service owner", "group": "A group"}
TYPE_LABELS = {"text": "Short text", "textarea": "Long text", "integer": "Whole number",
               "date": "Date", "email": "E-mail address", "choice": "One of a list",
               "multichoice": "Several of a list", "checkbox": "Tick box"}
SERVICE_FIELDS = ("slug", "name", "summary", "description", "category", "owner",
                  "support_hours", "agencies", "rate_unit", "price", "currency",
                  "billing_period", "cost_notes", "faq_url", "help_url", "status")
LONG = {"description": 50_000, "cost_notes": 5_000}
ROWS_MAX = 50  # fields or tasks of one offering the builder shows


def _text(name: str, limit: int = 500) -> str:
    value = request.form.get(name, "")
    return value.replace("\r\n", "\n").replace("\x00", "").strip()[:limit]


def _refused(exc: ItsmError) -> bool:
    return exc.status in (401, 403, 404)


def _errors(exc: ItsmError) -> dict[str, list[str]]:
    out = field_messages(exc.fields)
    reasons = getattr(exc, "reasons", None) or []
    if reasons or not out:
        out.setdefault("_", []).extend(reasons or [exc.message])
    return out


# -- services and categories ---------------------------------------------------------------


@bp.route("/", methods=["GET", "POST"])
@admin_view(MANAGE)
def services():
    """Every service with its status and offerings; the categories, with a form to add or
    describe one."""
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    values = {"name": "", "description": "", "position": "0"}
    if request.method == "POST":
        values = {"name": _text("name", 200), "description": _text("description", 5000),
                  "position": _text("position", 12) or "0"}
        try:
            with itsm.unit_of_work(page_actor()) as svc:
                catalog.save_category(svc, values)
        except ItsmError as exc:
            if _refused(exc):
                raise
            errors = _errors(exc)
        else:
            flash(f"Category {values['name']} saved.", "success")
            return redirect(url_for(".services"))
    with itsm.unit_of_work(page_actor()) as svc:
        session = svc.session
        rows = [{**catalog.service_dict(svc, s),
                 "offerings": len(catalog.offerings_of(svc, s)),
                 "owner": svc.ref("user", s.owner_id)}
                for s in session.scalars(select(Service).order_by(Service.name))]
        categories = [(c, n) for c, n in catalog.categories(svc)]
    return render_page("catalog/admin/services.html", 422 if errors else 200,
                       services=rows, categories=categories, values=values, errors=errors,
                       status_labels=STATUS_LABELS)


@bp.route("/services/new", methods=["GET", "POST"])
@admin_view(MANAGE)
def service_new():
    values = {name: "" for name in SERVICE_FIELDS}
    values.update(currency="USD", status="planned")
    return _service_form(None, values)


@bp.route("/services/<slug>", methods=["GET", "POST"])
@admin_view(MANAGE)
def service_edit(slug: str):
    with current_itsm().unit_of_work(page_actor()) as svc:
        service = catalog.get_service(svc, slug)
        data = catalog.service_dict(svc, service, full=True)
        owner = svc.session.get(User, service.owner_id) if service.owner_id else None
        values = {name: data.get(name) or "" for name in SERVICE_FIELDS}
        values.update(owner=owner.email if owner else "", agencies=", ".join(data["agencies"]),
                      category=data["category"] or "")
        offerings = data["offerings"]
    return _service_form(slug, values, offerings=offerings)


def _service_input(creating: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """What was typed (to show again) and what the service function is given."""
    typed = {name: _text(name, LONG.get(name, 500)) for name in SERVICE_FIELDS}
    data: dict[str, Any] = {k: v for k, v in typed.items() if k not in ("slug", "agencies")}
    if creating:
        data["slug"] = typed["slug"]
    data["agencies"] = [c.strip() for c in typed["agencies"].split(",") if c.strip()]
    for optional in ("category", "owner", "price"):
        data[optional] = data[optional] or None
    data["currency"] = data["currency"].upper()
    return typed, data


def _service_form(slug: str | None, values: dict[str, str], *,
                  offerings: list[dict[str, Any]] | None = None):
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        typed, data = _service_input(slug is None)
        if slug is not None:
            typed["slug"] = values["slug"]
        values = typed
        try:
            with itsm.unit_of_work(page_actor()) as svc:
                current = catalog.get_service(svc, slug) if slug is not None else None
                saved = catalog.save_service(svc, data, current).slug
        except ItsmError as exc:
            if _refused(exc):
                raise
            errors = _errors(exc)
        else:
            flash(f"Service {values['name']} saved.", "success")
            return redirect(url_for(".service_edit", slug=saved))
    with itsm.unit_of_work(page_actor()) as svc:
        categories = [c.name for c in svc.session.scalars(select(Category)
                                                          .order_by(Category.name))]
        agencies = list(svc.session.scalars(select(Agency.code).order_by(Agency.code)))
    return render_page("catalog/admin/service_form.html", 422 if errors else 200,
                       slug=slug, values=values, errors=errors, offerings=offerings or [],
                       categories=categories, agencies=agencies,
                       statuses=[(s, STATUS_LABELS[s]) for s in SERVICE_STATUSES],
                       periods=[(p, PERIOD_LABELS[p]) for p in BILLING_PERIODS],
                       approval_labels=APPROVAL_LABELS)


# -- offerings: the form builder, approval and tasks -------------------------------------------


@bp.route("/services/<slug>/offerings/new", methods=["GET", "POST"])
@admin_view(MANAGE)
def offering_new(slug: str):
    values = {"code": "", "name": "", "description": "", "approval": "none",
              "approval_group": "", "task_order": "sequential", "response_minutes": "",
              "resolution_minutes": "", "active": True, "form": [], "tasks": []}
    return _offering_form(slug, None, values)


@bp.route("/services/<slug>/offerings/<int:offering_id>", methods=["GET", "POST"])
@admin_view(MANAGE)
def offering_edit(slug: str, offering_id: int):
    with current_itsm().unit_of_work(page_actor()) as svc:
        service = catalog.get_service(svc, slug)
        data = catalog.offering_dict(svc, catalog.get_offering(svc, offering_id, service))
    values = {**{k: "" if v is None else v for k, v in data.items()},
              "approval_group": data["approval_group"] or "",
              "form": [{**f, "choices": "\n".join(f.get("choices") or []),
                        "required": bool(f.get("required"))} for f in data["form"]],
              "tasks": [dict(t) for t in data["tasks"]]}
    return _offering_form(slug, offering_id, values)


def _rows(prefix: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The builder's rows as typed, in order, the removed ones left out."""
    rows = []
    for i in range(ROWS_MAX):
        if f"{prefix}-{i}-{names[0]}" not in request.form:
            continue
        if request.form.get(f"{prefix}-{i}-remove"):
            continue
        row: dict[str, Any] = {n: _text(f"{prefix}-{i}-{n}", 5000 if n in (
            "choices", "instructions") else 200) for n in names}
        if prefix == "f":
            row["required"] = bool(request.form.get(f"f-{i}-required"))
        rows.append(row)
    return rows


def _offering_input() -> tuple[dict[str, Any], dict[str, Any], list[int], list[int]]:
    """What was typed, what the service function gets, and for each field and task sent
    the position of its row (errors come back by position of what was sent)."""
    typed: dict[str, Any] = {n: _text(n, 20_000 if n == "description" else 200) for n in (
        "code", "name", "description", "approval", "approval_group", "task_order",
        "response_minutes", "resolution_minutes")}
    typed["active"] = bool(request.form.get("active"))
    typed["form"] = _rows("f", ("name", "label", "type", "choices", "help"))
    typed["tasks"] = _rows("t", ("title", "group", "instructions"))
    form_rows = [i for i, f in enumerate(typed["form"]) if f["name"] or f["label"]]
    task_rows = [i for i, t in enumerate(typed["tasks"]) if t["title"] or t["instructions"]]
    data: dict[str, Any] = {k: typed[k] for k in ("code", "name", "description", "approval",
                                                  "task_order", "active")}
    data["approval_group"] = typed["approval_group"] or None
    for key in ("response_minutes", "resolution_minutes"):
        data[key] = typed[key] if typed[key] else None
    data["form"] = [{"name": f["name"], "label": f["label"], "type": f["type"] or "text",
                     "required": f["required"], "help": f["help"],
                     "choices": [c.strip() for c in f["choices"].splitlines() if c.strip()]}
                    for f in (typed["form"][i] for i in form_rows)]
    data["tasks"] = [{"title": t["title"], "group": t["group"],
                      "instructions": t["instructions"]}
                     for t in (typed["tasks"][i] for i in task_rows)]
    return typed, data, form_rows, task_rows


def _row_errors(messages: Any, rows: list[int], prefix: str,
                out: dict[str, list[str]]) -> None:
    """``{"0": {"label": [...]}}`` (by position of what was sent) -> ``f-<row>-label``."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if str(key).isdigit() and int(key) < len(rows) and isinstance(value, dict):
                for name, texts in field_messages(value).items():
                    out.setdefault(f"{prefix}-{rows[int(key)]}-{name}", []).extend(texts)
            else:
                out.setdefault(prefix, []).extend(field_messages({"_": value})["_"])
    elif messages:
        out.setdefault(prefix, []).extend(field_messages({"_": messages})["_"])


def _offering_form(slug: str, offering_id: int | None, values: dict[str, Any]):
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values, data, form_rows, task_rows = _offering_input()
        if offering_id is not None:
            data.pop("code")
            values["code"] = _text("code", 200)
        action = request.form.get("action", "save")
        if action == "more-fields" and len(values["form"]) < ROWS_MAX:
            values["form"].append({})
        elif action == "more-tasks" and len(values["tasks"]) < ROWS_MAX:
            values["tasks"].append({})
        else:
            try:
                with itsm.unit_of_work(page_actor()) as svc:
                    service = catalog.get_service(svc, slug)
                    current = catalog.get_offering(svc, offering_id, service) \
                        if offering_id is not None else None
                    saved = catalog.save_offering(svc, service, data, current).id
            except ItsmError as exc:
                if _refused(exc):
                    raise
                fields = dict(exc.fields or {})
                _row_errors(fields.pop("form", None), form_rows, "f", errors)
                _row_errors(fields.pop("tasks", None), task_rows, "t", errors)
                errors.update(_errors(ItsmError(exc.message, fields=fields))
                              if fields or not errors else {})
            else:
                flash(f"Offering {values['name']} saved.", "success")
                return redirect(url_for(".offering_edit", slug=slug, offering_id=saved))
    with itsm.unit_of_work(page_actor()) as svc:
        service = catalog.service_dict(svc, catalog.get_service(svc, slug))
        groups = list(svc.session.scalars(select(Group.name).order_by(Group.name)))
    values["form"] = [*values["form"], {}] if not values["form"] or any(
        values["form"][-1].values()) else values["form"]
    values["tasks"] = [*values["tasks"], {}] if not values["tasks"] or any(
        values["tasks"][-1].values()) else values["tasks"]
    return render_page("catalog/admin/offering_form.html", 422 if errors else 200,
                       service=service, offering_id=offering_id, values=values,
                       errors=errors, groups=groups, types=[(t, TYPE_LABELS[t])
                                                            for t in FIELD_TYPES],
                       approvals=[(a, APPROVAL_LABELS[a]) for a in APPROVALS],
                       orders=[(o, o.capitalize()) for o in TASK_ORDERS])


__all__ = ["PAGES", "bp"]
