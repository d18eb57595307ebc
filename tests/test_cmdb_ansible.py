"""Discovery from Ansible: the real ``ansible-inventory --list`` (ansible-core is in the
test extras) of an inventory file the test writes, imported twice, then with a host gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sample_plugin

import itsm.plugins.cmdb
from itsm.plugins.cmdb import importer

INVENTORY = """\
[web]
web-01 ansible_host=10.0.0.11 http_port=8080
web-02 ansible_host=10.0.0.12 http_port=8080 ansible_password=hunter2

[db]
db-01 ansible_host=10.0.0.21

[production:children]
web
db

[production:vars]
environment_name=production
"""


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.cmdb]


@pytest.fixture(autouse=True)
def ansible_home(tmp_path, monkeypatch):
    """Ansible writes its temporary files under the test's own folder."""
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "ansible"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible" / "tmp"))


@pytest.fixture
def admin(make_token):
    return make_token("admin@example.org", role="admin")


def inventory_list(path: Path) -> str:
    command = importer.ansible_inventory_command()
    result = subprocess.run([command, "-i", str(path), "--list"], capture_output=True,
                            text=True, check=True, timeout=120)
    return result.stdout


def test_the_real_ansible_inventory_is_the_one_in_this_environment():
    command = Path(importer.ansible_inventory_command())
    assert command.parent == Path(sys.executable).parent
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                             timeout=120)
    assert version.returncode == 0 and "ansible-inventory" in version.stdout


def test_an_inventory_imported_twice_is_unchanged_and_a_removed_host_is_retired(
        tmp_path, runner, client, admin):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(INVENTORY)
    listed = tmp_path / "inventory.json"
    listed.write_text(inventory_list(inventory))
    assert "web-01" in json.loads(listed.read_text())["_meta"]["hostvars"]

    first = runner.invoke(["cmdb", "import", str(listed), "--format", "ansible", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output[first.output.index("{"):])
    # three hosts and three groups (web, db, production); hosts part of their groups,
    # the groups part of production
    assert (report["created"], report["updated"], report["retired"]) == (6, 0, 0)
    assert report["relations_added"] == 5

    second = runner.invoke(["cmdb", "import", str(listed), "--format", "ansible", "--json"])
    report = json.loads(second.output[second.output.index("{"):])
    assert (report["created"], report["updated"], report["unchanged"], report["retired"],
            report["relations_added"], report["relations_removed"]) == (0, 0, 6, 0, 0, 0)

    web = client.get("/api/v1/cmdb/cis", query_string={"q": "web-02"}, headers=admin)
    host = web.json["items"][0]
    assert host["type"] == "server" and host["attributes"]["ip_address"] == "10.0.0.12"
    assert host["attributes"]["groups"] == ["web"]
    assert host["attributes"]["hostvars"]["http_port"] == 8080
    assert "hunter2" not in json.dumps(host)  # credentials are never copied

    # web-02 leaves the inventory: the import of the inventory file itself (which runs
    # ansible-inventory) retires it and keeps its history.
    inventory.write_text(INVENTORY.replace(
        "web-02 ansible_host=10.0.0.12 http_port=8080 ansible_password=hunter2\n", ""))
    third = runner.invoke(["cmdb", "import", str(inventory), "--format", "ansible", "--json"])
    assert third.exit_code == 0, third.output
    report = json.loads(third.output[third.output.index("{"):])
    assert (report["created"], report["updated"], report["unchanged"], report["retired"]) \
        == (0, 0, 5, 1)
    assert report["relations_removed"] == 1
    gone = client.get(f"/api/v1/cmdb/cis/{host['id']}", headers=admin).json
    assert gone["lifecycle"] == "retired"
    history = client.get(f"/api/v1/cmdb/cis/{host['id']}/history", headers=admin).json
    assert any(h["action"] == "retired" and h["note"] == "not in import ansible"
               for h in history["items"])


def test_a_broken_inventory_is_one_clear_line(tmp_path, runner):
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    result = runner.invoke(["cmdb", "import", str(broken), "--format", "json"])
    assert result.exit_code != 0 and "not JSON" in result.output
    assert "Traceback" not in result.output
