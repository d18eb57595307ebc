"""``itsm users``, ``agencies``, ``groups``, ``doctor`` and ``worker``."""

from __future__ import annotations

import time

import click
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from itsm.core import auth, people
from itsm.core.auth import Actor
from itsm.core.cli_kit import emit_json, pass_itsm
from itsm.core.errors import ItsmError
from itsm.core.models import ApiToken


def _system(itsm):
    """The CLI's unit of work: run by whoever may run the installation's commands."""
    return itsm.unit_of_work(Actor.system())


# -- users -----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Users, roles and API tokens."""


@users.command("add")
@click.argument("email")
@click.option("--role", default="requester", show_default=True)
@click.option("--name", default="")
@click.option("--agency", help="agency code (requesters belong to one)")
@click.option("--password", help="omit for a user who signs in with tokens only")
@click.option("--group", "groups", multiple=True, help="resolver group (repeatable)")
@pass_itsm
def users_add(itsm, email, role, name, agency, password, groups) -> None:
    """Add a user."""
    with _system(itsm) as service:
        user = people.add_user(service, email, name=name, role=role, agency=agency,
                               groups=list(groups), password=password)
        added = f"added {user.email} ({user.role})"
    click.echo(added)


@users.command("list")
@click.option("--search", default="", help="part of the e-mail address or name")
@click.option("--role", default="")
@click.option("--agency", default="", help="agency code")
@click.option("--group", default="", help="resolver group")
@click.option("--active/--inactive", default=None, help="only active or inactive users")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def users_list(itsm, search: str, role: str, agency: str, group: str, active: bool | None,
               as_json: bool) -> None:
    """List users with role and agency."""
    with _system(itsm) as service:
        rows = people.list_users(service, text=search, role=role, agency=agency, group=group,
                                 active=active, limit=100_000)
    data = [{k: r[k] for k in ("email", "name", "role", "agency", "active")}
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
    with _system(itsm) as service:
        old = people.user(service, email).role
        people.set_role(service, email, role)
    click.echo(f"{email}: {old} -> {role}")


@users.command("deactivate")
@click.argument("email")
@pass_itsm
def users_deactivate(itsm, email: str) -> None:
    """Take a user's access away (tokens revoked, sessions ended); never deleted."""
    with _system(itsm) as service:
        people.set_active(service, email, False)
    click.echo(f"{email} deactivated")


@users.command("reactivate")
@click.argument("email")
@pass_itsm
def users_reactivate(itsm, email: str) -> None:
    """Give a deactivated user their access back (new tokens needed)."""
    with _system(itsm) as service:
        people.set_active(service, email, True)
    click.echo(f"{email} reactivated")


@users.command("password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@pass_itsm
def users_password(itsm, email: str, password: str) -> None:
    """Set a user's password."""
    with _system(itsm) as service:
        people.set_password(service, email, password)  # and ends the user's web sessions
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
    with _system(itsm) as service:
        people.revoke_token(service, token_id)
    click.echo(f"token {token_id} revoked")


@users.command("revoke-all")
@click.argument("email")
@pass_itsm
def users_revoke_all(itsm, email: str) -> None:
    """Revoke every API token of a user."""
    with _system(itsm) as service:
        count = people.revoke_tokens(service, email)
    click.echo(f"{count} token(s) of {email} revoked")


# -- agencies and groups ------------------------------------------------------------------------


@click.group()
def agencies() -> None:
    """Customer agencies."""


@agencies.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--contacts", default="", help="who to call there")
@pass_itsm
def agencies_add(itsm, code: str, name: str, contacts: str) -> None:
    """Add an agency with a short CODE and a NAME."""
    with _system(itsm) as service:
        agency = people.add_agency(service, code, name, contacts)
        added = f"added agency {agency.code}"
    click.echo(added)


@agencies.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def agencies_list(itsm, as_json: bool) -> None:
    """List agencies."""
    with _system(itsm) as service:
        rows = people.list_agencies(service)
    if as_json:
        emit_json([{k: r[k] for k in ("code", "name", "contacts", "active")} for r in rows])
        return
    for row in rows:
        click.echo(f"{row['code']:<12} {row['name']}{'' if row['active'] else ' (inactive)'}")


@click.group()
def groups() -> None:
    """Resolver groups and their members."""


@groups.command("add")
@click.argument("name")
@click.option("--description", default="")
@click.option("--email", default="", help="the group's shared mailbox")
@click.option("--manager", default=None, help="the manager's e-mail address")
@pass_itsm
def groups_add(itsm, name: str, description: str, email: str, manager: str | None) -> None:
    """Add a resolver group."""
    with _system(itsm) as service:
        people.add_group(service, name, description=description, email=email, manager=manager)
    click.echo(f"added group {name}")


@groups.command("list")
@pass_itsm
def groups_list(itsm) -> None:
    """List groups with their member count."""
    with _system(itsm) as service:
        rows = people.list_groups(service)
    for row in rows:
        click.echo(f"{row['name']:<30} {row['member_count']} member(s)")


@groups.command("add-member")
@click.argument("group")
@click.argument("email")
@pass_itsm
def groups_add_member(itsm, group: str, email: str) -> None:
    """Put a user in a group (agents work the records of their groups)."""
    with _system(itsm) as service:
        people.add_member(service, group, email)
        done = f"{people.user(service, email).email} is in {people.group(service, group).name}"
    click.echo(done)


@groups.command("remove-member")
@click.argument("group")
@click.argument("email")
@pass_itsm
def groups_remove_member(itsm, group: str, email: str) -> None:
    """Take a user out of a group."""
    with _system(itsm) as service:
        people.remove_member(service, group, email)
        done = f"{people.user(service, email).email} left {people.group(service, group).name}"
    click.echo(done)


@groups.command("members")
@click.argument("group")
@pass_itsm
def groups_members(itsm, group: str) -> None:
    """List a group's members."""
    with _system(itsm) as service:
        rows = people.members(service, group)
    for row in rows:
        click.echo(row["email"])


# -- doctor and worker -----------------------------------------------------------------------


@click.command()
@pass_itsm
def doctor(itsm) -> None:
    """Check the database, migrations, plugins, the outbox backlog, dead deliveries and
    the SLA sweep; exit non-zero on any problem (thresholds: the health.* settings)."""
    from itsm.core import health

    problems = 0
    for check in health.doctor(itsm):
        kind = "note" if check.note else "ok" if check.ok else "problem"
        click.echo(f"{kind}: {check.message}")
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
