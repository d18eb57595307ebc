"""Every hook of itsm/core/hookspecs.py, exercised through a throwaway plugin."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta
from pathlib import Path

import click
import pytest
import sample_plugin
from sqlalchemy import select, update

from itsm.core import auth, plugin_admin
from itsm.core.app import create_app
from itsm.core.attachments import LocalFolderStore
from itsm.core.auth import Actor, Identity, Permission, SignInMethod
from itsm.core.errors import NotFound, ValidationError
from itsm.core.hookspecs import hookimpl
from itsm.core.models import Delivery, Event, Group, JournalEntry, Record, utcnow
from itsm.core.notify import Recipient
from itsm.core.records import LinkKind, UnjournaledChange
from itsm.core.sla import SlaTarget, policy_for
from itsm.testing import make_plugin


def token_for(application, email="agent@example.org", role="agent", agency=None):
    from itsm.core import auth
    from itsm.core.demo import ensure_agency

    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        if agency:
            ensure_agency(session, agency, agency)
        user = auth.create_user(session, email, role=role, agency=agency)
        _, secret = auth.create_token(session, user)
        session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_itsm_transition_guard_veto_reaches_the_user_with_its_reason(with_plugin):
    def itsm_transition_guard(record, transition, data):
        if transition.name == "close" and record.priority == 1:
            return "a priority 1 ticket needs a post-incident review before closing"
        return None

    application = with_plugin(make_plugin("reviews", itsm_transition_guard=itsm_transition_guard))
    web, headers = application.test_client(), token_for(application)
    number = web.post("/api/v1/tickets", json={"title": "Core switch down", "priority": 1},
                      headers=headers).json["number"]
    web.post(f"/api/v1/tickets/{number}/transitions",
             json={"name": "resolve", "fields": {"resolution": "replaced"}}, headers=headers)
    offered = {t["name"]: t for t in web.get(f"/api/v1/tickets/{number}/transitions",
                                             headers=headers).json["items"]}
    assert offered["close"]["allowed"] is False
    assert offered["close"]["reasons"] == [
        "a priority 1 ticket needs a post-incident review before closing"]
    refused = web.post(f"/api/v1/tickets/{number}/transitions", json={"name": "close"},
                       headers=headers)
    assert refused.status_code == 409
    assert refused.json["error"]["reasons"] == offered["close"]["reasons"]
    assert web.get(f"/api/v1/tickets/{number}", headers=headers).json["state"] == "resolved"


def test_itsm_record_prepare_routes_before_the_journal_entry_and_can_refuse(with_plugin):
    seen = []

    def itsm_record_prepare(session, record, change):
        seen.append((change.kind, change.transition, dict(change.changes)))
        if change.kind == "created" and "forbidden" in record.title:
            raise ValidationError("titles may not say forbidden", fields={"title": ["no"]})
        if change.kind == "created":
            group = session.scalar(select(Group).where(Group.name == "Service Desk"))
            record.group_id = group.id  # auto-routing, journaled with the record
        if change.kind == "updated" and "title" in change.changes:
            record.priority = 1  # a retitled ticket is looked at first

    application = with_plugin(make_plugin("router", itsm_record_prepare=itsm_record_prepare))
    web, headers = application.test_client(), token_for(application)
    created = web.post("/api/v1/tickets", json={"title": "Mail slow"}, headers=headers)
    assert created.json["group"] == "Service Desk"
    number = created.json["number"]
    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.unit_of_work(Actor.system()) as service:
        service.update(service.get(number), {"title": "Mail down"})
    journal = web.get(f"/api/v1/tickets/{number}/journal", headers=headers).json["items"]
    assert journal[0]["data"]["group"] == "Service Desk"  # the journal says so
    assert journal[1]["data"]["changes"]["title"] == ["Mail slow", "Mail down"]
    assert journal[1]["data"]["changes"]["priority"][1] == 1
    assert ("updated", None, {"title": ["Mail slow", "Mail down"]}) in seen
    refused = web.post("/api/v1/tickets", json={"title": "forbidden words"}, headers=headers)
    assert refused.status_code == 422
    with itsm.Session() as session:
        titles = session.scalars(select(Record.title)).all()
    assert titles == ["Mail down"]  # nothing half-written for the refused one


def test_itsm_record_changed_writes_in_the_same_transaction_and_can_refuse(with_plugin):
    def itsm_record_changed(session, record, change):
        if change.kind == "created" and "forbidden" in record.title:
            raise ValidationError("titles may not say forbidden", fields={"title": ["no"]})
        if change.kind == "created":
            from itsm.core.app import current_itsm
            from itsm.core.records import RecordService

            RecordService(current_itsm(), session, Actor.system()).comment(
                record, "Thank you: the service desk reads every ticket.")

    application = with_plugin(make_plugin("welcome", itsm_record_changed=itsm_record_changed))
    web, headers = application.test_client(), token_for(application)
    created = web.post("/api/v1/tickets", json={"title": "Mail slow"}, headers=headers)
    number = created.json["number"]
    journal = web.get(f"/api/v1/tickets/{number}/journal", headers=headers).json["items"]
    assert [e["kind"] for e in journal] == ["created", "commented"]
    refused = web.post("/api/v1/tickets", json={"title": "forbidden words"}, headers=headers)
    assert refused.status_code == 422
    itsm = application.extensions["itsm"]
    with itsm.Session() as session:
        titles = session.scalars(select(Record.title)).all()
        events = session.scalar(select(Event.id).where(Event.payload.isnot(None)).limit(5))
    assert titles == ["Mail slow"]  # nothing half-written for the refused one
    assert events is not None


def _sneaky_router(session, record, change):
    if change.kind == "created":
        record.group_id = session.scalar(select(Group.id).where(Group.name == "Service Desk"))


def test_itsm_record_changed_changing_its_record_is_refused_in_testing(with_plugin):
    application = with_plugin(make_plugin("sneaky", itsm_record_changed=_sneaky_router))
    application.config["TESTING"] = True
    itsm = application.extensions["itsm"]
    with application.app_context():
        with pytest.raises(UnjournaledChange) as refused, \
                itsm.unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": "Mail slow"})
        with itsm.Session() as session:
            assert session.scalars(select(Record.title)).all() == []  # nothing written
    assert "plugin 'sneaky' changed group_id of TCK" in str(refused.value)
    assert "itsm_record_prepare" in str(refused.value)


def test_itsm_record_changed_changing_its_record_is_logged_in_production(with_plugin, caplog):
    application = with_plugin(make_plugin("sneaky", itsm_record_changed=_sneaky_router))
    assert not (application.testing or application.debug)
    itsm = application.extensions["itsm"]
    with application.app_context(), caplog.at_level("WARNING", logger="itsm.records"), \
            itsm.unit_of_work(Actor.system()) as service:
        number = service.create("ticket", {"title": "Mail slow"}).number
    assert f"changed group_id of {number} in itsm_record_changed" in caplog.text


def test_itsm_event_committed_runs_after_commit_and_cannot_fail_the_request(with_plugin):
    seen = []

    def itsm_event_committed(event):
        seen.append((event.name, event.record["number"]))
        raise RuntimeError("a broken listener")

    application = with_plugin(make_plugin("listener",
                                          itsm_event_committed=itsm_event_committed))
    web, headers = application.test_client(), token_for(application)
    response = web.post("/api/v1/tickets", json={"title": "Laptop"}, headers=headers)
    assert response.status_code == 201
    assert seen == [("record.created", "TCK0000001")]


class FlakyChannel:
    name = "flaky"

    def __init__(self):
        self.up = False
        self.received = []

    def deliver(self, message, recipient):
        if not self.up:
            raise ConnectionError("receiver is down")
        self.received.append((message.id, message.name, recipient.address))


def test_itsm_notification_channels_failing_channel_loses_nothing(with_plugin):
    channel = FlakyChannel()
    module = make_plugin(
        "flaky", itsm_notification_channels=lambda: [channel],
        itsm_notification_recipients=lambda event: [Recipient("flaky", "ops@example.org"),
                                                     Recipient("flaky", "ops@example.org")])
    application = with_plugin(module)
    web, headers = application.test_client(), token_for(application)
    assert web.post("/api/v1/tickets", json={"title": "Disk full"},
                    headers=headers).status_code == 201
    itsm = application.extensions["itsm"]
    with application.app_context():
        first = itsm.outbox.drain()
        assert first.failed == 1 and channel.received == []
        with itsm.Session() as session:
            delivery = session.scalar(select(Delivery).where(Delivery.channel == "flaky"))
            assert delivery.state == "pending" and delivery.attempts == 1
            assert "receiver is down" in delivery.last_error
            session.execute(update(Delivery).values(next_attempt_at=utcnow()))
            session.commit()
        channel.up = True
        second = itsm.outbox.drain()
    assert second.delivered >= 1
    assert channel.received == [(1, "record.created", "ops@example.org")]  # once, deduped


def test_itsm_notification_recipients_dead_after_max_attempts(with_plugin, itsm_config):
    channel = FlakyChannel()
    module = make_plugin(
        "dead", itsm_notification_channels=lambda: [channel],
        itsm_notification_recipients=lambda event: [Recipient("flaky", "x@example.org")])
    application = with_plugin(module)
    itsm = application.extensions["itsm"]
    itsm.settings["outbox.max_attempts"] = 2
    web, headers = application.test_client(), token_for(application)
    web.post("/api/v1/tickets", json={"title": "Disk full"}, headers=headers)
    with application.app_context():
        for _ in range(2):
            itsm.outbox.drain()
            with itsm.Session() as session:
                session.execute(update(Delivery).where(Delivery.state == "pending")
                                .values(next_attempt_at=utcnow() - timedelta(days=1)))
                session.commit()
        assert itsm.outbox.backlog()["dead"] == 1


def test_itsm_permissions_and_itsm_permission_check_override_the_default(with_plugin):
    def itsm_permission_check(actor, permission, record):
        if permission == "ticket.create" and actor.email.endswith("@contractor.example"):
            return False
        return None

    module = make_plugin(
        "policy", itsm_permission_check=itsm_permission_check,
        itsm_permissions=lambda: [Permission("ticket.export", "export tickets", ("agent",))])
    application = with_plugin(module)
    itsm = application.extensions["itsm"]
    assert itsm.permissions["ticket.export"].roles == ("agent",)
    web = application.test_client()
    contractor = token_for(application, "joe@contractor.example")
    staff = token_for(application, "ann@example.org")
    assert web.post("/api/v1/tickets", json={"title": "x"}, headers=contractor).status_code == 403
    assert web.post("/api/v1/tickets", json={"title": "x"}, headers=staff).status_code == 201


def test_itsm_sla_policy_first_result_wins_over_the_default(with_plugin, itsm):
    record = Record(priority=1, agency_id=7)
    default = policy_for(itsm, record, "resolution")
    assert default is None or isinstance(default, SlaTarget)

    def itsm_sla_policy(record, metric):
        if record.agency_id == 7:
            return SlaTarget(metric=metric, minutes=30, source="MOU DOT-1")
        return None

    application = with_plugin(make_plugin("mou_like", itsm_sla_policy=itsm_sla_policy))
    other = application.extensions["itsm"]
    with application.app_context():
        assert policy_for(other, record, "response").source == "MOU DOT-1"
        assert policy_for(other, Record(priority=1, agency_id=8), "response") is None \
            or policy_for(other, Record(priority=1, agency_id=8), "response").source \
            == "default policy"


class DictStore:
    """An attachment store of a vendor's making: files kept in a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, stream, *, limit):
        data = stream.read(limit + 1)
        digest = hashlib.sha256(data).hexdigest()
        self.files[f"dict/{digest}"] = data
        return f"dict/{digest}", len(data), digest

    def open(self, key):
        if key not in self.files:
            raise NotFound("the attachment's file is missing from the store")
        return io.BytesIO(self.files[key])

    def delete(self, key):
        self.files.pop(key, None)


