"""Creating, listing and removing webhook subscriptions (shared by the API and the CLI)."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from itsm.adapters.webhooks.models import WebhookSubscription
from itsm.plugin import NotFound, ValidationError

FORMATS = ("json", "slack")
# An event name, a prefix wildcard (record.*) or * alone.
PATTERN = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("url: an http:// or https:// address",
                              fields={"url": ["not an http(s) URL"]})
    return url


def check_events(events: list[str]) -> str:
    cleaned = [e.strip() for e in events if e.strip()]
    bad = [e for e in cleaned if not PATTERN.match(e)]
    if not cleaned or bad:
        raise ValidationError("events: event names, prefixes like record.* or *",
                              fields={"events": [f"not an event pattern: {e!r}" for e in bad]
                                      or ["at least one"]})
    return ",".join(cleaned)


def create(session, *, url: str, events: list[str], secret: str | None = None,
           fmt: str = "json", description: str = "", created_by: str = "") \
        -> tuple[WebhookSubscription, str]:
    """Add a subscription; return it and its secret (generated when not given)."""
    if fmt not in FORMATS:
        raise ValidationError(f"format: one of {', '.join(FORMATS)}",
                              fields={"format": [f"one of {', '.join(FORMATS)}"]})
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16 or len(secret) > 200:
        raise ValidationError("secret: 16 to 200 characters",
                              fields={"secret": ["16 to 200 characters"]})
    subscription = WebhookSubscription(url=check_url(url), events=check_events(events),
                                       secret=secret, format=fmt,
                                       description=description[:200],
                                       created_by=created_by[:254])
    session.add(subscription)
    session.flush()
    return subscription, secret


def listed(session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription)
                                .order_by(WebhookSubscription.id)))


def remove(session, subscription_id: int) -> WebhookSubscription:
    subscription = session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"no webhook {subscription_id} (itsm webhooks list)")
    session.delete(subscription)
    return subscription


def to_dict(subscription: WebhookSubscription) -> dict[str, Any]:
    """The subscription as shown after creation: the secret only by its first characters."""
    return {"id": subscription.id, "url": subscription.url, "events": subscription.patterns,
            "format": subscription.format, "description": subscription.description,
            "active": subscription.active, "secret_prefix": subscription.secret[:4],
            "created_by": subscription.created_by,
            "created_at": subscription.created_at.isoformat()}


def matching(session, name: str) -> list[WebhookSubscription]:
    from itsm.adapters.webhooks.delivery import pattern_matches

    return [s for s in session.scalars(select(WebhookSubscription)
                                       .where(WebhookSubscription.active.is_(True))
                                       .order_by(WebhookSubscription.id))
            if any(pattern_matches(p, name) for p in s.patterns)]
