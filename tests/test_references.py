"""The reference contract: record fields that name things other plugins provide, stored
by stable id, with free text when no provider is enabled."""

from __future__ import annotations

import pytest
import sample_plugin
from marshmallow import Schema, fields, validate
from sqlalchemy import JSON, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from itsm.core import plugin_admin
from itsm.core.auth import Actor
from itsm.core.migrate import Migrations
from itsm.core.models import Agency, Record
from itsm.core.records import RecordType
from itsm.core.workflow import State, Transition, Workflow
from itsm.plugin import (
    ImpactHit,
    InputError,
    Ref,
    ReferenceKind,
    reference_changed,
    reference_choices,
    reference_impact,
    reference_kind,
    reference_label,
    resolve_reference,
)
from itsm.testing import make_plugin

API = "/api/v1/work-orders"


class WorkOrder(Record):
    __tablename__ = "test_work_order"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    service: Mapped[str] = mapped_column(String(200), default="")
    things: Mapped[list[str]] = mapped_column(JSON, default=list)
    __mapper_args__ = {"polymorphic_identity": "work_order"}


class WorkOrderSchema(Schema):
    service = fields.String(validate=validate.Length(max=200))
    things = fields.List(fields.String(validate=validate.Length(max=200)))


WORK_ORDER = RecordType(
    name="work_order", model=WorkOrder, prefix="WO", collection="work-orders",
    workflow=Workflow(states=[State("open"), State("done", final=True)],
                      transitions=[Transition("finish", ("open",), "done")]),
    schema=WorkOrderSchema, references={"service": "service", "things": "thing"})

work_orders = make_plugin(
    "work_orders", itsm_record_types=lambda: [WORK_ORDER],
    itsm_migrations=lambda: Migrations(branch="work_orders", tables=[WorkOrder.__table__]))

# The provider's things: id -> (label, status); a rename changes the label only.
SERVICES = {"10": "E-mail", "11": "Payroll"}
THINGS = {"1": "mail server", "2": "mail database"}
DEPENDS = {"1": [], "2": ["1"]}  # thing 2 (the database) runs on thing 1
SERVICE_OF = {"2": "10"}  # the mail database serves e-mail
AGENCIES_OF: dict[str, list[str]] = {}
CHANGES: list[tuple[str, str, str | None]] = []
WALKED_THROUGH: list[bool] = []  # a thing's walk says it went on through its services
SERVICE_WALKS: list[list[str]] = []


def _finder(kind: str, table: dict[str, str]):
    def get(session, id_):
        return Ref(kind, id_, table[id_]) if id_ in table else None

    def resolve(session, value):
        value = value.removeprefix("#")
        if value in table:
            return get(session, value)
        return next((get(session, i) for i, label in table.items()
                     if label.lower() == value.lower()), None)

    def choices(session, actor, text, limit):
        return [Ref(kind, i, label) for i, label in table.items()
                if text.lower() in label.lower()][:limit]
    return get, resolve, choices


def _thing_impact(session, ids):
    hits, todo = [], [(i, (Ref("thing", i, THINGS[i]),)) for i in ids]
    while todo:
        current, path = todo.pop()
        for other, deps in DEPENDS.items():
            if current in deps:
                step = (*path, Ref("thing", other, THINGS[other]))
                hits.append(ImpactHit(step[-1], step))
                todo.append((other, step))
        if current in SERVICE_OF:
            service = Ref("service", SERVICE_OF[current], SERVICES[SERVICE_OF[current]])
            hits.append(ImpactHit(service, (*path, service), walked=bool(WALKED_THROUGH)))
    return hits


def _service_impact(session, ids):
    SERVICE_WALKS.append(list(ids))
    out = []
    for id_ in ids:
        start = Ref("service", id_, SERVICES[id_])
        for agency_id in AGENCIES_OF.get(id_, []):
            agency = Ref("agency", agency_id, agency_id)
            out.append(ImpactHit(agency, (start, agency)))
    return out


