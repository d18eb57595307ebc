"""Storage on every back end named in the environment: SQLite always, PostgreSQL with
ITSM_TEST_POSTGRES_URL, MariaDB with ITSM_TEST_MARIADB_URL."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import pytest
import sample_plugin
from sqlalchemy import func, select, text

from itsm.core import plugin_admin
from itsm.core.app import create_app
from itsm.core.auth import Actor
from itsm.core.install import initialise
from itsm.core.models import JournalEntry, Record
from itsm.core.query import ListQuery
from itsm.testing import empty_database

BACKENDS = ["sqlite"]
if os.environ.get("ITSM_TEST_POSTGRES_URL"):
    BACKENDS.append("postgresql")
if os.environ.get("ITSM_TEST_MARIADB_URL"):
    BACKENDS.append("mariadb")


@pytest.fixture(params=BACKENDS)
def backend_app(request, tmp_path):
    url = {"sqlite": f"sqlite:///{tmp_path / 'store.db'}",
           "postgresql": os.environ.get("ITSM_TEST_POSTGRES_URL"),
           "mariadb": os.environ.get("ITSM_TEST_MARIADB_URL")}[request.param]
    if request.param != "sqlite":
        empty_database(url)
    app = create_app({"home": str(tmp_path / "instance"), "database.url": url,
                      "secret_key": "x", "plugins.refresh_seconds": 0.0,
                      "plugins.extra": [sample_plugin]})
    itsm = app.extensions["itsm"]
    with app.app_context():
        initialise(itsm)
        plugin_admin.enable(itsm, "tickets")
        yield itsm
    itsm.engine.dispose()


def test_human_numbers_never_repeat_under_concurrent_writers(backend_app):
    itsm = backend_app
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer() -> None:
        with itsm.app.app_context():
            for i in range(10):
                try:
                    with itsm.unit_of_work(Actor.system()) as service:
                        record = service.create("ticket", {"title": f"load {i}"})
                        number = record.number
                    with lock:
                        numbers.append(number)
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(numbers) == 60 and len(set(numbers)) == 60
    assert sorted(numbers) == [f"TCK{n:07d}" for n in range(1, 61)]
    with itsm.Session() as session:
        assert session.scalar(select(func.count()).select_from(JournalEntry)) == 60


def test_a_create_does_not_wait_for_another_creates_transaction(backend_app):
    """On a database server a number is taken in a transaction of its own: a create
    whose transaction is still open does not hold up the next one, and a create that
    fails after taking its number leaves a gap, never a number given twice."""
    itsm = backend_app
    if itsm.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: the number is taken in the transaction")
    first_open, release = threading.Event(), threading.Event()

    def slow_create() -> None:
        with itsm.app.app_context(), itsm.unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": "slow"})
            first_open.set()
            release.wait(30)

    def second_create(out: list[str]) -> None:
        with itsm.app.app_context(), itsm.unit_of_work(Actor.system()) as service:
            out.append(service.create("ticket", {"title": "quick"}).number)

    slow = threading.Thread(target=slow_create)
    slow.start()
    assert first_open.wait(30)
    numbers: list[str] = []
    quick = threading.Thread(target=second_create, args=(numbers,))
    quick.start()
    quick.join(10)
    finished_while_open = not quick.is_alive()
    release.set()
    slow.join(30)
    quick.join(30)
    assert finished_while_open, "the second create waited for the first to commit"
    assert numbers == ["TCK0000002"]

    with pytest.raises(RuntimeError), itsm.unit_of_work(Actor.system()) as service:
        service.create("ticket", {"title": "rolled back"})
        raise RuntimeError("the command fails after its create")
    with itsm.unit_of_work(Actor.system()) as service:
        assert service.create("ticket", {"title": "after"}).number == "TCK0000004"
    with itsm.Session() as session:
        assert sorted(session.scalars(select(Record.number))) == \
            ["TCK0000001", "TCK0000002", "TCK0000004"]


def test_numbers_keep_coming_after_the_server_dropped_every_connection(backend_app):
    """PostgreSQL: the connection that takes numbers is kept open between creates; when
    the server ends it (a restart, an administrator), the next create opens another and
    gets the next number, without an error."""
    itsm = backend_app
    if itsm.engine.dialect.name != "postgresql":
        pytest.skip("the kept numbering connection is used on PostgreSQL")
    with itsm.unit_of_work(Actor.system()) as service:
        assert service.create("ticket", {"title": "before"}).number == "TCK0000001"
    with itsm.engine.connect() as admin:
        ended = admin.scalar(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    assert ended >= 1
    with itsm.unit_of_work(Actor.system()) as service:
        assert service.create("ticket", {"title": "after"}).number == "TCK0000002"


def test_only_the_numbers_commit_without_waiting_for_the_disk(backend_app):
    """PostgreSQL: a number's commit does not wait for its WAL to be flushed (the record
    that uses it commits later, and that flush covers it); every other connection keeps
    the server's durable commits, also after numbers were taken."""
    from itsm.core import numbering

    itsm = backend_app
    if itsm.engine.dialect.name != "postgresql":
        pytest.skip("the kept numbering connection is used on PostgreSQL")
    for i in range(3):
        with itsm.unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": f"printer jam {i}"})
            assert service.session.scalar(text("SHOW synchronous_commit")) == "on"
    counter = numbering._counter(itsm.engine)
    assert counter._connection().scalar(text("SHOW synchronous_commit")) == "off"
    counter.close()  # as when the server ends it: never handed to a record's work
    size = itsm.engine.pool.size()
    connections = [itsm.engine.connect() for _ in range(size)]  # the pool's, all of them
    try:
        assert [c.scalar(text("SHOW synchronous_commit")) for c in connections] == \
            ["on"] * size
    finally:
        for connection in connections:
            connection.close()


