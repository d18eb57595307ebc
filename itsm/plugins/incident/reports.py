"""Incident reports for service managers: volumes, times, SLA compliance and backlog.

One computation, :func:`summary`, feeds the JSON route, ``itsm incident report`` and the
dashboard page, so the three never disagree. Reports are for IT staff only.

What the figures mean
    The *period* is ``since`` (inclusive) to ``until`` (exclusive). Counts, mean times,
    SLA compliance and the weekly compliance and categories are about the incidents
    **opened** in the period (a cohort): a service manager reads "of what came in, how
    was it handled". The weekly *resolved* figure counts incidents **resolved** in each
    week, whenever they were opened, so opened and resolved can be compared week by week.
    The backlog is what is open right now, whatever the period.

Mean times come from the SLA clocks (:class:`itsm.core.sla_models.SlaClock`): the mean of
``met_at - started_at`` of the clocks that were met, in wall-clock minutes (time on hold
included: that is what the requester lived through; the clocks' own working-time figures
judge compliance). A reopened incident's resolution clock counts once it is met again.
Cancelled incidents count in the volumes but not in times or compliance: cancelling
stops their clocks without anything having been answered or solved.

SLA compliance of a metric is *met in time / (met in time + breached)*, in percent. A
clock counts as breached when it was met late, or when it is still running past its
target; a clock still running inside its target, or without a target, is not decided
yet and counts in neither. ``None`` when nothing is decided.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    Forbidden,
    Group,
    InputError,
    RecordService,
    SlaClock,
    ValidationError,
    current_itsm,
    parse_int,
    utcnow,
    visibility_scope,
)
from itsm.plugins.incident.hooks import OPEN_STATES
from itsm.plugins.incident.models import Incident

REPORT_PERMISSION = "incident.report"
METRICS = ("response", "resolution")
MAX_DAYS = 3650
DEFAULT_DAYS = 90
NONE_LABEL = "(none)"  # a missing category, agency, group or priority in the tables
TOP_CATEGORIES = 3


# -- the shape of a report, for the OpenAPI document ----------------------------------


class SlaFigures(Schema):
    met = fields.Integer(metadata={"description": "clocks met within their target"})
    breached = fields.Integer(metadata={"description": "clocks met late or running late"})
    compliance = fields.Float(allow_none=True, metadata={
        "description": "met / (met + breached), percent; null when nothing is decided"})


class PerMetric(Schema):
    response = fields.Float(allow_none=True)
    resolution = fields.Float(allow_none=True)


class SlaPerMetric(Schema):
    response = fields.Nested(SlaFigures)
    resolution = fields.Nested(SlaFigures)


class Counts(Schema):
    total = fields.Integer()
    by_state = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_priority = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_agency = fields.Dict(keys=fields.String(), values=fields.Integer())


class Backlog(Schema):
    group = fields.String()
    open = fields.Integer()


class CategoryCount(Schema):
    category = fields.String()
    count = fields.Integer()


class Week(Schema):
    week = fields.String(metadata={"description": "ISO week, e.g. 2025-W07"})
    start = fields.String(metadata={"description": "its Monday"})
    opened = fields.Integer()
    resolved = fields.Integer()
    compliance = fields.Nested(PerMetric)
    top_categories = fields.List(fields.Nested(CategoryCount))


class Period(Schema):
    since = fields.String()
    until = fields.String()
    days = fields.Float()
    group = fields.String(allow_none=True)


class IncidentReportSummary(Schema):
    period = fields.Nested(Period)
    counts = fields.Nested(Counts, metadata={"description": "incidents opened in the period"})
    mean_minutes = fields.Nested(PerMetric, metadata={
        "description": "mean wall-clock minutes from opening to the SLA clock being met"})
    sla = fields.Nested(SlaPerMetric)
    open = fields.Integer(metadata={"description": "incidents open now"})
    backlog_by_group = fields.List(fields.Nested(Backlog))
    weeks = fields.List(fields.Nested(Week))


# -- who may see reports ------------------------------------------------------------


def require_reporter(service: RecordService) -> None:
    """Refuse anyone but IT staff who may read incidents.

    When a plugin (the incident plugin itself, later) declares ``incident.report``, that
    permission decides; until then staff who may read incidents may see the reports.
    Requesters never do: the figures span every agency.
    """
    if service.actor.role == "requester":
        service.denials.append((REPORT_PERMISSION, None))
        raise Forbidden("incident reports are for IT staff")
    if REPORT_PERMISSION in service.itsm.permissions:
        service.require(REPORT_PERMISSION)
    else:
        service.require("incident.read")


def may_report(service: RecordService) -> bool:
    """Whether the service's actor may see the reports (for menus and links)."""
    if service.actor.role == "requester":
        return False
    permission = REPORT_PERMISSION if REPORT_PERMISSION in service.itsm.permissions \
        else "incident.read"
    return service.can(permission)


def parse_days(raw: str | None) -> int:
    """The ``days`` argument: a whole number from 1 to 3650 (default 90)."""
    if raw is None or raw == "":
        return DEFAULT_DAYS
    try:
        return parse_int(raw, "days", minimum=1, maximum=MAX_DAYS)
    except InputError:
        raise ValidationError(f"days: a whole number from 1 to {MAX_DAYS}",
                              fields={"days": [f"a whole number from 1 to {MAX_DAYS}"]}) from None


