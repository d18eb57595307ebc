"""The facilities plugin's command line: ``itsm facilities summary``."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from itsm.cli import pass_itsm
from itsm_facilities import WORKFLOW, FacilityRequest


@click.group()
def facilities() -> None:
    """Facility requests."""


@facilities.command("summary")
@pass_itsm
def summary(itsm_state) -> None:
    """Count facility requests per workflow state."""
    with itsm_state.Session() as session:
        counts = dict(session.execute(
            select(FacilityRequest.state, func.count(FacilityRequest.id))
            .group_by(FacilityRequest.state)).all())
    for state in WORKFLOW.states.values():
        click.echo(f"{state.title:<10} {counts.get(state.name, 0)}")
    click.echo(f"{'Total':<10} {sum(counts.values())}")
