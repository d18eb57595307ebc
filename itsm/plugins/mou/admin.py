"""The agreement plugin's administration page: the standard MOU template (sections 1 to
10 and appendices A to G), published as a new version through
:func:`itsm.plugins.mou.service.publish_template`, as the API does."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    AdminPage,
    ItsmError,
    admin_view,
    current_itsm,
    field_messages,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.mou import service
from itsm.plugins.mou import template as templates

bp = page_blueprint("mou_admin", __name__, url_prefix="/admin/mou")
PAGES = [AdminPage("Agreement template", "mou_admin.template", "Agreements (MOU)",
                   permission=service.TEMPLATE_PERMISSION,
                   description="the standard sections and appendices new agreements "
                   "start from")]


@bp.route("/template", methods=["GET", "POST"])
@admin_view(service.TEMPLATE_PERMISSION)
def template():
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    with itsm.Session() as session:
        latest = templates.latest(session)
        version = latest.version if latest is not None else 0
        sections = [dict(s) for s in (latest.sections if latest is not None
                                      else templates.standard_sections())]
    note = ""
    if request.method == "POST":
        sections = [{"key": s["key"],
                     "title": request.form.get(f"title-{s['key']}", "")[:300].strip(),
                     "body": request.form.get(f"body-{s['key']}", "")
                     .replace("\r\n", "\n")[:100_000]} for s in sections]
        note = request.form.get("note", "")[:500].strip()
        try:
            with itsm.unit_of_work(page_actor()) as svc:
                published = service.publish_template(svc, sections, note).version
        except ItsmError as exc:
            if exc.status in (401, 403, 404):
                raise
            errors = _section_errors(exc, sections)
        else:
            flash(f"Template version {published} published: new agreements start from "
                  "it; agreements made earlier keep theirs.", "success")
            return redirect(url_for(".template"))
    return render_page("mou/admin/template.html", 422 if errors else 200, version=version,
                       sections=sections, note=note, errors=errors)


def _section_errors(exc: ItsmError, sections: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The service's messages by section position -> by the section's inputs."""
    out: dict[str, list[str]] = {}
    by_position = (exc.fields or {}).get("sections")
    if isinstance(by_position, dict):
        for position, messages in field_messages(by_position).items():
            if position.isdigit() and int(position) < len(sections):
                key = sections[int(position)]["key"]
                field = "body" if any(m.startswith("body") for m in messages) else "title"
                out.setdefault(f"{field}-{key}", []).extend(messages)
            else:
                out.setdefault("_", []).extend(messages)
    return out or {"_": [exc.message]}


__all__ = ["PAGES", "bp"]
