"""The admin area's blueprint: the home page and the admin audit.

The other core admin pages (users, agencies and groups, plugins) add their views to
:data:`bp` from their own modules, imported at the end of this one.
"""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from itsm.core import inputs
from itsm.core.admin import kit
from itsm.core.admin.kit import admin_view
from itsm.core.admin.models import AdminAudit
from itsm.core.context import current_itsm
from itsm.core.models import User
from itsm.core.pagekit import page_actor, page_blueprint, render_page, signed_in_actor

bp = page_blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
AUDIT_PAGE = 50


@bp.app_context_processor
def _admin_context() -> dict[str, Any]:
    # For every template extending admin/base.html, the plugins' included.
    return {"admin_sidebar": lambda: kit.sidebar(signed_in_actor())}


@bp.route("/")
@admin_view()
def home():
    return render_page("admin/home.html", sections=kit.sidebar(page_actor()))


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


# The other core admin pages add their views to bp (imported for that alone).
from itsm.core.admin import people_views  # noqa: E402, F401
