"""Eight writers on the same incidents at once, over HTTP, on PostgreSQL.

A real threaded server, a real server database: every write carries the ETag it read
(If-Match); of eight writers holding the same version exactly one wins and the others get
412, the journal holds exactly one entry per accepted change, numbers of records created
meanwhile never repeat, and the SLA clocks equal what a replay of the journals gives.
Runs when a PostgreSQL URL is given (ITSM_TEST_DATABASE_URL or ITSM_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import os
import threading

import pytest
from live_http import call

from itsm.core import sla
from itsm.testing import TEST_DATABASE_ENV

WRITERS = 8
ROUNDS = 12
INCIDENTS = "/api/v1/incidents"


def postgres_url() -> str | None:
    for name in (TEST_DATABASE_ENV, "ITSM_TEST_POSTGRES_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("postgresql", "postgres:")):
            return url
    return None


pytestmark = pytest.mark.skipif(postgres_url() is None,
                                reason="needs a PostgreSQL server: set ITSM_TEST_POSTGRES_URL")


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "database.url": postgres_url(),
            "plugins.initial": ["notify_log", "incident"]}


@pytest.fixture
def itsm_plugins():
    return []


def test_eight_writers_on_the_same_incidents_lose_no_update(live_server, app, make_token):
    agent = make_token("agent@example.org", role="agent")
    numbers = []
    for n in range(3):
        status, body, _ = call("POST", live_server + INCIDENTS, agent,
                               {"title": f"shared {n}", "category": "network"})
        assert status == 201, body
        numbers.append(body["number"])
    for number in numbers:  # in progress: the response clock is met, resolution runs
        status, body, _ = call("POST", f"{live_server}{INCIDENTS}/{number}/transitions",
                               agent, {"name": "start"})
        assert status == 200, body
    version_before = {n: int(call("GET", f"{live_server}{INCIDENTS}/{n}", agent)[2].strip('"'))
                      for n in numbers}
    journal_before = {n: len(call("GET", f"{live_server}{INCIDENTS}/{n}/journal", agent)[1]
                             ["items"]) for n in numbers}

    outcomes: list[tuple[int, int, str, int, str | None]] = []  # round, writer, op, status, etag
    created: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS, timeout=60)

    def writer(w: int) -> None:
        try:
            for r in range(ROUNDS):
                number = numbers[r % 3]
                url = f"{live_server}{INCIDENTS}/{number}"
                _, record, etag = call("GET", url, agent)
                barrier.wait()  # everyone holds the same version before anyone writes
                if r % 2 == 0:
                    op = "title"
                    status, _, new = call("PATCH", url, agent, {"title": f"w{w} r{r}"}, etag)
                else:
                    op = "hold" if record["state"] == "in_progress" else "resume"
                    fields = ({"hold_kind": "customer", "hold_reason": f"w{w} r{r}"}
                              if op == "hold" else None)
                    status, _, new = call("POST", f"{url}/transitions", agent,
                                          {"name": op, "fields": fields} if fields
                                          else {"name": op}, etag)
                with lock:
                    outcomes.append((r, w, op, status, new))
                barrier.wait()  # the round is over before the next read
        except BaseException as exc:  # reported below
            failures.append(exc)
            barrier.abort()

    def creator(c: int) -> None:
        try:
            for i in range(4):
                status, body, _ = call("POST", live_server + INCIDENTS, agent,
                                       {"title": f"new {c}.{i}", "category": "network"})
                assert status == 201, body
                with lock:
                    created.append(body["number"])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    threads += [threading.Thread(target=creator, args=(c,)) for c in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []

    assert {status for *_, status, _ in outcomes} <= {200, 412}
    for r in range(ROUNDS):
        statuses = sorted(status for rr, _, _, status, _ in outcomes if rr == r)
        assert statuses == [200] + [412] * (WRITERS - 1), f"round {r}: {statuses}"

    for i, number in enumerate(numbers):
        won = [(r, w, op, etag) for r, w, op, status, etag in outcomes
               if status == 200 and r % 3 == i]
        status, record, etag = call("GET", f"{live_server}{INCIDENTS}/{number}", agent)
        # one version step per accepted write, each winner saw the next one
        first = version_before[number] + 1
        assert [e for *_, e in sorted(won)] == [f'"{v}"' for v in range(first, first + len(won))]
        assert etag == f'"{version_before[number] + len(won)}"'
        last_title = max((r, w) for r, w, op, _ in won if op == "title")
        assert record["title"] == f"w{last_title[1]} r{last_title[0]}"
        entries = call("GET", f"{live_server}{INCIDENTS}/{number}/journal", agent)[1]["items"]
        new_entries = entries[journal_before[number]:]
        assert len(new_entries) == len(won)
        assert [e["kind"] for e in new_entries] == [
            "updated" if op == "title" else "transitioned" for _, _, op, _ in sorted(won)]
        clocks = {c["metric"]: c for c in
                  call("GET", f"{live_server}{INCIDENTS}/{number}/sla", agent)[1]["items"]}
        expected = "paused" if record["state"] == "on_hold" else "running"
        assert clocks["resolution"]["state"] == expected
        assert clocks["response"]["state"] == "met"

    assert len(created) == 16 and len(set(created)) == 16
    all_numbers = sorted(numbers + created)
    assert all_numbers == [f"INC{n:07d}" for n in range(1, 20)]

    itsm = app.extensions["itsm"]
    with app.app_context():
        stats = sla.recompute(itsm)
    assert stats.records == 19 and stats.changed == 0  # the kept clocks equal a replay
