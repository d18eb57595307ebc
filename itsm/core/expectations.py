"""What a requester may expect of a record: its priority in words, when we aim to respond
and to resolve (from its service level clocks, in the reader's zone), and whether it
waits for the requester. Pages call :func:`expectations`; the acknowledgement mail reads
the same figures from the ``record.created`` event's payload (``expectations``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.context import current_itsm
from itsm.core.models import Record, User
from itsm.core.sla_models import SlaClock

if TYPE_CHECKING:
    from itsm.core.state import Itsm

# Words for the numeric priority (1 is the most urgent), as requesters read them.
PRIORITY_WORDS = {1: "Critical", 2: "High", 3: "Moderate", 4: "Low", 5: "Planning"}


def priority_label(value: Any) -> str:
    """``2`` -> "2 – High", as the console shows a priority; "" for none."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return str(value or "")
    words = PRIORITY_WORDS.get(number)
    return f"{number} – {words}" if words else str(number)


def duration_words(minutes: int) -> str:
    """``90`` -> "1.5 hours", ``60`` -> "1 hour", ``2880`` -> "2 days"."""
    def unit(amount: float, name: str) -> str:
        text = f"{amount:g}"
        return f"{text} {name}" if text == "1" else f"{text} {name}s"
    if minutes < 60:
        return unit(minutes, "minute")
    if minutes < 48 * 60:
        return unit(round(minutes / 60, 1), "hour")
    return unit(round(minutes / 1440, 1), "day")


def zone_for(session: Session, user_id: int | None, itsm: Itsm | None = None) -> ZoneInfo:
    """The zone a user reads times in: their own, else the install's."""
    from itsm.core.display import zone_of
    name = session.scalar(select(User.time_zone).where(User.id == user_id)) if user_id \
        else None
    settings = (itsm or current_itsm()).settings
    return zone_of(name) or zone_of(str(settings.get("time_zone") or "UTC")) or ZoneInfo("UTC")


def waits_for_requester(record: Record, itsm: Itsm | None = None) -> bool:
    """True when the record's state waits for its requester (a ``customer`` state; a hold
    of another kind, such as a supplier's, does not)."""
    rt = (itsm or current_itsm()).types.get(record.type)
    state = rt.workflow.states.get(record.state)
    if state is None or not state.customer:
        return False
    return getattr(record, "hold_kind", "customer") in ("customer", None)


def expectations(session: Session, record: Record, zone: ZoneInfo | None = None,
                 itsm: Itsm | None = None) -> dict[str, Any]:
    """The record's expectations for a reader in ``zone`` (default: the requester's).

    Keys: ``priority_words``; ``summary`` ("High — we aim to respond within 1 hour and
    resolve within 8 hours"; without a priority only the aim, "" without either);
    ``response`` and ``resolution`` (each None without a clock, else ``{"target", "due",
    "met", "paused"}`` with ``due`` the local time or "" when the clock is stopped or
    paused); ``waiting_for_you``; ``zone``, the IANA name of the zone the due times are in
    (the reader's own, else the install's setting ``time_zone``), for pages and mails to
    say, since an abbreviation such as "+04" names no place.
    """
    from itsm.core.display import local_time
    zone = zone or zone_for(session, record.requester_id, itsm)
    clocks = {c.metric: c for c in session.scalars(
        select(SlaClock).where(SlaClock.record_id == record.id))}
    out: dict[str, Any] = {"priority": record.priority,
                           "priority_words": PRIORITY_WORDS.get(record.priority or 0, ""),
                           "waiting_for_you": waits_for_requester(record, itsm),
                           "zone": zone.key}
    aims = []
    for metric, verb in (("response", "respond"), ("resolution", "resolve")):
        clock = clocks.get(metric)
        if clock is None or clock.target_minutes is None:
            out[metric] = None
            continue
        target = duration_words(clock.target_minutes)
        aims.append(f"{verb} within {target}")
        due = clock.breach_due_at if clock.state == "running" else None
        out[metric] = {"target": target, "due": local_time(due, zone) if due else "",
                       "met": clock.state == "met", "paused": clock.state == "paused"}
    words = out["priority_words"]
    aim = f"we aim to {' and '.join(aims)}" if aims else ""
    out["summary"] = f"{words} — {aim}" if words and aim else words or aim.capitalize()
    return out
