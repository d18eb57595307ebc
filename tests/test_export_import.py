"""``itsm export`` / ``itsm import``: a whole install round-trips with nothing lost or changed.

The source is the test database (SQLite, or PostgreSQL with ITSM_TEST_DATABASE_URL);
the target a new SQLite file, and with ITSM_TEST_POSTGRES_URL also a PostgreSQL server
(SQLite to PostgreSQL: the migration path between back ends).
"""

from __future__ import annotations

import io
import os
import sqlite3
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, inspect, select

from itsm.core import auth, exchange
from itsm.core.app import create_app
from itsm.core.errors import Unauthorized
from itsm.core.models import Record
from itsm.testing import TEST_DATABASE_ENV, ItsmRunner, empty_database

BINARY = bytes(range(256)) * 40 + b"\x00end"

# Expression indexes are not reflected; only the rows are compared.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection:sqlalchemy.exc.SAWarning")


@pytest.fixture
def itsm_config(itsm_config):
    """Every built-in plugin enabled, as on a real install."""
    config = dict(itsm_config)
    config.pop("plugins.initial")
    return config


@pytest.fixture
def itsm_plugins():
    return []


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every table (the database's own full-text index left out), normalised
    so that two back ends compare: timestamps naive UTC, numbers as Decimal."""
    def norm(value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, float):
            return Decimal(repr(value))
        return value

    names = [n for n in inspect(engine).get_table_names() if not n.startswith("record_search")]
    meta = MetaData()
    meta.reflect(engine, only=names)
    out = {}
    with engine.connect() as connection:
        for table in meta.sorted_tables:
            keys = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execute(select(table).order_by(*keys)).all()
            out[table.name] = [tuple(norm(v) for v in row) for row in rows]
    return out


def populate(app, client, runner) -> dict[str, str]:
    """Demo data of every plugin, plus what the demo does not make: attachments, links,
    comments, tokens, webhooks, deliveries, sign-in failures, refusals."""
    itsm = app.extensions["itsm"]
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    with app.app_context(), itsm.Session() as db:
        admin = auth.create_user(db, "root@example.org", role="admin", password="pw-123456789-root")
        _, secret = auth.create_token(db, admin, name="backup test")
        with pytest.raises(Unauthorized):
            auth.sign_in(db, "agent@demo.invalid", "wrong password", "10.1.2.3")
        db.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    collections = client.get("/api/v1/", headers=headers).get_json()["collections"]
    incidents = client.get("/api/v1/incidents", headers=headers).get_json()["items"]
    first, second = incidents[0]["number"], incidents[1]["number"]
    uploaded = client.post(f"/api/v1/incidents/{first}/attachments", headers=headers,
                           data={"file": (io.BytesIO(BINARY), "dump.bin")})
    assert uploaded.status_code == 201
    assert client.post(f"/api/v1/incidents/{first}/links", headers=headers,
                       json={"target": second, "kind": "relates_to"}).status_code == 201
    assert client.post(f"/api/v1/incidents/{second}/comments", headers=headers,
                       json={"body": "ünïcödé ✓ and 'quotes'", "public": False}).status_code == 201
    assert client.post("/api/v1/webhooks", headers=headers,
                       json={"url": "http://127.0.0.1:9/hook", "events": ["record.*"]}
                       ).status_code == 201
    with app.app_context():
        itsm.outbox.drain()
    return {"token": secret, "incident": first, "collections": ",".join(collections)}


def import_into(url: str, home: Path, archive: Path):
    target = create_app({"home": str(home), "database.url": url, "secret_key": "other",
                         "attachments.path": str(home / "attachments"),
                         "plugins.refresh_seconds": 0.0})
    result = ItsmRunner(target).invoke(["import", str(archive)])
    return target, result


def assert_same_install(source_app, target_app, facts) -> None:
    before = snapshot(source_app.extensions["itsm"].engine)
    after = snapshot(target_app.extensions["itsm"].engine)
    assert sorted(after) == sorted(before)
    for table, rows in before.items():
        assert after[table] == rows, f"table {table} differs after the round trip"
    assert sum(len(rows) for rows in before.values()) > 300
    for table in ("record", "journal", "record_link", "attachment", "sla_clock", "api_token",
                  "outbox_event", "outbox_delivery", "plugin_state", "login_failure",
                  "incident", "change_request", "catalog_service", "kb_article"):
        assert before[table], f"the demo left {table} empty: the test proves nothing there"

    client = target_app.test_client()
    headers = {"Authorization": f"Bearer {facts['token']}"}
    assert client.get("/api/v1/me", headers=headers).get_json()["email"] == "root@example.org"
    collections = client.get("/api/v1/", headers=headers).get_json()["collections"]
    assert ",".join(collections) == facts["collections"]
    files = client.get(f"/api/v1/incidents/{facts['incident']}/attachments",
                       headers=headers).get_json()["items"]
    download = client.get(f"/api/v1/incidents/{facts['incident']}/attachments/{files[0]['id']}",
                          headers=headers)
    assert download.data == BINARY
    # New rows continue after the imported ones: ids (PostgreSQL sequences) and numbers.
    created = client.post("/api/v1/incidents", headers=headers,
                          json={"title": "after the restore", "category": "network"})
    assert created.status_code == 201, created.get_json()
    with source_app.extensions["itsm"].Session() as db:
        last = db.scalar(select(func.max(Record.number)).where(Record.type == "incident"))
    assert created.get_json()["number"] > last
    found = client.get("/api/v1/incidents?q=restore", headers=headers).get_json()["items"]
    assert [r["number"] for r in found] == [created.get_json()["number"]]


def to_postgresql() -> str | None:
    """The server for the SQLite-to-PostgreSQL move (in the SQLite pass, where the source
    is a file; the PostgreSQL pass exports from the server itself)."""
    if os.environ.get(TEST_DATABASE_ENV):
        return None
    return os.environ.get("ITSM_TEST_POSTGRES_URL")


def test_export_then_import_into_a_new_database_loses_and_changes_nothing(
        app, client, runner, tmp_path):
    facts = populate(app, client, runner)
    archive = tmp_path / "backup.itsm.zip"
    exported = runner.invoke(["export", str(archive)])
    assert exported.exit_code == 0, exported.output
    assert "exported" in exported.output and "1 files" in exported.output
    with zipfile.ZipFile(archive) as zf:
        assert any(n.startswith("files/") for n in zf.namelist())

    target, imported = import_into(f"sqlite:///{tmp_path / 'restored.db'}",
                                   tmp_path / "restored", archive)
    assert imported.exit_code == 0, imported.output
    assert "imported" in imported.output
    try:
        assert_same_install(app, target, facts)
        # Never twice, never over existing data, never over an existing file.
        again = ItsmRunner(target).invoke(["import", str(archive)])
        assert again.exit_code == 1 and "is not empty" in again.exception.message
        assert ItsmRunner(target).invoke(["export", str(archive)]).exit_code == 1
    finally:
        target.extensions["itsm"].engine.dispose()

    url = to_postgresql()
    if url:  # the same file moves the install to PostgreSQL, sequences past the ids
        empty_database(url)
        target, imported = import_into(url, tmp_path / "on-postgresql", archive)
        assert imported.exit_code == 0, imported.output
        try:
            assert_same_install(app, target, facts)
        finally:
            target.extensions["itsm"].engine.dispose()
            empty_database(url)


def test_import_of_what_is_not_an_export_is_one_line_and_writes_nothing(tmp_path):
    """The real command: a refusal is one line on stderr and exit status 1."""
    import subprocess
    import sys

    home = tmp_path / "instance"
    env = {**os.environ, "ITSM_HOME": str(home),
           "ITSM_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop(TEST_DATABASE_ENV, None)
    env.pop("ITSM_DEBUG", None)
    bogus = tmp_path / "bogus.zip"
    with zipfile.ZipFile(bogus, "w") as zf:
        zf.writestr("manifest.json", '{"format": "something/9"}')
    done = subprocess.run([sys.executable, "-c", "from itsm.cli import main; main()",
                           "import", str(bogus)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: the file's format 'something/9' is not 'itsm.export/1': export "
                     "it again with this version of itsm"]
    assert not (tmp_path / "x.db").exists() or not sqlite3.connect(tmp_path / "x.db").execute(
        "SELECT name FROM sqlite_master").fetchall()
    not_zip = tmp_path / "notes.txt"
    not_zip.write_text("precious")
    with pytest.raises(exchange.ExchangeError, match="cannot be read as an itsm export"):
        exchange.open_export(not_zip)