def test_itsm_attachment_store_of_a_plugin_receives_the_uploaded_file(with_plugin,
                                                                       itsm_config):
    store = DictStore()
    application = with_plugin(make_plugin("dict_store",
                                          itsm_attachment_store=lambda settings: store))
    web, headers = application.test_client(), token_for(application)
    number = web.post("/api/v1/tickets", json={"title": "Printer"}, headers=headers).json[
        "number"]

    upload = web.post(f"/api/v1/tickets/{number}/attachments",
                      data={"file": (io.BytesIO(b"toner log"), "toner.log")},
                      content_type="multipart/form-data", headers=headers)

    assert upload.status_code == 201
    assert list(store.files.values()) == [b"toner log"]
    download = web.get(f"/api/v1/tickets/{number}/attachments/{upload.json['id']}",
                       headers=headers)
    assert download.data == b"toner log"
    folder = itsm_config["attachments.path"]
    assert not any(path.is_file() for path in Path(folder).rglob("*")), \
        "the local folder kept a copy"
    itsm = application.extensions["itsm"]
    with application.app_context():
        plugin_admin.disable(itsm, "dict_store")
    assert isinstance(itsm.attachments, LocalFolderStore)  # the core's default again


def test_default_attachment_store_is_the_local_folder(itsm, itsm_config):
    assert isinstance(itsm.attachments, LocalFolderStore)
    assert str(itsm.attachments.path) == itsm_config["attachments.path"]


