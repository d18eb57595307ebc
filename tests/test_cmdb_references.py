"""The cmdb as a provider of the core's reference contract: "configuration_item", and
"service" below a catalog's, one service with one id; renames, retirements and merges
announced to every plugin."""

from __future__ import annotations

import pytest
import sample_plugin
from sqlalchemy.orm import Session

import itsm.plugins.cmdb
from itsm.core.references import (
    Ref,
    ReferenceKind,
    reference_depends,
    reference_impact,
    resolve_reference,
)
from itsm.testing import make_plugin

CHANGES: list[tuple[str, str, str, str | None]] = []
CATALOG = {"501": "Online orders", "502": "Payroll"}


def _changed(session, ref, change, into):
    CHANGES.append((ref.kind, ref.id, change, into.id if into else None))


listener = make_plugin("listener", itsm_reference_changed=_changed)


def _get(session, id_):
    return Ref("service", id_, CATALOG[id_]) if id_ in CATALOG else None


def _resolve(session, value):
    for id_, name in CATALOG.items():
        if value.lstrip("#") == id_ or value.lower() == name.lower():
            return Ref("service", id_, name)
    return None


def _catalog_kinds():
    return [ReferenceKind("service", "Service", _get, _resolve,
                          lambda s, a, t, n: [], priority=100)]


catalog = make_plugin("fake_catalog", itsm_reference_kinds=_catalog_kinds)


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.cmdb, listener]


@pytest.fixture(autouse=True)
def clear():
    CHANGES.clear()


@pytest.fixture
def admin(make_token):
    make_token("pat@dot.example.org", role="requester", agency="DOT")
    make_token("sam@doh.example.org", role="requester", agency="DOH")
    return make_token("admin@example.org", role="admin")


def add(client, headers, **body):
    response = client.post("/api/v1/cmdb/cis", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def chain(client, admin):
    server = add(client, admin, name="srv-01", type="server")
    database = add(client, admin, name="db-01", type="database")
    service = add(client, admin, name="Online orders", type="business_service",
                  used_by=["DOT", "DOH"])
    for source, kind, target in ((database, "runs_on", server),
                                 (database, "part_of", service)):
        assert client.post(f"/api/v1/cmdb/cis/{source['id']}/relations", headers=admin,
                           json={"kind": kind, "target": target["id"]}).status_code == 201
    return server, database, service


def test_cis_and_services_resolve_by_name_and_impact_reaches_agencies(app, client, admin):
    server, _database, service = chain(client, admin)
    assert service["service_id"] == f"ci-{service['id']}"  # no catalog: the cmdb's own id
    with Session(app.extensions["itsm"].engine) as session, app.app_context():
        assert resolve_reference(session, "configuration_item", "srv-01").id == \
            str(server["id"])
        assert resolve_reference(session, "service", "online orders").id == \
            service["service_id"]
        hits = reference_impact(session, "configuration_item", [str(server["id"])])
        found = {(h.ref.kind, h.ref.label): [p.label for p in h.path] for h in hits}
        assert found[("service", "Online orders")] == ["srv-01", "db-01", "Online orders"]
        agencies = [h for h in hits if h.ref.kind == "agency"]
        assert len(agencies) == 2
        assert all(h.path[0].label == "srv-01" and h.path[-1] == h.ref for h in agencies)
        below = reference_depends(session, "service", [service["service_id"]])
        assert [h.ref.label for h in below] == ["db-01", "srv-01"]


def test_rename_retire_and_merge_are_announced(app, client, admin):
    server, database, service = chain(client, admin)
    client.patch(f"/api/v1/cmdb/cis/{service['id']}", headers=admin,
                 json={"name": "Orders online"})
    assert ("configuration_item", str(service["id"]), "renamed", None) in CHANGES
    assert ("service", service["service_id"], "renamed", None) in CHANGES
    client.post(f"/api/v1/cmdb/cis/{server['id']}/retire", headers=admin)
    assert ("configuration_item", str(server["id"]), "retired", None) in CHANGES
    copy = add(client, admin, name="db-01 copy", type="database")
    client.post(f"/api/v1/cmdb/cis/{copy['id']}/merge", headers=admin,
                json={"into": database["id"]})
    assert ("configuration_item", str(copy["id"]), "merged", str(database["id"])) in CHANGES


@pytest.mark.parametrize("itsm_plugins", [[sample_plugin, itsm.plugins.cmdb, catalog]])
def test_with_a_catalog_a_business_service_carries_the_catalogs_id(app, client, admin):
    by_name = add(client, admin, name="Payroll", type="business_service")
    assert by_name["service_id"] == "502"
    named = add(client, admin, name="Orders (cmdb)", type="business_service",
                service="#501")
    assert named["service_id"] == "501"
    unknown = client.post("/api/v1/cmdb/cis", headers=admin, json={
        "name": "X", "type": "business_service", "service": "Nothing"})
    assert unknown.status_code == 422 and "service" in unknown.json["error"]["fields"]
    taken = client.post("/api/v1/cmdb/cis", headers=admin, json={
        "name": "Y", "type": "business_service", "service": "501"})
    assert taken.status_code == 422
    server = add(client, admin, name="srv-09", type="server")
    client.post(f"/api/v1/cmdb/cis/{named['id']}/relations", headers=admin,
                json={"kind": "runs_on", "target": server["id"]})
    with Session(app.extensions["itsm"].engine) as session, app.app_context():
        hits = reference_impact(session, "configuration_item", [str(server["id"])])
        assert [(h.ref.kind, h.ref.id) for h in hits] == [("service", "501")]


@pytest.mark.parametrize("itsm_plugins", [[sample_plugin, itsm.plugins.cmdb,
                                           pytest.importorskip("itsm.plugins.catalog")]])
def test_the_real_catalog_and_the_cmdb_share_one_service_id(app, client, admin):
    made = client.post("/api/v1/catalog/services", headers=admin, json={
        "slug": "expenses", "name": "Expense claims", "agencies": ["DOT", "DOH"]})
    assert made.status_code == 201, made.json
    catalog_id = str(made.json["id"])
    server = add(client, admin, name="fin-01", type="server")
    service = add(client, admin, name="Expense claims", type="business_service")
    assert service["service_id"] == catalog_id  # one service, the catalog's id
    assert client.post(f"/api/v1/cmdb/cis/{service['id']}/relations", headers=admin, json={
        "kind": "depends_on", "target": server["id"]}).status_code == 201
    with Session(app.extensions["itsm"].engine) as session, app.app_context():
        hits = reference_impact(session, "configuration_item", [str(server["id"])])
        kinds = {(h.ref.kind, h.ref.id) for h in hits}
        assert ("service", catalog_id) in kinds
        assert len([k for k, _ in kinds if k == "agency"]) == 2
    renamed = client.patch(f"/api/v1/catalog/services/{catalog_id}", headers=admin,
                           json={"name": "Expense claims online"})
    assert renamed.status_code == 200, renamed.json
    again = client.get(f"/api/v1/cmdb/cis/{service['id']}", headers=admin).json
    assert again["service_id"] == catalog_id
