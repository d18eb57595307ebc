"""The change process's rules, shared by the API, the pages, the CLI and the guards.

Risk scoring, choosing approvers by CAB rules, quorum, freeze windows, conflicts, the
deployment gate and the incidents a change caused. Everything takes the caller's
session, so it runs in the caller's transaction; writes to records go through the
record service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    ApprovalScope,
    Conflict,
    Event,
    Forbidden,
    Group,
    GroupMember,
    Link,
    NotFound,
    Record,
    RecordService,
    RecordType,
    User,
    ValidationError,
    current_itsm,
    reference_label,
    utcnow,
)
from itsm.plugins.change import impact as spine
from itsm.plugins.change.models import (
    Approval,
    CabRule,
    Change,
    ChangeTemplate,
    FreezeWindow,
    RiskQuestion,
)

CAUSED = "change_caused"  # link kind: change -> incident it caused
ACTIVE_STATES = ("assessment", "cab_review", "scheduled", "implementing")
DEPLOYABLE_STATES = ("scheduled", "implementing")
# What a CAB approval covers: the change may do exactly this, no more (docs/plugins.md,
# "Approvals bound to scope").
CAB_SCOPE = ApprovalScope(
    "CAB approval",
    ("services", "config_items", "environment", "planned_start", "planned_end",
     "implementation_plan", "backout_plan", "test_plan"),
    unordered=frozenset({"services", "config_items"}))
# Where the scope may no longer move: the work has begun on what was approved. In
# cab_review and scheduled an edit supersedes the approval and asks the CAB again.
SCOPE_LOCKED_STATES = ("implementing", "review", "failed", "backout", "closed")
GATE_PERMISSION = "change.gate"
ADMIN_PERMISSION = "change.admin"
REPORT_PERMISSION = "change.report"

DEFAULT_SETTINGS: dict[str, Any] = {
    # The record type whose records are the incidents a change can cause.
    "incident_type": "incident",
    # Risk score thresholds: at least risk_medium_at is medium, at least risk_high_at high.
    "risk_medium_at": 4,
    "risk_high_at": 8,
    # Channels for people (those of enabled adapters only).
    "notify_channels": ["email", "log"],
    # Owners of services, told of every step of a change to their service, until a
    # service catalog knows them: {"E-mail": ["mail.owner@example.org"]}.
    "service_owners": {},
}


def settings() -> dict[str, Any]:
    """The change plugin's settings (TOML tables folded back into dictionaries)."""
    raw = dict(current_itsm().plugin_settings("change"))
    owners = raw.get("service_owners") or {}
    if isinstance(owners, str):
        try:
            owners = json.loads(owners)
        except ValueError:
            owners = {}
    prefix = "service_owners."
    owners = {**owners, **{k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}}
    raw["service_owners"] = {k: [v] if isinstance(v, str) else list(v)
                             for k, v in owners.items()}
    return raw


def system_service(session: Session) -> RecordService:
    """A record service acting as the system, in the caller's transaction."""
    return RecordService(current_itsm(), session, Actor.system())


def incident_type() -> RecordType | None:
    """The enabled record type that plays "incident", or None (its plugin is off)."""
    return current_itsm().types.by_name.get(str(settings()["incident_type"]))


def emit(session: Session, name: str, change: Change, actor: Actor,
         **payload: Any) -> None:
    """Write one of the plugin's own events to the outbox, in this transaction."""
    event = Event(name=name, record_id=change.id, actor_id=actor.id, payload={
        "record": {"number": change.number, "type": change.type, "title": change.title,
                   "state": change.state, "priority": change.priority},
        "actor": actor.email, **payload})
    session.add(event)
    session.info.setdefault("itsm_events", []).append(event)


# -- risk ----------------------------------------------------------------------------------


def questions(session: Session) -> list[RiskQuestion]:
    return list(session.scalars(select(RiskQuestion).where(RiskQuestion.active.is_(True))
                                .order_by(RiskQuestion.position, RiskQuestion.id)))


