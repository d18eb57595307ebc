"""Change management reports: success rate, emergency share, changes causing incidents."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import or_, select

from itsm.plugin import (
    Actor,
    InputError,
    Link,
    Record,
    RecordService,
    ValidationError,
    parse_int,
    utcnow,
)
from itsm.plugins.change import service as changes
from itsm.plugins.change.models import Change

DEFAULT_DAYS = 90
MAX_DAYS = 3650


class CausingChange(Schema):
    number = fields.String()
    title = fields.String()
    review_outcome = fields.String()
    incidents = fields.List(fields.String())


class ChangeReportSummary(Schema):
    since = fields.String()
    until = fields.String()
    days = fields.Integer()
    created = fields.Integer(metadata={"description": "changes opened in the period"})
    by_type = fields.Dict(keys=fields.String(), values=fields.Integer())
    emergency_share = fields.Float(allow_none=True, metadata={
        "description": "per cent of the period's changes that were emergency changes"})
    reviewed = fields.Integer(metadata={"description": "changes closed after review in "
                                                       "the period"})
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer())
    success_rate = fields.Float(allow_none=True, metadata={
        "description": "per cent of reviewed changes whose outcome was success"})
    causing_incidents = fields.Integer()
    causing_incidents_share = fields.Float(allow_none=True)
    changes_causing_incidents = fields.List(fields.Nested(CausingChange))


def parse_days(raw: str | None) -> int:
    """The report period in days, from a query argument (422 when it is not 1..3650)."""
    if raw in (None, ""):
        return DEFAULT_DAYS
    try:
        return parse_int(raw, "days", minimum=1, maximum=MAX_DAYS)
    except InputError:
        raise ValidationError(f"days: a whole number from 1 to {MAX_DAYS}",
                              fields={"days": [f"a whole number from 1 to {MAX_DAYS}"]}) from None


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def summary(service: RecordService, days: int, now: datetime | None = None) \
        -> dict[str, Any]:
    """The report over the last ``days`` days."""
    service.require(changes.REPORT_PERMISSION)
    until = now or utcnow()
    since = until - timedelta(days=days)
    session = service.session
    created = session.scalars(select(Change).where(Change.created_at >= since,
                                                   Change.created_at < until)).all()
    by_type = {t: 0 for t in ("standard", "normal", "emergency")}
    for change in created:
        by_type[change.change_type] = by_type.get(change.change_type, 0) + 1
    reviewed = session.scalars(select(Change).where(
        Change.state == "closed", Change.closed_at >= since, Change.closed_at < until)
        .order_by(Change.closed_at)).all()
    outcomes = {o: 0 for o in ("success", "partial", "failed")}
    for change in reviewed:
        outcomes[change.review_outcome] = outcomes.get(change.review_outcome, 0) + 1
    causing = []
    for change in [*created, *[c for c in reviewed if c not in created]]:
        numbers = _incident_numbers(session, change)
        if numbers:
            causing.append({"number": change.number, "title": change.title,
                            "review_outcome": change.review_outcome, "incidents": numbers})
    causing.sort(key=lambda c: c["number"])
    considered = len({c.id for c in [*created, *reviewed]})
    return {"since": since.isoformat(), "until": until.isoformat(), "days": days,
            "created": len(created), "by_type": by_type,
            "emergency_share": _percent(by_type["emergency"], len(created)),
            "reviewed": len(reviewed), "outcomes": outcomes,
            "success_rate": _percent(outcomes["success"], len(reviewed)),
            "causing_incidents": len(causing),
            "causing_incidents_share": _percent(len(causing), considered),
            "changes_causing_incidents": causing}


def _incident_numbers(session, change: Change) -> list[str]:
    """Incidents linked as caused by the change (either direction), when incident
    management is enabled; otherwise none can be told apart from other records."""
    rt = changes.incident_type()
    if rt is None:
        return []
    ids = select(Link.target_id).where(Link.source_id == change.id,
                                       Link.kind == changes.CAUSED)
    back = select(Link.source_id).where(Link.target_id == change.id, Link.kind == "caused_by")
    return list(session.scalars(select(Record.number).where(
        Record.type == rt.name, or_(Record.id.in_(ids), Record.id.in_(back)))
        .order_by(Record.number)))


def report_for(actor: Actor, days: int) -> dict[str, Any]:
    """The report as ``actor`` may see it, in a transaction of its own."""
    from itsm.plugin import current_itsm

    with current_itsm().unit_of_work(actor) as service:
        return summary(service, days)


def text_report(data: dict[str, Any]) -> str:
    """The report as lines for the terminal."""
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} %"

    lines = [f"Changes, last {data['days']} days",
             f"  opened            {data['created']} (standard {data['by_type']['standard']}, "
             f"normal {data['by_type']['normal']}, emergency {data['by_type']['emergency']})",
             f"  emergency share   {pct(data['emergency_share'])}",
             f"  reviewed          {data['reviewed']} (success {data['outcomes']['success']}, "
             f"partial {data['outcomes']['partial']}, failed {data['outcomes']['failed']})",
             f"  success rate      {pct(data['success_rate'])}",
             f"  causing incidents {data['causing_incidents']}"]
    for item in data["changes_causing_incidents"]:
        lines.append(f"    {item['number']} {item['title']}: {', '.join(item['incidents'])}")
    return "\n".join(lines)