def test_default_sla_policy_reads_the_configuration(itsm):
    itsm.settings["sla.resolution.p2"] = 480
    target = policy_for(itsm, Record(priority=2), "resolution")
    assert target == SlaTarget(metric="resolution", minutes=480)


def test_itsm_link_kinds_adds_a_kind_usable_in_the_api(with_plugin):
    kind = LinkKind("blocks", "blocks", "blocked by")
    application = with_plugin(make_plugin("blocking", itsm_link_kinds=lambda: [kind]))
    web, headers = application.test_client(), token_for(application)
    a = web.post("/api/v1/tickets", json={"title": "A"}, headers=headers).json["number"]
    b = web.post("/api/v1/tickets", json={"title": "B"}, headers=headers).json["number"]
    linked = web.post(f"/api/v1/tickets/{a}/links", json={"target": b, "kind": "blocks"},
                      headers=headers)
    assert linked.status_code == 201 and linked.json["label"] == "blocks"
    back = web.get(f"/api/v1/tickets/{b}/links", headers=headers).json["items"]
    assert back[0]["label"] == "blocked by" and back[0]["record"]["number"] == a


def test_itsm_app_ready_sees_the_application_of_an_enabled_plugin(with_plugin,
                                                                   itsm_config):
    seen = []

    def itsm_app_ready(app):
        seen.append(app.name)
        app.add_template_filter(str.upper, "shout")

    module = make_plugin("ready", itsm_app_ready=itsm_app_ready)
    with_plugin(module)  # third-party plugins start disabled: not called yet
    assert seen == []
    restarted = create_app({**itsm_config, "plugins.extra": [sample_plugin, module]})
    assert seen == ["itsm"]
    assert "shout" in restarted.jinja_env.filters
    restarted.extensions["itsm"].engine.dispose()