def test_a_created_record_is_whole_and_its_insert_events_still_run(backend_app):
    """A create writes its rows with plain INSERTs, except for a type whose mapper has
    insert events (a vendor's, say): that one goes through the unit of work, so the
    events run as before. Either way the record reads back whole and versions from 1."""
    from sqlalchemy import event

    itsm = backend_app
    seen: list[str] = []

    def stamp(_mapper, _connection, target) -> None:
        seen.append(target.title)

    for listening in (False, True):
        if listening:  # after a create made the type's plan: the plan must not keep it out
            event.listen(sample_plugin.Ticket, "before_insert", stamp)
        try:
            with itsm.unit_of_work(Actor.system()) as service:
                record = service.create("ticket", {"title": f"whole {listening}"})
                assert (record.version, record.description, record.closed_at) == (1, "", None)
                service.update(record, {"title": f"edited {listening}"}, expected_version=1)
                number = record.number
        finally:
            if listening:
                event.remove(sample_plugin.Ticket, "before_insert", stamp)
        with itsm.unit_of_work(Actor.system()) as service:
            again = service.get(number)
            assert (again.title, again.version) == (f"edited {listening}", 2)
            assert [e.kind for e in service.journal(again)] == ["created", "updated"]
    assert seen == ["whole True"]


def test_a_create_undone_by_a_savepoint_leaves_nothing_behind(backend_app):
    """A create inside a savepoint that rolls back is forgotten by the session too: the
    command goes on and creates the next record (on SQLite, with the same row id)."""
    from sqlalchemy import inspect

    itsm = backend_app
    with itsm.unit_of_work(Actor.system()) as service:
        with pytest.raises(RuntimeError), service.session.begin_nested():
            undone = service.create("ticket", {"title": "undone"})
            raise RuntimeError("the step after the create fails")
        assert inspect(undone).transient
        kept = service.create("ticket", {"title": "kept"})
        service.update(kept, {"title": "kept and edited"})
    with itsm.Session() as session:
        assert list(session.scalars(select(Record.title))) == ["kept and edited"]


def test_timestamps_come_back_aware_utc_with_microseconds(backend_app):
    itsm = backend_app
    with itsm.unit_of_work(Actor.system()) as service:
        number = service.create("ticket", {"title": "clock"}).number
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
    assert record.created_at.tzinfo is UTC or record.created_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - record.created_at).total_seconds()) < 60