def _kinds():
    return [ReferenceKind("service", "Service", *_finder("service", SERVICES),
                          impact=_service_impact, priority=100),
            ReferenceKind("thing", "Thing", *_finder("thing", THINGS),
                          impact=_thing_impact)]


def _changed(session, ref, change, into):
    CHANGES.append((ref.id, change, into.id if into else None))


things = make_plugin("things", itsm_reference_kinds=_kinds, itsm_reference_changed=_changed)


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, work_orders, things]


@pytest.fixture(autouse=True)
def fresh_things():
    SERVICES.update({"10": "E-mail", "11": "Payroll"})
    CHANGES.clear()
    AGENCIES_OF.clear()
    WALKED_THROUGH.clear()
    SERVICE_WALKS.clear()


def test_a_provided_reference_is_stored_by_id_and_shown_with_its_label(app, client, agent):
    made = client.post(API, headers=agent, json={
        "title": "Move the mailbox", "service": "e-mail", "things": ["#2", "mail server"]})
    assert made.status_code == 201, made.json
    body = made.json
    assert body["service"] == "10" and body["things"] == ["2", "1"]
    assert body["service_ref"] == {"kind": "service", "id": "10", "label": "E-mail",
                                   "url": None, "status": "active"}
    assert [r["label"] for r in body["things_refs"]] == ["mail database", "mail server"]
    SERVICES["10"] = "Electronic mail"  # a rename in the provider: only the label moves
    again = client.get(f"{API}/{body['number']}", headers=agent).json
    assert again["service"] == "10" and again["service_ref"]["label"] == "Electronic mail"
    journal = client.get(f"{API}/{body['number']}/journal", headers=agent).json["items"]
    assert journal[0]["data"]["service"] == "10"


def test_an_unknown_value_is_a_field_message_not_a_5xx(app, client, agent):
    bad = client.post(API, headers=agent, json={"title": "x", "service": "Nothing",
                                                 "things": ["mail server", "toaster"]})
    assert bad.status_code == 422, bad.json
    assert set(bad.json["error"]["fields"]) == {"service", "things"}
    assert "no service is known as 'Nothing'" in bad.json["error"]["fields"]["service"][0]
    made = client.post(API, headers=agent, json={"title": "x", "service": "Payroll"}).json
    patch = client.patch(f"{API}/{made['number']}", headers=agent, json={"service": "Nope"})
    assert patch.status_code == 422 and "service" in patch.json["error"]["fields"]


def test_without_a_provider_the_field_is_validated_free_text(app, client, agent):
    with app.app_context():
        plugin_admin.disable(app.extensions["itsm"], "things")
    made = client.post(API, headers=agent, json={"title": "x", "service": " E-mail ",
                                                 "things": ["box", "box"]})
    assert made.status_code == 201, made.json
    assert made.json["service"] == "E-mail" and made.json["things"] == ["box"]
    assert made.json["service_ref"]["label"] == "E-mail"
    bad = client.post(API, headers=agent, json={"title": "x", "service": "a\x00b"})
    assert bad.status_code == 422 and "service" in bad.json["error"]["fields"]


def test_core_kinds_people_groups_agencies_with_agency_scoping(app, make_token):
    make_token("pat@example.org", role="requester", agency="DOT")
    make_token("sam@example.org", role="requester", agency="DOH")
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        pat = resolve_reference(session, "user", "PAT@example.org")
        assert pat.kind == "user" and pat.id.isdigit()
        dot = resolve_reference(session, "agency", "DOT")
        assert reference_label(session, "agency", dot.id) == "Agency DOT"
        with pytest.raises(InputError, match="no agency is known"):
            resolve_reference(session, "agency", "XYZ")
        requester = Actor(int(pat.id), "pat@example.org", "requester",
                          agency_id=int(dot.id))
        seen = {r.label for r in reference_choices(session, requester, "agency", "")}
        assert seen == {"Agency DOT"}
        sam = resolve_reference(session, "user", "sam@example.org")
        people = {r.id for r in reference_choices(session, requester, "user", "")}
        assert pat.id in people and sam.id not in people
        staff = {r.label for r in reference_choices(session, Actor.system(), "agency", "")}
        assert {"Agency DOT", "Agency DOH"} <= staff


