"""The administration area: the page kit plugins build on, the audit, and the core's
admin pages (users, agencies, groups, plugins, health)."""

from __future__ import annotations

import re

import pytest
import sample_plugin
from sqlalchemy import select

from itsm.core.admin.models import AdminAudit
from itsm.core.auth import Actor
from itsm.plugin import (
    AdminPage,
    admin_view,
    page_actor,
    page_blueprint,
    record_admin_audit,
    render_page,
)
from itsm.testing import make_plugin

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

vendor_bp = page_blueprint("vendor_admin", __name__, url_prefix="/admin/vendor")


@vendor_bp.route("/widgets")
@admin_view()
def widgets():
    return render_page("admin/base.html")


@vendor_bp.route("/gadgets")
@admin_view("vendor.manage")
def gadgets():
    return f"gadgets for {page_actor().email}"


vendor = make_plugin(
    "vendor",
    itsm_blueprints=lambda: [vendor_bp],
    itsm_admin_pages=lambda: [AdminPage("Widgets", "vendor_admin.widgets", "Vendor",
                                        description="the vendor's widgets"),
                              AdminPage("Gadgets", "vendor_admin.gadgets", "Vendor",
                                        permission="vendor.manage"),
                              AdminPage("Broken", "vendor_admin.nowhere", "Vendor")],
    itsm_permissions=lambda: [__import__("itsm.plugin", fromlist=["Permission"])
                              .Permission("vendor.manage", "manage gadgets", ("agent",))])


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, vendor]


def sign_in(client, email: str) -> None:
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, response.text


def post(client, path, data=None, **kwargs):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


@pytest.fixture
def people(make_token):
    return {role: make_token(f"{role}@example.org", role=role, password=PASSWORD)
            for role in ("admin", "agent", "requester")}


def test_a_plugins_admin_page_is_in_the_sidebar_for_admins(client, people):
    sign_in(client, "admin@example.org")
    home = client.get("/admin/")
    assert home.status_code == 200
    assert "Widgets" in home.text and "The vendor&#39;s widgets" in home.text
    assert "Overview" in home.text and "Audit" in home.text
    assert "Broken" not in home.text  # no such view: left out, not a 500
    page = client.get("/admin/vendor/widgets")
    assert page.status_code == 200
    assert 'aria-current="page">Widgets' in page.text


def test_non_admins_get_403_and_the_refusal_is_recorded(client, people, itsm):
    from itsm.core.models import AccessDenial

    sign_in(client, "agent@example.org")
    for path in ("/admin/", "/admin/audit", "/admin/vendor/widgets"):
        assert client.get(path).status_code == 403, path
    # A page with a permission of its own: the agents holding it may open it ...
    assert client.get("/admin/vendor/gadgets").status_code == 200
    with itsm.Session() as session:
        refused = session.scalars(select(AccessDenial.permission)
                                  .where(AccessDenial.actor_email == "agent@example.org")).all()
    assert refused.count("admin") == 3
    post(client, "/logout")
    sign_in(client, "requester@example.org")
    # ... and the others may not.
    assert client.get("/admin/vendor/gadgets").status_code == 403
    assert client.get("/admin/").status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_audit_keeps_what_changed_and_shows_it(client, people, itsm):
    with itsm.Session() as session:
        actor = Actor(id=None, email="admin@example.org", role="admin", name="Ada")
        record_admin_audit(session, actor, "user.role", "user pat@example.org",
                           {"role": "agent", "name": "Pat"}, {"role": "admin", "name": "Pat"})
        record_admin_audit(session, actor, "group.create", "group Network", None,
                           {"name": "Network"})
        session.commit()
        entries = session.scalars(select(AdminAudit).order_by(AdminAudit.id)).all()
    assert entries[0].before == {"role": "agent"} and entries[0].after == {"role": "admin"}
    assert entries[1].before is None
    sign_in(client, "admin@example.org")
    page = client.get("/admin/audit")
    assert page.status_code == 200
    assert "user pat@example.org" in page.text and "group Network" in page.text
    filtered = client.get("/admin/audit?action=group.")
    assert "group Network" in filtered.text and "pat@example.org" not in filtered.text
    for odd in ("?before=x", "?before=-1", "?before=99999999999999999999", "?action=%25"):
        assert client.get("/admin/audit" + odd).status_code == 200, odd


