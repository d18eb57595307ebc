"""``itsm users``, ``agencies``, ``groups``, ``doctor`` and ``worker``."""

from __future__ import annotations

import time

import click
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from itsm.core import auth
from itsm.core.cli_kit import emit_json, pass_itsm
from itsm.core.errors import ItsmError, NotFound
from itsm.core.models import Agency, ApiToken, Group, GroupMember, User


def _roles(itsm) -> list[str]:
    return auth.known_roles(list(itsm.permissions.values()))


# -- users -----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Users, roles and API tokens."""


@users.command("add")
@click.argument("email")
@click.option("--role", default="requester", show_default=True)
@click.option("--name", default="", help="display name shown instead of the address")
@click.option("--time-zone", "time_zone", default="",
              help="IANA zone the pages show times in (default: the install's)")
@click.option("--agency", help="agency code (requesters belong to one)")
@click.option("--password", help="omit for a user who signs in with tokens only")
@click.option("--group", "groups", multiple=True, help="resolver group (repeatable)")
@pass_itsm
def users_add(itsm, email, role, name, time_zone, agency, password, groups) -> None:
    """Add a user."""
    from itsm.core.people import check_time_zone

    time_zone = check_time_zone(time_zone)
    with itsm.Session() as session:
        user = auth.create_user(session, email, password=password, role=role, name=name,
                                agency=agency, roles=_roles(itsm))
        user.time_zone = time_zone
        for group_name in groups:
            group = session.scalar(select(Group).where(Group.name == group_name))
            if group is None:
                raise NotFound(f"no group {group_name!r}: itsm groups add {group_name!r}")
            session.add(GroupMember(group_id=group.id, user_id=user.id))
        session.commit()
        click.echo(f"added {user.email} ({user.role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def users_list(itsm, as_json: bool) -> None:
    """List users with role and agency."""
    with itsm.Session() as session:
        rows = session.execute(select(User.email, User.name, User.role, Agency.code,
                                      User.active).outerjoin(Agency, User.agency_id == Agency.id)
                               .order_by(User.email)).all()
    data = [{"email": r[0], "name": r[1], "role": r[2], "agency": r[3], "active": r[4]}
            for r in rows]
    if as_json:
        emit_json(data)
        return
    for row in data:
        click.echo(f"{row['email']:<36} {row['role']:<10} {row['agency'] or '-':<8} "
                   f"{row['name']}{'' if row['active'] else ' (inactive)'}")


@users.command("set-role")
@click.argument("email")
@click.argument("role")
@pass_itsm
def users_set_role(itsm, email: str, role: str) -> None:
    """Change a user's role."""
    roles = _roles(itsm)
    if role not in roles:
        raise ItsmError(f"unknown role {role!r} (roles: {', '.join(roles)})")
    with itsm.Session() as session:
        user = auth.user_by_email(session, email)
        old, user.role = user.role, role
        session.commit()
    click.echo(f"{email}: {old} -> {role}")


@users.command("password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@pass_itsm
def users_password(itsm, email: str, password: str) -> None:
    """Set a user's password."""
    with itsm.Session() as session:
        user = auth.user_by_email(session, email)
        auth.set_password(session, user, password)  # and ends the user's web sessions
        session.commit()
    click.echo(f"password of {email} changed; the user's web sessions have ended")


@users.command("token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="what the token is for")
@click.option("--days", type=click.IntRange(0, 3650), default=None,
              help="lifetime in days (default auth.token_days; 0: as long as allowed); "
                   "never more than auth.token_max_days")
@pass_itsm
def users_token(itsm, email: str, name: str, days: int | None) -> None:
    """Create an API token; prints only the token (it is shown this once)."""
    days = itsm.settings["auth.token_days"] if days is None else days
    with itsm.Session() as session:
        _, secret = auth.create_token(session, auth.user_by_email(session, email), name=name,
                                      days=days, max_days=itsm.settings["auth.token_max_days"])
        session.commit()
    click.echo(secret)


@users.command("tokens")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def users_tokens(itsm, email: str, as_json: bool) -> None:
    """List a user's API tokens (never the secrets)."""
    with itsm.Session() as session:
        user = auth.user_by_email(session, email)
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                 .order_by(ApiToken.id)).all()
    max_days = itsm.settings["auth.token_max_days"]
    data = [{"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at,
             "expires_at": auth.effective_expiry(t.created_at, t.expires_at, max_days),
             "last_used_at": t.last_used_at,
             "revoked": t.revoked_at is not None} for t in tokens]
    if as_json:
        emit_json(data)
        return
    for t in data:
        state = "revoked" if t["revoked"] else f"expires {t['expires_at']}"
        click.echo(f"{t['id']:>5} {t['prefix']}… {t['name']:<20} {state}")


@users.command("revoke")
@click.argument("token_id", type=int)
@pass_itsm
def users_revoke(itsm, token_id: int) -> None:
    """Revoke an API token by its id (see `itsm users tokens`)."""
    with itsm.Session() as session:
        auth.revoke_token(session, token_id)
        session.commit()
    click.echo(f"token {token_id} revoked")


# -- agencies and groups ------------------------------------------------------------------------


@click.group()
def agencies() -> None:
    """Customer agencies."""


@agencies.command("add")
@click.argument("code")
@click.argument("name")
@pass_itsm
def agencies_add(itsm, code: str, name: str) -> None:
    """Add an agency with a short CODE and a NAME."""
    code = code.strip().upper()
    if not code.replace("-", "").replace("_", "").isalnum() or len(code) > 32:
        raise ItsmError(f"agency code {code!r}: use up to 32 letters, digits, - or _")
    with itsm.Session() as session:
        if session.scalar(select(Agency.id).where(Agency.code == code)):
            raise ItsmError(f"agency {code} exists already")
        session.add(Agency(code=code, name=name))
        session.commit()
    click.echo(f"added agency {code}")


@agencies.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def agencies_list(itsm, as_json: bool) -> None:
    """List agencies."""
    with itsm.Session() as session:
        rows = session.execute(select(Agency.code, Agency.name).order_by(Agency.code)).all()
    if as_json:
        emit_json([{"code": c, "name": n} for c, n in rows])
        return
    for code, name in rows:
        click.echo(f"{code:<12} {name}")


@click.group()
def groups() -> None:
    """Resolver groups and their members."""


@groups.command("add")
@click.argument("name")
@click.option("--description", default="")
@pass_itsm
def groups_add(itsm, name: str, description: str) -> None:
    """Add a resolver group."""
    with itsm.Session() as session:
        if session.scalar(select(Group.id).where(Group.name == name)):
            raise ItsmError(f"group {name!r} exists already")
        session.add(Group(name=name, description=description))
        session.commit()
    click.echo(f"added group {name}")


@groups.command("list")
@pass_itsm
def groups_list(itsm) -> None:
    """List groups with their member count."""
    with itsm.Session() as session:
        rows = session.execute(select(Group.name, func.count(GroupMember.user_id))
                               .outerjoin(GroupMember).group_by(Group.name)
                               .order_by(Group.name)).all()
    for name, members in rows:
        click.echo(f"{name:<30} {members} member(s)")


def _group_and_user(session, group: str, email: str) -> tuple[Group, User]:
    found = session.scalar(select(Group).where(Group.name == group))
    if found is None:
        raise NotFound(f"no group {group!r} (see itsm groups list)")
    return found, auth.user_by_email(session, email)


@groups.command("add-member")
@click.argument("group")
@click.argument("email")
@pass_itsm
def groups_add_member(itsm, group: str, email: str) -> None:
    """Put a user in a group (agents work the records of their groups)."""
    with itsm.Session() as session:
        found, user = _group_and_user(session, group, email)
        if session.get(GroupMember, (found.id, user.id)) is None:
            session.add(GroupMember(group_id=found.id, user_id=user.id))
            session.commit()
    click.echo(f"{user.email} is in {found.name}")


@groups.command("remove-member")
@click.argument("group")
@click.argument("email")
@pass_itsm
def groups_remove_member(itsm, group: str, email: str) -> None:
    """Take a user out of a group."""
    with itsm.Session() as session:
        found, user = _group_and_user(session, group, email)
        member = session.get(GroupMember, (found.id, user.id))
        if member is None:
            raise ItsmError(f"{user.email} is not in {found.name}")
        session.delete(member)
        session.commit()
    click.echo(f"{user.email} left {found.name}")


@groups.command("members")
@click.argument("group")
@pass_itsm
def groups_members(itsm, group: str) -> None:
    """List a group's members."""
    with itsm.Session() as session:
        found = session.scalar(select(Group).where(Group.name == group))
        if found is None:
            raise NotFound(f"no group {group!r} (see itsm groups list)")
        emails = session.scalars(select(User.email).join(GroupMember, GroupMember.user_id
                                                          == User.id)
                                 .where(GroupMember.group_id == found.id)
                                 .order_by(User.email)).all()
    for email in emails:
        click.echo(email)


# -- doctor and worker -----------------------------------------------------------------------


@click.command()
@pass_itsm
def doctor(itsm) -> None:
    """Check the database, migrations, plugins, the outbox backlog, dead deliveries and
    the SLA sweep; exit non-zero on any problem (thresholds: the health.* settings)."""
    from itsm.core import health, plugin_admin

    problems = 0
    with itsm.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    click.echo(f"ok: database {itsm.engine.url.render_as_string(hide_password=True)}")
    from itsm.core.calendars import load_calendars

    click.echo(f"ok: calendars {', '.join(sorted(load_calendars(itsm.settings)))}")
    report = plugin_admin.check(itsm)
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
        problems += 1
    enabled = sorted(itsm.host.enabled)
    click.echo(f"ok: {len(enabled)} plugin(s) enabled: {', '.join(enabled) or 'none'}")
    for check in health.checks(itsm):
        click.echo(f"ok: {check.message}" if check.ok else f"problem: {check.message}")
        problems += not check.ok
    if problems:
        raise ItsmError(f"{problems} problem(s) found")
    click.echo("all checks passed")


@click.command()
@click.option("--once", is_flag=True, help="drain what is due and exit")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600))
@pass_itsm
def worker(itsm, once: bool, interval: float) -> None:
    """Run the background work: SLA sweep, plugins' periodic jobs, outbox delivery."""
    from itsm.core.jobs import run_cycle

    while True:
        try:
            stats = run_cycle(itsm)
        except DBAPIError as exc:
            if once:
                raise
            # The database went away: keep running, the next cycle retries on a fresh
            # connection (the pool pre-pings) and nothing claimed is lost.
            first = str(exc.orig or exc).strip().splitlines()[:1]
            click.echo(f"database unavailable ({' '.join(first)}); retrying", err=True)
            time.sleep(interval)
            continue
        if stats.events or stats.delivered or stats.failed or stats.dead or once:
            click.echo(f"events {stats.events}, delivered {stats.delivered}, "
                       f"retrying {stats.failed}, dead {stats.dead}")
        if once:
            return
        if not stats.more:  # a backlog: the next cycle at once, within its budgets again
            time.sleep(interval)


@click.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--user", "email", help="only this user's refused actions")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def audit(itsm, limit: int, email: str | None, as_json: bool) -> None:
    """Refused actions, newest first: who tried what on which record."""
    from itsm.core.models import AccessDenial, Record

    query = (select(AccessDenial.created_at, AccessDenial.actor_email, AccessDenial.permission,
                    Record.number).outerjoin(Record, AccessDenial.record_id == Record.id)
             .order_by(AccessDenial.id.desc()).limit(limit))
    if email:
        query = query.where(AccessDenial.actor_email == email.strip().lower())
    with itsm.Session() as session:
        rows = session.execute(query).all()
    data = [{"at": at, "user": who, "permission": perm, "record": number}
            for at, who, perm, number in rows]
    if as_json:
        emit_json(data)
        return
    for row in data:
        click.echo(f"{row['at']:%Y-%m-%d %H:%M:%S} {row['user']:<32} {row['permission']:<24} "
                   f"{row['record'] or '-'}")