def test_keyset_pages_cover_every_record_once(backend_app):
    itsm = backend_app
    with itsm.unit_of_work(Actor.system()) as service:
        for i in range(25):
            service.create("ticket", {"title": f"t{i}", "priority": (i % 3) + 1 if i % 4
                                      else None})
    for sort in ("-created_at", "priority", "-priority", "number", "updated_at"):
        seen, cursor = [], None
        while True:
            with itsm.unit_of_work(Actor.system()) as service:
                page, cursor = service.list("ticket", ListQuery(sort=sort, cursor=cursor,
                                                                limit=7))
                seen += [r.number for r in page]
            if cursor is None:
                break
        assert len(seen) == 25 and len(set(seen)) == 25, sort


def test_optimistic_locking_refuses_the_second_of_two_stale_writers(backend_app):
    from itsm.core.errors import StaleRecord

    itsm = backend_app
    with itsm.unit_of_work(Actor.system()) as service:
        number = service.create("ticket", {"title": "shared"}).number
    with itsm.unit_of_work(Actor.system()) as service:
        service.update(service.get(number), {"title": "first"}, expected_version=1)
    with pytest.raises(StaleRecord), itsm.unit_of_work(Actor.system()) as service:
        service.update(service.get(number), {"title": "second"}, expected_version=1)
    with itsm.unit_of_work(Actor.system()) as service:
        assert service.get(number).title == "first"


def test_full_text_search_uses_each_databases_index_and_ranks(backend_app):
    from itsm.core import search

    itsm = backend_app
    with itsm.unit_of_work(Actor.system()) as service:
        for title, description in [("VPN tunnel drops", "remote workers lose the tunnel"),
                                   ("Printers jam", "the A3 printer jams"),
                                   ("Mailbox full", "archive old mail to free space")]:
            service.create("ticket", {"title": title, "description": description})
        service.update(service.get("TCK0000003"), {"title": "Mailbox quota reached"})
    with itsm.unit_of_work(Actor.system()) as service:
        found, _ = service.list("ticket", ListQuery(q="tunnel"))
        assert [r.title for r in found] == ["VPN tunnel drops"]
        found, _ = service.list("ticket", ListQuery(q="quota"))  # the edit is indexed
        assert [r.title for r in found] == ["Mailbox quota reached"]
        found, _ = service.list("ticket", ListQuery(q="printer jams"))
        assert [r.title for r in found] == ["Printers jam"]
        hits = search.ranked(service.session, "remote tunnel for the mail archive")
        assert {r.title for r, _ in hits} == {"VPN tunnel drops", "Mailbox quota reached"}
        assert hits[0][1] == 1.0


def test_postgresql_plans_a_queue_for_each_group_but_prepares_lookups(backend_app):
    """A queue or search page is planned for its own values on every run; a lookup by key
    is prepared once and its plan kept, so it is not planned again on each request."""
    itsm = backend_app
    if itsm.engine.dialect.name != "postgresql":
        pytest.skip("prepared statements and their plans: PostgreSQL's")
    with itsm.unit_of_work(Actor.system()) as service:
        numbers = [service.create("ticket", {"title": f"printer jam {i}"}).number
                   for i in range(3)]
    itsm.engine.dispose()  # one fresh connection for what follows
    with itsm.unit_of_work(Actor.system()) as service:
        for i in range(8):  # psycopg prepares a statement on its sixth run
            service.get(numbers[i % 3], "ticket")
            service.list("ticket", ListQuery(sort="priority", limit=2))
            service.list("ticket", ListQuery(q="printer", limit=2))
        prepared = list(service.session.scalars(
            text("SELECT statement FROM pg_prepared_statements")))
    assert [s for s in prepared if "WHERE record.number =" in s], prepared
    assert not [s for s in prepared if "ORDER BY" in s and "LIMIT" in s], prepared
    assert not [s for s in prepared if "to_tsquery" in s], prepared
