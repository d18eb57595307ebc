"""The ``itsm`` command line: everything an admin does, scriptable and non-interactive.

Every error is one line on stderr and a non-zero exit status; enabled plugins add their
own commands through ``itsm_cli_commands``.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import sys
from pathlib import Path

import click

from itsm import __version__
from itsm.core.cli_kit import CliState, emit_json, made_apps, pass_itsm
from itsm.core.config import CONFIG_FILE, SLA_DEFAULTS, instance_path
from itsm.core.errors import ItsmError
from itsm.core.plugins import collector_paused

log = logging.getLogger("itsm.cli")

# CliState, pass_itsm and emit_json live in itsm.core.cli_kit (plugins get them from
# itsm.plugin); they stay importable from here for scripts written against itsm.cli.
__all__ = ["CliState", "cli", "emit_json", "main", "pass_itsm"]


class ItsmGroup(click.Group):
    """The top-level group: core commands plus those of enabled plugins."""

    def _plugins(self, ctx: click.Context) -> dict[str, click.Command]:
        state = ctx.ensure_object(CliState)
        if state.plugin_commands is None:
            state.plugin_commands = {}
            try:
                itsm = state.app().extensions["itsm"]
                provided = itsm.results("itsm_cli_commands")
            except ItsmError as exc:
                click.echo(f"warning: plugin commands unavailable: {exc.message}", err=True)
                return {}
            for plugin, command in provided:
                taken = command.name in self.commands or command.name in state.plugin_commands
                if taken:
                    owner = state.plugin_of.get(command.name, "itsm")
                    click.echo(f"warning: plugin {plugin!r} command {command.name!r} is "
                               f"refused: the name belongs to {owner!r}", err=True)
                    continue
                state.plugin_commands[command.name] = command
                state.plugin_of[command.name] = plugin
        return state.plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands) + sorted(self._plugins(ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or self._plugins(ctx).get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in self.commands and command is not None:
            ctx.with_resource(ctx.ensure_object(CliState).app().app_context())
        return name, command, rest


@click.group(cls=ItsmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="itsm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """itsm: IT Service Management with only the processes you need.

    The instance folder is $ITSM_HOME (default ./instance); ITSM_DATABASE_URL and every
    other ITSM_* variable override itsm.toml.
    """
    ctx.ensure_object(CliState)


# -- init, serve, demo -----------------------------------------------------------------------


def write_config(home: Path, database_url: str | None) -> Path:
    """Create itsm.toml with a secret key and the default SLA policy, if it is missing."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)  # the database and files live here
    import tomli_w

    path = home / CONFIG_FILE
    if path.exists():
        return path
    config: dict = {"secret_key": secrets.token_hex(32)}
    if database_url:
        config["database"] = {"url": database_url}
    config["sla"] = {"warn_at": 0.75, "calendar": "default", **SLA_DEFAULTS}
    # The business calendar SLA clocks run on; add holidays and change hours here.
    config["calendars"] = {"default": {
        "timezone": "UTC", **{day: "08:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")},
        "sat": "", "sun": "", "holidays": []}}
    # Created private, not chmod-ed afterwards: it holds the secret key from the start.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                   encoding="utf-8") as out:
        out.write("# itsm instance settings; every one can also be set as ITSM_<NAME>.\n"
                  + tomli_w.dumps(config))
    return path


@cli.command()
@click.option("--admin-email", help="e-mail of the first admin (created if missing)")
@click.option("--admin-password", help="password of the first admin")
@click.option("--database-url", help="write this database URL into a new itsm.toml")
@click.pass_context
def init(ctx: click.Context, admin_email: str | None, admin_password: str | None,
         database_url: str | None) -> None:
    """Create the instance folder, config, schema, defaults and first admin (safe to rerun)."""
    if admin_email and admin_password:  # refused before anything is written
        from itsm.core.auth import check_password_policy

        check_password_policy(admin_password, admin_email, field="admin_password")
    home = instance_path()
    path = write_config(home, database_url)
    click.echo(f"instance {home} (config {path.name})")
    state = ctx.ensure_object(CliState)
    state.reset()
    app = state.app()
    itsm = app.extensions["itsm"]
    with app.app_context():
        from itsm.core.install import initialise

        for step in initialise(itsm, progress=lambda n: click.echo(f"  schema: {n}")):
            click.echo(f"  migrated {step}")
        if admin_email:
            from sqlalchemy import select

            from itsm.core.auth import create_user, set_password
            from itsm.core.models import User

            with itsm.Session() as session:
                user = session.scalar(select(User).where(User.email == admin_email.lower()))
                if user is None:
                    if not admin_password:
                        raise click.UsageError("--admin-password is needed for a new admin")
                    create_user(session, admin_email, password=admin_password, role="admin",
                                name="Administrator")
                    click.echo(f"  admin {admin_email.lower()} created")
                else:
                    user.role = "admin"
                    if admin_password:
                        set_password(session, user, admin_password)
                    click.echo(f"  admin {user.email} exists")
                session.commit()
    click.echo("ready: itsm serve")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--debug", is_flag=True, help="reload on code changes; never in production")
