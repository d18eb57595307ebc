"""Catalog reports: requests per service and agency, fulfilment time against the
offerings' targets, and feedback counts. Served as JSON and by ``itsm catalog report``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import func, select

from itsm.plugin import Agency, InputError, RecordService, ValidationError, parse_int, utcnow
from itsm.plugins.catalog.models import FEEDBACK_STATES, Feedback, Service, ServiceRequest

DEFAULT_DAYS = 90
MAX_DAYS = 3650


class ReportOut(Schema):
    days = fields.Integer()
    since = fields.String()
    requests = fields.Integer()
    by_service = fields.List(fields.Dict())
    by_agency = fields.List(fields.Dict())
    fulfilment = fields.List(fields.Dict())
    feedback = fields.Dict()


def parse_days(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_DAYS
    try:
        return parse_int(raw, "days", minimum=1, maximum=MAX_DAYS)
    except InputError:
        raise ValidationError(f"days is a whole number from 1 to {MAX_DAYS}",
                              fields={"days": [f"from 1 to {MAX_DAYS}"]}) from None


def summary(svc: RecordService, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The report of the last ``days`` days (needs ``catalog.report``)."""
    svc.require("catalog.report")
    session = svc.session
    since = utcnow() - timedelta(days=days)
    recent = ServiceRequest.created_at >= since
    names = dict(session.execute(select(Service.id, Service.name)).all())
    by_service = [{"service": names.get(sid, "(removed)"), "requests": n}
                  for sid, n in session.execute(
                      select(ServiceRequest.service_id, func.count(ServiceRequest.id))
                      .where(recent).group_by(ServiceRequest.service_id)
                      .order_by(func.count(ServiceRequest.id).desc())).all()]
    codes = dict(session.execute(select(Agency.id, Agency.code)).all())
    by_agency = [{"agency": codes.get(aid, "(none)"), "requests": n}
                 for aid, n in session.execute(
                     select(ServiceRequest.agency_id, func.count(ServiceRequest.id))
                     .where(recent).group_by(ServiceRequest.agency_id)
                     .order_by(func.count(ServiceRequest.id).desc())).all()]
    per_service: dict[int | None, dict[str, Any]] = {}
    for r in session.scalars(select(ServiceRequest).where(
            recent, ServiceRequest.fulfilled_at.is_not(None))):
        row = per_service.setdefault(r.service_id, {
            "service": names.get(r.service_id, "(removed)"), "fulfilled": 0,
            "total_minutes": 0.0, "within_target": 0, "with_target": 0})
        minutes = (r.fulfilled_at - r.created_at).total_seconds() / 60
        row["fulfilled"] += 1
        row["total_minutes"] += minutes
        if r.resolution_minutes is not None:
            row["with_target"] += 1
            # Wall-clock time: a conservative view of the working-time SLA clock.
            row["within_target"] += int(minutes <= r.resolution_minutes)
    fulfilment = []
    for row in sorted(per_service.values(), key=lambda x: x["service"]):
        fulfilment.append({
            "service": row["service"], "fulfilled": row["fulfilled"],
            "mean_minutes": round(row["total_minutes"] / row["fulfilled"], 1),
            "within_target": row["within_target"], "with_target": row["with_target"],
            "percent_within_target": round(100 * row["within_target"] / row["with_target"], 1)
            if row["with_target"] else None})
    counts = dict(session.execute(select(Feedback.state, func.count(Feedback.id))
                                  .where(Feedback.created_at >= since)
                                  .group_by(Feedback.state)).all())
    kinds = dict(session.execute(select(Feedback.kind, func.count(Feedback.id))
                                 .where(Feedback.created_at >= since)
                                 .group_by(Feedback.kind)).all())
    return {"days": days, "since": since.isoformat(),
            "requests": sum(r["requests"] for r in by_service),
            "by_service": by_service, "by_agency": by_agency, "fulfilment": fulfilment,
            "feedback": {"by_state": {s: counts.get(s, 0) for s in FEEDBACK_STATES},
                         "by_kind": kinds, "total": sum(counts.values())}}


def text_report(data: dict[str, Any]) -> str:
    lines = [f"Catalog report, last {data['days']} days: {data['requests']} requests", "",
             "Requests per service:"]
    lines += [f"  {r['requests']:>6}  {r['service']}" for r in data["by_service"]] or ["  -"]
    lines += ["", "Requests per agency:"]
    lines += [f"  {r['requests']:>6}  {r['agency']}" for r in data["by_agency"]] or ["  -"]
    lines += ["", "Fulfilment against target:"]
    for r in data["fulfilment"]:
        pct = "-" if r["percent_within_target"] is None else f"{r['percent_within_target']}%"
        lines.append(f"  {r['service']}: {r['fulfilled']} fulfilled, mean "
                     f"{r['mean_minutes']} min, within target {pct}")
    if not data["fulfilment"]:
        lines.append("  -")
    fb = data["feedback"]
    lines += ["", "Feedback: " + ", ".join(f"{k} {v}" for k, v in fb["by_state"].items())
              + f" (total {fb['total']})"]
    return "\n".join(lines)
