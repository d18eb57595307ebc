"""What problem management does, shared by the API, the pages, the CLI and the hooks.

Every function works inside a caller's :class:`~itsm.core.records.RecordService` (one
unit of work, one actor) and checks the actor's permissions there. Incidents are known
only as records of the record type named by the ``incident_type`` setting, so this
plugin works with the built-in incident plugin, a vendor's, or none at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, func, inspect, or_, select
from sqlalchemy.orm import Session, object_session

from itsm.plugin import (
    Actor,
    InputError,
    Link,
    Record,
    RecordService,
    RecordType,
    Suggestion,
    ValidationError,
    current_itsm,
    jsonable,
    parse_int,
    reference_label,
    resolve_reference,
    search_matching,
    search_ranked,
    search_terms,
    utcnow,
)
from itsm.plugins.problem.models import (
    KNOWN_ERROR_STATES,
    PROBLEM,
    PROBLEM_OF,
    WORKING_STATES,
    Problem,
)

PLUGIN = "problem"
TRENDS_PERMISSION = "problem.trends"
MAX_DAYS = 3650
MAX_KNOWN_ERRORS = 200


def settings() -> dict[str, Any]:
    """The plugin's settings (``[plugins.problem]`` in itsm.toml, or the environment)."""
    return current_itsm().plugin_settings(PLUGIN)


def incident_type_name() -> str:
    """The name of the record type whose records are the incidents (a setting)."""
    return str(settings()["incident_type"]).strip()


def incident_type() -> RecordType | None:
    """The enabled record type that plays "incident", or None when it is not enabled."""
    return current_itsm().types.by_name.get(incident_type_name())


def trend_fields() -> list[str]:
    """The incident fields counted for trends (a list, or comma-separated from the env)."""
    raw = settings()["trend_fields"]
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    return [name.strip() for name in names if name and name.strip()]


def public_workarounds() -> bool:
    """Whether requesters are offered known-error workarounds as suggestions."""
    value = settings()["public_workarounds"]
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def problem_url(number: str) -> str:
    """The console page of a problem (the core's generic record page)."""
    return f"/records/{PROBLEM.collection}/{number}"


# -- linked incidents --------------------------------------------------------------------------


def column_names(model: type[Record]) -> set[str]:
    """The mapped column attributes of a model (the type's own and the record's)."""
    return set(inspect(model).column_attrs.keys())


def _linked_ids(record_id: int):
    """Ids of the records linked to ``record_id`` in either direction, of any kind."""
    return or_(Record.id.in_(select(Link.target_id).where(Link.source_id == record_id)),
               Record.id.in_(select(Link.source_id).where(Link.target_id == record_id)))


def linked_incidents(session: Session, problem: Problem) -> list[Record]:
    """The records of the incident type linked to ``problem`` (any link kind, either way)."""
    rt = incident_type()
    if rt is None:
        return []
    return list(session.scalars(select(rt.model).where(_linked_ids(problem.id))
                                .order_by(rt.model.id)))


def incident_refs(service: RecordService, problem: Problem) -> list[dict[str, Any]]:
    """The linked incidents the actor may see, as short references."""
    refs = (service.record_ref(r.id) for r in linked_incidents(service.session, problem))
    return [ref for ref in refs if ref is not None]


def link_incident(service: RecordService, problem: Problem, number: str) -> None:
    """Link the incident ``number`` to ``problem`` (a ``problem_of`` link)."""
    rt = incident_type()
    number = (number or "").strip().upper()
    if rt is None:
        raise ValidationError(
            f"no record type {incident_type_name()!r} is enabled: enable its plugin or set "
            "[plugins.problem] incident_type", fields={"incident": ["incidents unavailable"]})
    if service.itsm.types.for_number(number) is not rt:
        raise ValidationError(f"{number or 'the number'} is not a {rt.title.lower()} number "
                              f"({rt.prefix}…)", fields={"incident": [f"not a {rt.title.lower()}"]})
    service.link(problem, number, PROBLEM_OF.name)


def notify_linked_incidents(session: Session, problem: Problem) -> int:
    """Tell every open linked incident that its problem is resolved: a public comment,
    journaled and sent to its requester through the outbox like any other comment.

    Runs inside the transaction that resolves the problem, as the system. Returns the
    number of incidents commented on.
    """
    service = RecordService(current_itsm(), session, Actor.system())
    body = (f"The underlying problem {problem.number} ({problem.title}) has been resolved."
            f"\n\nResolution: {problem.resolution.strip()}")
    told = 0
    for incident in linked_incidents(session, problem):
        if incident.closed_at is None:
            service.comment(incident, body, public=True)
            told += 1
    return told


# -- the known error database ------------------------------------------------------------------


