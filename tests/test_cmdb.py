"""The cmdb: CI types as data, CIs with history ("as it was on date D"), typed relations,
impact analysis with paths and cycles, CSV/JSON reconcile, agency scoping, and the
plugin switched off and on with its data in place."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import sample_plugin

import itsm.plugins.cmdb
from itsm.testing import schema_drift

PASSWORD = "long enough secret"
TABLES = ["cmdb_ci_type", "cmdb_ci", "cmdb_ci_agency", "cmdb_relation", "cmdb_ci_history"]


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.cmdb]


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent", password=PASSWORD)


@pytest.fixture
def admin(make_token):
    return make_token("admin@example.org", role="admin", password=PASSWORD)


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT", password=PASSWORD)


@pytest.fixture
def sam(make_token):
    return make_token("sam@doh.example.org", role="requester", agency="DOH", password=PASSWORD)


def add(client, headers, **body):
    response = client.post("/api/v1/cmdb/cis", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def relate(client, headers, source, kind, target):
    response = client.post(f"/api/v1/cmdb/cis/{source['id']}/relations",
                           json={"kind": kind, "target": target["id"]}, headers=headers)
    assert response.status_code == 201, response.json


@pytest.fixture
def graph(client, admin, pat, sam):
    """server → database → application → business service used by DOT and DOH."""
    server = add(client, admin, name="srv-db-01", type="server",
                 attributes={"cpu_count": 8, "os": "Debian 12"})
    database = add(client, admin, name="orders-db", type="database",
                   attributes={"engine": "postgresql", "port": 5432})
    app_ = add(client, admin, name="orders-app", type="application", agency="DOT")
    service = add(client, admin, name="Online orders", type="business_service",
                  used_by=["DOT", "DOH"])
    relate(client, admin, database, "runs_on", server)
    relate(client, admin, app_, "depends_on", database)
    relate(client, admin, app_, "part_of", service)
    return {"server": server, "database": database, "app": app_, "service": service}


def test_the_migrations_create_exactly_the_models(app, runner):
    assert schema_drift(app.extensions["itsm"].engine, TABLES) == []
    assert "cmdb: cmdb_0002" in runner.invoke(["db", "current"]).output.splitlines()


def test_default_types_and_an_admins_own_type_validate_attributes(client, admin, agent):
    types = client.get("/api/v1/cmdb/types", headers=agent).json["items"]
    keys = {t["key"] for t in types}
    assert {"server", "application", "database", "network_device",
            "business_service"} <= keys
    refused = client.post("/api/v1/cmdb/types", headers=agent, json={
        "key": "printer", "label": "Printer"})
    assert refused.status_code == 403
    made = client.post("/api/v1/cmdb/types", headers=admin, json={
        "key": "printer", "label": "Printer", "attributes": [
            {"name": "pages_per_minute", "type": "integer", "required": True},
            {"name": "colour", "type": "boolean"}]})
    assert made.status_code == 201, made.json
    bad = client.post("/api/v1/cmdb/cis", headers=agent, json={
        "name": "Floor 3 printer", "type": "printer",
        "attributes": {"pages_per_minute": "fast", "toner": "black"}})
    assert bad.status_code == 422
    assert "pages_per_minute" in json.dumps(bad.json) and "toner" in json.dumps(bad.json)
    good = add(client, agent, name="Floor 3 printer", type="printer",
               attributes={"pages_per_minute": "40", "colour": True})
    assert good["attributes"] == {"pages_per_minute": 40, "colour": True}


def test_every_change_is_journaled_and_the_past_can_be_read(client, admin, graph, runner):
    server = graph["server"]
    time.sleep(0.05)
    stamp = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    changed = client.patch(f"/api/v1/cmdb/cis/{server['id']}", headers=admin, json={
        "name": "srv-db-01b", "lifecycle": "maintenance",
        "attributes": {"cpu_count": 16, "os": "Debian 12"}})
    assert changed.status_code == 200, changed.json
    assert changed.json["version"] == 2
    history = client.get(f"/api/v1/cmdb/cis/{server['id']}/history", headers=admin).json
    actions = [h["action"] for h in history["items"]]
    assert actions[0] == "updated" and "related" in actions and actions[-1] == "created"
    assert history["items"][0]["changes"]["name"] == ["srv-db-01", "srv-db-01b"]
    then = client.get(f"/api/v1/cmdb/cis/{server['id']}",
                      query_string={"as_of": stamp}, headers=admin).json
    assert then["name"] == "srv-db-01" and then["attributes"]["cpu_count"] == 8
    assert then["lifecycle"] == "in_use"
    assert [r["other"]["name"] for r in then["relations"]] == ["orders-db"]
    shown = runner.invoke(["cmdb", "show", str(server["id"]), "--as-of",
                           stamp])
    assert shown.exit_code == 0, shown.output
    assert "srv-db-01 (Server, In use)" in shown.output and "cpu_count: 8" in shown.output
    bad = client.get(f"/api/v1/cmdb/cis/{server['id']}", query_string={"as_of": "yesterday"},
                     headers=admin)
    assert bad.status_code == 422 and "as_of" in bad.json["error"]["fields"]
    page = client.get(f"/cmdb/cis/{server['id']}", query_string={"as_of": stamp})
    assert page.status_code in (200, 302)


def test_impact_of_a_server_reaches_the_service_and_both_agencies(client, admin, graph,
                                                                   runner):
    server, service = graph["server"], graph["service"]
    impact = client.get(f"/api/v1/cmdb/cis/{server['id']}/impact", headers=admin).json
    assert [s["name"] for s in impact["services"]] == ["Online orders"]
    assert [p["name"] for p in impact["services"][0]["path"]] == [
        "srv-db-01", "orders-db", "orders-app", "Online orders"]
    assert sorted(a["code"] for a in impact["agencies"]) == ["DOH", "DOT"]
    depends = client.get(f"/api/v1/cmdb/cis/{service['id']}/impact",
                         query_string={"direction": "depends"}, headers=admin).json
    assert [i["name"] for i in depends["items"]] == ["orders-app", "orders-db", "srv-db-01"]
    # A cycle (the server "depends on" the application) ends the walk, it does not loop.
    relate(client, admin, server, "depends_on", graph["app"])
    again = client.get(f"/api/v1/cmdb/cis/{server['id']}/impact", headers=admin).json
    assert again["reached"] == 3 and not again["truncated"]
    shown = runner.invoke(["cmdb", "impact", "srv-db-01"])
    assert shown.exit_code == 0, shown.output
    assert "service Online orders: srv-db-01 > orders-db > orders-app > Online orders" \
        in shown.output
    assert runner.invoke(["cmdb", "impact", "no-such-ci"]).exit_code != 0


def test_requesters_see_only_their_agencys_cis(client, admin, graph, pat, sam):
    listed = client.get("/api/v1/cmdb/cis", headers=pat).json
    # DOT's application, and the service DOT uses; never the shared servers.
    assert sorted(i["name"] for i in listed["items"]) == ["Online orders", "orders-app"]
    assert client.get(f"/api/v1/cmdb/cis/{graph['server']['id']}",
                      headers=pat).status_code == 404
    assert client.get(f"/api/v1/cmdb/cis/{graph['app']['id']}",
                      headers=sam).status_code == 404
    impact = client.get(f"/api/v1/cmdb/cis/{graph['service']['id']}/impact",
                        query_string={"direction": "depends"}, headers=sam).json
    assert impact["items"] == []
    assert client.post("/api/v1/cmdb/cis", headers=pat, json={
        "name": "x", "type": "server"}).status_code == 403
    export = client.get("/api/v1/cmdb/export", headers=sam).json
    assert [i["name"] for i in export["items"]] == ["Online orders"]


def test_retire_and_merge_keep_history_and_move_relations(client, admin, graph):
    duplicate = add(client, admin, name="orders-db (copy)", type="database")
    relate(client, admin, graph["app"], "depends_on", duplicate)
    merged = client.post(f"/api/v1/cmdb/cis/{duplicate['id']}/merge",
                         json={"into": graph["database"]["id"]}, headers=admin)
    assert merged.status_code == 200, merged.json
    assert merged.json["lifecycle"] == "retired"
    assert merged.json["merged_into"] == graph["database"]["id"]
    relations = client.get(f"/api/v1/cmdb/cis/{graph['database']['id']}/relations",
                           headers=admin).json["items"]
    assert sum(r["other"]["name"] == "orders-app" for r in relations) >= 1
    retired = client.post(f"/api/v1/cmdb/cis/{graph['server']['id']}/retire", headers=admin)
    assert retired.json["lifecycle"] == "retired"
    assert client.get(f"/api/v1/cmdb/cis/{graph['server']['id']}/history",
                      headers=admin).json["items"][0]["action"] == "retired"


CSV_V1 = """key,type,name,location,agency,used_by,os,cpu_count
h1,server,web-01,DC1,,,Debian 12,4
h2,server,web-02,DC1,,,Debian 12,4
s1,business_service,Portal,,DOT,"DOT,DOH",,
"""
CSV_V2 = """key,type,name,location,agency,used_by,os,cpu_count
h1,server,web-01,DC2,,,Debian 12,4
s1,business_service,Portal,,DOT,"DOT,DOH",,
"""


def test_csv_import_reconciles_by_key_with_a_dry_run(tmp_path, runner, client, admin, pat,
                                                     sam):
    first = tmp_path / "cis.csv"
    first.write_text(CSV_V1)
    dry = runner.invoke(["cmdb", "import", str(first), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: 3 created, 0 updated, 0 unchanged, 0 retired" in dry.output
    assert client.get("/api/v1/cmdb/cis", headers=admin).json["total"] == 0
    done = runner.invoke(["cmdb", "import", str(first)])
    assert "3 created, 0 updated, 0 unchanged, 0 retired" in done.output, done.output
    again = runner.invoke(["cmdb", "import", str(first)])
    assert "0 created, 0 updated, 3 unchanged, 0 retired" in again.output, again.output
    second = tmp_path / "cis2.csv"
    second.write_text(CSV_V2)
    changed = runner.invoke(["cmdb", "import", str(second), "--source", "csv", "--json"])
    report = json.loads(changed.output[changed.output.index("{"):])
    assert (report["created"], report["updated"], report["unchanged"], report["retired"]) \
        == (0, 1, 1, 1)
    gone = client.get("/api/v1/cmdb/cis", query_string={"q": "web-02"}, headers=admin).json
    assert gone["items"][0]["lifecycle"] == "retired"  # retired, not deleted
    bad = tmp_path / "bad.csv"
    bad.write_text("key,type,name,cpu_count\nx1,server,bad,many\n,server,nokey,1\n")
    failed = runner.invoke(["cmdb", "import", str(bad), "--keep-missing"])
    assert failed.exit_code == 1 and "2 failed" in failed.output
    nul = tmp_path / "nul.csv"
    nul.write_text("key,type,name\nk\x001,server,a\x00b\n")
    refused = runner.invoke(["cmdb", "import", str(nul), "--keep-missing"])
    assert refused.exit_code == 1 and refused.exception is None or \
        isinstance(refused.exception, SystemExit), refused.output
    assert "Traceback" not in refused.output
    assert [i["name"] for i in client.get("/api/v1/cmdb/cis", headers=pat).json["items"]] \
        == ["Portal"]


def test_an_import_updates_in_bulk_keeps_the_past_and_announces_itself_once(
        tmp_path, runner, client, admin, app, pat, sam):
    from sqlalchemy import select

    from itsm.plugin import Event

    first = tmp_path / "v1.csv"
    first.write_text("key,type,name,location,used_by,os,cpu_count\n"
                     "h1,server,web-01,DC1,DOT,Debian 12,4\nh2,server,web-02,DC1,,Debian 12,2\n")
    assert runner.invoke(["cmdb", "import", str(first), "--dry-run"]).exit_code == 0
    assert runner.invoke(["cmdb", "import", str(first)]).exit_code == 0
    time.sleep(0.05)
    stamp = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    second = tmp_path / "v2.csv"
    second.write_text("key,type,name,location,used_by,os,cpu_count\n"
                      "h1,server,web-01,DC2,DOH,Debian 13,8\nh2,server,web-02,DC1,,Debian 12,2\n")
    changed = runner.invoke(["cmdb", "import", str(second), "--json"])
    report = json.loads(changed.output[changed.output.index("{"):])
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 1)
    found = client.get("/api/v1/cmdb/cis", query_string={"q": "web-01"}, headers=admin).json
    web = client.get(f"/api/v1/cmdb/cis/{found['items'][0]['id']}", headers=admin).json
    assert (web["location"], web["attributes"]["cpu_count"], web["version"]) == ("DC2", 8, 2)
    assert [a["code"] for a in web["used_by"]] == ["DOH"]
    history = client.get(f"/api/v1/cmdb/cis/{web['id']}/history", headers=admin).json
    assert [h["action"] for h in history["items"]] == ["updated", "created"]
    assert history["items"][0]["changes"]["location"] == ["DC1", "DC2"]
    then = client.get(f"/api/v1/cmdb/cis/{web['id']}", query_string={"as_of": stamp},
                      headers=admin).json
    assert (then["location"], then["attributes"]["cpu_count"]) == ("DC1", 4)
    assert [a["code"] for a in then["used_by"]] == ["DOT"]
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        events = [e.payload for e in session.scalars(
            select(Event).where(Event.name == "cmdb.imported").order_by(Event.id))]
    # Two real imports, one event each (the dry run announced nothing).
    assert [(e["created"], e["updated"], e["unchanged"]) for e in events] \
        == [(2, 0, 0), (0, 1, 1)]


def test_json_import_with_relations_and_export_round_trip(client, admin, runner, tmp_path,
                                                         pat):
    document = {"items": [
        {"key": "db", "type": "database", "name": "db", "attributes": {"engine": "mariadb"}},
        {"key": "app", "type": "application", "name": "app"},
        {"key": "svc", "type": "business_service", "name": "svc", "used_by": ["DOT"]}],
        "relations": [{"source": "app", "kind": "depends_on", "target": "db"},
                      {"source": "app", "kind": "part_of", "target": "svc"}]}
    answer = client.post("/api/v1/cmdb/import", headers=admin, json={
        "format": "json", "content": json.dumps(document), "source": "api"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["created"], answer.json["relations_added"]) == (3, 2)
    out = tmp_path / "export.json"
    assert runner.invoke(["cmdb", "export", "-o", str(out)]).exit_code == 0
    exported = json.loads(out.read_text())
    assert {(r["source"], r["kind"], r["target"]) for r in exported["relations"]} == {
        ("app", "depends_on", "db"), ("app", "part_of", "svc")}
    back = client.post("/api/v1/cmdb/import", headers=admin, json={
        "format": "json", "content": out.read_text(), "source": "api"}).json
    assert (back["created"], back["updated"], back["unchanged"], back["relations_added"],
            back["relations_removed"]) == (0, 0, 3, 0, 0)
    refused = client.post("/api/v1/cmdb/import", headers=admin, json={
        "format": "json", "content": "{not json"})
    assert refused.status_code == 422
    csv_out = runner.invoke(["cmdb", "export", "--format", "csv"])
    assert csv_out.output.splitlines()[0].startswith("key,name,type,lifecycle")


@pytest.mark.parametrize("body", [
    {}, {"name": "", "type": "server"}, {"name": "x", "type": "nope"},
    {"name": "x", "type": "server", "lifecycle": "gone"},
    {"name": "x", "type": "server", "agency": "NOPE"},
    {"name": "x", "type": "server", "attributes": {"cpu_count": 10**12}},
    {"name": "x", "type": "server", "attributes": []}, [], "text",
    {"name": "x", "type": "server", "service": "anything"},
])
def test_bad_input_is_a_422_with_field_messages(client, admin, body):
    response = client.post("/api/v1/cmdb/cis", json=body, headers=admin)
    assert response.status_code == 422, response.json


def test_cmdb_switched_off_and_on_with_its_data_in_place(app, client, admin, graph, runner):
    from itsm.core import plugin_admin

    itsm = app.extensions["itsm"]
    plugin_admin.disable(itsm, "cmdb")
    assert client.get("/api/v1/cmdb/cis", headers=admin).status_code == 404
    ticket = client.post("/api/v1/tickets", json={"title": "still works"}, headers=admin)
    assert ticket.status_code == 201, ticket.json
    assert "cmdb" not in runner.invoke(["--help"]).output.split("Commands:")[-1]
    plugin_admin.enable(itsm, "cmdb")
    listed = client.get("/api/v1/cmdb/cis", headers=admin).json
    assert listed["total"] == 4
