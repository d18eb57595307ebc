"""The admin area's blueprint, at ``/admin``: every core admin page adds its views to it
(:mod:`~itsm.core.admin.views`, ``people_views``, ``install_views``)."""

from __future__ import annotations

from typing import Any

from itsm.core.admin import kit
from itsm.core.pagekit import page_blueprint, signed_in_actor

bp = page_blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")


@bp.app_context_processor
def _admin_context() -> dict[str, Any]:
    # For every template extending admin/base.html, the plugins' included.
    return {"admin_sidebar": lambda: kit.sidebar(signed_in_actor())}

