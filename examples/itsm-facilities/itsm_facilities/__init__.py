"""Facility requests for itsm (cleaning, repairs, moves, access): a vendor plugin.

Everything here goes through itsm's public hooks; the table's schema is the Alembic
branch in ``migrations/versions`` beside this module, which itsm finds by convention.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import itsm
from itsm.core.app import current_itsm
from itsm.core.auth import Permission
from itsm.core.models import Record, utcnow
from itsm.core.notify import EventMessage, Recipient
from itsm.core.records import RecordType
from itsm.core.workflow import State, Transition, Workflow

plugin = itsm.Plugin(
    name="facilities",
    version="0.1.0",
    description="Facility requests: cleaning, repairs, moves and access.",
    requires_itsm=">=0.1,<1",
    settings={"outbox_file": ""},  # JSON-lines file the facilities_file channel appends to
)

KINDS = ("cleaning", "repair", "move", "access")


class FacilityRequest(Record):
    """A request to the facilities team: the core's ``record`` row plus this table's."""

    __tablename__ = "facility_request"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    building: Mapped[str] = mapped_column(String(100))
    room: Mapped[str] = mapped_column(String(50), default="")
    kind: Mapped[str] = mapped_column(String(20))
    scheduled_for: Mapped[datetime | None]
    completion_note: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_identity": "facility_request"}


class FacilityRequestSchema(Schema):
    """The type's own fields; itsm adds title, description, priority and the rest."""

    building = fields.String(required=True, validate=validate.Length(min=1, max=100))
    room = fields.String(validate=validate.Length(max=50))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    # Naive times are read as UTC: itsm stores only aware timestamps.
    scheduled_for = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    completion_note = fields.String(validate=validate.Length(max=5000))


def not_in_the_past(record: FacilityRequest, actor, data: dict) -> str | None:
    """Guard of ``schedule``: nobody can be sent to a room yesterday."""
    when = data.get("scheduled_for") or record.scheduled_for
    if when is not None and when < utcnow():
        return "scheduled_for lies in the past"
    return None


WORKFLOW = Workflow(
    states=[State("new"), State("scheduled"), State("done", final=True),
            State("cancelled", final=True)],
    transitions=[
        Transition("schedule", ("new", "scheduled"), "scheduled", roles=("agent",),
                   required=("scheduled_for",), fields=("assignee",),
                   guards=(not_in_the_past,)),
        Transition("complete", ("scheduled",), "done", label="Mark done", roles=("agent",),
                   required=("completion_note",)),
        Transition("cancel", ("new", "scheduled"), "cancelled"),
    ],
)

FACILITY_REQUEST = RecordType(
    name="facility_request", model=FacilityRequest, prefix="FAC",
    collection="facility-requests", workflow=WORKFLOW, schema=FacilityRequestSchema,
    label="Facility request")


@itsm.hookimpl
def itsm_record_types() -> list[RecordType]:
    return [FACILITY_REQUEST]


@itsm.hookimpl
def itsm_permissions() -> list[Permission]:
    return [
        # Declared here, this replaces the automatic staff-only default: requesters may
        # cancel their agency's requests; the workflow keeps schedule and complete to agents.
        Permission("facility_request.transition", "move facility requests through their "
                   "workflow", ("agent", "requester")),
        Permission("facilities.report", "see the facilities workload", ("agent",)),
    ]


# -- an API route of its own (itsm_facilities.api, imported when itsm serves requests) -----

@itsm.hookimpl
def itsm_blueprints() -> list[Blueprint]:
    # Imported here, not at the top: a command that serves no request never needs it.
    from itsm_facilities.api import api

    return [api]


# -- notifications -------------------------------------------------------------------------


class FileChannel:
    """Appends one JSON line per delivered event to the file in the ``outbox_file`` setting."""

    name = "facilities_file"

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        install = current_itsm()
        name = install.plugin_settings("facilities")["outbox_file"]
        if not name:  # raising leaves the delivery in the outbox, retried with backoff
            raise RuntimeError("no file to write to: set [plugins.facilities] outbox_file "
                               "in itsm.toml or ITSM_PLUGINS_FACILITIES_OUTBOX_FILE")
        line = {"event": message.id, "name": message.name,
                "record": (message.record or {}).get("number"),
                "recipient": recipient.address}
        path = Path(install.settings.home) / name  # a relative name: in the instance folder
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


@itsm.hookimpl
def itsm_notification_channels() -> list[FileChannel]:
    return [FileChannel()]


@itsm.hookimpl
def itsm_notification_recipients(event: EventMessage) -> list[Recipient] | None:
    record = event.record or {}
    if event.name.startswith("record.") and record.get("type") == FACILITY_REQUEST.name:
        return [Recipient("facilities_file", "facilities-desk")]
    return None


# -- command line (itsm_facilities.cli) and demo data --------------------------------------


@itsm.hookimpl
def itsm_cli_commands() -> list[click.Command]:
    from itsm_facilities.cli import facilities  # only the command line needs it

    return [facilities]


@itsm.hookimpl
def itsm_demo_data(ctx) -> None:
    pat = ctx.service("pat@dot.demo.invalid")
    pat.create("facility_request", {"title": "Blinds stuck in meeting room 4.12",
                                    "building": "Headquarters", "room": "4.12",
                                    "kind": "repair"})
    pat.create("facility_request", {"title": "Badge access for the new analyst",
                                    "building": "Annex", "kind": "access"})