def test_itsm_cli_commands_appear_while_the_plugin_is_enabled(with_plugin):
    @click.command("hello")
    def hello():
        from itsm.core.app import current_itsm

        click.echo(f"hello from {len(current_itsm().types.by_name)} record type(s)")

    application = with_plugin(make_plugin("greeter", itsm_cli_commands=lambda: [hello]))
    from itsm.testing import ItsmRunner

    runner = ItsmRunner(application)
    result = runner.invoke(["hello"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "hello from 1 record type(s)"
    with application.app_context():
        plugin_admin.disable(application.extensions["itsm"], "greeter")
    assert runner.invoke(["hello"]).exit_code == 2  # no such command


def test_itsm_record_types_and_itsm_migrations_give_a_working_collection(client, agent, itsm):
    assert itsm.types.get("ticket").plugin == "tickets"
    assert client.get("/api/v1/tickets", headers=agent).json == {
        "items": [], "next": None, "total": {"count": 0, "exact": True, "more_than": False}}


def test_itsm_install_defaults_runs_on_enable_and_is_idempotent(with_plugin):
    calls = []

    def itsm_install_defaults(ctx):
        from itsm.core.demo import ensure_group

        calls.append(1)
        ensure_group(ctx.session, "Facilities", "buildings")

    application = with_plugin(make_plugin("defaults_maker",
                                          itsm_install_defaults=itsm_install_defaults))
    itsm = application.extensions["itsm"]
    with application.app_context():
        plugin_admin.enable(itsm, "defaults_maker")  # already enabled: nothing new
        with itsm.Session() as session:
            from itsm.core.demo import DemoContext

            itsm.hook.itsm_install_defaults(ctx=DemoContext(itsm, session))
            session.commit()
            names = session.scalars(select(Group.name).where(Group.name == "Facilities")).all()
    assert len(calls) == 2 and names == ["Facilities"]


def test_itsm_demo_data_goes_through_the_record_service(with_plugin):
    def itsm_demo_data(ctx):
        service = ctx.service("pat@dot.demo.invalid")
        service.create("ticket", {"title": "Demo: projector flickers"})

    application = with_plugin(make_plugin("demo_maker", itsm_demo_data=itsm_demo_data))
    from itsm.testing import ItsmRunner

    result = ItsmRunner(application).invoke(["demo"])
    assert result.exit_code == 0, result.output
    itsm = application.extensions["itsm"]
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.title.like("Demo:%")))
        journal = session.scalars(select(JournalEntry.kind)
                                  .where(JournalEntry.record_id == record.id)).all()
    assert record.agency_id is not None and journal == ["created"]


