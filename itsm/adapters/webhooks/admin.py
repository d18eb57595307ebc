"""The webhooks' administration page: subscriptions (a URL, the events it wants, JSON or
Slack/Teams format), the secret shown once on creation, removal after a question, and a
preview of the body a subscription receives. Through the same functions as
``/api/v1/webhooks`` and ``itsm webhooks`` (:mod:`itsm.adapters.webhooks.subscriptions`)."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, request, url_for

from itsm.adapters.webhooks import subscriptions
from itsm.adapters.webhooks.delivery import encode
from itsm.adapters.webhooks.models import WebhookSubscription
from itsm.plugin import (
    AdminPage,
    EventMessage,
    ItsmError,
    admin_view,
    current_itsm,
    field_messages,
    page_actor,
    page_blueprint,
    record_admin_audit,
    render_page,
    utcnow,
)

bp = page_blueprint("webhooks_admin", __name__, url_prefix="/admin/webhooks")
PAGES = [AdminPage("Webhooks", "webhooks_admin.webhooks", "Notifications",
                   description="addresses told of events, signed, in JSON or as "
                   "Slack/Teams messages")]
FORMAT_LABELS = {"json": "Signed JSON", "slack": "Slack / Teams message"}
SAMPLE_EVENTS = ("record.created", "record.transitioned", "record.commented",
                 "sla.warning", "sla.breached")


def sample(event: str) -> EventMessage:
    """An event as a subscription would receive it, for the preview."""
    record = {"number": "INC0000042", "type": "incident", "title": "VPN drops every hour",
              "state": "in_progress", "priority": 2}
    return EventMessage(id=0, name=event, record=record, actor="Ann Admin",
                        payload={"record": record, "actor": "Ann Admin",
                                 "body": "Restarted the concentrator; watching it."},
                        created_at=utcnow())


@bp.route("/", methods=["GET", "POST"])
@admin_view()
def webhooks():
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    values = {"url": "", "events": "record.*", "format": "json", "description": ""}
    created: dict[str, Any] | None = None
    if request.method == "POST":
        values = {k: request.form.get(k, "")[:2000].strip() for k in values}
        events = [e for e in values["events"].replace(",", "\n").splitlines() if e.strip()]
        try:
            with itsm.unit_of_work(page_actor()) as svc:
                row, secret = subscriptions.create(
                    svc.session, url=values["url"], events=events, fmt=values["format"],
                    description=values["description"], created_by=svc.actor.email)
                created = {**subscriptions.to_dict(row), "secret": secret}
                record_admin_audit(svc.session, svc.actor, "webhook.add",
                                   f"webhook {row.id}", None,
                                   {k: v for k, v in created.items() if k != "secret"})
        except ItsmError as exc:
            if exc.status in (401, 403, 404):
                raise
            errors = field_messages(exc.fields) or {"_": [exc.message]}
        else:
            values = {"url": "", "events": "record.*", "format": "json", "description": ""}
    with itsm.Session() as session:
        rows = [subscriptions.to_dict(s) for s in subscriptions.listed(session)]
    return render_page("webhooks/admin/webhooks.html", 422 if errors else 200, rows=rows,
                       values=values, errors=errors, created=created, formats=FORMAT_LABELS)


@bp.route("/<int:subscription_id>", methods=["GET", "POST"])
@admin_view()
def webhook(subscription_id: int):
    """One subscription: the body it receives for a sample event, and its removal."""
    itsm = current_itsm()
    with itsm.Session() as session:
        row = session.get(WebhookSubscription, subscription_id)
        if row is None:
            return render_page("webhooks/admin/webhook.html", 404, row=None)
        data = subscriptions.to_dict(row)
    action = request.form.get("action") if request.method == "POST" else None
    if action == "confirm-remove":
        with itsm.unit_of_work(page_actor()) as svc:
            subscriptions.remove(svc.session, subscription_id)
            record_admin_audit(svc.session, svc.actor, "webhook.remove",
                               f"webhook {subscription_id}", data, None)
        flash(f"The webhook to {data['url']} is removed.", "success")
        return redirect(url_for(".webhooks"))
    event = request.args.get("event", SAMPLE_EVENTS[0])[:100]
    if event not in SAMPLE_EVENTS:
        event = SAMPLE_EVENTS[0]
    body = json.dumps(json.loads(encode(sample(event), data["format"], 1 << 20)), indent=2)
    return render_page("webhooks/admin/webhook.html", row=data, body=body, event=event,
                       events=SAMPLE_EVENTS, asking=action == "remove",
                       formats=FORMAT_LABELS)


__all__ = ["PAGES", "bp", "sample"]
