"""Reading and writing a user's notification preference rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from itsm.adapters.email.models import NotificationPreference

# An event name, a prefix wildcard (record.*) or * alone.
PATTERN = r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$"


def rules_of(session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(NotificationPreference)
                           .where(NotificationPreference.user_id == user_id)
                           .order_by(NotificationPreference.channel,
                                     NotificationPreference.event)).all()
    return [{"event": r.event, "channel": r.channel, "enabled": r.enabled} for r in rows]


def replace(session, user_id: int, rules: list[dict[str, Any]]) -> None:
    """Make ``rules`` the user's whole set (a later rule for the same event wins)."""
    session.execute(delete(NotificationPreference)
                    .where(NotificationPreference.user_id == user_id))
    unique = {(r.get("channel") or "email", r["event"]): bool(r["enabled"]) for r in rules}
    for (channel, event), enabled in unique.items():
        session.add(NotificationPreference(user_id=user_id, channel=channel, event=event,
                                           enabled=enabled))


def set_rule(session, user_id: int, event: str, enabled: bool, channel: str = "email") -> None:
    rule = session.scalar(select(NotificationPreference).where(
        NotificationPreference.user_id == user_id, NotificationPreference.channel == channel,
        NotificationPreference.event == event))
    if rule is None:
        session.add(NotificationPreference(user_id=user_id, channel=channel, event=event,
                                           enabled=enabled))
    else:
        rule.enabled = enabled