def level_of(score: int) -> str:
    """Risk level of a score, by the thresholds in the settings."""
    conf = settings()
    if score >= int(conf["risk_high_at"]):
        return "high"
    if score >= int(conf["risk_medium_at"]):
        return "medium"
    return "low"


def score_risk(session: Session, answers: dict[str, str]) -> tuple[int, str, list[str]]:
    """Score the questionnaire's answers: (score, level, problems)."""
    errors: list[str] = []
    score = 0
    asked = questions(session)
    known = {q.key for q in asked}
    for key in sorted(set(answers) - known):
        errors.append(f"risk question {key!r} is not in the questionnaire")
    for question in asked:
        answer = answers.get(question.key)
        if answer in (None, ""):
            errors.append(f"risk question {question.key!r} is not answered "
                          f"({question.text})")
        elif answer not in question.options:
            errors.append(f"risk question {question.key!r}: answer {answer!r} is not one of "
                          + ", ".join(question.options))
        else:
            score += int(question.options[answer])
    return score, level_of(score), errors


# -- CAB rules and approvals ------------------------------------------------------------


def _matches(allowed: list[str], value: str | Iterable[str]) -> bool:
    if not allowed:
        return True
    values = {value} if isinstance(value, str) else set(value)
    return bool(set(allowed) & values)


def matching_rules(session: Session, change: Change, level: str, purpose: str = "cab",
                   data: dict[str, Any] | None = None) -> list[CabRule]:
    """The active rules of ``purpose`` that apply to ``change`` at risk ``level``."""
    data = data or {}
    rules = [r for r in session.scalars(select(CabRule).where(
        CabRule.active.is_(True), CabRule.purpose == purpose).order_by(CabRule.id))
        if _matches(r.change_types, change.change_type) and _matches(r.risk_levels, level)
        and _matches(r.categories, change.category or "")]
    if not any(r.services for r in rules):
        return rules
    # A rule naming services matches the services the change impacts: its own, and
    # those its configuration items and services reach (by stable id when provided).
    impacted = spine.impacted_services(session, data.get("services", change.services) or [],
                                       data.get("config_items", change.config_items) or [])
    return [r for r in rules if not r.services or spine.shares(session, r.services, impacted)]


def eligible_approvers(session: Session, change: Change, group_id: int) -> list[int]:
    """Active members of a group, without the change's requester and owner: nobody
    approves their own change."""
    own = {change.requester_id, change.assignee_id} - {None}
    return list(session.scalars(
        select(User.id).join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group_id, User.active.is_(True),
               User.id.not_in(own) if own else true()).order_by(User.id)))


def approver_problems(session: Session, change: Change, level: str,
                      data: dict[str, Any] | None = None) -> list[str]:
    """Why no CAB can be formed for this change (empty when every rule has approvers)."""
    rules = matching_rules(session, change, level, "cab", data)
    if not rules:
        return [f"no CAB rule matches this {change.change_type} change at {level} risk: an "
                "admin adds one (itsm changes cab-rules add, or POST "
                "/api/v1/changes/cab-rules)"]
    problems = []
    for rule in rules:
        if not eligible_approvers(session, change, rule.group_id):
            group = session.get(Group, rule.group_id)
            problems.append(f"CAB group {group.name!r} (rule {rule.name!r}) has no approvers "
                            "other than the change's requester and owner")
    return problems