def test_impact_walks_across_providers_with_paths(app, make_token):
    make_token("pat@example.org", role="requester", agency="DOT")
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        dot = str(session.scalar(select(Agency.id).where(Agency.code == "DOT")))
        AGENCIES_OF["10"] = [dot]
        hits = {(h.ref.kind, h.ref.id): h for h in reference_impact(session, "thing", ["1"])}
        assert set(hits) == {("thing", "2"), ("service", "10"), ("agency", dot)}
        assert [r.id for r in hits[("agency", dot)].path] == ["1", "2", "10", dot]
        assert reference_impact(session, "nothing", ["1"]) == []
        assert SERVICE_WALKS == [["10"]]


def test_a_hit_its_provider_walked_through_is_not_walked_again(app):
    """A provider whose own walk went on through the services it reached (the cmdb's
    graph holds them) marks them walked: the core does not ask the service provider
    again, which for a hub's hundreds of services doubled the change page's time."""
    itsm = app.extensions["itsm"]
    WALKED_THROUGH.append(True)
    with app.app_context(), itsm.Session() as session:
        hits = {(h.ref.kind, h.ref.id) for h in reference_impact(session, "thing", ["1"])}
    assert hits == {("thing", "2"), ("service", "10")}
    assert SERVICE_WALKS == []


def test_the_highest_priority_provider_wins_and_changes_are_announced(app):
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        names = [k.name for r in itsm.hook.itsm_reference_kinds() for k in r]
        assert names.count("service") == 1 and "user" in names
        assert reference_kind("service").priority == 100
        assert reference_kind("user").priority == -100  # the core's, overridable
        e_mail = Ref("service", "10", "E-mail")
        reference_changed(session, e_mail, "merged", Ref("service", "11", "Payroll"))
        itsm.hook.itsm_reference_changed(session=session, ref=e_mail, change="renamed",
                                         into=None)
        assert CHANGES == [("10", "merged", "11"), ("10", "renamed", None)]
        with pytest.raises(ValueError):
            reference_changed(session, e_mail, "painted")


def test_the_old_catalog_only_hooks_refuse_a_plugin_naming_them():
    """The service hooks were folded into the reference contract: a plugin still
    implementing one is refused at start-up, naming the hook."""
    from itsm.core.plugins import inspect_module

    for old in ("itsm_service_lookup", "itsm_service_status_guard",
                "itsm_service_status_requested"):
        info = inspect_module(make_plugin("old_catalog", **{old: lambda: None}))
        assert info.error is not None and old in info.error


def test_a_data_migration_turns_stored_names_into_ids_where_a_provider_knows_them(
        app, client, agent):
    from itsm.plugin import convert_stored_references

    state = app.extensions["itsm"]
    with app.app_context():
        plugin_admin.disable(state, "things")
    made = client.post(API, headers=agent, json={
        "title": "Old", "service": "Payroll", "things": ["mail server", "toaster"]}).json
    other = client.post(API, headers=agent, json={"title": "Odd", "service": "Fax"}).json
    with app.app_context():
        plugin_admin.enable(state, "things")
        with state.engine.begin() as connection:
            assert convert_stored_references(connection, "test_work_order", "service",
                                             "service") == 1
            assert convert_stored_references(connection, "test_work_order", "things",
                                             "thing", many=True) == 1
            assert convert_stored_references(connection, "test_work_order", "service",
                                             "service") == 0  # idempotent
    first = client.get(f"{API}/{made['number']}", headers=agent).json
    assert first["service"] == "11" and first["things"] == ["1", "toaster"]
    assert client.get(f"{API}/{other['number']}", headers=agent).json["service"] == "Fax"
