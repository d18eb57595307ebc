"""Default and demonstration data: what ``itsm init`` and ``itsm demo`` create.

Plugins add theirs through ``itsm_install_defaults`` and ``itsm_demo_data`` with a
:class:`DemoContext`, writing through the record service like any user would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.auth import Actor, create_user
from itsm.core.models import Agency, Group, GroupMember, User

if TYPE_CHECKING:
    from itsm.core.records import RecordService
    from itsm.core.state import Itsm

DEFAULT_GROUPS = (("Service Desk", "First line: takes every call and ticket first."),)

DEMO_AGENCIES = (("DOT", "Department of Transportation"), ("DOH", "Department of Health"))
DEMO_GROUPS = (("Network", "LAN, WAN, VPN and firewalls."),
               ("Applications", "Line-of-business applications."))
DEMO_PASSWORD = "demo-password"
# Demo people live under the reserved top-level domain .invalid (RFC 2606, RFC 6761): no
# such address ever resolves, so a demo install that sends mail reaches nobody.
DEMO_DOMAIN = "demo.invalid"
DEMO_USERS = (
    ("agent@demo.invalid", "Alex Agent", "agent", None, ("Service Desk", "Network")),
    ("resolver@demo.invalid", "Robin Resolver", "agent", None, ("Applications",)),
    ("pat@dot.demo.invalid", "Pat Requester", "requester", "DOT", ()),
    ("sam@doh.demo.invalid", "Sam Requester", "requester", "DOH", ()),
)


@dataclass
class DemoContext:
    """What default- and demo-data hooks get: the session and services acting as users."""

    itsm: Itsm
    session: Session
    users: dict[str, User] = field(default_factory=dict)
    agencies: dict[str, Agency] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    services: list[RecordService] = field(default_factory=list)

    @property
    def events(self) -> list:
        """Outbox events written through this context's services (for after commit)."""
        return [event for service in self.services for event in service.events]

    def service(self, user: User | str | None = None) -> RecordService:
        """A record service in this transaction acting as ``user`` (default: the system)."""
        from itsm.core.records import RecordService

        if isinstance(user, str):
            user = self.users[user]
        actor = Actor.of(self.session, user) if user is not None else Actor.system()
        service = RecordService(self.itsm, self.session, actor)
        self.services.append(service)
        return service


def ensure_group(session: Session, name: str, description: str = "") -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, description=description)
        session.add(group)
        session.flush()
    return group


def ensure_agency(session: Session, code: str, name: str) -> Agency:
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        agency = Agency(code=code, name=name)
        session.add(agency)
        session.flush()
    return agency


def install_defaults(ctx: DemoContext) -> None:
    for name, description in DEFAULT_GROUPS:
        ctx.groups[name] = ensure_group(ctx.session, name, description)


def core_demo(ctx: DemoContext) -> None:
    """Two agencies, resolver groups, agents and a requester per agency (idempotent)."""
    session = ctx.session
    install_defaults(ctx)
    for code, name in DEMO_AGENCIES:
        ctx.agencies[code] = ensure_agency(session, code, name)
    for name, description in DEMO_GROUPS:
        ctx.groups[name] = ensure_group(session, name, description)
    for email, name, role, agency, groups in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = create_user(session, email, password=DEMO_PASSWORD, role=role, name=name,
                               agency=agency)
            for group in groups:
                session.add(GroupMember(group_id=ctx.groups[group].id, user_id=user.id))
            session.flush()
        ctx.users[email] = user