def test_itsm_demo_data_marked_trylast_runs_after_the_others(with_plugin):
    order = []

    def linker(ctx):
        order.append("linker")

    def maker(ctx):
        order.append("maker")

    linker_module = make_plugin("linker")
    linker_module.itsm_demo_data = hookimpl(trylast=True)(linker)
    linker_module.itsm_demo_data.__name__ = "itsm_demo_data"
    application = with_plugin(make_plugin("maker", itsm_demo_data=maker))
    application.extensions["itsm"].host.pm.register(linker_module, "linker")
    from itsm.testing import ItsmRunner

    result = ItsmRunner(application).invoke(["demo"])
    assert result.exit_code == 0, result.output
    assert order == ["maker", "linker"]


def test_system_actor_is_admin_without_identity():
    actor = Actor.system()
    assert actor.is_system and actor.role == "admin"


def test_itsm_blueprints_that_raise_leave_the_rest_of_the_install_running(with_plugin):
    def itsm_blueprints():
        raise ImportError("cannot import name 'charts'")

    application = with_plugin(make_plugin("halfdone", itsm_blueprints=itsm_blueprints))
    web, headers = application.test_client(), token_for(application)
    assert web.post("/api/v1/tickets", json={"title": "still served"},
                    headers=headers).status_code == 201
    errors = application.extensions["itsm"].errors
    assert any("plugin 'halfdone': its pages and routes failed to load" in e for e in errors)


