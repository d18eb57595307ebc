"""``itsm ldap …``: sync the directory's users now, and diagnose the configuration."""

from __future__ import annotations

import click

from itsm.plugin import ItsmError, pass_itsm
from itsm.plugins.ldap import service


@click.group("ldap")
def ldap_group() -> None:
    """Sign-in with LDAP / Active Directory: sync users, test the configuration."""


@ldap_group.command("sync")
@pass_itsm
def sync_command(itsm) -> None:
    """Deactivate users who left the directory or its allowed groups (their tokens are
    revoked, their web sessions end); bring the others' name, phone, role, groups and
    agency up to date."""
    conf = itsm.plugin_settings("ldap")
    bar = None

    def total(count: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=count, label="checking directory users",
                                file=click.get_text_stream("stderr"))
        bar.__enter__()

    try:
        report = service.sync(itsm, conf, progress=lambda n: bar.update(n), total=total)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"{report.checked} directory users checked, {report.updated} up to date, "
               f"{len(report.deactivated)} deactivated")
    for email in report.deactivated:
        click.echo(f"deactivated {email}")


@ldap_group.command("test")
@click.argument("email")
@click.option("--password", default=None, help="also check this password by binding as "
              "the person (prompted when given empty: --password '')")
@pass_itsm
def test_command(itsm, email: str, password: str | None) -> None:
    """Check the configuration for EMAIL, one line per step: connect and service bind,
    search, groups, the mapping's result, and (with --password) the person's bind."""
    conf = itsm.plugin_settings("ldap")
    if password == "":
        password = click.prompt("password", hide_input=True)
    try:
        with service.service_connection(conf) as connection:
            tls = conf["start_tls"] and conf["url"].startswith("ldap://")
            click.echo(f"connect: ok ({conf['url']}{', StartTLS' if tls else ''})")
            click.echo(f"service bind: ok as {conf['bind_dn'] or '(anonymous)'}")
            person = service.find_person(conf, connection, email)
        if person is None:
            raise click.ClickException(f"search: no single entry matches {email} under "
                                       f"{conf['user_base']!r} with {conf['user_filter']}")
        click.echo(f"search: found {person.dn}")
        click.echo(f"attributes: e-mail {person.email}, name {person.name or '-'}, "
                   f"phone {person.phone or '-'}")
        click.echo(f"groups: {'; '.join(person.groups) or 'none'}")
        identity = service.identity_for(conf, person, service.role_names(itsm))
        click.echo(f"mapping: role {identity.role}, groups "
                   f"{', '.join(identity.groups) or 'none'}, agency "
                   f"{identity.agency or 'none'}")
        if not service.allowed(conf, person):
            raise click.ClickException("allowed: no, in none of the allowed groups "
                                       f"({'; '.join(conf['allowed_groups'])})")
        click.echo("allowed: yes")
        if password is not None:
            if service.authenticate(conf, email, password) is None:
                raise click.ClickException("password: refused by the directory")
            click.echo("password: ok")
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
