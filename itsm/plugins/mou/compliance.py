"""Compliance of an agency's records with its agreement's targets, read from the SLA clocks.

A record counts for a target when one of its clocks was measured against that target
(the clock's ``source`` names the agreement and the target, see
:func:`itsm.plugins.mou.policy.source_label`), so the figures are the real clocks'. Per
target and metric, over the records of the agency opened in the period:

- *measured*: clocks decided by now, met or breached (running clocks not yet past their
  target are not decided);
- *breached*: breached, or running past the target;
- *met*: stopped within the target;
- *compliance*: met / measured in percent (None when nothing was measured), compared
  with the target's ``compliance_percent``; the trend gives it per ISO week (periods
  shorter than 92 days) or per month, by the week or month the records were opened.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import NotFound, Record, SlaClock, ValidationError, agency_by_code, utcnow
from itsm.plugins.mou.models import Mou, MouTarget
from itsm.plugins.mou.policy import METRICS, source_label, target_key

MAX_DAYS = 3660
WEEKLY_UNDER_DAYS = 92


@dataclass
class Tally:
    """Clocks measured, met and breached."""

    measured: int = 0
    met: int = 0
    breached: int = 0

    def add(self, met: bool) -> None:
        self.measured += 1
        self.met += met
        self.breached += not met

    @property
    def compliance(self) -> float | None:
        return round(100 * self.met / self.measured, 1) if self.measured else None


@dataclass
class Line:
    """The figures of one target and metric."""

    target: str
    metric: str
    target_minutes: int | None
    required: float
    total: Tally = field(default_factory=Tally)
    buckets: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    @property
    def below(self) -> bool:
        value = self.total.compliance
        return value is not None and value < self.required

    def to_dict(self, periods: list[str]) -> dict[str, Any]:
        return {"target": self.target, "metric": self.metric,
                "target_minutes": self.target_minutes, "required_percent": self.required,
                "measured": self.total.measured, "met": self.total.met,
                "breached": self.total.breached, "compliance": self.total.compliance,
                "below_target": self.below,
                "trend": [{"period": p, "measured": self.buckets[p].measured,
                           "met": self.buckets[p].met, "breached": self.buckets[p].breached,
                           "compliance": self.buckets[p].compliance} for p in periods]}


def parse_period(start: str | None, end: str | None, today: date | None = None) \
        -> tuple[date, date]:
    """``from`` and ``to`` (ISO dates, both included); default: this month so far."""
    today = today or utcnow().date()
    errors: dict[str, list[str]] = {}
    values: dict[str, date] = {}
    for name, raw, default in (("from", start, today.replace(day=1)), ("to", end, today)):
        if raw in (None, ""):
            values[name] = default
            continue
        try:
            values[name] = date.fromisoformat(str(raw).strip())
        except ValueError:
            errors[name] = ["a date like 2026-01-31"]
    if not errors and values["to"] < values["from"]:
        errors["to"] = ["must not be before from"]
    if not errors and (values["to"] - values["from"]).days > MAX_DAYS:
        errors["to"] = [f"a period of at most {MAX_DAYS} days"]
    if errors:
        raise ValidationError("invalid period: " + ", ".join(
            f"{k} ({v[0]})" for k, v in errors.items()), fields=errors)
    return values["from"], values["to"]


def bucket_of(day: date, weekly: bool) -> str:
    """The trend period of a day: ``2026-W47`` or ``2026-11``."""
    if weekly:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def periods_between(start: date, end: date, weekly: bool) -> list[str]:
    """Every trend period from ``start`` to ``end``, also the quiet ones."""
    out: list[str] = []
    day = start
    while day <= end:
        label = bucket_of(day, weekly)
        if label not in out:
            out.append(label)
        day += timedelta(days=1)
    return out


def agreement_of(session: Session, agency_id: int) -> Mou | None:
    """The agreement a report measures: the active MOU, else the latest approved one."""
    rows = session.scalars(select(Mou).where(Mou.kind == "mou", Mou.agency_id == agency_id)
                           .order_by(Mou.id.desc())).all()
    for states in (("active",), ("expired", "superseded", "approved")):
        for mou in rows:
            if mou.state in states:
                return mou
    return None


def report(session: Session, agency_code: str, start: date, end: date,
           now: datetime | None = None) -> dict[str, Any]:
    """The compliance of ``agency_code`` with its agreement over ``start``..``end``."""
    now = now or utcnow()
    try:
        agency = agency_by_code(session, agency_code.strip().upper())
    except NotFound:
        raise NotFound(f"no agency {agency_code!r}", fields={"agency": ["unknown agency"]}) \
            from None
    mou = agreement_of(session, agency.id)
    if mou is None:
        raise NotFound(f"agency {agency.code} has no approved agreement to measure against")
    weekly = (end - start).days < WEEKLY_UNDER_DAYS
    periods = periods_between(start, end, weekly)
    goals = session.scalars(select(MouTarget).where(MouTarget.mou_id == mou.id)
                            .order_by(MouTarget.service, MouTarget.priority)).all()
    lines: dict[tuple[str, str], Line] = {}
    for t in goals:
        for metric in METRICS:
            minutes = getattr(t, f"{metric}_minutes")
            if minutes is not None:
                lines[(source_label(mou, t), metric)] = Line(
                    target_key(t), metric, minutes, t.compliance_percent)
    since = datetime.combine(start, time(), UTC)
    until = datetime.combine(end + timedelta(days=1), time(), UTC)
    sources = sorted({source for source, _ in lines})
    rows = session.execute(
        select(SlaClock.source, SlaClock.metric, SlaClock.state, SlaClock.breached,
               SlaClock.breach_due_at, Record.created_at)
        .join(Record, Record.id == SlaClock.record_id)
        .where(Record.agency_id == agency.id, Record.created_at >= since,
               Record.created_at < until, SlaClock.source.in_(sources))) if sources else []
    for source, metric, state, breached, due, created in rows:
        line = lines.get((source, metric))
        if line is None:
            continue
        late = bool(breached) or (state == "running" and due is not None and due <= now)
        if not late and state != "met":
            continue  # still running within its target: not decided yet
        line.total.add(not late)
        line.buckets[bucket_of(created.date(), weekly)].add(not late)
    return {"agency": agency.code, "agency_name": agency.name, "agreement": mou.number,
            "agreement_state": mou.state, "version": mou.current_version,
            "from": start.isoformat(), "to": end.isoformat(),
            "granularity": "week" if weekly else "month", "periods": periods,
            "targets": [line.to_dict(periods) for line in lines.values()]}


CSV_COLUMNS = ("agency", "agreement", "target", "metric", "period", "measured", "met",
               "breached", "compliance", "required_percent")


def to_csv(data: dict[str, Any]) -> str:
    """One row per target, metric and period, then one ``total`` row per target."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in data["targets"]:
        rows = [*line["trend"], {"period": "total", **{k: line[k] for k in (
            "measured", "met", "breached", "compliance")}}]
        for row in rows:
            writer.writerow([data["agency"], data["agreement"], line["target"],
                             line["metric"], row["period"], row["measured"], row["met"],
                             row["breached"], "" if row["compliance"] is None
                             else row["compliance"], line["required_percent"]])
    return out.getvalue()


def chart(line: dict[str, Any], width: int = 560, height: int = 180) -> dict[str, Any]:
    """Geometry of a line's trend chart (an inline SVG drawn by the template)."""
    left, right, top, bottom = 44, width - 12, 12, height - 28
    trend = line["trend"]
    step = (right - left) / max(len(trend) - 1, 1)

    def y(percent: float) -> float:
        return round(bottom - (bottom - top) * percent / 100, 1)

    points, segments, current = [], [], []
    for index, item in enumerate(trend):
        x = round(left + step * index, 1)
        if item["compliance"] is None:  # nothing measured: a gap, not a zero
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        points.append({"x": x, "y": y(item["compliance"]), "period": item["period"],
                       "value": item["compliance"]})
        current.append(f"{x},{y(item['compliance'])}")
    if current:
        segments.append(" ".join(current))
    every = max(1, len(trend) // 6)
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": bottom, "points": points, "segments": segments,
            "required_y": y(line["required_percent"]),
            "ticks": [{"y": y(v), "text": f"{v}%"} for v in (0, 50, 100)],
            "labels": [{"x": round(left + step * i, 1), "text": item["period"]}
                       for i, item in enumerate(trend) if i % every == 0]}