def request_approvals(session: Session, change: Change, purpose: str, actor: Actor) \
        -> list[Approval]:
    """Ask every approver the rules choose, replacing earlier requests of ``purpose``."""
    for old in session.scalars(select(Approval).where(
            Approval.record_id == change.id, Approval.purpose == purpose,
            Approval.state != "superseded")):
        old.state = "superseded"
    level = change.risk_level or "low"
    rules = matching_rules(session, change, level, purpose)
    made = []
    for rule in rules:
        for user_id in eligible_approvers(session, change, rule.group_id):
            approval = Approval(record_id=change.id, rule_id=rule.id, group_id=rule.group_id,
                                approver_id=user_id, purpose=purpose, quorum=rule.quorum,
                                state="pending", comment="", requested_at=utcnow())
            session.add(approval)
            made.append(approval)
    session.flush()
    if made:
        emails = sorted(session.scalars(select(User.email).where(
            User.id.in_({a.approver_id for a in made}))))
        emit(session, "change.approval_requested", change, actor, purpose=purpose,
             approvers=emails)
    return made


def needed(quorum: str, members: int) -> int:
    """How many approvals a group of ``members`` needs under ``quorum``."""
    if quorum == "all":
        return members
    if quorum == "majority":
        return members // 2 + 1
    return 1


def approval_status(session: Session, change: Change, purpose: str = "cab") \
        -> dict[str, Any]:
    """Where the approval of ``purpose`` stands: per group, and overall
    (``none``, ``pending``, ``approved`` or ``rejected``)."""
    rows = session.scalars(select(Approval).where(
        Approval.record_id == change.id, Approval.purpose == purpose,
        Approval.state != "superseded").order_by(Approval.id)).all()
    groups: dict[tuple[int | None, int], dict[str, Any]] = {}
    for row in rows:
        key = (row.rule_id, row.group_id)
        entry = groups.setdefault(key, {"group": session.get(Group, row.group_id).name,
                                        "quorum": row.quorum, "approved": 0,
                                        "rejected": 0, "pending": 0, "not_needed": 0,
                                        "members": 0, "waiting_on": []})
        entry["members"] += 1
        entry[row.state] += 1
        if row.state == "pending":
            entry["waiting_on"].append(row.approver_id)
    for entry in groups.values():
        entry["needed"] = needed(entry["quorum"], entry["members"])
        # How many more votes the group must give, and whose vote is still open: the
        # change page says so instead of leaving people to work it out from counts.
        entry["still_needed"] = max(0, entry["needed"] - entry["approved"])
        entry["waiting_on"] = sorted(session.scalars(select(User.email).where(
            User.id.in_(entry["waiting_on"])))) if entry["waiting_on"] else []
        if entry["approved"] >= entry["needed"]:
            entry["state"] = "approved"
        elif entry["approved"] + entry["pending"] < entry["needed"]:
            entry["state"] = "rejected"
        else:
            entry["state"] = "pending"
    states = {g["state"] for g in groups.values()}
    overall = ("none" if not groups else "rejected" if "rejected" in states
               else "pending" if "pending" in states else "approved")
    return {"state": overall, "groups": list(groups.values())}


def _template(session: Session, name: str) -> ChangeTemplate | None:
    return session.scalar(select(ChangeTemplate).where(ChangeTemplate.name == name,
                                                       ChangeTemplate.active.is_(True)))


def template_problems(template: ChangeTemplate, values: dict[str, Any],
                      session: Session | None = None) -> dict[str, str]:
    """Where ``values`` (a change's services, environment and window) go beyond what the
    standard change ``template`` allows: field -> why (empty when inside it). With a
    ``session``, a template's service names match the services' stable ids too."""
    problems = {}
    allowed = set(template.services or [])
    if session is not None:
        allowed = spine.service_keys(session, allowed)
    outside = sorted(reference_label(session, spine.SERVICE, s) if session is not None else s
                     for s in set(values.get("services") or []) - allowed)
    if template.services and outside:
        problems["services"] = (f"template {template.name!r} allows the services "
                                f"{', '.join(template.services)}, not {', '.join(outside)}")
    environment = values.get("environment")
    if template.environments and environment not in template.environments:
        problems["environment"] = (f"template {template.name!r} allows the environments "
                                   f"{', '.join(template.environments)}, not {environment!r}")
    start, end = values.get("planned_start"), values.get("planned_end")
    if template.max_window_hours and start is not None and end is not None \
            and (end - start).total_seconds() > template.max_window_hours * 3600:
        problems["planned_end"] = (f"template {template.name!r} allows a window of at most "
                                   f"{template.max_window_hours} hours")
    return problems


