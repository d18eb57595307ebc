"""``itsm relationship …``: portfolios and monthly service reviews from the command line."""

from __future__ import annotations

import click

from itsm.plugin import Actor, ItsmError, pass_itsm, utcnow
from itsm.plugins.relationship import service as relationship


@click.group("relationship")
def relationship_group() -> None:
    """Relationship managers' portfolios and the agencies' monthly service reviews."""


@relationship_group.command("assign")
@click.argument("email")
@click.argument("agency")
@pass_itsm
def assign_command(itsm, email: str, agency: str) -> None:
    """Put AGENCY in the portfolio of staff member EMAIL."""
    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            relationship.assign(svc, email, agency)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{agency.upper()} is in {email}'s portfolio")


@relationship_group.command("reviews")
@pass_itsm
def reviews_command(itsm) -> None:
    """Keep and mail last month's review of every agency that has none yet."""
    from itsm.plugins.relationship.pages import review_pdf_bytes

    try:
        kept = relationship.monthly(itsm, utcnow(), review_pdf_bytes)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{kept} reviews kept and mailed")
