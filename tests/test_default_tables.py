"""A record type's table without migrations, and a missing table said as such.

A plugin that declares a record type and ships no migrations gets its type's table
created when it is enabled (and on ``itsm db upgrade``), so it works from its first
POST. A table that is missing all the same (an upgrade not run) is named, with its
plugin and the fix, in the API, the pages and the CLI: never "the database is
unavailable".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from marshmallow import Schema, fields
from sqlalchemy import ForeignKey, String, inspect, text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Record, RecordType, State, Transition, Workflow
from itsm.testing import make_plugin

URL = "/api/v1/visits"
MISSING = "table 'test_visit' of plugin 'visits' is missing: run `itsm db upgrade`"


class Visit(Record):
    """A site visit: a record type whose plugin has no migrations at all."""

    __tablename__ = "test_visit"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    room: Mapped[str] = mapped_column(String(50), default="")
    __mapper_args__ = {"polymorphic_identity": "visit"}


class VisitSchema(Schema):
    room = fields.String()


VISIT = RecordType(
    name="visit", model=Visit, prefix="VIS", collection="visits", label="Visit",
    schema=VisitSchema,
    workflow=Workflow(states=[State("planned"), State("done", final=True)],
                      transitions=[Transition("finish", ("planned",), "done")]))


def itsm_record_types() -> list[RecordType]:
    return [VISIT]


@pytest.fixture
def itsm_plugins():
    return [make_plugin("visits", itsm_record_types=itsm_record_types)]


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent", password="Agent-pass-1234")


def tables(app) -> set[str]:
    return set(inspect(app.extensions["itsm"].engine).get_table_names())


def drop_visit_table(app) -> None:
    with app.extensions["itsm"].engine.begin() as connection:
        connection.execute(text("DROP TABLE test_visit"))


def test_plugin_without_migrations_works_at_its_first_post(app, client, agent):
    assert "test_visit" in tables(app)
    created = client.post(URL, json={"title": "Check the boiler", "room": "B1"},
                          headers=agent)
    assert created.status_code == 201, created.get_json()
    number = created.get_json()["number"]
    assert number.startswith("VIS")
    assert client.get(f"{URL}/{number}", headers=agent).get_json()["room"] == "B1"


def test_check_and_purge_know_the_default_table(app, client, runner, agent):
    check = runner.invoke(["plugins", "check"])
    assert check.exit_code == 0, check.output
    assert client.post(URL, json={"title": "Fire drill"}, headers=agent).status_code == 201
    purged = runner.invoke(["plugins", "uninstall", "visits", "--purge", "--yes"])
    assert purged.exit_code == 0, purged.output
    assert "table test_visit" in purged.output
    assert "test_visit" not in tables(app)


def test_missing_table_is_named_with_its_plugin_and_the_fix(app, client, runner, agent):
    drop_visit_table(app)

    created = client.post(URL, json={"title": "Check the boiler"}, headers=agent)
    assert created.status_code == 500
    assert created.get_json()["error"] == {"code": "schema_missing", "message": MISSING}
    listed = client.get(URL, headers=agent)
    assert (listed.status_code, listed.get_json()["error"]["message"]) == (500, MISSING)
    assert "Retry-After" not in listed.headers  # not a database that will come back

    pending = runner.invoke(["plugins", "check"])
    assert "create test_visit" in pending.output
    upgraded = runner.invoke(["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert client.post(URL, json={"title": "Check the boiler"}, headers=agent).status_code == 201


def test_missing_table_page_names_the_table(app, client, agent):
    drop_visit_table(app)
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    signed_in = client.post("/login", data={"email": "agent@example.org",
                                            "password": "Agent-pass-1234",
                                            "csrf_token": token})
    assert signed_in.status_code == 302
    page = client.get("/records/visits")
    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert "table &#39;test_visit&#39; of plugin &#39;visits&#39; is missing" in body
    assert "unavailable" not in body


def test_cli_on_a_database_without_schema_says_to_run_init(tmp_path):
    env = {**os.environ, "ITSM_HOME": str(tmp_path / "instance"),
           "ITSM_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    env.pop("ITSM_DEBUG", None)
    result = subprocess.run([sys.executable, "-c", "from itsm.cli import main; main()",
                             "users", "list"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: table 'user_account' of the core is missing: run `itsm init`")