def _text_condition(session: Session, text: str) -> ColumnElement[bool] | None:
    """Problems where every word of ``text`` appears in the title or description (the
    core's full-text index) or in the workaround or root cause (not indexed there)."""
    words = search_terms(text)
    if not words:
        return None
    return and_(*[or_(Problem.id.in_(search_matching(session, word)),
                      func.lower(Problem.workaround).contains(word, autoescape=True),
                      func.lower(Problem.root_cause).contains(word, autoescape=True))
                  for word in words])


def known_errors(service: RecordService, text: str = "", limit: int = 50) -> list[Problem]:
    """Known errors (and resolved problems) with their workarounds, newest first."""
    service.require(f"{PROBLEM.name}.read")
    # Resolved without ever being a known error: no workaround to offer, so left out.
    stmt = select(Problem).where(Problem.state.in_(KNOWN_ERROR_STATES),
                                 Problem.known_error_at.is_not(None))
    condition = _text_condition(service.session, text)
    if condition is not None:
        stmt = stmt.where(condition)
    stmt = stmt.order_by(Problem.known_error_at.desc(), Problem.id.desc()).limit(limit)
    return [p for p in service.session.scalars(stmt)
            if service.can(f"{PROBLEM.name}.read", p)]


def known_error_dict(problem: Problem) -> dict[str, Any]:
    """One entry of the known error database, as the API and the pages show it."""
    return {"number": problem.number, "title": problem.title, "state": problem.state,
            "state_label": PROBLEM.workflow.state(problem.state).title,
            "category": problem.category,
            "affected_service": reference_label(object_session(problem), "service",
                                                problem.affected_service)
            if problem.affected_service else "",
            "root_cause": problem.root_cause, "workaround": problem.workaround,
            "known_error_at": jsonable(problem.known_error_at),
            "url": problem_url(problem.number)}


def suggestions(session: Session, actor: Actor, text: str, record: Record | None,
                limit: int) -> list[Suggestion]:
    """Live known errors matching ``text``, with the workaround as summary.

    Staff who may read problems get them with a link to the problem. Requesters get
    nothing unless ``public_workarounds`` is on; then only known errors of no agency or of
    their own agency, without a link (they cannot open problems).
    """
    service = RecordService(current_itsm(), session, actor)
    staff = service.can(f"{PROBLEM.name}.read")
    where: list[Any] = [Problem.state == "known_error"]
    if not staff:
        if actor.is_system or not public_workarounds():
            return []
        where.append(or_(Problem.agency_id.is_(None), Problem.agency_id == actor.agency_id)
                     if actor.agency_id is not None else Problem.agency_id.is_(None))
    hits = search_ranked(session, text, types=[PROBLEM.name], where=where, limit=limit,
                         exclude=[record.id] if record is not None else [])
    if hits:  # the problems' own columns (the workaround) in one query, not one each
        session.scalars(select(Problem).where(Problem.id.in_([p.id for p, _ in hits]))).all()
    out = []
    for problem, score in hits:
        if staff and not service.can(f"{PROBLEM.name}.read", problem):
            continue
        out.append(Suggestion(
            problem.number, problem.title, "Known error", summary=problem.workaround,
            score=score, url=problem_url(problem.number) if staff else ""))
    return out


# -- proactive identification: incident trends -------------------------------------------------


@dataclass
class Trend:
    """``count`` incidents of the period share ``field`` = ``value``; ``problems`` are
    the open problems that already cover it."""

    field: str
    value: Any
    count: int
    problems: list[str] = field(default_factory=list)
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The trend as JSON types."""
        return asdict(self)


@dataclass
class TrendReport:
    """The trends of one period, with the options that produced them."""

    incident_type: str
    days: int
    minimum: int
    fields: list[str]
    items: list[Trend]

    def to_dict(self) -> dict[str, Any]:
        """The report as the API and ``--json`` print it."""
        return {"incident_type": self.incident_type, "days": self.days, "min": self.minimum,
                "fields": self.fields, "items": [t.to_dict() for t in self.items]}


def whole_number(name: str, raw: Any, default: int, maximum: int) -> int:
    """A query or option value from 1 to ``maximum`` (``default`` when empty); a
    ValidationError naming ``name`` otherwise."""
    if raw in (None, ""):
        return default
    text = str(raw).strip()
    try:
        return parse_int(text, name, minimum=1, maximum=maximum)
    except InputError:
        raise ValidationError(f"{name}: a whole number from 1 to {maximum}",
                              fields={name: [f"a whole number from 1 to {maximum}"]}) from None


def trend_options(days: Any = None, minimum: Any = None) -> tuple[int, int]:
    """Validated ``days`` and ``min``, with the plugin's settings as defaults."""
    config = settings()
    return (whole_number("days", days, int(config["trend_days"]), MAX_DAYS),
            whole_number("min", minimum, int(config["trend_threshold"]), 1_000_000))


