"""Install defaults (CAB groups and rules, risk questionnaire, templates) and demo changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    DemoContext,
    GroupMember,
    InputError,
    ItsmError,
    ensure_group,
    reference_kind,
    resolve_reference,
    utcnow,
)
from itsm.plugins.change import service as changes
from itsm.plugins.change.models import (
    Approval,
    CabRule,
    Change,
    ChangeTemplate,
    FreezeWindow,
    RiskQuestion,
)

CHANGE_MANAGERS = "Change managers"
CAB = "Change advisory board"
EMERGENCY_CAB = "Emergency CAB"

GROUPS = ((CHANGE_MANAGERS, "Approve low-risk normal changes."),
          (CAB, "The change advisory board: approves medium- and high-risk changes."),
          (EMERGENCY_CAB, "Approves emergency changes and changes inside a freeze."))

RULES: tuple[dict[str, Any], ...] = (
    {"name": "Low risk: a change manager", "group": CHANGE_MANAGERS, "quorum": "any",
     "change_types": ["normal"], "risk_levels": ["low"]},
    {"name": "Medium risk: CAB majority", "group": CAB, "quorum": "majority",
     "change_types": ["normal"], "risk_levels": ["medium"]},
    {"name": "High risk: the whole CAB", "group": CAB, "quorum": "all",
     "change_types": ["normal"], "risk_levels": ["high"]},
    {"name": "Emergency: the emergency CAB", "group": EMERGENCY_CAB, "quorum": "any",
     "change_types": ["emergency"]},
    {"name": "Freeze exception: the emergency CAB", "group": EMERGENCY_CAB, "quorum": "any",
     "purpose": "freeze"},
)

QUESTIONS: tuple[dict[str, Any], ...] = (
    {"key": "users_affected", "text": "Who would an outage affect?",
     "options": {"few": 0, "department": 2, "agency": 4}},
    {"key": "complexity", "text": "How complex is the change?",
     "options": {"routine": 0, "moderate": 1, "complex": 3}},
    {"key": "tested", "text": "Was it tested in a like-for-like environment?",
     "options": {"yes": 0, "partly": 1, "no": 3}},
    {"key": "backout", "text": "How fast can it be backed out?",
     "options": {"minutes": 0, "hours": 1, "not_possible": 3}},
)

TEMPLATES: tuple[dict[str, Any], ...] = (
    {"name": "tls-certificate-renewal", "title": "Renew a TLS certificate",
     "description": "Replace an expiring certificate by one from the agency CA.",
     "category": "security", "services": [],
     "implementation_plan": "Install the new certificate and key; reload the web server.",
     "backout_plan": "Restore the previous certificate from the backup and reload.",
     "test_plan": "Check the chain and expiry date with openssl s_client.",
     "max_window_hours": 24},
    {"name": "workstation-patching", "title": "Monthly workstation security patches",
     "description": "The vendor's monthly security updates to office workstations.",
     "category": "patching", "services": ["Workstations"],
     "implementation_plan": "Release the approved updates to the pilot ring, then to all.",
     "backout_plan": "Uninstall the update through the management console.",
     "test_plan": "Pilot ring of 20 machines for two days.",
     "environments": ["production"], "max_window_hours": 24 * 7},
)


def _empty(session: Session, model: type) -> bool:
    return not session.scalar(select(func.count()).select_from(model))


def install_defaults(session: Session) -> None:
    """Idempotent: each catalog is seeded only while it is empty, so an admin's deletions
    stay deleted on the next ``itsm init``."""
    groups = {name: ensure_group(session, name, text) for name, text in GROUPS}
    if _empty(session, CabRule):
        for rule in RULES:
            values = {"purpose": "cab", "change_types": [], "risk_levels": [],
                      "services": [], "categories": [], "active": True,
                      **{k: v for k, v in rule.items() if k != "group"}}
            session.add(CabRule(group_id=groups[rule["group"]].id, **values))
    if _empty(session, RiskQuestion):
        for position, question in enumerate(QUESTIONS):
            session.add(RiskQuestion(position=position, active=True, **question))
    if _empty(session, ChangeTemplate):
        for template in TEMPLATES:
            session.add(ChangeTemplate(risk_level="low", active=True, **template))
    session.flush()


def _join(session: Session, group_name: str, user_id: int) -> None:
    group = ensure_group(session, group_name)
    exists = session.scalar(select(GroupMember.user_id).where(
        GroupMember.group_id == group.id, GroupMember.user_id == user_id))
    if exists is None:
        session.add(GroupMember(group_id=group.id, user_id=user_id))
        session.flush()


def _at(days: int, hour: int) -> datetime:
    base = utcnow().replace(minute=0, second=0, microsecond=0)
    return (base + timedelta(days=days)).replace(hour=hour)


def load(ctx: DemoContext) -> None:
    """A standard change, one awaiting the CAB, a successful one, a failed emergency
    change (with the incident it caused, when incidents exist) and a freeze window."""
    install_defaults(ctx.session)
    agent, resolver = ctx.users.get("agent@demo.invalid"), ctx.users.get("resolver@demo.invalid")
    if agent is None or resolver is None or not _empty(ctx.session, Change):
        return
    for group in (CHANGE_MANAGERS, CAB):
        _join(ctx.session, group, agent.id)
    for group in (CAB, EMERGENCY_CAB, CHANGE_MANAGERS):
        _join(ctx.session, group, resolver.id)
    year = utcnow().year
    if _empty(ctx.session, FreezeWindow):
        ctx.session.add(FreezeWindow(
            name=f"Year-end freeze {year}", starts_at=datetime(year, 12, 20, tzinfo=UTC),
            ends_at=datetime(year + 1, 1, 3, tzinfo=UTC), services=[],
            reason="Financial year-end: no changes without emergency approval."))
    alex = ctx.service(agent)
    robin = ctx.service(resolver)
    low = {"users_affected": "few", "complexity": "routine", "tested": "yes",
           "backout": "minutes"}
    medium = {"users_affected": "department", "complexity": "moderate", "tested": "partly",
              "backout": "minutes"}
    standard = alex.create("change", {
        "title": "Monthly workstation patches, November", "template": "workstation-patching",
        "planned_start": _at(3, 18).isoformat(), "planned_end": _at(3, 22).isoformat()})
    alex.transition(standard, "schedule")
    waiting = alex.create("change", {
        "title": "Upgrade the e-mail gateway to 10.2", "change_type": "normal",
        "reason": "The vendor ends support for 10.1.",
        "services": known(ctx, "service", "E-mail", "email"),
        "config_items": known(ctx, "configuration_item", "mailgw01", "mailgw02"),
        "implementation_plan": "Upgrade mailgw02, fail over, upgrade mailgw01.",
        "backout_plan": "Fail back to the node still on 10.1.", "test_plan": "Send test mail.",
        "planned_start": _at(6, 20).isoformat(), "planned_end": _at(6, 23).isoformat()})
    alex.transition(waiting, "submit")
    alex.transition(waiting, "assess", {"risk_answers": medium})
    done = alex.create("change", {
        "title": "Add a second DNS resolver", "services": known(ctx, "service", "Network"),
        "config_items": known(ctx, "configuration_item", "dns02"),
        "implementation_plan": "Deploy dns02; add it to DHCP.",
        "backout_plan": "Remove dns02 from DHCP.", "planned_start": _at(-20, 19).isoformat(),
        "planned_end": _at(-20, 21).isoformat()})
    alex.transition(done, "submit")
    alex.transition(done, "assess", {"risk_answers": low})
    _approve_all(ctx, done)
    for name in ("schedule", "implement", "complete"):
        alex.transition(done, name)
    alex.transition(done, "close", {"review_outcome": "success",
                                    "lessons": "Went as planned."})
    failed = alex.create("change", {
        "title": "Emergency fix of the VPN concentrator", "change_type": "emergency",
        "services": known(ctx, "service", "Remote access", "vpn"),
        "config_items": known(ctx, "configuration_item", "vpn01"),
        "reason": "Tunnels drop every hour.", "implementation_plan": "Apply hotfix 7.4.2.",
        "backout_plan": "Reinstall 7.4.1 from the image.",
        "planned_start": _at(-5, 21).isoformat(), "planned_end": _at(-5, 23).isoformat()})
    alex.transition(failed, "submit")
    alex.transition(failed, "assess", {"risk_answers": medium})
    _approve_all(ctx, failed)
    for name in ("schedule", "implement", "fail", "back_out", "finish_backout"):
        alex.transition(failed, name)
    rt = changes.incident_type()
    if rt is not None:
        # Opened through the core record service with core fields only: this plugin knows
        # nothing of the incident type's own fields (its defaults apply).
        try:
            with ctx.session.begin_nested():
                incident = alex.create(rt.name, {
                    "title": "VPN logins fail after the concentrator hotfix",
                    "description": "Every remote login is refused since 21:30."})
                changes.link_incident(robin, failed, incident.number)
        except ItsmError:
            pass  # that type needs fields of its own: the demo goes on without the link
    alex.transition(failed, "close", {"review_outcome": "failed", "lessons": (
        "The hotfix needs the new firmware first; test on the spare unit next time.")})


def known(ctx: DemoContext, kind: str, first: str, *others: str) -> list[str]:
    """``[first]`` with no provider of ``kind``; else the first of the names the provider
    knows (its id), or none: the demo never names a thing the provider lacks."""
    if reference_kind(kind) is None:
        return [first]
    for name in (first, *others):
        try:
            return [resolve_reference(ctx.session, kind, name).id]
        except InputError:
            continue
    return []


def _approve_all(ctx: DemoContext, change: Change) -> None:
    pending = ctx.session.scalars(select(Approval).where(
        Approval.record_id == change.id, Approval.state == "pending")).all()
    for approval in pending:
        user = next(u for u in ctx.users.values() if u.id == approval.approver_id)
        if change.state == "cab_review" or approval.purpose == "freeze":
            changes.decide(ctx.service(user), approval.id, "approve", "Looks good.")
