"""The "webhook" channel: the event as JSON, signed, POSTed to the subscription's URL.

The payload (``format = "json"``) is the stable, versioned schema ``itsm.event/1``::

    {"schema": "itsm.event/1",
     "id": 42,                          # the event id: the same on every retry
     "event": "record.commented",
     "time": "2025-01-31T12:00:00+00:00",
     "record": {"number": "INC0000042", "type": "incident", "title": "...",
                "state": "in_progress", "priority": 3} | null,
     "actor": "agent@example.org" | null,
     "data": {...}}                     # the rest of the event: changes, body, public...

``format = "slack"`` sends ``{"text": "..."}``, which Slack and Microsoft Teams incoming
webhooks show as a message.

Headers: ``X-Itsm-Event`` (the name), ``X-Itsm-Event-Id`` (the id: a receiver that sees
an id twice has seen a retry), ``Idempotency-Key`` (the same on every retry of one event
to one subscription: a receiver that keeps the keys it handled acts on each delivery
once, even when a worker died after sending and another sent again) and
``X-Itsm-Signature: sha256=<hex>``, the HMAC-SHA256 of
the exact body bytes with the subscription's secret. A receiver checks it with
``hmac.compare_digest``. Any answer outside 2xx, a timeout or a refused connection
raises, and the outbox retries the delivery with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from itsm.adapters.webhooks.models import WebhookSubscription
from itsm.plugin import ITSM_VERSION, EventMessage, Recipient

log = logging.getLogger("itsm.notify.webhook")

CHANNEL = "webhook"
SCHEMA = "itsm.event/1"


def pattern_matches(pattern: str, name: str) -> bool:
    """``*`` matches every event, ``record.*`` every event under ``record.``."""
    return pattern == "*" or pattern == name or (
        pattern.endswith(".*") and name.startswith(pattern[:-1]))


def payload(message: EventMessage) -> dict[str, Any]:
    data = {k: v for k, v in message.payload.items() if k not in ("record", "actor")}
    return {"schema": SCHEMA, "id": message.id, "event": message.name,
            "time": message.created_at.isoformat(), "record": message.record,
            "actor": message.actor, "data": data}


def text_payload(message: EventMessage) -> dict[str, Any]:
    record = message.record or {}
    who = f" by {message.actor}" if message.actor else ""
    if record.get("number"):
        text = f"[{record['number']}] {record.get('title', '')}: {message.name}{who}"
        if record.get("state"):
            text += f" (state {record['state']})"
    else:
        text = f"{message.name}{who}"
    return {"text": text}


def idempotency_key(message: EventMessage, recipient: Recipient) -> str:
    """The same on every retry of one event to one subscription, different otherwise."""
    return f"itsm-event-{message.id}-webhook-{recipient.address}"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(message: EventMessage, fmt: str, max_bytes: int) -> bytes:
    if fmt == "slack":
        return json.dumps(text_payload(message)).encode()
    document = payload(message)
    body = json.dumps(document, default=str, sort_keys=True).encode()
    if len(body) > max_bytes:  # a huge comment: keep the envelope, say what was cut
        document["data"] = {"truncated": True}
        body = json.dumps(document, default=str, sort_keys=True).encode()
    return body


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code} {exc.reason}") from None
    if not 200 <= status < 300:
        raise RuntimeError(f"{url} answered {status}")
    return status


class WebhookChannel:
    """Delivers an event to one subscription (the recipient address is its id)."""

    name = CHANNEL

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        from itsm.plugin import current_itsm

        itsm = current_itsm()
        settings = itsm.plugin_settings("webhooks")
        with itsm.Session() as session:
            subscription = session.get(WebhookSubscription, int(recipient.address))
            if subscription is None or not subscription.active:
                # Removed meanwhile: nobody is waiting for this delivery any more.
                log.info("event %s: webhook %s is gone; not sent", message.id,
                         recipient.address)
                return
            url, secret, fmt = subscription.url, subscription.secret, subscription.format
        body = encode(message, fmt, int(settings["max_payload_bytes"]))
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"itsm-webhooks/{ITSM_VERSION}",
                   "X-Itsm-Event": message.name,
                   "X-Itsm-Event-Id": str(message.id),
                   "Idempotency-Key": idempotency_key(message, recipient),
                   "X-Itsm-Signature": sign(secret, body)}
        status = post(url, body, headers, float(settings["timeout"]))
        log.info("event %s posted to webhook %s (%s)", message.id, recipient.address, status)
