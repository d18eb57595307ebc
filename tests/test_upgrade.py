"""Upgrades and purges on a copy of a populated install, the way an admin rehearses them.

The install is populated with every built-in plugin's demo data, the SQLite file copied
with SQLite's online backup (what the README tells admins to do), and the copy upgraded
and purged; the original is never touched and the other plugins' data stays as it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import MetaData, inspect, select

from itsm.core.app import create_app
from itsm.core.models import Record
from itsm.testing import TEST_DATABASE_ENV, ItsmRunner

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get(TEST_DATABASE_ENV)),
                       reason="rehearses on a copy of a SQLite file"),
    # Expression indexes are not reflected; only the rows are compared.
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection:sqlalchemy.exc.SAWarning"),
]


@pytest.fixture
def itsm_config(itsm_config):
    config = dict(itsm_config)
    config.pop("plugins.initial")  # every built-in plugin, as on a real install
    return config


@pytest.fixture
def itsm_plugins():
    return []


def rows(engine, skip=()) -> dict[str, list[tuple]]:
    names = [n for n in inspect(engine).get_table_names()
             if not n.startswith("record_search") and n not in skip]
    meta = MetaData()
    meta.reflect(engine, only=names)
    with engine.connect() as connection:
        return {t.name: [tuple(r) for r in connection.execute(
            select(t).order_by(*(list(t.primary_key.columns) or list(t.columns))))]
            for t in meta.sorted_tables}


def copy_install(app, tmp_path: Path):
    """An online backup of the SQLite file, opened as a second install."""
    source = app.extensions["itsm"].engine.url.database
    target = tmp_path / "rehearsal.db"
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    copy_app = create_app({"home": str(tmp_path / "rehearsal"), "database.url":
                           f"sqlite:///{target}", "secret_key": "x",
                           "attachments.path": str(tmp_path / "attachments"),
                           "plugins.refresh_seconds": 0.0})
    return copy_app, ItsmRunner(copy_app)


@pytest.fixture
def populated(app, runner):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    return app


def test_upgrade_of_a_populated_copy_changes_no_data(populated, tmp_path):
    before = rows(populated.extensions["itsm"].engine)
    copy_app, copy_runner = copy_install(populated, tmp_path)
    try:
        upgraded = copy_runner.invoke(["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        assert "database is up to date" in upgraded.output
        checked = copy_runner.invoke(["plugins", "check"])
        assert checked.exit_code == 0, checked.output
        assert rows(copy_app.extensions["itsm"].engine) == before
    finally:
        copy_app.extensions["itsm"].engine.dispose()


def test_purging_a_plugin_on_a_copy_leaves_every_other_plugins_data_intact(populated,
                                                                           tmp_path):
    original = populated.extensions["itsm"].engine
    before = rows(original)
    copy_app, copy_runner = copy_install(populated, tmp_path)
    engine = copy_app.extensions["itsm"].engine
    try:
        with engine.connect() as connection:
            kb_ids = set(connection.scalars(select(Record.id).where(Record.type == "article")))
        assert kb_ids, "the demo made no knowledge article: the purge proves nothing"
        kb_tables = {"kb_article", "kb_article_version", "kb_vote"}
        purged = copy_runner.invoke(["plugins", "uninstall", "knowledge", "--purge", "--yes"])
        assert purged.exit_code == 0, purged.output
        assert "record(s) of type article" in purged.output
        after = rows(engine)
        assert not kb_tables & set(after)
        # A built-in plugin stays installed, so it stays known: disabled, not gone.
        state = {r[0]: r[1] for r in after["plugin_state"]}
        assert state["knowledge"] is False
        assert {k: v for k, v in state.items() if k != "knowledge"} == {
            r[0]: r[1] for r in before["plugin_state"] if r[0] != "knowledge"}
        assert after["alembic_version"] == [r for r in before["alembic_version"]
                                            if not r[0].startswith("knowledge_")]

        # Every row that is neither the plugin's nor tied to one of its records is as it was.
        def tied(table: str, row: tuple, columns: list[str]) -> bool:
            values = dict(zip(columns, row, strict=True))
            if table == "record":
                return values["id"] in kb_ids
            # source_id and target_id are records in the core's links only (the cmdb's
            # relations use the same names for configuration items).
            ends = ("source_id", "target_id") if table == "record_link" else ()
            return any(values.get(c) in kb_ids for c in ("record_id", *ends))

        meta = MetaData()
        meta.reflect(original, only=list(before))
        for table, old_rows in before.items():
            if table in kb_tables or table in ("plugin_state", "alembic_version"):
                continue
            columns = [c.name for c in meta.tables[table].columns]
            kept = [r for r in old_rows if not tied(table, r, columns)]
            if table == "outbox_event":  # events keep their history, the record link goes
                kept = [r for r in old_rows]
                record_at = columns.index("record_id")
                kept = [r if r[record_at] not in kb_ids else
                        (*r[:record_at], None, *r[record_at + 1:]) for r in kept]
            assert after[table] == kept, f"{table} changed beyond the purged plugin's rows"
        assert rows(original) == before  # the rehearsal never touched the original

        listed = copy_runner.invoke(["plugins", "list"])
        assert "knowledge 0.1.0 disabled" in " ".join(listed.output.split())
        # Enabled again, it starts from an empty schema of its own.
        enabled = copy_runner.invoke(["plugins", "enable", "knowledge"])
        assert enabled.exit_code == 0, enabled.output
        assert inspect(engine).has_table("kb_article")
    finally:
        engine.dispose()
