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
