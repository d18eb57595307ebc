"""Every table that refers to a record finds a record's rows by an index.

Deleting records (``itsm plugins uninstall NAME --purge``) makes the database look up
each deleted record's rows in every table that refers to it, to delete them or set their
reference to null: without an index, that read the whole table once per record.
"""

from __future__ import annotations

import pytest
from every_plugin import builtin_plugins
from sqlalchemy import func, inspect, select

from itsm.core.auth import Actor
from itsm.core.models import Event, Record


@pytest.fixture
def itsm_plugins():
    return builtin_plugins()


def test_every_reference_to_a_record_is_the_first_column_of_an_index(itsm):
    inspector = inspect(itsm.engine)
    unindexed = []
    for table in inspector.get_table_names():
        leading = {index["column_names"][0] for index in inspector.get_indexes(table)
                   if index["column_names"]}
        leading |= {unique["column_names"][0]
                    for unique in inspector.get_unique_constraints(table)}
        leading |= set(inspector.get_pk_constraint(table)["constrained_columns"][:1])
        unindexed += [f"{table}.{fk['constrained_columns'][0]}"
                      for fk in inspector.get_foreign_keys(table)
                      if fk["referred_table"] == "record"
                      and fk["constrained_columns"][0] not in leading]
    assert "outbox_event" in inspector.get_table_names()
    assert unindexed == []


def test_purged_records_leave_their_events_in_the_outbox_without_a_record(itsm, runner):
    with itsm.unit_of_work(Actor.system()) as service:
        number = service.create("incident", {"title": "Mail down",
                                             "description": "no mail since 9"}).number
    with itsm.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
        assert session.scalar(select(func.count()).select_from(Event).where(
            Event.record_id == record_id)) >= 1
    result = runner.invoke(["plugins", "uninstall", "incident", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    with itsm.Session() as session:
        assert session.scalar(select(func.count()).select_from(Record).where(
            Record.type == "incident")) == 0
        kept = session.scalars(select(Event.payload).where(Event.record_id.is_(None)))
        assert number in {payload["record"]["number"] for payload in kept}