def test_a_failing_itsm_admin_pages_leaves_out_only_that_plugins_pages(with_plugin,
                                                                        make_token):
    def itsm_admin_pages():
        raise RuntimeError("the vendor's bug")

    app = with_plugin(make_plugin("broken_admin", itsm_admin_pages=itsm_admin_pages))
    itsm = app.extensions["itsm"]
    from itsm.core import auth

    with app.app_context(), itsm.Session() as session:
        auth.create_user(session, "root@example.org", role="admin", password=PASSWORD)
        session.commit()
    client = app.test_client()
    sign_in(client, "root@example.org")
    home = client.get("/admin/")
    assert home.status_code == 200 and "Audit" in home.text


def _audit(itsm) -> list[tuple[str, str]]:
    with itsm.Session() as session:
        return [(a.action, a.target) for a in session.scalars(select(AdminAudit)
                                                              .order_by(AdminAudit.id))]


def test_an_admin_manages_users_in_the_browser(client, people, itsm):
    sign_in(client, "admin@example.org")
    post(client, "/admin/agencies", {"code": "dot", "name": "Transportation"})
    post(client, "/admin/groups", {"name": "Network"})
    bad = post(client, "/admin/users/new", {"name": "Nora Net", "email": "not-an-address",
                                            "role": "agent", "groups": ["Network"]})
    assert bad.status_code == 422
    assert 'value="Nora Net"' in bad.text and "Not an e-mail address" in bad.text
    assert 'value="Network" selected' in bad.text  # what was chosen stays chosen
    unknown_role = post(client, "/admin/users/new", {"email": "x@example.org", "role": "boss"})
    assert unknown_role.status_code == 422 and "Unknown role" in unknown_role.text
    made = post(client, "/admin/users/new", {"name": "Nora Net", "email": "Nora@Example.org",
                                             "role": "agent", "agency": "DOT",
                                             "groups": ["Network"]})
    assert made.status_code == 302
    page = client.get(made.headers["Location"])
    assert "Nora Net" in page.text and "Transportation" in page.text
    user_id = int(made.headers["Location"].rsplit("/", 1)[1])
    listing = client.get("/admin/users?group=Network&role=agent&active=yes&q=nora")
    assert "nora@example.org" in listing.text and "agent@example.org" not in listing.text
    assert "nora@example.org" not in client.get("/admin/users?active=no").text
    assert post(client, f"/admin/users/{user_id}/role", {"role": "admin"}).status_code == 302
    unconfirmed = post(client, f"/admin/users/{user_id}/active", {"active": "no"})
    assert unconfirmed.status_code == 422 and "Not confirmed" in unconfirmed.text
    assert post(client, f"/admin/users/{user_id}/active",
                {"active": "no", "confirm": "y"}).status_code == 302
    assert "Deactivated" in client.get(f"/admin/users/{user_id}").text
    assert "nora@example.org" in client.get("/admin/users?active=no").text
    assert post(client, f"/admin/users/{user_id}/active", {"active": "yes"}).status_code == 302
    assert post(client, f"/admin/users/{user_id}/tokens", {"confirm": "y"}).status_code == 302
    assert post(client, f"/admin/users/{user_id}/edit",
                {"name": "Nora N.", "agency": "", "groups": []}).status_code == 302
    assert client.get("/admin/users/999999").status_code == 404
    actions = [a for a, _ in _audit(itsm)]
    assert actions == ["agency.create", "group.create", "user.create", "user.role",
                       "user.deactivate", "user.reactivate", "user.revoke_tokens",
                       "user.update"]
    audit = client.get("/admin/audit").text
    assert "user nora@example.org" in audit


