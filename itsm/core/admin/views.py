"""The admin area's home page (the install's health and every admin page) and the audit."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from itsm.core import inputs
from itsm.core.admin import kit
from itsm.core.admin.blueprint import bp
from itsm.core.admin.install_views import health_context
from itsm.core.admin.kit import admin_view
from itsm.core.admin.models import AdminAudit
from itsm.core.context import current_itsm
from itsm.core.models import User
from itsm.core.pagekit import page_actor, render_page

AUDIT_PAGE = 50


@bp.route("/")
@admin_view()
def home():
    return render_page("admin/home.html", sections=kit.sidebar(page_actor()),
                       **health_context())


@bp.route("/audit")
@admin_view()
def audit():
    args = _audit_args()
    query = (select(AdminAudit, User.name).outerjoin(User, AdminAudit.actor_id == User.id)
             .order_by(AdminAudit.id.desc()).limit(AUDIT_PAGE + 1))
    if args["action"]:
        query = query.where(AdminAudit.action.startswith(args["action"], autoescape=True))
    if args["before"]:
        query = query.where(AdminAudit.id < args["before"])
    with current_itsm().Session() as session:
        rows = session.execute(query).all()
    entries = [{"id": e.id, "at": e.created_at, "who": name or e.actor_email,
                "action": e.action, "target": e.target, "before": e.before or {},
                "after": e.after or {}} for e, name in rows[:AUDIT_PAGE]]
    more = entries[-1]["id"] if len(rows) > AUDIT_PAGE else None
    return render_page("admin/audit.html", entries=entries, more=more, action=args["action"])


def _audit_args() -> dict[str, Any]:
    action = request.args.get("action", "").strip()[:64]
    try:
        before = inputs.parse_int(request.args["before"], "before", minimum=1,
                                  maximum=inputs.MAX_DB_INTEGER) \
            if request.args.get("before") else None
    except inputs.InputError:
        before = None  # a mangled paging link: the first page
    return {"action": action, "before": before if before and before > 0 else None}
