"""``itsm outbox list|retry|purge`` with deliveries to a real webhook receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sample_plugin
from sqlalchemy import select, update
from test_webhooks import Receiver, make_due, open_ticket, subscribe

import itsm.adapters.webhooks as webhooks_plugin
from itsm.core.models import Delivery, utcnow


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, webhooks_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.initial": [], "outbox.max_attempts": 2}


@pytest.fixture
def receiver():
    peer = Receiver().start()
    yield peer
    peer.stop()


def outbox_json(runner, *args):
    result = runner.invoke(["outbox", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def dead_deliveries(client, admin, agent, itsm, receiver):
    """Two deliveries that failed max_attempts times while the receiver was down."""
    subscribe(client, admin, receiver, "/a", ["record.created"], "a-secret-of-16-chars")
    receiver.stop()
    open_ticket(client, agent, "one")
    open_ticket(client, agent, "two")
    itsm.outbox.drain()
    make_due(itsm)
    assert itsm.outbox.drain().dead == 2


def test_list_shows_failed_deliveries_with_their_error(runner, client, admin, agent, itsm,
                                                      receiver):
    subscribe(client, admin, receiver, "/a", ["record.created"], "a-secret-of-16-chars")
    receiver.stop()
    number = open_ticket(client, agent)
    itsm.outbox.drain()
    [row] = outbox_json(runner, "--state", "failed")
    assert (row["record"], row["channel"], row["state"], row["attempts"]) == (
        number, "webhook", "pending", 1)
    assert row["event"] == "record.created" and row["last_error"]
    assert outbox_json(runner, "--state", "delivered") == []
    text = runner.invoke(["outbox", "list"])
    assert text.exit_code == 0 and number in text.output


def test_dead_after_the_limit_and_retry_dead_delivers_them(runner, itsm, receiver,
                                                           dead_deliveries):
    dead = outbox_json(runner, "--state", "dead")
    assert [r["attempts"] for r in dead] == [2, 2]
    receiver.start()
    result = runner.invoke(["outbox", "retry", "--dead"])
    assert result.exit_code == 0 and "2 deliveries due now" in result.output
    assert itsm.outbox.drain().delivered == 2
    assert len(receiver.received) == 2
    assert len(outbox_json(runner, "--state", "delivered")) == 2


def test_retry_one_by_id_and_refusals(runner, itsm, receiver, dead_deliveries):
    first = outbox_json(runner, "--state", "dead")[-1]["id"]
    receiver.start()
    assert runner.invoke(["outbox", "retry", "--id", str(first)]).exit_code == 0
    assert itsm.outbox.drain().delivered == 1
    assert len(outbox_json(runner, "--state", "dead")) == 1
    again = runner.invoke(["outbox", "retry", "--id", str(first)])
    assert again.exit_code != 0 and "delivered already" in str(again.exception)
    missing = runner.invoke(["outbox", "retry", "--id", "999"])
    assert missing.exit_code != 0
    assert runner.invoke(["outbox", "retry"]).exit_code == 2  # says which to retry


def test_purge_removes_only_old_delivered_and_dead(runner, client, admin, agent, itsm,
                                                   receiver, dead_deliveries):
    receiver.start()
    open_ticket(client, agent, "three")
    assert itsm.outbox.drain().delivered == 1
    assert "nothing to purge" in runner.invoke(
        ["outbox", "purge", "--older-than", "30", "--yes"]).output
    month_ago = utcnow() - timedelta(days=40)
    with itsm.Session() as session:
        session.execute(update(Delivery).where(Delivery.state == "delivered")
                        .values(delivered_at=month_ago))
        session.commit()
    aborted = runner.invoke(["outbox", "purge", "--older-than", "30"], input="n\n")
    assert aborted.exit_code != 0
    result = runner.invoke(["outbox", "purge", "--older-than", "30", "--yes"])
    assert result.exit_code == 0 and "purged 1 deliveries" in result.output
    with itsm.Session() as session:
        assert session.scalars(select(Delivery.state)).all() == ["dead", "dead"]
    result = runner.invoke(["outbox", "purge", "--older-than", "0", "--yes"])
    assert "purged 2 deliveries" in result.output
