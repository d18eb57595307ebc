"""A PATCH without If-Match sets its fields whatever the version; with If-Match it is checked.

An outside test had eight clients write different fields of one incident without
If-Match: 185 of 320 writes were answered 412 "stale", and a client without an ETag had no
way to make progress. Over HTTP against a threaded server: on SQLite, and on PostgreSQL
when ITSM_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import threading

import pytest
from live_http import call

INCIDENTS = "/api/v1/incidents"
# One field each: eight writers that never write the same field.
FIELDS = ("title", "description", "affected_service", "workaround", "resolution_notes",
          "hold_reason", "major", "impact")
WRITES = 40


def value(name: str, w: int, n: int):
    """Writer ``w``'s ``n``th value of its field: each differs from the one before."""
    if name == "major":
        return n % 2 == 0  # created False
    if name == "impact":
        return 2 if n % 2 == 0 else 3  # created 3
    return f"w{w} n{n}"


def postgres_url() -> str | None:
    url = os.environ.get("ITSM_TEST_POSTGRES_URL", "")
    return url if url.startswith(("postgresql", "postgres:")) else None


@pytest.fixture(params=["sqlite", "postgresql"])
def itsm_config(request, itsm_config):
    config = {**itsm_config, "plugins.initial": ["notify_log", "incident"]}
    if request.param == "postgresql":
        if postgres_url() is None:
            pytest.skip("needs a PostgreSQL server: set ITSM_TEST_POSTGRES_URL")
        config["database.url"] = postgres_url()
    return config


def run(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)


def test_eight_writers_without_if_match_on_different_fields_all_succeed(live_server,
                                                                        make_token):
    agent = make_token("agent@example.org", role="agent")
    status, created, etag = call("POST", live_server + INCIDENTS, agent,
                                 {"title": "shared", "major": False, "impact": 3})
    assert status == 201, created
    url = f"{live_server}{INCIDENTS}/{created['number']}"
    version_before = int(etag.strip('"'))
    journal_before = len(call("GET", f"{url}/journal", agent)[1]["items"])
    statuses: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(FIELDS), timeout=60)

    def writer(w: int) -> None:
        try:
            start.wait()
            for n in range(WRITES):
                status, body, _ = call("PATCH", url, agent, {FIELDS[w]: value(FIELDS[w], w, n)})
                with lock:
                    statuses.append(status)
                assert status == 200, body
        except BaseException as exc:  # reported below
            failures.append(exc)

    run([threading.Thread(target=writer, args=(w,)) for w in range(len(FIELDS))])

    assert statuses.count(412) == 0
    assert failures == [] and statuses == [200] * len(FIELDS) * WRITES
    status, record, etag = call("GET", url, agent)
    # Every writer's last value is there, and each write is one version and one entry.
    assert {name: record[name] for name in FIELDS} == {
        name: value(name, w, WRITES - 1) for w, name in enumerate(FIELDS)}
    assert etag == f'"{version_before + len(FIELDS) * WRITES}"'
    entries = call("GET", f"{url}/journal", agent)[1]["items"][journal_before:]
    assert [e["kind"] for e in entries] == ["updated"] * len(FIELDS) * WRITES
    for w, name in enumerate(FIELDS):  # each writer's values, in the order it sent them
        logged = [e["data"]["changes"][name][1] for e in entries
                  if name in e["data"]["changes"]]
        if set(logged) == {"(edited)"}:  # long texts are journaled without their words
            assert len(logged) == WRITES
        else:
            assert logged == [value(name, w, n) for n in range(WRITES)]


def test_with_a_stale_if_match_exactly_one_writer_wins_each_round(live_server, make_token):
    agent = make_token("agent@example.org", role="agent")
    status, created, _ = call("POST", live_server + INCIDENTS, agent, {"title": "shared"})
    url = f"{live_server}{INCIDENTS}/{created['number']}"
    rounds, writers = 5, 6
    outcomes: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers, timeout=60)

    def writer(w: int) -> None:
        try:
            for r in range(rounds):
                _, _, etag = call("GET", url, agent)
                barrier.wait()  # all hold the same version before anyone writes
                status, _, _ = call("PATCH", url, agent, {FIELDS[w]: f"w{w} r{r}"}, etag)
                with lock:
                    outcomes.append((r, status))
                barrier.wait()
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    run([threading.Thread(target=writer, args=(w,)) for w in range(writers)])

    assert failures == []
    for r in range(rounds):
        assert sorted(s for rr, s in outcomes if rr == r) == [200] + [412] * (writers - 1)