@click.option("--no-worker", is_flag=True, help="do not deliver notifications in-process")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, debug: bool, no_worker: bool) -> None:
    """Run the development server. In production: gunicorn 'itsm.core.app:create_app()'."""
    app = ctx.ensure_object(CliState).app()
    itsm = app.extensions["itsm"]
    if not no_worker:
        itsm.outbox.start_thread()
    click.echo(f"itsm on http://{host}:{port}/ (API http://{host}:{port}/api/v1/)")
    app.run(host=host, port=port, debug=debug, use_reloader=debug)


@cli.command()
@pass_itsm
def demo(itsm) -> None:
    """Load demo agencies, groups, users and every enabled plugin's demo data."""
    from itsm.core.demo import DEMO_PASSWORD, DemoContext, core_demo

    with itsm.Session() as session:
        ctx = DemoContext(itsm, session)
        click.echo("demo: agencies, groups and users")
        core_demo(ctx)
        session.flush()
        # pluggy keeps implementations in reverse call order: tryfirst ones run first and
        # trylast ones (demo data that links to other plugins' records) last.
        impls = list(reversed(itsm.hook.itsm_demo_data.get_hookimpls()))
        with click.progressbar(impls, label="demo: plugins", file=sys.stderr,
                               item_show_func=lambda i: i.plugin_name if i else "") as bar:
            for impl in bar:
                impl.function(**{k: v for k, v in {"ctx": ctx}.items() if k in impl.argnames})
        session.commit()
    itsm.outbox.committed(ctx.events)
    click.echo(f"demo users (password {DEMO_PASSWORD!r}): " + ", ".join(sorted(ctx.users)))


# -- database --------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema: upgrade, current revisions, pending migrations."""


@db.command("upgrade")
@pass_itsm
def db_upgrade(itsm) -> None:
    """Apply the core's and every enabled plugin's migrations."""
    from itsm.core import migrate

    steps = migrate.upgrade(itsm, progress=lambda n: click.echo(f"upgrading {n}"))
    for step in steps:
        click.echo(f"migrated {step}")
    click.echo("database is up to date" if not steps else f"{len(steps)} branch(es) upgraded")


@db.command("current")
@pass_itsm
def db_current(itsm) -> None:
    """Show the applied revision of each branch."""
    from itsm.core import migrate

    revisions = migrate.current(itsm)
    if not revisions:
        raise ItsmError("the database has no itsm schema: run `itsm init`")
    for branch, revision in sorted(revisions.items()):
        click.echo(f"{branch}: {revision}")


# -- plugins ---------------------------------------------------------------------------------

with collector_paused():  # the commands' modules bring the models and most of the core
    from itsm.commands.admin import agencies, audit, doctor, groups, users, worker
    from itsm.commands.auth import auth_group
    from itsm.commands.exchange import export_command, import_command
    from itsm.commands.outbox import outbox
    from itsm.commands.plugins import plugins
    from itsm.commands.records import records
    from itsm.commands.satisfaction import satisfaction_group
    from itsm.commands.sla import sla_group

for command in (plugins, users, agencies, groups, doctor, worker, sla_group, audit, outbox,
                export_command, import_command, records, auth_group, satisfaction_group):
    cli.add_command(command)


def _leave() -> None:
    """The command is done and the process ends: close the database connections of the
    applications it made, then spare the interpreter from taking every long-lived object
    (modules, models, the application) apart one by one on its way out, which costs about
    as long as building the application did; the operating system frees the memory."""
    for app in list(made_apps):
        app.extensions["itsm"].engine.dispose()
    gc.freeze()


def main() -> None:
    """Entry point: run the CLI with one-line errors and no tracebacks."""
    try:
        _main()
    finally:
        _leave()


def _main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        cli(standalone_mode=True)
    except ItsmError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except (OperationalError, ProgrammingError) as exc:
        from itsm.core.migrate import missing_table

        made = [app.extensions["itsm"] for app in made_apps]
        missing = missing_table(made[0] if made else None, exc)
        if missing is not None:
            click.echo(f"error: {missing.message}", err=True)
            sys.exit(1)
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        click.echo(f"error: database: {first} (has `itsm init` run? is the server up?)",
                   err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ITSM_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (set ITSM_DEBUG=1 for details)",
                   err=True)
        sys.exit(1)

