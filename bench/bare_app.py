"""The ceiling of our own stack: Flask + SQLAlchemy doing the same database work as itsm's
create, read and queue, with no plugins, no validation, no permissions, no journal, no
SLA clocks and no outbox.

It runs on the very tables itsm created (same schema, same indexes, same number
sequence), behind the same gunicorn, so the itsm / bare ratio is the cost of what itsm
adds. Serve it with ``gunicorn 'bench.bare_app:create_app()'`` and ``ITSM_DATABASE_URL``.
"""

from __future__ import annotations

import base64
import json
import os

from flask import Flask, jsonify, request
from sqlalchemy import Integer, func, insert, literal, literal_column, select, tuple_, update
from sqlalchemy.orm import aliased

from bench.generate import PRIORITY
from itsm.core.database import make_engine
from itsm.core.models import Agency, Group, NumberSequence, Record, User, utcnow
from itsm.plugins.incident.models import Incident

RECORD = Record.__table__
INCIDENT = Incident.__table__
OWN = ("category", "subcategory", "impact", "urgency", "channel")
FINAL = {"closed", "cancelled"}


def _select():
    requester, assignee = aliased(User), aliased(User)
    return (select(RECORD, *(INCIDENT.c[name] for name in OWN),
                   Agency.code.label("agency"), requester.email.label("requester"),
                   assignee.email.label("assignee"), Group.name.label("group"))
            .join(INCIDENT, INCIDENT.c.id == RECORD.c.id)
            .outerjoin(Agency, Agency.id == RECORD.c.agency_id)
            .outerjoin(requester, requester.id == RECORD.c.requester_id)
            .outerjoin(assignee, assignee.id == RECORD.c.assignee_id)
            .outerjoin(Group, Group.id == RECORD.c.group_id))


def _row(row) -> dict:
    out = dict(row._mapping)
    for key in ("created_at", "updated_at", "closed_at"):
        out[key] = out[key].isoformat() if out[key] else None
    for key in ("agency_id", "requester_id", "assignee_id", "group_id", "created_by_id", "id"):
        out.pop(key, None)
    return out


def create_app() -> Flask:
    app = Flask("bare")
    engine = make_engine(os.environ["ITSM_DATABASE_URL"])

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.post("/api/v1/incidents")
    def create():
        data = request.get_json()
        with engine.begin() as conn:
            seq = NumberSequence.__table__
            value = conn.execute(update(seq).where(seq.c.prefix == "INC")
                                 .values(last_value=seq.c.last_value + 1)
                                 .returning(seq.c.last_value)).scalar_one()
            group_id = conn.scalar(select(Group.id).where(Group.name == data.get("group")))
            now = utcnow()
            number = f"INC{value:07d}"
            priority = PRIORITY[data.get("impact", 3) - 1][data.get("urgency", 3) - 1]
            record_id = conn.execute(insert(RECORD).values(
                type="incident", number=number, title=data["title"],
                description=data.get("description", ""), state="new", priority=priority,
                group_id=group_id, created_at=now, updated_at=now, version=1)
                .returning(RECORD.c.id)).scalar_one()
            conn.execute(insert(INCIDENT).values(
                id=record_id, category=data.get("category", ""), subcategory="",
                affected_service="", impact=data.get("impact", 3),
                urgency=data.get("urgency", 3), channel="api", major=False, workaround="",
                hold_kind="", hold_reason="", resolution_code="", resolution_notes="",
                reopen_count=0, satisfaction_comment=""))
        response = jsonify({"number": number, "title": data["title"], "state": "new",
                            "priority": priority, "version": 1})
        response.status_code = 201
        return response

    @app.get("/api/v1/incidents/<number>")
    def read(number: str):
        with engine.connect() as conn:
            row = conn.execute(_select().where(RECORD.c.number == number)).first()
        if row is None:
            return {"error": "not found"}, 404
        return jsonify(_row(row))

    @app.get("/api/v1/incidents")
    def queue():
        args = request.args
        limit = int(args.get("limit", 50))
        priority = func.coalesce(RECORD.c.priority, literal_column("99"))
        stmt = _select().where(RECORD.c.type == "incident")
        with engine.connect() as conn:
            if args.get("group"):  # looked up first, as itsm does: the plan sees the id
                group_id = conn.scalar(select(Group.id).where(Group.name == args["group"]))
                stmt = stmt.where(RECORD.c.group_id == group_id)
        if args.get("state"):
            stmt = stmt.where(RECORD.c.state.in_(args["state"].split(",")))
            if not set(args["state"].split(",")) & FINAL:  # the open-records queue index
                stmt = stmt.where(RECORD.c.closed_at.is_(None))
        if args.get("cursor"):
            value, last_id = json.loads(base64.urlsafe_b64decode(args["cursor"]))
            stmt = stmt.where(tuple_(priority, RECORD.c.id)
                              > tuple_(literal(value, Integer()), literal(last_id, Integer())))
        stmt = stmt.order_by(priority, RECORD.c.id).limit(limit + 1)
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
        cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            cursor = base64.urlsafe_b64encode(json.dumps(
                [last.priority if last.priority is not None else 99, last.id]).encode()).decode()
        return jsonify({"items": [_row(r) for r in rows[:limit]], "next": cursor})

    return app