def approved_scope(session: Session, change: Change) -> Approval | None:
    """The decision whose scope the change's CAB approval covers: an approved vote of the
    current (not superseded) round; every vote of a round is taken on the same scope."""
    return session.scalar(select(Approval).where(
        Approval.record_id == change.id, Approval.purpose == "cab",
        Approval.state == "approved").order_by(Approval.id.desc()).limit(1))


def scope_refusal(session: Session, change: Change, data: dict[str, Any] | None = None) \
        -> str | None:
    """Why the change's current scope (with ``data`` about to be set) is not what the CAB
    approved: the fields that differ, or None."""
    approval = approved_scope(session, change)
    if approval is None:
        return None
    current = CAB_SCOPE.values(change, data)
    if approval.scope_digest == CAB_SCOPE.digest(current):
        return None
    return CAB_SCOPE.refusal(CAB_SCOPE.changes(approval.scope or {}, current), change.number)


def approval_refusal(session: Session, change: Change,
                     data: dict[str, Any] | None = None) -> str | None:
    """Why ``change`` is not approved for its current scope (None when it is); ``data``
    holds values a transition is about to set."""
    if change.change_type == "standard":
        template = _template(session, change.template)
        if template is None:
            return (f"standard change template {change.template!r} is no longer in the "
                    "catalog: this change needs the CAB as a normal change")
        problems = template_problems(template, {**CAB_SCOPE.values(change, data),
                                                **_window(change, data)}, session)
        if problems:
            return (f"{change.number} is outside standard change template "
                    f"{template.name!r}: " + "; ".join(problems.values()))
        return None
    status = approval_status(session, change)
    if status["state"] == "approved":
        return scope_refusal(session, change, data)
    if status["state"] == "none":
        article = "an" if change.change_type[:1] in "aeiou" else "a"
        return (f"{change.number} is not approved: {article} {change.change_type} change "
                "needs CAB approval first (submit it for assessment)")
    if status["state"] == "rejected":
        return f"{change.number} was rejected by the CAB"
    waiting = [f"{g['group']} has {g['approved']} of {g['needed']} approvals needed "
               f"({g['quorum']})" for g in status["groups"] if g["state"] == "pending"]
    return f"{change.number} awaits CAB approval: " + "; ".join(waiting)


def _window(change: Change, data: dict[str, Any] | None) -> dict[str, Any]:
    """The planned window as datetimes (the scope's values hold them as text)."""
    data = data or {}
    return {name: data.get(name, getattr(change, name))
            for name in ("planned_start", "planned_end")}


# -- freeze windows and conflicts ------------------------------------------------------------


def freeze_hits(session: Session, services: Iterable[str], start: datetime | None,
                end: datetime | None) -> list[FreezeWindow]:
    """Freeze windows overlapping [start, end) that cover any of ``services``."""
    if start is None or end is None:
        return []
    wanted = set(services)
    windows = session.scalars(select(FreezeWindow).where(
        FreezeWindow.starts_at < end, FreezeWindow.ends_at > start)
        .order_by(FreezeWindow.starts_at))
    return [w for w in windows if not w.services or spine.shares(session, w.services, wanted)]


def freeze_of(session: Session, change: Change, data: dict[str, Any] | None = None) \
        -> list[FreezeWindow]:
    """The freeze windows the planned window falls in that cover a service the change
    impacts (its own, and those its items reach)."""
    data = data or {}
    start = data.get("planned_start", change.planned_start)
    end = data.get("planned_end", change.planned_end)
    if start is None or end is None:
        return []
    return freeze_hits(session, spine.impacted_services(
        session, data.get("services", change.services) or [],
        data.get("config_items", change.config_items) or []), start, end)