def test_trace_plugins_sees_the_calls_made_to_each_plugin_on_its_own(with_plugin, itsm_config,
                                                                       caplog):
    """Collecting each plugin's answer with its name (record types, permissions, record
    actions) and asking one plugin, enabled or not (migrations, blueprints, defaults),
    go through pluggy like every other call: ITSM_TRACE_PLUGINS logs them."""
    from itsm.core import migrate

    def itsm_record_actions(record, actor):
        return None

    def itsm_install_defaults(ctx):
        return None

    probe = make_plugin("probe", itsm_record_actions=itsm_record_actions,
                        itsm_install_defaults=itsm_install_defaults)
    itsm_config["trace_plugins"] = True
    with caplog.at_level("INFO", logger="itsm.plugins"):
        application = with_plugin(probe)  # enables probe: migrations, defaults
        itsm = application.extensions["itsm"]
        with application.app_context():
            assert itsm.results("itsm_record_actions", record=None,
                                actor=Actor.system()) == []
            plugin_admin.disable(itsm, "probe")
            application.test_client().get("/api/v1/")  # every plugin's blueprints
            migrate.plugin_migrations(itsm.host.get("probe"))  # disabled: asked alone
    traced = caplog.text
    for hook in ("itsm_record_types", "itsm_permissions", "itsm_link_kinds",
                 "itsm_install_defaults", "itsm_migrations", "itsm_blueprints",
                 "itsm_record_actions"):
        assert f"{hook} [hook]" in traced, f"{hook} was not traced"


# -- sign-in methods --------------------------------------------------------------------------

_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sign_in_page(web, email: str, password: str):
    token = _CSRF_INPUT.search(web.get("/login").get_data(as_text=True)).group(1)
    return web.post("/login", data={"email": email, "password": password, "csrf_token": token})


def _vault_plugin(**extra):
    """A directory of one person, Dana, whose password is "vault words"."""
    def itsm_authenticate(email, password):
        if email.lower() != "dana@example.org" or password != "vault words":
            return None
        return Identity(email="Dana@Example.org", source="vault", name="Dana Scully",
                        phone="+1 555 0100", directory_groups=("cn=network",), role="agent",
                        groups=("Network",), managed_groups=("Network", "Desktop"),
                        agency="DMV")

    return make_plugin("vault", itsm_authenticate=itsm_authenticate, **extra)


def _prepare_directory_targets(application) -> None:
    from itsm.core.demo import ensure_agency

    with application.app_context(), application.extensions["itsm"].Session() as session:
        ensure_agency(session, "DMV", "Motor Vehicles")
        for name in ("Network", "Desktop"):
            session.add(Group(name=name))
        session.commit()


def _user(application, email):
    from itsm.core.models import Agency, GroupMember, User

    with application.app_context(), application.extensions["itsm"].Session() as session:
        user = session.scalar(select(User).where(User.email == email))
        groups = sorted(session.scalars(select(Group.name).join(
            GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)))
        agency = session.get(Agency, user.agency_id) if user.agency_id else None
        return {"name": user.name, "phone": user.phone, "role": user.role,
                "source": user.auth_source, "has_password": bool(user.password_hash),
                "agency": agency.code if agency else None, "groups": groups,
                "active": user.active}


def test_itsm_authenticate_signs_a_directory_person_in_and_creates_them(with_plugin):
    application = with_plugin(_vault_plugin())
    _prepare_directory_targets(application)
    web = application.test_client()
    assert _sign_in_page(web, "dana@example.org", "wrong words").status_code == 401
    assert _sign_in_page(web, "dana@example.org", "vault words").status_code == 302
    assert web.get("/api/v1/me").json == {"email": "dana@example.org", "name": "Dana Scully",
                                          "role": "agent", "agency": "DMV",
                                          "groups": ["Network"]}
    assert _user(application, "dana@example.org") == {
        "name": "Dana Scully", "phone": "+1 555 0100", "role": "agent", "source": "vault",
        "has_password": False, "agency": "DMV", "groups": ["Network"], "active": True}
    # The API's token route takes the same directory password, and counts failures.
    api = application.test_client()
    refused = api.post("/api/v1/tokens", json={"name": "cli", "email": "dana@example.org",
                                               "password": "nope"})
    assert refused.status_code == 401
    made = api.post("/api/v1/tokens", json={"name": "cli", "email": "dana@example.org",
                                            "password": "vault words"})
    assert made.status_code == 201, made.json
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {made.json['token']}"})
    assert me.json["email"] == "dana@example.org"
    missing = api.post("/api/v1/tokens", json={"name": "cli", "email": "dana@example.org"})
    assert missing.status_code == 422 and "password" in missing.json["error"]["fields"]