def test_an_admin_manages_agencies_and_groups(client, people, itsm):
    sign_in(client, "admin@example.org")
    bad = post(client, "/admin/agencies", {"code": "no spaces!", "name": "", "contacts": "Al"})
    assert bad.status_code == 422 and ">Al</textarea>" in bad.text
    assert post(client, "/admin/agencies", {"code": "DOH", "name": "Health",
                                            "contacts": "Desk 555-0100"}).status_code == 302
    assert post(client, "/admin/agencies", {"code": "DOH", "name": "Again"}).status_code == 422
    assert post(client, "/admin/agencies/DOH", {"name": "Health Dept",
                                                "contacts": ""}).status_code == 302
    listing = client.get("/admin/agencies").text
    assert "Health Dept" in listing and "Inactive" in listing
    assert client.get("/admin/agencies/NOPE").status_code == 404
    made = post(client, "/admin/groups", {"name": "Desktop", "email": "desk@example.org",
                                          "manager": "agent@example.org"})
    assert made.status_code == 302
    group_url = made.headers["Location"]
    bad_mail = post(client, "/admin/groups", {"name": "Other", "email": "nope"})
    assert bad_mail.status_code == 422 and 'value="Other"' in bad_mail.text
    assert post(client, group_url + "/members",
                {"email": "agent@example.org"}).status_code == 302
    assert post(client, group_url + "/members", {"email": ""}).status_code == 422
    assert post(client, group_url + "/members",
                {"email": "ghost@example.org"}).status_code == 422
    page = client.get(group_url).text
    assert "agent@example.org" in page and "Members (1)" in page
    assert post(client, group_url + "/members/remove",
                {"email": "agent@example.org"}).status_code == 302
    assert "Members (0)" in client.get(group_url).text
    assert post(client, group_url + "/edit", {"name": "Desktop support", "manager": ""}
                ).status_code == 302
    assert "Desktop support" in client.get("/admin/groups").text
    assert [a for a, _ in _audit(itsm)] == [
        "agency.create", "agency.update", "group.create", "group.add_member",
        "group.remove_member", "group.update"]


def test_the_home_page_shows_the_doctors_checks_and_retries_dead_deliveries(client, people,
                                                                            itsm):
    from itsm.core.models import Delivery, Event

    with itsm.Session() as session:
        event = Event(name="record.created", payload={})
        session.add(event)
        session.flush()
        session.add(Delivery(event_id=event.id, channel="log", recipient="x", state="dead",
                             attempts=8))
        session.commit()
    sign_in(client, "admin@example.org")
    home = client.get("/admin/").text
    for said in ("Database", "Worker: last cycle finished never", "1 notification delivery",
                 "Retry the 1 dead delivery", "1 problem"):
        assert said in home, said
    assert post(client, "/admin/outbox/retry").status_code == 302
    with itsm.Session() as session:
        assert session.scalar(select(Delivery.state)) == "pending"
    assert "Deliveries: none dead" in client.get("/admin/").text
    assert ("outbox.retry", "outbox") in _audit(itsm)


def test_an_admin_disables_enables_and_uninstalls_a_plugin(client, people, itsm):
    sign_in(client, "admin@example.org")
    listing = client.get("/admin/plugins").text
    assert 'id="plugin-vendor"' in listing and "Third-party" in listing
    preflight = client.get("/admin/plugins/vendor/disable")
    assert preflight.status_code == 200 and "Preflight" in preflight.text
    assert itsm.host.is_enabled("vendor")  # a GET changes nothing
    assert post(client, "/admin/plugins/vendor/disable").status_code == 302
    assert not itsm.host.is_enabled("vendor")
    assert "Widgets" not in client.get("/admin/").text  # its pages left the sidebar
    assert client.get("/admin/vendor/widgets").status_code == 404
    wrong = post(client, "/admin/plugins/vendor/uninstall", {"confirm_name": "vend"})
    assert wrong.status_code == 422 and 'value="vend"' in wrong.text
    assert post(client, "/admin/plugins/vendor/enable").status_code == 302
    assert itsm.host.is_enabled("vendor")
    refused = post(client, "/admin/plugins/vendor/uninstall", {"confirm_name": "vendor"})
    assert refused.status_code == 409 and "disable vendor first" in refused.text.lower()
    post(client, "/admin/plugins/vendor/disable")
    done = post(client, "/admin/plugins/vendor/uninstall", {"confirm_name": "vendor"})
    assert done.status_code == 302
    assert client.get("/admin/plugins/nothing/enable").status_code == 404
    assert client.get("/admin/plugins/vendor/explode").status_code == 404
    assert [a for a, _ in _audit(itsm)] == ["plugin.disable", "plugin.enable",
                                            "plugin.disable", "plugin.uninstall"]