def freeze_excepted(session: Session, change: Change) -> bool:
    """An emergency approval covers the freeze: the emergency CAB's own approval of an
    emergency change, or an approved freeze exception."""
    if change.change_type == "emergency" and approval_status(session, change)["state"] \
            == "approved":
        return True
    return approval_status(session, change, "freeze")["state"] == "approved"


def window_text(window: FreezeWindow) -> str:
    return (f"freeze window {window.name!r} ({window.starts_at:%Y-%m-%d %H:%M} to "
            f"{window.ends_at:%Y-%m-%d %H:%M} UTC)")


def freeze_refusal(session: Session, change: Change, data: dict[str, Any] | None = None) \
        -> str | None:
    """Why the planned window may not be used (a freeze without emergency approval)."""
    hits = freeze_of(session, change, data)
    if not hits or freeze_excepted(session, change):
        return None
    where = ", ".join(window_text(w) for w in hits)
    if approval_status(session, change, "freeze")["state"] == "pending":
        return f"the planned window falls in {where}: awaiting the emergency approval"
    return (f"the planned window falls in {where}: it needs an emergency approval (POST "
            f"/api/v1/changes/{change.number}/freeze-exception), or move the window")


def request_freeze_exception(service: RecordService, change: Change) -> list[Approval]:
    """Ask the emergency approvers (rules of purpose ``freeze``) to allow a freeze hit."""
    service.require("change.update", change)
    session = service.session
    hits = freeze_of(session, change)
    if not hits:
        raise Conflict(f"{change.number} is outside every freeze window: no exception needed")
    if not matching_rules(session, change, change.risk_level or "low", "freeze"):
        raise Conflict("no CAB rule of purpose 'freeze' names the emergency approvers: an "
                       "admin adds one (itsm changes cab-rules add)")
    made = request_approvals(session, change, "freeze", service.actor)
    if not made:
        raise Conflict("the emergency approvers' group has no one but this change's "
                       "requester and owner")
    service.comment(change, "Emergency approval requested for "
                    + ", ".join(window_text(w) for w in hits) + ".", public=False)
    return made


def conflicts(session: Session, change: Change) -> list[dict[str, Any]]:
    """Other active changes whose planned window overlaps this one on a shared service
    or configuration item."""
    if change.planned_start is None or change.planned_end is None:
        return []
    others = session.scalars(select(Change).where(
        Change.id != change.id, Change.state.in_(ACTIVE_STATES),
        Change.planned_start < change.planned_end, Change.planned_end > change.planned_start)
        .order_by(Change.planned_start))
    out = []
    mine = spine.impacted_services(session, change.services or [], change.config_items or [])
    for other in others:
        # Impacted services meet: two changes on items under one service conflict too.
        theirs = spine.impacted_services(session, other.services or [],
                                         other.config_items or [])
        shared = {reference_label(session, spine.SERVICE, s) for s in mine & theirs}
        items = sorted(set(other.config_items or []) & set(change.config_items or []))
        if shared or items:
            out.append({"number": other.number, "title": other.title, "state": other.state,
                        "planned_start": other.planned_start.isoformat(),
                        "planned_end": other.planned_end.isoformat(),
                        "services": sorted(shared),
                        "config_items": [reference_label(session, spine.CI, i)
                                         for i in items]})
    return out


# -- approvers' decisions --------------------------------------------------------------------


def approval_dict(session: Session, approval: Approval) -> dict[str, Any]:
    change = session.get(Change, approval.record_id)
    return {"id": approval.id, "change": change.number, "title": change.title,
            "change_type": change.change_type, "risk_level": change.risk_level,
            "planned_start": change.planned_start.isoformat() if change.planned_start else None,
            "planned_end": change.planned_end.isoformat() if change.planned_end else None,
            "purpose": approval.purpose, "quorum": approval.quorum,
            "group": session.get(Group, approval.group_id).name,
            "approver": session.get(User, approval.approver_id).email,
            "state": approval.state, "comment": approval.comment,
            "requested_at": approval.requested_at.isoformat(),
            "decided_at": approval.decided_at.isoformat() if approval.decided_at else None}