def test_itsm_authenticate_keeps_the_managed_groups_only(with_plugin):
    application = with_plugin(_vault_plugin())
    _prepare_directory_targets(application)
    from itsm.core.models import GroupMember, User

    with application.app_context(), application.extensions["itsm"].Session() as session:
        user = auth.create_user(session, "dana@example.org", role="requester")
        session.add(Group(name="CAB"))
        session.flush()
        for name in ("Desktop", "CAB"):  # Desktop is the directory's, CAB an admin's choice
            group = session.scalar(select(Group).where(Group.name == name))
            session.add(GroupMember(group_id=group.id, user_id=user.id))
        session.commit()
    assert _sign_in_page(application.test_client(), "dana@example.org",
                         "vault words").status_code == 302
    found = _user(application, "dana@example.org")
    assert (found["groups"], found["role"]) == (["CAB", "Network"], "agent")
    with application.app_context(), application.extensions["itsm"].Session() as session:
        assert session.scalar(select(User.auth_source)
                              .where(User.email == "dana@example.org")) == "vault"


def test_itsm_authenticate_that_fails_never_locks_out_local_admins(with_plugin, caplog):
    def itsm_authenticate(email, password):
        raise ConnectionError("directory unreachable")

    application = with_plugin(make_plugin("broken_directory",
                                          itsm_authenticate=itsm_authenticate))
    with application.app_context(), application.extensions["itsm"].Session() as session:
        auth.create_user(session, "root@example.org", role="admin",
                         password="correct horse battery")
        session.commit()
    web = application.test_client()
    assert _sign_in_page(web, "root@example.org", "correct horse battery").status_code == 302
    assert "a sign-in method failed" in caplog.text


def test_itsm_authenticate_users_lose_local_passwords_when_turned_off(with_plugin,
                                                                      itsm_config):
    itsm_config["auth.local_passwords"] = False
    application = with_plugin(_vault_plugin())
    _prepare_directory_targets(application)
    with application.app_context(), application.extensions["itsm"].Session() as session:
        dana = auth.create_user(session, "dana@example.org", password="a local passphrase")
        dana.auth_source = "vault"
        auth.create_user(session, "root@example.org", role="admin",
                         password="correct horse battery")
        session.commit()
    web = application.test_client()
    assert _sign_in_page(web, "dana@example.org", "a local passphrase").status_code == 401
    assert _sign_in_page(web, "dana@example.org", "vault words").status_code == 302
    # A local user (the install's admin) keeps the local password.
    assert _sign_in_page(application.test_client(), "root@example.org",
                         "correct horse battery").status_code == 302


def test_itsm_sign_in_methods_are_offered_on_the_sign_in_page(with_plugin):
    def itsm_sign_in_methods():
        return [SignInMethod(name="agency_idp", label="Sign in with Agency ID",
                             url="/sso/agency/start")]

    application = with_plugin(make_plugin("agency_idp",
                                          itsm_sign_in_methods=itsm_sign_in_methods))
    page = application.test_client().get("/login").get_data(as_text=True)
    assert 'href="/sso/agency/start"' in page and "Sign in with Agency ID" in page


