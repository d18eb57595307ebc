"""Documents as PDF: a Jinja template of the application rendered by WeasyPrint, so that a
printed statement or review is the page its reader saw (the template alone, without the
pages' request context, so the command line and the background worker render it too)."""

from __future__ import annotations

from typing import Any

from flask import current_app

from itsm.core.errors import ItsmError


def render_pdf(template: str, **context: Any) -> bytes:
    """The PDF of ``template`` (a template name any blueprint of the app provides)."""
    try:  # a heavy import, needed only when a PDF is asked for
        from weasyprint import HTML
    except OSError as exc:  # the Python package is there, the system's Pango is not
        raise ItsmError("a PDF needs the Pango library: install it (Debian: apt-get "
                        f"install libpango-1.0-0 libpangoft2-1.0-0) ({exc})") from None
    html = current_app.jinja_env.get_template(template).render(**context)
    return HTML(string=html).write_pdf()