def queue(service: RecordService) -> list[Approval]:
    """The pending approvals awaiting the actor (every pending one for admins)."""
    stmt = select(Approval).where(Approval.state == "pending").order_by(Approval.requested_at,
                                                                       Approval.id)
    if service.actor.role != "admin":
        stmt = stmt.where(Approval.approver_id == service.actor.id)
    return list(service.session.scalars(stmt))


def decide(service: RecordService, approval_id: int, decision: str, comment: str = "") \
        -> Approval:
    """Approve or reject one approval request; when the quorum is decided, say so, and
    move a rejected change to ``rejected``."""
    session = service.session
    approval = session.get(Approval, approval_id)
    if approval is None or (approval.approver_id != service.actor.id
                            and service.actor.role != "admin"):
        raise NotFound(f"no approval request {approval_id} awaits you")
    if decision not in ("approve", "reject"):
        raise ValidationError("decision is approve or reject",
                              fields={"decision": ["must be approve or reject"]})
    if decision == "reject" and not comment.strip():
        raise ValidationError("say why you reject the change",
                              fields={"comment": ["required to reject"]})
    if approval.state != "pending":
        raise Conflict(f"approval request {approval_id} is {approval.state} already")
    change = session.get(Change, approval.record_id)
    # A scheduled change whose plan moved is asked again (see replan) while scheduled.
    if approval.purpose == "cab" and change.state not in ("cab_review", "scheduled"):
        raise Conflict(f"{change.number} is {change.state}, no longer in CAB review")
    approval.state = "approved" if decision == "approve" else "rejected"
    approval.comment = comment.strip()[:5000]
    approval.decided_at = utcnow()
    # What this decision covers: the guards compare the change with it from now on.
    approval.scope = CAB_SCOPE.values(change)
    approval.scope_digest = CAB_SCOPE.digest(approval.scope)
    approval.record_version = change.version
    session.flush()
    what = "CAB approval" if approval.purpose == "cab" else "emergency approval (freeze)"
    writer = service if service.can("change.comment", change) else system_service(session)
    # A journal is read by people: the approver by name (the entry keeps who wrote it).
    text = f"{what}: {approval.state} by {service.actor.name or service.actor.email}"
    writer.comment(change, text + (f" — {approval.comment}" if approval.comment else "."),
                   public=False)
    status = approval_status(session, change, approval.purpose)
    if status["state"] in ("approved", "rejected"):
        # Decided: the votes still open are no longer needed.
        for row in session.scalars(select(Approval).where(
                Approval.record_id == change.id, Approval.purpose == approval.purpose,
                Approval.state == "pending")):
            row.state = "not_needed"
        extra: dict[str, Any] = {}
        if status["state"] == "approved" and approval.purpose == "cab":
            # The agencies the change reaches hear of it (their relationship managers,
            # where an agreements plugin knows them), with its window.
            extra = {"affected_agencies": spine.affected_agencies(session, change),
                     "window_start": change.planned_start.isoformat()
                     if change.planned_start else None,
                     "window_end": change.planned_end.isoformat()
                     if change.planned_end else None}
        emit(session, "change.decided", change, service.actor, purpose=approval.purpose,
             decision=status["state"], **extra)
    if status["state"] == "rejected" and approval.purpose == "cab" \
            and change.state == "cab_review":
        system_service(session).transition(change, "reject", comment=(
            "Rejected: the CAB quorum can no longer be reached."))
    elif status["state"] == "rejected" and approval.purpose == "cab":
        # A re-planned scheduled change stays scheduled and cannot be implemented: its
        # owner plans again or cancels it.
        system_service(session).comment(change, (
            "The CAB rejected the new plan: the change cannot be implemented as planned."),
            public=False)
    elif status["state"] == "approved":
        system_service(session).comment(change, (
            f"{what} complete: quorum reached. The change may be scheduled."
            if approval.purpose == "cab" else f"{what} granted."), public=False)
    return approval


