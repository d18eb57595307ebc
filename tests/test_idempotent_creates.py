"""A create that committed is answered as created, and a retry never makes a second record.

An outside test terminated database sessions while clients created records: the create
committed, the suggestions looked up after it failed on the dropped connection, the
rollback left the outbox's events detached and the answer was a 500 for a stored record
(13 times in 2 minutes); a client that retried made a duplicate. Here the suggestions step
fails after the commit (a plugin raising the database's error after querying, and on
PostgreSQL the session really terminated with ``pg_terminate_backend``), and retries carry
an ``Idempotency-Key`` as the IETF draft describes it.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import OperationalError

from itsm.core import auth
from itsm.core.models import Event, IdempotencyKey, Record, utcnow
from itsm.core.notify import EventMessage, Recipient
from itsm.testing import make_plugin

TICKETS = "/api/v1/tickets"
KEY = "Idempotency-Key"


def postgres_url() -> str | None:
    url = os.environ.get("ITSM_TEST_POSTGRES_URL", "")
    return url if url.startswith(("postgresql", "postgres:")) else None


@pytest.fixture(params=["sqlite", "postgresql"])
def itsm_config(request, itsm_config):
    if request.param == "postgresql":
        if postgres_url() is None:
            pytest.skip("needs a PostgreSQL server: set ITSM_TEST_POSTGRES_URL")
        return {**itsm_config, "database.url": postgres_url()}
    return itsm_config


class Recorder:
    """A channel and post-commit hook that remember what they were given."""

    name = "recorder"

    def __init__(self) -> None:
        self.announced: list[EventMessage] = []
        self.delivered: list[int] = []

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        self.delivered.append(message.id)


def start(with_plugin, recorder: Recorder | None = None, **hooks):
    recorder = recorder or Recorder()

    def itsm_event_committed(event):
        recorder.announced.append(event)

    def itsm_notification_channels():
        return [recorder]

    def itsm_notification_recipients(event):
        return [Recipient("recorder", "ops")]

    application = with_plugin(make_plugin(
        "faulty", itsm_event_committed=itsm_event_committed,
        itsm_notification_channels=itsm_notification_channels,
        itsm_notification_recipients=itsm_notification_recipients, **hooks))
    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        user = auth.create_user(session, "agent@example.org", role="agent")
        _, secret = auth.create_token(session, user)
        other = auth.create_user(session, "other@example.org", role="agent")
        _, other_secret = auth.create_token(session, other)
        session.commit()
    return (application, itsm, recorder, {"Authorization": f"Bearer {secret}"},
            {"Authorization": f"Bearer {other_secret}"})


def count(application, model) -> int:
    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(model))


def drain(application) -> None:
    itsm = application.extensions["itsm"]
    with application.app_context():
        itsm.outbox.fan_out()
        itsm.outbox.deliver_due()


def dropped_connection(session, record):
    """Suggestions that reach the database, then lose the connection."""
    session.execute(select(func.count()).select_from(Record))
    raise OperationalError("SELECT ...", {}, ConnectionError("server closed the connection"))


def terminated_session(session, record):
    """Suggestions whose database session is terminated under them, as an operator (or a
    failover) does with pg_terminate_backend."""
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = create_engine(postgres_url())
    with killer.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    session.execute(text("SELECT 1"))
    return []


# -- whatever fails after the commit -------------------------------------------------------


def test_suggestions_losing_the_database_after_the_commit_still_answer_201(with_plugin,
                                                                         itsm_config):
    faulty = terminated_session if itsm_config["database.url"].startswith("postgres") \
        else dropped_connection
    application, itsm, recorder, headers, _ = start(with_plugin, itsm_suggestions=faulty)
    client = application.test_client()

    created = client.post(TICKETS, headers=headers, json={"title": "printer jam"})

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["number"].startswith("TCK") and body["title"] == "printer jam"
    assert body["suggestions"] == [] and "created" in body["suggestions_skipped"]
    assert created.headers["Location"] == f"{TICKETS}/{body['number']}"
    assert created.headers["ETag"] == f'"{body["version"]}"'
    # Stored once, announced after the commit and delivered by the outbox.
    assert count(application, Record) == 1
    stored = client.get(f"{TICKETS}/{body['number']}", headers=headers).get_json()
    assert stored["title"] == "printer jam"
    events = count(application, Event)
    assert events >= 1
    assert len(recorder.announced) == events
    assert {e.record["number"] for e in recorder.announced} == {body["number"]}
    drain(application)
    assert sorted(recorder.delivered) == sorted(e.id for e in recorder.announced)


def test_the_next_create_after_a_dropped_connection_works(with_plugin, itsm_config):
    calls = []

    def fails_once(session, record):
        calls.append(record.number)
        if len(calls) == 1:
            dropped_connection(session, record)
        return []

    application, itsm, recorder, headers, _ = start(with_plugin, itsm_suggestions=fails_once)
    client = application.test_client()
    first = client.post(TICKETS, headers=headers, json={"title": "one"})
    second = client.post(TICKETS, headers=headers, json={"title": "two"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert "suggestions_skipped" in first.get_json()
    assert "suggestions_skipped" not in second.get_json()
    assert count(application, Record) == 2


# -- Idempotency-Key -----------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_first_answer_and_no_second_record(with_plugin,
                                                                             itsm_config):
    application, itsm, recorder, headers, _ = start(with_plugin)
    client = application.test_client()
    sent = {"title": "VPN down", "priority": 2}

    first = client.post(TICKETS, headers={**headers, KEY: '"8e03978e-40d5-43e8-bc93"'},
                        json=sent)
    again = client.post(TICKETS, headers={**headers, KEY: '"8e03978e-40d5-43e8-bc93"'},
                        json={"priority": 2, "title": "VPN down"})  # same object

    assert first.status_code == again.status_code == 201
    first_body = {k: v for k, v in first.get_json().items() if k != "suggestions"}
    assert again.get_json() == first_body
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert count(application, Record) == 1


def test_the_same_key_with_another_body_is_422(with_plugin, itsm_config):
    application, itsm, recorder, headers, _ = start(with_plugin)
    client = application.test_client()
    client.post(TICKETS, headers={**headers, KEY: "k-1"}, json={"title": "VPN down"})

    other = client.post(TICKETS, headers={**headers, KEY: "k-1"}, json={"title": "Mail down"})

    assert other.status_code == 422
    assert KEY in other.get_json()["error"]["fields"]
    assert count(application, Record) == 1


def test_keys_belong_to_their_user(with_plugin, itsm_config):
    application, itsm, recorder, headers, other = start(with_plugin)
    client = application.test_client()

    mine = client.post(TICKETS, headers={**headers, KEY: "shared"}, json={"title": "a"})
    theirs = client.post(TICKETS, headers={**other, KEY: "shared"}, json={"title": "a"})

    assert mine.status_code == theirs.status_code == 201
    assert mine.get_json()["number"] != theirs.get_json()["number"]


def test_a_refused_create_gives_its_key_back(with_plugin, itsm_config):
    application, itsm, recorder, headers, _ = start(with_plugin)
    client = application.test_client()

    refused = client.post(TICKETS, headers={**headers, KEY: "k-2"}, json={"title": ""})
    corrected = client.post(TICKETS, headers={**headers, KEY: "k-2"}, json={"title": "ok"})

    assert (refused.status_code, corrected.status_code) == (422, 201)
    assert count(application, Record) == 1


def test_a_retry_while_the_first_is_in_flight_is_409_then_gets_the_answer(with_plugin,
                                                                         itsm_config):
    entered, proceed = threading.Event(), threading.Event()

    def record_changed(session, record, change):
        if record.title == "slow":
            entered.set()
            proceed.wait(30)

    application, itsm, recorder, headers, _ = start(with_plugin,
                                                    itsm_record_changed=record_changed)
    answers = {}

    def first():
        answers["first"] = application.test_client().post(
            TICKETS, headers={**headers, KEY: "k-3"}, json={"title": "slow"})

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert entered.wait(30)
        during = application.test_client().post(TICKETS, headers={**headers, KEY: "k-3"},
                                                json={"title": "slow"})
    finally:
        proceed.set()
        thread.join(30)

    assert during.status_code == 409, during.get_json()
    assert KEY in during.get_json()["error"]["fields"]
    assert answers["first"].status_code == 201
    after = application.test_client().post(TICKETS, headers={**headers, KEY: "k-3"},
                                           json={"title": "slow"})
    assert after.status_code == 201
    assert after.get_json()["number"] == answers["first"].get_json()["number"]
    assert count(application, Record) == 1


def test_a_key_is_forgotten_after_its_hours(with_plugin, itsm_config):
    application, itsm, recorder, headers, _ = start(with_plugin)
    client = application.test_client()
    first = client.post(TICKETS, headers={**headers, KEY: "k-4"}, json={"title": "a"})
    with application.app_context(), itsm.Session() as session:
        kept = session.scalars(select(IdempotencyKey)).one()
        assert kept.expires_at - kept.created_at == timedelta(hours=24)
        # A day later:
        session.execute(update(IdempotencyKey).values(
            expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    later = client.post(TICKETS, headers={**headers, KEY: "k-4"}, json={"title": "a"})

    assert later.status_code == 201
    assert later.get_json()["number"] != first.get_json()["number"]
    assert count(application, IdempotencyKey) == 1


@pytest.mark.parametrize("value", ['""', "x" * 256, "naïve"])
def test_a_malformed_key_is_422(with_plugin, itsm_config, value):
    application, itsm, recorder, headers, _ = start(with_plugin)
    response = application.test_client().post(
        TICKETS, headers={**headers, KEY: value.encode().decode("latin-1")},
        json={"title": "a"})

    assert response.status_code == 422
    assert count(application, Record) == 0


def test_the_header_is_in_the_document(with_plugin, itsm_config):
    application, *_ = start(with_plugin)
    document = application.test_client().get("/api/v1/openapi.json").get_json()
    parameters = document["paths"][TICKETS]["post"]["parameters"]
    assert KEY in {p["name"] for p in parameters if p["in"] == "header"}

