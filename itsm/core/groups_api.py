"""``/api/v1/groups``: resolver groups and their members, through :mod:`itsm.core.people`.

Staff read groups and members (``groups.read``); admins add and change groups and
their members (``admin.groups``). A group is addressed by its id or its name.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import RAISE, Schema, fields, validate

from itsm.core import people
from itsm.core.api import PREFIX, current_actor, document, json_body
from itsm.core.context import current_itsm
from itsm.core.inputs import load_input
from itsm.core.schemas import InputSchema

bp = Blueprint("groups_api", __name__, url_prefix=f"{PREFIX}/groups")
TAGS = ["groups"]


class GroupIn(InputSchema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(validate=validate.Length(max=2000))
    email = fields.String(validate=validate.Length(max=254),
                          metadata={"description": "the group's shared mailbox"})
    manager = fields.String(allow_none=True, validate=validate.Length(max=254),
                            metadata={"description": "the manager's e-mail address"})


class MemberIn(InputSchema):
    class Meta:
        unknown = RAISE

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class MemberOut(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    active = fields.Boolean(required=True)


class GroupOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    email = fields.String(required=True)
    manager = fields.String(allow_none=True, required=True)
    manager_name = fields.String(allow_none=True, required=True)
    members = fields.List(fields.Nested(MemberOut))
    member_count = fields.Integer()


class GroupPage(Schema):
    items = fields.List(fields.Nested(GroupOut), required=True)


class MemberPage(Schema):
    items = fields.List(fields.Nested(MemberOut), required=True)


def _unit():
    return current_itsm().unit_of_work(current_actor())


@bp.get("")
@document(summary="the resolver groups with their member counts (staff)", response=GroupPage,
          tags=TAGS)
def list_groups():
    with _unit() as service:
        return jsonify({"items": people.list_groups(service)})


@bp.post("")
@document(summary="add a resolver group (admins)", body=GroupIn, response=GroupOut,
          status=201, tags=TAGS)
def add_group():
    data = load_input(GroupIn(), json_body(), what="group")
    with _unit() as service:
        found = people.add_group(service, data["name"], description=data.get("description", ""),
                                 email=data.get("email", ""), manager=data.get("manager"))
        out = people.group_dict(service, found)
    return jsonify(out), 201


@bp.get("/<group>")
@document(summary="a resolver group with its members, by id or name (staff)",
          response=GroupOut, tags=TAGS)
def read_group(group: str):
    with _unit() as service:
        return jsonify(people.group_dict(service, people.group(service, group[:100])))


@bp.patch("/<group>")
@document(summary="change a resolver group's name, description, mailbox or manager "
                  "(admins; manager null removes it)", body=GroupIn, partial=True,
          response=GroupOut, tags=TAGS)
def update_group(group: str):
    data = load_input(GroupIn(), json_body(), what="group", partial=True)
    with _unit() as service:
        found = people.update_group(
            service, group[:100], name=data.get("name"), description=data.get("description"),
            email=data.get("email"), manager=data.get("manager"),
            clear_manager="manager" in data and not data["manager"])
        out = people.group_dict(service, found)
    return jsonify(out)


@bp.get("/<group>/members")
@document(summary="a resolver group's members (staff)", response=MemberPage, tags=TAGS)
def group_members(group: str):
    with _unit() as service:
        return jsonify({"items": people.members(service, group[:100])})


@bp.post("/<group>/members")
@document(summary="put a user in a resolver group (admins); 200 when already a member",
          body=MemberIn, response=MemberPage, status=201, also=(200,), tags=TAGS)
def add_group_member(group: str):
    data = load_input(MemberIn(), json_body(), what="member")
    with _unit() as service:
        added = people.add_member(service, group[:100], data["email"])
        out = people.members(service, group[:100])
    return jsonify({"items": out}), 201 if added else 200


@bp.delete("/<group>/members/<email>")
@document(summary="take a user out of a resolver group (admins)", status=204, tags=TAGS)
def remove_group_member(group: str, email: str):
    with _unit() as service:
        people.remove_member(service, group[:100], email[:254])
    return "", 204