# -- record rules applied on every change ----------------------------------------------------


def prepare(session: Session, change: Change, kind: str, transition: str | None,
            changed: dict[str, Any]) -> None:
    """Template, type and risk rules and the actual times, set before the change is
    journaled (itsm_record_prepare)."""
    if kind in ("created", "updated"):
        _check_type(session, change, kind, changed)
    touched = CAB_SCOPE.touched(changed)
    if touched and kind in ("updated", "transitioned") and change.state in SCOPE_LOCKED_STATES:
        # The work runs on what was approved: a new scope is a new change.
        raise Conflict(f"{change.number} is {change.state}: " + ", ".join(touched)
                       + " may no longer change, the CAB approved the change as it was "
                       "(raise a new change for the rest)",
                       reasons=[f"{name} is in the approved scope" for name in touched])
    if change.change_type != "standard" and change.risk_answers:
        score, level, errors = score_risk(session, change.risk_answers)
        errors = [e for e in errors if "is not answered" not in e]  # a draft may be partial
        if errors and kind in ("created", "updated"):
            raise ValidationError("invalid risk answers: " + "; ".join(errors),
                                  fields={"risk_answers": errors})
        change.risk_score, change.risk_level = score, level
    if kind != "transitioned":
        return
    if transition == "implement" and change.actual_start is None:
        change.actual_start = utcnow()
    elif transition in ("complete", "fail") and change.actual_end is None:
        change.actual_end = utcnow()


def on_changed(session: Session, change: Change, kind: str, transition: str | None,
               actor: Actor, changed: dict[str, Any]) -> None:
    """Approval requests, asked again when the plan moves (itsm_record_changed)."""
    touched = CAB_SCOPE.touched(changed)
    if kind == "updated" and touched \
            and change.state in ("cab_review", "scheduled") and change.change_type != "standard":
        replan(session, change, actor, touched)
    if kind != "transitioned":
        return
    if transition == "assess":
        request_approvals(session, change, "cab", actor)
        if freeze_of(session, change) and change.change_type != "emergency":
            request_approvals(session, change, "freeze", actor)
    elif transition in ("reject", "cancel"):
        for row in session.scalars(select(Approval).where(
                Approval.record_id == change.id, Approval.state == "pending")):
            row.state = "superseded"


def replan(session: Session, change: Change, actor: Actor, touched: list[str]) -> None:
    """The scope of a change in CAB review or scheduled moved: the decisions taken on the
    old plan no longer count, the approvers are asked again, and the journal says which
    approval the edit superseded."""
    previous = approved_scope(session, change)
    for row in session.scalars(select(Approval).where(
            Approval.record_id == change.id, Approval.state != "superseded")):
        row.state = "superseded"
    session.flush()
    if previous is not None:
        changed = CAB_SCOPE.changes(previous.scope or {}, CAB_SCOPE.values(change)) or touched
        when = f"of {previous.decided_at:%Y-%m-%d %H:%M} UTC" if previous.decided_at else ""
        system_service(session).comment(
            change, CAB_SCOPE.superseded_note(changed, when)
            + f" (approved at version {previous.record_version}); the CAB is asked again.",
            public=False)
    request_approvals(session, change, "cab", actor)
    if freeze_of(session, change) and change.change_type != "emergency":
        request_approvals(session, change, "freeze", actor)


def _service_id(session: Session, name: str) -> str:
    # A template names services as typed: the stable id when a provider knows the name.
    keys = spine.service_keys(session, [name]) - {name}
    return next(iter(keys), name)