def test_itsm_sign_in_methods_that_fail_leave_the_password_form(with_plugin, caplog):
    def itsm_sign_in_methods():
        raise KeyError("issuer")

    application = with_plugin(make_plugin("broken_idp",
                                          itsm_sign_in_methods=itsm_sign_in_methods))
    page = application.test_client().get("/login")
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    assert "a sign-in method failed to list itself" in caplog.text


def test_itsm_sign_out_sends_the_browser_to_the_method_and_always_ends_the_session(
        with_plugin, caplog):
    seen = []

    def itsm_sign_out(actor, values):
        seen.append((actor.email if actor else None, values.get("vault_ticket")))
        return "https://idp.example.org/logout?ticket=" + str(values.get("vault_ticket"))

    application = with_plugin(_vault_plugin(itsm_sign_out=itsm_sign_out))
    _prepare_directory_targets(application)
    web = application.test_client()
    assert _sign_in_page(web, "dana@example.org", "vault words").status_code == 302
    with web.session_transaction() as cookie:  # what a method keeps at sign-in
        cookie["vault_ticket"] = "t-1"
        token = cookie["csrf"]
    out = web.post("/logout", data={"csrf_token": token})
    # A page that continues there (browsers refuse a form's redirect to another site).
    page = out.get_data(as_text=True)
    assert out.status_code == 200
    assert '<meta http-equiv="refresh" content="0; url=https://idp.example.org/logout?' \
           'ticket=t-1">' in page
    assert 'href="https://idp.example.org/logout?ticket=t-1">Continue</a>' in page
    assert seen == [("dana@example.org", "t-1")]
    assert web.get("/api/v1/me").status_code == 401
    assert "You have signed out." in web.get("/login").get_data(as_text=True)


def test_itsm_sign_out_that_fails_still_signs_out(with_plugin, caplog):
    def itsm_sign_out(values):
        raise KeyError("end_session_endpoint")

    application = with_plugin(_vault_plugin(itsm_sign_out=itsm_sign_out))
    _prepare_directory_targets(application)
    web = application.test_client()
    assert _sign_in_page(web, "dana@example.org", "vault words").status_code == 302
    with web.session_transaction() as cookie:
        token = cookie["csrf"]
    out = web.post("/logout", data={"csrf_token": token})
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    assert web.get("/api/v1/me").status_code == 401
    assert "a sign-in method failed at sign-out" in caplog.text


def test_itsm_auth_commands_join_the_auth_group(with_plugin):
    from itsm.testing import ItsmRunner

    @click.command("test-vault")
    @click.argument("email")
    def test_vault(email):
        from itsm.core.app import current_itsm

        click.echo(f"search: {email} ({len(current_itsm().types.by_name)} record type(s))")
        raise click.ClickException("bind: refused")

    application = with_plugin(make_plugin("vault_diag",
                                          itsm_auth_commands=lambda: [test_vault]))
    runner = ItsmRunner(application)
    listed = runner.invoke(["auth", "--help"])
    assert listed.exit_code == 0 and "test-vault" in listed.output
    result = runner.invoke(["auth", "test-vault", "dana@example.org"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["search: dana@example.org (1 record type(s))",
                                          "Error: bind: refused"]
    with application.app_context():
        plugin_admin.disable(application.extensions["itsm"], "vault_diag")
    assert runner.invoke(["auth", "test-vault", "x"]).exit_code == 2  # no such command


def test_itsm_sign_in_methods_may_ask_for_the_email_first(with_plugin):
    def itsm_sign_in_methods():
        return [SignInMethod(name="agency_idp", label="Continue with your agency",
                             url="/sso/agency/choose", asks_email=True)]

    application = with_plugin(make_plugin("agency_idp",
                                          itsm_sign_in_methods=itsm_sign_in_methods))
    page = application.test_client().get("/login").get_data(as_text=True)
    form = re.search(r'<form method="get" action="/sso/agency/choose".*?</form>', page, re.S)
    assert form and 'type="email"' in form.group(0) and 'name="email"' in form.group(0)
    assert "Continue with your agency" in form.group(0)
