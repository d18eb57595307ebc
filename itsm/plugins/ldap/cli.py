"""``itsm ldap sync`` and ``itsm auth test-ldap EMAIL`` (also ``itsm ldap test``): sync the
directory's users now, and diagnose the configuration."""

from __future__ import annotations

import click

from itsm.plugin import ItsmError, pass_itsm
from itsm.plugins.ldap import rules, service
from itsm.plugins.ldap.diagnose import diagnose


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


def _test(itsm, email: str, password: str | None) -> None:
    """Print the diagnosis of EMAIL one line per step; the failed step ends the command
    with exit status 1."""
    conf = rules.effective_settings(itsm)
    if password == "":
        password = click.prompt("password", hide_input=True)
    for step in diagnose(conf, service.role_names(itsm), email, password):
        if not step.ok:
            raise click.ClickException(step.line)
        click.echo(step.line)


TEST_HELP = """Check the directory configuration for EMAIL, one line per step: connect,
    service bind, search, attributes, groups, the mapping's result, allowed, and (with
    --password) the person's own bind. Exit status 1 at the first step that fails."""
PASSWORD_HELP = ("also check this password by binding as the person (prompted when "
                 "given empty: --password '')")


@click.command("test-ldap", help=TEST_HELP)
@click.argument("email")
@click.option("--password", default=None, help=PASSWORD_HELP)
@pass_itsm
def test_ldap_command(itsm, email: str, password: str | None) -> None:
    _test(itsm, email, password)


@ldap_group.command("test", help=TEST_HELP + "\n\n    The same as `itsm auth test-ldap`.")
@click.argument("email")
@click.option("--password", default=None, help=PASSWORD_HELP)
@pass_itsm
def test_command(itsm, email: str, password: str | None) -> None:
    _test(itsm, email, password)