def _check_type(session: Session, change: Change, kind: str, changed: dict[str, Any]) -> None:
    if kind == "updated" and ({"change_type", "template"} & set(changed)) \
            and change.state != "draft":
        raise ValidationError("the type and template of a change are fixed once submitted",
                              fields={k: ["fixed once submitted"] for k in
                                      ({"change_type", "template"} & set(changed))})
    if change.template and change.change_type == "normal" and kind == "created":
        change.change_type = "standard"  # made from a template: a standard change
    if change.change_type != "standard":
        if change.template:
            raise ValidationError("only standard changes come from a template",
                                  fields={"template": ["only for standard changes"]})
        return
    template = _template(session, change.template or "")
    if template is None:
        names = ", ".join(session.scalars(select(ChangeTemplate.name).where(
            ChangeTemplate.active.is_(True)).order_by(ChangeTemplate.name))) or "none yet"
        raise ValidationError(
            f"a standard change needs a template of the catalog (templates: {names})",
            fields={"template": ["no active standard change template of this name"]})
    if kind == "created":
        for name in ("implementation_plan", "backout_plan", "test_plan", "category",
                     "description"):
            if not getattr(change, name):
                setattr(change, name, getattr(template, name))
        if not change.services:
            change.services = [resolved for name in template.services or []
                               if (resolved := _service_id(session, name))]
        change.risk_level = template.risk_level
        change.risk_score = None
    # Pre-approved means approved for what the template allows, nothing beyond it.
    problems = template_problems(template, {**CAB_SCOPE.values(change),
                                            **_window(change, None)}, session)
    if problems:
        raise ValidationError(
            f"not a standard change of {template.name!r}: " + "; ".join(problems.values())
            + " (raise it as a normal change for the CAB)",
            fields={name: [why] for name, why in problems.items()})


# -- incidents caused -------------------------------------------------------------------------


def caused_incidents(service: RecordService, change: Change) -> list[dict[str, Any]]:
    """Incidents this change caused: linked from it (``change_caused``) or linking to it
    (an incident ``caused_by`` it); records the actor may not read are left out."""
    session = service.session
    ids = set(session.scalars(select(Link.target_id).where(
        Link.source_id == change.id, Link.kind == CAUSED)))
    ids |= set(session.scalars(select(Link.source_id).where(
        Link.target_id == change.id, Link.kind == "caused_by")))
    refs = [service.record_ref(i) for i in sorted(ids)]
    return [r for r in refs if r is not None]


def link_incident(service: RecordService, change: Change, number: str) -> dict[str, Any]:
    """Record that ``change`` caused the incident ``number``."""
    rt = incident_type()
    if rt is None:
        raise Conflict(f"incident management is not enabled (no record type "
                       f"{settings()['incident_type']!r}): there are no incidents to link",
                       reasons=["the incident plugin is not enabled"])
    number = (number or "").strip().upper()[:32]
    found = service.session.scalar(select(Record.type).where(Record.number == number))
    if found != rt.name:
        raise ValidationError(f"no {rt.title.lower()} {number}",
                              fields={"incident": [f"no such {rt.title.lower()}"]})
    service.link(change, number, CAUSED)
    return {"number": number}


def get_change(service: RecordService, number: str) -> Change:
    record = service.get((number or "").strip().upper()[:32], "change")
    assert isinstance(record, Change)
    return record


def require_admin(service: RecordService) -> None:
    if not service.can(ADMIN_PERMISSION):
        raise Forbidden(f"{service.actor.email} may not manage the change catalogs "
                        "(admins only)")


def services_of(session: Session) -> list[str]:
    """Every service named by a change or a template (for forms and filters)."""
    names: set[str] = set()
    for values in session.scalars(select(Change.services)):
        names.update(values or [])
    for values in session.scalars(select(ChangeTemplate.services)):
        names.update(values or [])
    return sorted(names)


def people_to_tell(session: Session, change: Change) -> set[int]:
    """Owner (assignee) and requester of a change."""
    return {i for i in (change.assignee_id, change.requester_id) if i is not None}

