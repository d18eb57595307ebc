"""The e-mail channel's administration page: which events have their own mail template
(built in, or in the folder of setting ``templates_path``) and a preview of the mail an
event gives, subject, text and HTML, rendered by the channel's own
:func:`~itsm.adapters.email.channel.build_message` from a sample event. Templates are
files; an admin changes them in ``templates_path`` and sees the result here."""

from __future__ import annotations

from pathlib import Path

from flask import Response, request

from itsm.adapters.email.channel import TEMPLATES, build_message, plugin_template_folders
from itsm.plugin import (
    AdminPage,
    EventMessage,
    admin_view,
    current_itsm,
    page_blueprint,
    render_page,
    utcnow,
)

bp = page_blueprint("email_admin", __name__, url_prefix="/admin/email")
PAGES = [AdminPage("E-mail templates", "email_admin.templates", "Notifications",
                   description="the mails events send, previewed from a sample event")]
# Not an e-mail template's preview: a mail's HTML shown on its own, run as nothing.
HTML_PREVIEW_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
                    "img-src data:; sandbox")


def template_names(extra: str) -> list[tuple[str, str]]:
    """``(event, where)`` of every event with its own template; ``default`` is the rest."""
    found: dict[str, str] = {}
    plugins = [(Path(folder) / "email", f"plugin {Path(folder).parent.name}")
               for folder in plugin_template_folders()]
    for folder, where in (*plugins, (TEMPLATES / "email", "built in"),
                          (Path(extra) / "email" if extra else None, "templates_path")):
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.txt")):
            found[path.stem] = where
    return sorted(found.items())


def _preview(event: str):
    itsm = current_itsm()
    settings = itsm.plugin_settings("email")
    record = {"number": "INC0000042", "type": "incident", "title": "VPN drops every hour",
              "state": "in_progress", "priority": 2}
    message = EventMessage(id=0, name=event, record=record, actor="Ann Admin",
                           payload={"record": record, "actor": "Ann Admin",
                                    "body": "Restarted the concentrator; watching it.",
                                    "reason": "the sender is not known"},
                           created_at=utcnow())
    base = str(settings.get("base_url") or request.host_url).rstrip("/")
    return build_message(message, "pat@example.org", settings, f"{base}/records/incidents/"
                         "INC0000042", itsm.settings.get("secret_key", ""))


def _event(names: list[tuple[str, str]]) -> str:
    wanted = request.args.get("event", "")[:100]
    known = {n for n, _ in names}
    return wanted if wanted in known else ("record.created" if "record.created" in known
                                           else "default")


@bp.route("/templates")
@admin_view()
def templates():
    settings = current_itsm().plugin_settings("email")
    names = template_names(str(settings.get("templates_path") or ""))
    event = _event(names)
    mail = _preview(event)
    text = mail.get_body(("plain",))
    return render_page("email/admin/templates.html", templates=names, event=event,
                       subject=mail["Subject"], sender=mail["From"],
                       text=text.get_content() if text else "",
                       folder=settings.get("templates_path") or "")


@bp.route("/templates/preview.html")
@admin_view()
def html_preview():
    settings = current_itsm().plugin_settings("email")
    mail = _preview(_event(template_names(str(settings.get("templates_path") or ""))))
    part = mail.get_body(("html",))
    response = Response(part.get_content() if part else "", mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_PREVIEW_CSP
    return response


__all__ = ["PAGES", "bp", "template_names"]