def _open_problems_covering(session: Session, model: type[Record], name: str,
                            value: Any) -> list[str]:
    """Problems being worked on (not resolved yet) with the same value in their own field
    of that name, or linked to an incident with that value."""
    incidents = select(model.id).where(getattr(model, name) == value)
    covers = [Problem.id.in_(select(Link.source_id).where(Link.target_id.in_(incidents))),
              Problem.id.in_(select(Link.target_id).where(Link.source_id.in_(incidents)))]
    if name in column_names(Problem):
        covers.append(getattr(Problem, name) == value)
    return list(session.scalars(select(Problem.number).where(
        Problem.state.in_(WORKING_STATES), or_(*covers)).order_by(Problem.id)))


def trends(service: RecordService, days: int, minimum: int) -> TrendReport:
    """Values of the trend fields shared by at least ``minimum`` incidents created in the
    last ``days`` days, most frequent first. Fields the incident type's model lacks are
    left out."""
    service.require(TRENDS_PERMISSION)
    name = incident_type_name()
    rt = service.itsm.types.get(name)  # NotFound names the type when it is not enabled
    model = rt.model
    columns = column_names(model)
    used = [f for f in trend_fields() if f in columns]
    since = utcnow() - timedelta(days=days)
    items: list[Trend] = []
    for name_ in used:
        column = getattr(model, name_)
        count = func.count(model.id)
        stmt = select(column, count).where(model.created_at >= since, column.is_not(None))
        if isinstance(column.type, String):
            stmt = stmt.where(column != "")
        stmt = stmt.group_by(column).having(count >= minimum)
        kind = (rt.references or {}).get(name_)  # a service or item: grouped by its id
        for value, n in service.session.execute(stmt).all():
            label = reference_label(service.session, kind, value) if kind else str(value)
            items.append(Trend(name_, jsonable(value), int(n), _open_problems_covering(
                service.session, model, name_, value), label))
    items.sort(key=lambda t: (-t.count, t.field, str(t.value)))
    return TrendReport(name, days, minimum, used, items)


MAX_LINKED_FROM_TREND = 100


def known(session: Session, kind: str | None, value: str) -> bool:
    """Whether a reference field of ``kind`` takes ``value`` (always without a provider):
    a name stored before a provider was enabled, and unknown to it, is left out rather
    than refused."""
    if not kind:
        return True
    try:
        resolve_reference(session, kind, value)
    except InputError:
        return False
    return True


def _typed(column: Any, raw: Any) -> Any:
    """A value sent as text, converted to the column's Python type."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return raw
    if isinstance(raw, kind):
        return raw
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"value: not a valid {kind.__name__}",
                              fields={"value": [f"not a valid {kind.__name__}"]}) from None


def open_problem_for_trend(service: RecordService, name: str, value: Any, days: int) \
        -> Problem:
    """Open a problem for a trend and link the period's incidents that share the value
    (the most recent ones, at most ``MAX_LINKED_FROM_TREND``)."""
    service.require(TRENDS_PERMISSION)
    rt = service.itsm.types.get(incident_type_name())
    if name not in trend_fields() or name not in column_names(rt.model):
        raise ValidationError(f"field: {name!r} is not a trend field of "
                              f"{rt.title.lower()} records",
                              fields={"field": ["not a trend field"]})
    if value in (None, ""):
        raise ValidationError("value: required", fields={"value": ["required"]})
    column = getattr(rt.model, name)
    value = _typed(column, value)
    since = utcnow() - timedelta(days=days)
    incidents = list(service.session.scalars(
        select(rt.model).where(column == value, rt.model.created_at >= since)
        .order_by(rt.model.id.desc()).limit(MAX_LINKED_FROM_TREND)))
    label = name.replace("_", " ")
    kind = (rt.references or {}).get(name)
    shown = reference_label(service.session, kind, str(value)) if kind else value
    data: dict[str, Any] = {
        "title": f"Recurring {rt.title.lower()}s: {label} {shown}"[:300],
        "description": f"{len(incidents)} {rt.title.lower()} records with {label} = {shown} "
                       f"in the last {days} days (proactive problem identification)."}
    limits = {"category": 100, "affected_service": 200}
    if name in limits and known(service.session, PROBLEM.references.get(name), str(value)):
        data[name] = str(value)[:limits[name]]
    problem = service.create(PROBLEM.name, data)
    for incident in reversed(incidents):
        service.link(problem, incident.number, PROBLEM_OF.name)
    return problem
