"""Facility requests for itsm (repairs, cleaning, moves, access): a whole vendor plugin.

A record type with its own fields, a workflow, a notification channel and a command,
written against ``itsm.plugin``, the one import for plugin authors. It ships no
migrations: itsm creates the record type's table when the plugin is enabled.
"""

from datetime import UTC, datetime

import click
from marshmallow import Schema, fields, validate
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

import itsm.plugin as itsm

plugin = itsm.Plugin(name="facilities", version="0.2.0", requires_itsm=">=0.1,<1",
                     description="Facility requests: repairs, cleaning, moves and access.")


class FacilityRequest(itsm.Record):
    """A request to the facilities team: the core's ``record`` row plus this table's."""

    __tablename__ = "facility_request"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"), primary_key=True)
    building: Mapped[str] = mapped_column(String(100))
    visit_at: Mapped[datetime | None]  # when the technician comes
    __mapper_args__ = {"polymorphic_identity": "facility_request"}


class FacilityRequestSchema(Schema):
    """The type's own fields; itsm adds title, description, priority and the rest."""

    building = fields.String(required=True, validate=validate.Length(min=1, max=100))
    visit_at = fields.AwareDateTime(default_timezone=UTC, allow_none=True)  # naive = UTC


WORKFLOW = itsm.Workflow(  # agents schedule and complete; the requester may cancel their own
    states=[itsm.State("new"), itsm.State("scheduled"), itsm.State("done", final=True),
            itsm.State("cancelled", final=True)],
    transitions=[itsm.Transition("schedule", ("new",), "scheduled", roles=("agent",),
                                 required=("visit_at",)),
                 itsm.Transition("complete", ("scheduled",), "done", roles=("agent",)),
                 itsm.Transition("cancel", ("new", "scheduled"), "cancelled", requester=True)])


class LogFileChannel:
    """Appends a line per delivered event to ``facilities.log`` in the instance folder."""

    name = "facilities_file"

    def deliver(self, message: itsm.EventMessage, recipient: itsm.Recipient) -> None:
        with open(f"{itsm.current_itsm().settings.home}/facilities.log", "a") as log:
            log.write(f"{message.name} {message.record['number']} {recipient.address}\n")


@click.command("facilities")
@itsm.pass_itsm
def summary(install) -> None:
    """Count facility requests per workflow state, as JSON."""
    with install.Session() as session:
        query = select(FacilityRequest.state, func.count()).group_by(FacilityRequest.state)
        itsm.emit_json(dict(session.execute(query).all()))


@itsm.hookimpl
def itsm_record_types() -> list[itsm.RecordType]:
    return [itsm.RecordType(name="facility_request", model=FacilityRequest, prefix="FAC",
                            collection="facility-requests", workflow=WORKFLOW,
                            schema=FacilityRequestSchema)]


@itsm.hookimpl
def itsm_notification_channels() -> list[LogFileChannel]:
    return [LogFileChannel()]


@itsm.hookimpl
def itsm_notification_recipients(event: itsm.EventMessage) -> list[itsm.Recipient]:
    mine = (event.record or {}).get("type") == "facility_request"
    return [itsm.Recipient("facilities_file", "facilities-desk")] if mine else []


@itsm.hookimpl
def itsm_cli_commands() -> list[click.Command]:
    return [summary]
