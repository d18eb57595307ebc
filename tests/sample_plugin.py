"""A small process plugin used by the core's tests: "ticket" records with a workflow.

It is written only against the public hooks, as a vendor would write one.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm import Plugin, hookimpl
from itsm.core.migrate import Migrations
from itsm.core.models import Record
from itsm.core.records import RecordType
from itsm.core.workflow import State, Transition, Workflow

plugin = Plugin(name="tickets", version="1.2.0", description="Tickets for core tests.",
                requires_itsm=">=0.1,<1")


class Ticket(Record):
    __tablename__ = "test_ticket"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    category: Mapped[str] = mapped_column(String(50), default="general")
    resolution: Mapped[str] = mapped_column(String(500), default="")
    hold_reason: Mapped[str] = mapped_column(String(200), default="")
    __mapper_args__ = {"polymorphic_identity": "ticket"}


class TicketSchema(Schema):
    category = fields.String(validate=validate.OneOf(["general", "network", "hardware"]))
    resolution = fields.String(validate=validate.Length(max=500))
    hold_reason = fields.String(validate=validate.Length(max=200))


WORKFLOW = Workflow(
    states=[State("new"), State("in_progress"), State("on_hold", waiting=True),
            State("resolved"), State("closed", final=True), State("cancelled", final=True)],
    transitions=[
        Transition("start", ("new", "on_hold"), "in_progress", roles=("agent",)),
        Transition("hold", ("in_progress",), "on_hold", required=("hold_reason",)),
        Transition("resolve", ("new", "in_progress"), "resolved", required=("resolution",)),
        Transition("close", ("resolved",), "closed"),
        Transition("reopen", ("resolved", "closed"), "in_progress"),
        Transition("cancel", ("*",), "cancelled"),
    ],
)

TICKET = RecordType(name="ticket", model=Ticket, prefix="TCK", collection="tickets",
                    workflow=WORKFLOW, schema=TicketSchema, label="Ticket", suggest=True)


@hookimpl
def itsm_record_types():
    return [TICKET]


@hookimpl
def itsm_migrations():
    return Migrations(branch="tickets", tables=[Ticket.__table__])
