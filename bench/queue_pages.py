"""The console's queue and record pages beside the API's page for the same query, one run.

A benchmark, not a test. It loads N incidents into PostgreSQL the way ``bench/run.py``
does (bulk import, then copies in SQL beyond 100,000), signs the bench agent in to the
console, and times at one connection, in one process, taking turns:

- ``queue_html``: ``GET /records/incidents?group=G&state=open&sort=sla_due&limit=50``
  (a group's open records, SLA due first: 50 rows, the total, the views);
- ``queue_api``: ``GET /api/v1/incidents`` with the same arguments (and its total);
- ``record_html`` and ``record_api``: one open incident's page and its API read;
- ``record_api_full``: what a client of the API asks for to show what the record page
  shows, timed together: the record's read and its journal
  (``GET /api/v1/incidents/<number>/journal``).

The requests go through the application's WSGI stack in process (no HTTP server), so
the figures are the service time of a page, and the HTML/API ratio is the cost of the
page over the API for the same work. Usage::

    python -m bench.queue_pages -n 1000000 --requests 300 --out bench/results/x.json
    python -m bench.queue_pages -n 1000000 --reuse   # the database a previous run loaded
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import generate
from bench.run import PG_DATABASE, PG_SERVER, Settings, machine, prepare, query

QUEUE_ARGS = "state=open&sort=sla_due&limit=50"
SERIES = ("queue_html", "queue_api", "record_html", "record_api", "record_api_full")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def figures(times: list[float]) -> dict:
    ms = [t * 1000 for t in times]
    return {"requests": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(percentile(ms, 0.95), 2), "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms), 2)}


def run(n: int, requests: int, reuse: bool, workdir: Path) -> dict:
    if reuse:
        env = {**os.environ, "ITSM_HOME": str(workdir / "home"),
               "ITSM_DATABASE_URL": f"{PG_SERVER}/{PG_DATABASE}", "ITSM_LOG_LEVEL": "WARNING"}
        loaded = {"reused": True}
    else:
        env, _tokens, loaded = prepare("postgresql", n, workdir, Settings())
    os.environ.update({k: env[k] for k in ("ITSM_HOME", "ITSM_DATABASE_URL",
                                           "ITSM_LOG_LEVEL")})
    from itsm.core.app import create_app

    app = create_app()
    itsm = app.extensions["itsm"]
    password = "bench queue pages"
    with app.app_context():
        from sqlalchemy import select

        from itsm.core import auth
        from itsm.core.models import User

        with itsm.Session() as session:
            user = session.scalar(select(User).where(User.email == generate.BENCH_AGENT))
            user.password_hash = auth.hash_password(password)
            session.commit()
        token = generate.tokens_for(itsm)["agent"]
    total = int(query(env, "SELECT count(*) FROM record WHERE type = 'incident'")[0][0])
    open_numbers = [row[0] for row in query(
        env, "SELECT number FROM record WHERE closed_at IS NULL ORDER BY random() LIMIT 500")]
    console = app.test_client()
    api = app.test_client()
    signed = console.get("/login")
    csrf = signed.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    answer = console.post("/login", data={"email": generate.BENCH_AGENT, "password": password,
                                          "csrf_token": csrf})
    if answer.status_code != 302:
        raise SystemExit(f"could not sign in to the console: {answer.status_code}")
    headers = {"Authorization": f"Bearer {token}"}
    groups = [generate.group_name(i) for i in range(generate.GROUPS)]
    rng = random.Random(42)
    times: dict[str, list[float]] = {k: [] for k in SERIES}
    totals = []

    def timed(name: str, client, path: str | tuple[str, ...], **kwargs) -> None:
        paths = (path,) if isinstance(path, str) else path
        started = time.perf_counter()
        for one in paths:  # several: the calls a client makes to show one page
            response = client.get(one, **kwargs)
            body = response.get_data()
            if response.status_code != 200:
                raise SystemExit(f"{one}: {response.status_code} {body[:300]!r}")
        times[name].append(time.perf_counter() - started)

    for i in range(requests + 20):  # the first 20 of each warm caches and are not kept
        group = groups[i % len(groups)]
        number = rng.choice(open_numbers)
        order = [("queue_html", console, f"/records/incidents?group={group}&{QUEUE_ARGS}", {}),
                 ("queue_api", api, f"/api/v1/incidents?group={group}&{QUEUE_ARGS}",
                  {"headers": headers}),
                 ("record_html", console, f"/records/incidents/{number}", {}),
                 ("record_api", api, f"/api/v1/incidents/{number}", {"headers": headers}),
                 ("record_api_full", api, (f"/api/v1/incidents/{number}",
                                           f"/api/v1/incidents/{number}/journal"),
                  {"headers": headers})]
        if i % 2:  # take turns, so the noise of a shared machine falls on both sides
            order = [order[1], order[0], order[4], order[3], order[2]]
        for name, client, path, kwargs in order:
            timed(name, client, path, **kwargs)
        if i == 0:
            page = api.get(f"/api/v1/incidents?group={group}&{QUEUE_ARGS}", headers=headers)
            totals.append(page.json["total"])
    for series in times.values():
        del series[:20]
    out = {name: figures(series) for name, series in times.items()}
    out["queue_ratio_p50"] = round(out["queue_html"]["p50_ms"] / out["queue_api"]["p50_ms"], 2)
    out["queue_ratio_p99"] = round(out["queue_html"]["p99_ms"] / out["queue_api"]["p99_ms"], 2)
    out["record_ratio_p50"] = round(out["record_html"]["p50_ms"] / out["record_api"]["p50_ms"],
                                    2)
    out["record_ratio_p99"] = round(out["record_html"]["p99_ms"] / out["record_api"]["p99_ms"],
                                    2)
    # The record page against everything an API client reads to show the same.
    for share in ("p50", "p99"):
        out[f"record_full_ratio_{share}"] = round(
            out["record_html"][f"{share}_ms"] / out["record_api_full"][f"{share}_ms"], 2)
    return {"machine": machine(), "n": n, "incidents": total, "load": loaded,
            "group_total_first": totals[0] if totals else None, "ops": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="incidents")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true",
                        help="use the database a previous run loaded")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    workdir = Path(os.environ.get("ITSM_BENCH_WORKDIR") or tempfile.mkdtemp(prefix="itsm-q-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = run(args.n, args.requests, args.reuse, workdir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    ops = result["ops"]
    print(f"\n{result['incidents']:,} incidents, one connection", file=sys.stderr)
    for name in SERIES:
        f = ops[name]
        print(f"{name:<15} p50 {f['p50_ms']:>7} ms  p95 {f['p95_ms']:>7} ms  "
              f"p99 {f['p99_ms']:>7} ms", file=sys.stderr)
    for page in ("queue", "record"):
        print(f"{page} HTML/API: p50 x{ops[f'{page}_ratio_p50']}, "
              f"p99 x{ops[f'{page}_ratio_p99']}", file=sys.stderr)
    print(f"record HTML/API with the journal: p50 x{ops['record_full_ratio_p50']}, "
          f"p99 x{ops['record_full_ratio_p99']}", file=sys.stderr)


if __name__ == "__main__":
    main()