def period(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``(since, until)`` of the last ``days`` days up to ``now``."""
    until = now or utcnow()
    return until - timedelta(days=days), until


@dataclass
class _Tally:
    """Met-in-time and breached clocks of one metric, and the times of the met ones."""

    met: int = 0
    breached: int = 0
    minutes_total: float = 0.0
    minutes_count: int = 0

    def add(self, clock: Any, late: bool) -> None:
        if clock.met_at is not None:
            self.minutes_total += (clock.met_at - clock.started_at).total_seconds() / 60
            self.minutes_count += 1
        if clock.target_minutes is None or (clock.met_at is None and not late):
            return  # not decided yet
        if late:
            self.breached += 1
        else:
            self.met += 1

    @property
    def compliance(self) -> float | None:
        decided = self.met + self.breached
        return round(100 * self.met / decided, 1) if decided else None

    @property
    def mean_minutes(self) -> float | None:
        return round(self.minutes_total / self.minutes_count, 1) if self.minutes_count \
            else None

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "breached": self.breached, "compliance": self.compliance}


def week_of(moment: datetime | date) -> date:
    """The Monday of the ISO week ``moment`` falls in."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def summary(session: Session, actor: Actor, *, since: datetime, until: datetime,
            group: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The incident report of the period, for a staff ``actor`` (else Forbidden).

    :param since: start of the period (inclusive, aware UTC).
    :param until: end of the period (exclusive).
    :param group: only incidents held by this assignment group (by name).
    :param now: when running clocks are judged (default: now).
    :return: ``period``, ``counts`` (``total``, ``by_state``, ``by_priority``,
        ``by_category``, ``by_agency``), ``mean_minutes`` and ``sla`` per metric,
        ``open`` and ``backlog_by_group``, and ``weeks`` (ISO weeks of the period, oldest
        first: ``opened``, ``resolved``, ``compliance`` per metric, ``top_categories``).
    """
    itsm = current_itsm()
    service = RecordService(itsm, session, actor)
    try:
        require_reporter(service)
    finally:
        itsm.record_denials(service)
        service.denials.clear()
    if since >= until:
        raise ValidationError("the period must end after it starts",
                              fields={"since": ["must be before until"]})
    now = now or utcnow()
    scope = _scope(session, actor, group)
    cohort = [*scope, Incident.created_at >= since, Incident.created_at < until]

    counts = {"total": session.scalar(select(func.count(Incident.id)).where(*cohort)) or 0,
              "by_state": _count_by(session, Incident.state, cohort),
              "by_priority": _count_by(session, Incident.priority, cohort),
              "by_category": _count_by(session, Incident.category, cohort),
              "by_agency": _count_by(session, Agency.code, cohort,
                                     join=(Agency, Agency.id == Incident.agency_id))}
    backlog = _count_by(session, Group.name, [*scope, Incident.state.in_(OPEN_STATES)],
                        join=(Group, Group.id == Incident.group_id))
    tallies, weekly_tallies = _clock_tallies(session, cohort, now)
    weeks = _weeks(session, scope, cohort, since, until, weekly_tallies)
    return {
        "period": {"since": since.isoformat(), "until": until.isoformat(),
                   "days": round((until - since).total_seconds() / 86400, 2),
                   "group": group or None},
        "counts": counts,
        "mean_minutes": {m: tallies[m].mean_minutes for m in METRICS},
        "sla": {m: tallies[m].to_dict() for m in METRICS},
        "open": sum(backlog.values()),
        "backlog_by_group": [{"group": name, "open": n} for name, n in
                             sorted(backlog.items(), key=lambda kv: (-kv[1], kv[0]))],
        "weeks": weeks,
    }


def _scope(session: Session, actor: Actor, group: str | None) -> list[ColumnElement]:
    """Conditions every figure shares: what the actor may read, and the group asked for."""
    conditions: list[ColumnElement] = []
    visible = visibility_scope(actor)
    if visible is not None:  # staff see everything today; keep the door shut regardless
        conditions.append(visible)
    if group:
        group_id = session.scalar(select(Group.id).where(Group.name == group[:100]))
        if group_id is None:
            raise ValidationError(f"group: no assignment group named {group[:100]!r}",
                                  fields={"group": ["unknown group"]})
        conditions.append(Incident.group_id == group_id)
    return conditions


def _count_by(session: Session, column, where: list, join: tuple | None = None) \
        -> dict[str, int]:
    """``{value: incidents}`` grouped in the database, largest first; None -> "(none)".

    ``join`` is ``(model, on)`` for a value read from another table (an agency's code).
    """
    stmt = select(column, func.count(Incident.id)).select_from(Incident)
    if join is not None:
        stmt = stmt.outerjoin(*join)
    rows = session.execute(stmt.where(*where).group_by(column)).all()
    out: Counter[str] = Counter()
    for value, n in rows:
        out[NONE_LABEL if value is None or value == "" else str(value)] += n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def _clock_tallies(session: Session, cohort: list, now: datetime) \
        -> tuple[dict[str, _Tally], dict[date, dict[str, _Tally]]]:
    """Tallies of the cohort's clocks, overall and by the week the incident was opened."""
    rows = session.execute(
        select(SlaClock.metric, SlaClock.state, SlaClock.started_at, SlaClock.met_at,
               SlaClock.breached, SlaClock.breach_due_at, SlaClock.target_minutes,
               Incident.created_at)
        .join(Incident, Incident.id == SlaClock.record_id)
        .where(*cohort, Incident.state != "cancelled", SlaClock.metric.in_(METRICS))).all()
    overall = {m: _Tally() for m in METRICS}
    weekly: dict[date, dict[str, _Tally]] = defaultdict(lambda: {m: _Tally() for m in METRICS})
    for clock in rows:
        late = bool(clock.breached) or (clock.state == "running"
                                        and clock.breach_due_at is not None
                                        and clock.breach_due_at <= now)
        overall[clock.metric].add(clock, late)
        weekly[week_of(clock.created_at)][clock.metric].add(clock, late)
    return overall, weekly


def _weeks(session: Session, scope: list, cohort: list, since: datetime, until: datetime,
           tallies: dict[date, dict[str, _Tally]]) -> list[dict[str, Any]]:
    """Every ISO week of the period, also the quiet ones, so charts keep their scale."""
    opened: Counter[date] = Counter()
    categories: dict[date, Counter[str]] = defaultdict(Counter)
    for created_at, category in session.execute(
            select(Incident.created_at, Incident.category).where(*cohort)):
        monday = week_of(created_at)
        opened[monday] += 1
        categories[monday][category or NONE_LABEL] += 1
    resolved = Counter(week_of(at) for at in session.scalars(
        select(Incident.resolved_at).where(*scope, Incident.resolved_at >= since,
                                           Incident.resolved_at < until)))
    out = []
    monday, last = week_of(since), week_of(until - timedelta(microseconds=1))
    while monday <= last:
        week_tallies = tallies.get(monday) or {m: _Tally() for m in METRICS}
        top = sorted(categories[monday].items(), key=lambda kv: (-kv[1], kv[0]))
        out.append({"week": week_label(monday), "start": monday.isoformat(),
                    "opened": opened[monday], "resolved": resolved[monday],
                    "compliance": {m: week_tallies[m].compliance for m in METRICS},
                    "top_categories": [{"category": c, "count": n}
                                       for c, n in top[:TOP_CATEGORIES]]})
        monday += timedelta(days=7)
    return out


def report_for(actor: Actor, days: int, group: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """:func:`summary` of the last ``days`` days in its own read-only session."""
    since, until = period(days, now)
    with current_itsm().Session() as session:
        return summary(session, actor, since=since, until=until, group=group, now=now)


# -- as text, for ``itsm incident report`` ------------------------------------------------


def _minutes(value: float | None) -> str:
    if value is None:
        return "-"
    hours, minutes = divmod(round(value), 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes or not (days or hours) else ""]
    return " ".join(p for p in parts if p)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _counts(title: str, counts: dict[str, int], prefix: str = "") -> str:
    return f"{title:<13}" + (", ".join(f"{prefix if k != NONE_LABEL else ''}{k}: {v}"
                                       for k, v in counts.items()) or "-")


def text_report(data: dict[str, Any]) -> str:
    """A report as tables a person reads in a terminal."""
    period_ = data["period"]
    lines = [f"Incidents opened {period_['since'][:10]} to {period_['until'][:10]} "
             f"({period_['days']:g} days), {period_['group'] or 'all groups'}",
             f"opened {data['counts']['total']}; open now {data['open']}", "",
             f"{'SLA':<12}{'mean time':>14}{'met':>7}{'breached':>10}{'compliance':>12}"]
    for metric in METRICS:
        sla = data["sla"][metric]
        lines.append(f"{metric.capitalize():<12}{_minutes(data['mean_minutes'][metric]):>14}"
                     f"{sla['met']:>7}{sla['breached']:>10}{_percent(sla['compliance']):>12}")
    lines += ["", _counts("By state", data["counts"]["by_state"]),
              _counts("By priority", data["counts"]["by_priority"], "P"),
              _counts("By category", data["counts"]["by_category"]),
              _counts("By agency", data["counts"]["by_agency"]), "", "Backlog by group"]
    lines += [f"  {row['group']:<30}{row['open']:>6}" for row in data["backlog_by_group"]] \
        or ["  nothing is open"]
    lines += ["", f"{'Week':<10}{'opened':>8}{'resolved':>10}{'response':>10}"
                  f"{'resolution':>12}  top categories"]
    for week in data["weeks"]:
        top = ", ".join(f"{c['category']} {c['count']}" for c in week["top_categories"])
        lines.append(f"{week['week']:<10}{week['opened']:>8}{week['resolved']:>10}"
                     f"{_percent(week['compliance']['response']):>10}"
                     f"{_percent(week['compliance']['resolution']):>12}  {top or '-'}")
    return "\n".join(lines)
