"""The cmdb at size (not a test): N configuration items imported from CSV, about 3×N
relations, then the impact of random CIs, on PostgreSQL.

    python -m bench.cmdb_graph --url postgresql://postgres@127.0.0.1:5432/itsm_bench_cmdb \
        -n 100000 --relations 300000 --samples 500 --out bench/results/cmdb.json

Targets (issue 27): impact of a CI p99 under 50 ms; CSV import at 5,000 CIs/s or more;
the console page of a change on a CI, with its computed impact, p99 under 100 ms at one
connection (a change on the CI that reaches the most, and one on an application).
The database named in ``--url`` is emptied first. The graph is layered as a data centre
is: network devices, servers (some hosted by others), databases on servers, applications
on servers that depend on databases and on other applications, business services made
of applications; a few cross links close cycles.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time

from sqlalchemy import insert, select

SHARES = (("business_service", 0.01), ("application", 0.20), ("database", 0.10),
          ("network_device", 0.09), ("server", 0.60))


def make_csv(n: int, rng: random.Random) -> tuple[str, dict[str, list[str]]]:
    """The CSV of ``n`` CIs and their keys by type."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", "type", "name", "location", "used_by", "os", "cpu_count",
                     "engine", "version", "role"])
    keys: dict[str, list[str]] = {t: [] for t, _ in SHARES}
    made = 0
    for type_key, share in SHARES:
        count = n - made if type_key == SHARES[-1][0] else int(n * share)
        for i in range(count):
            key = f"{type_key[:3]}-{i}"
            keys[type_key].append(key)
            row = [key, type_key, f"{type_key.replace('_', '-')}-{i:06d}",
                   f"DC{rng.randint(1, 4)}", "", "", "", "", "", ""]
            if type_key == "business_service":
                row[4] = rng.choice(("BENCH1", "BENCH2", "BENCH1,BENCH2"))
            elif type_key == "server":
                row[5], row[6] = "Debian 12", str(rng.choice((2, 4, 8, 16)))
            elif type_key == "database":
                row[7], row[8] = "postgresql", "16"
            elif type_key == "application":
                row[8] = f"{rng.randint(1, 9)}.{rng.randint(0, 20)}"
            elif type_key == "network_device":
                row[9] = rng.choice(("switch", "router", "firewall"))
            writer.writerow(row)
        made += count
    return out.getvalue(), keys


def make_relations(ids: dict[str, list[int]], total: int, rng: random.Random) -> list[tuple]:
    """``(source, kind, target)`` id triples, layered, about ``total`` of them."""
    net, srv = ids["network_device"], ids["server"]
    dbs, apps, svcs = ids["database"], ids["application"], ids["business_service"]
    core = net[: max(1, len(net) // 50)]
    out: set[tuple[int, str, int]] = set()
    for device in net[len(core):]:
        out.add((device, "connected_to", rng.choice(core)))
    hosts = srv[: len(srv) // 5]
    for server in srv:
        out.add((server, "connected_to", rng.choice(net)))
        if server not in hosts[:1] and rng.random() < 0.8:
            out.add((server, "hosted_by", rng.choice(hosts)))
    for db in dbs:
        out.add((db, "runs_on", rng.choice(srv)))
    for app in apps:
        out.add((app, "runs_on", rng.choice(srv)))
        out.add((app, "runs_on", rng.choice(srv)))
        out.add((app, "depends_on", rng.choice(dbs)))
        out.add((app, "part_of", rng.choice(svcs)))
    # Applications calling each other inside their own estate (25 applications, as one
    # department's), cycles included: a real graph is clustered, not one random web.
    while len(out) < total:
        i = rng.randrange(len(apps))
        j = (i // 25) * 25 + rng.randrange(25)
        if j < len(apps) and i != j:
            out.add((apps[i], "depends_on", apps[j]))
    return sorted(out)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def change_pages(home: str, url: str, cis: dict[str, int], requests: int) -> dict:
    """A change on each CI of ``cis`` (the same window, so each page also checks the
    other for conflicts), then its console page, signed in, at one connection, taking
    turns: p50 and p99 of each, and the services and agencies the page shows."""
    from datetime import timedelta

    from itsm.core import auth
    from itsm.core.app import create_app
    from itsm.core.models import utcnow

    app = create_app({"home": home, "database.url": url, "secret_key": "bench"})
    itsm = app.extensions["itsm"]
    email, password = "bench.change@example.org", "bench change pages 27"
    with app.app_context(), itsm.Session() as session:
        user = auth.create_user(session, email, role="agent", password=password,
                                roles=auth.known_roles(list(itsm.permissions.values())))
        _, secret = auth.create_token(session, user, name="bench")
        session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    start = utcnow() + timedelta(days=3)
    numbers = {}
    for name, ci_id in cis.items():
        made = client.post("/api/v1/changes", headers=headers, json={
            "title": f"Patch the {name} CI", "config_items": [str(ci_id)],
            "reason": "Security fixes.", "implementation_plan": "Patch and reboot.",
            "backout_plan": "Restore the snapshot.", "test_plan": "Log in.",
            "planned_start": start.isoformat(),
            "planned_end": (start + timedelta(hours=2)).isoformat()})
        if made.status_code != 201:
            raise SystemExit(f"could not make a change: {made.status_code} {made.json}")
        numbers[name] = made.json["number"]
    login = client.get("/login").get_data(as_text=True)
    csrf = login.split('name="csrf_token" value="')[1].split('"')[0]
    if client.post("/login", data={"email": email, "password": password,
                                   "csrf_token": csrf}).status_code != 302:
        raise SystemExit("could not sign in to the console")
    times: dict[str, list[float]] = {name: [] for name in numbers}
    for i in range(requests + 10):  # the first 10 of each warm caches and are not kept
        order = list(numbers.items())
        for name, number in (order if i % 2 else order[::-1]):
            started = time.perf_counter()
            page = client.get(f"/changes/{number}")
            body = page.get_data()
            times[name].append((time.perf_counter() - started) * 1000)
            if page.status_code != 200:
                raise SystemExit(f"/changes/{number}: {page.status_code} {body[:300]!r}")
    out = {}
    for name, number in numbers.items():
        values = times[name][10:]
        impact = client.get(f"/api/v1/changes/{number}/overview",
                            headers=headers).json["impact"]
        out[name] = {"ci": cis[name], "requests": len(values),
                     "p50": round(statistics.median(values), 2),
                     "p99": round(percentile(values, 99), 2), "max": round(max(values), 2),
                     "services": len(impact["services"]),
                     "agencies": len(impact["agencies"])}
        print(f"change page, {name} CI #{cis[name]} ({out[name]['services']} services, "
              f"{out[name]['agencies']} agencies): p50 {out[name]['p50']} ms, "
              f"p99 {out[name]['p99']} ms, max {out[name]['max']} ms")
    itsm.engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get(
        "ITSM_BENCH_CMDB_URL", "postgresql://postgres@127.0.0.1:5432/itsm_bench_cmdb"))
    parser.add_argument("-n", type=int, default=100_000, help="configuration items")
    parser.add_argument("--relations", type=int, default=None, help="[default: 3 × n]")
    parser.add_argument("--samples", type=int, default=500, help="impact analyses timed")
    parser.add_argument("--page-requests", type=int, default=200,
                        help="change page requests timed per change")
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    total = args.relations or 3 * args.n
    rng = random.Random(args.seed)

    from itsm.core import plugin_admin
    from itsm.core.app import create_app
    from itsm.core.auth import Actor
    from itsm.core.demo import ensure_agency
    from itsm.core.install import initialise
    from itsm.plugins.cmdb import graph, importer
    from itsm.plugins.cmdb import service as cmdb
    from itsm.plugins.cmdb.models import RELATION_KINDS, ConfigItem, Relation
    from itsm.testing import empty_database

    home = tempfile.mkdtemp(prefix="itsm-bench-cmdb-")
    empty_database(args.url)
    app = create_app({"home": home, "database.url": args.url, "secret_key": "bench",
                      "plugins.initial": ["notify_log"]})
    itsm = app.extensions["itsm"]
    figures: dict[str, object] = {"n": args.n, "relations": total, "url_driver":
                                  args.url.split(":")[0]}
    with app.app_context():
        initialise(itsm)
        plugin_admin.enable(itsm, "cmdb")
        plugin_admin.enable(itsm, "change")
        with itsm.Session() as session:
            for code in ("BENCH1", "BENCH2"):
                ensure_agency(session, code, f"Bench agency {code[-1]}")
            session.commit()

        text, _keys = make_csv(args.n, rng)
        # Wall time is what a person waits; the CPU time of this process tells a busy
        # machine from a slow import (the database server's own time is not in it).
        figures["load_average_before"] = os.getloadavg()[0]
        cpu = time.process_time()
        started = time.perf_counter()
        rows, _ = importer.read_csv(text)
        with itsm.unit_of_work(Actor.system()) as service:
            report = importer.reconcile(service, rows, "bench")
        seconds = time.perf_counter() - started
        figures["import_seconds"] = round(seconds, 2)
        figures["import_rate"] = round(args.n / seconds)
        figures["import_report"] = report.to_dict()
        figures["import_cpu_seconds"] = round(time.process_time() - cpu, 2)
        print(f"CSV import: {args.n} CIs in {seconds:.1f} s = {args.n / seconds:,.0f} CIs/s "
              f"({report.created} created, {report.failed} failed; "
              f"{figures['import_cpu_seconds']} s CPU in this process, load average "
              f"{figures['load_average_before']:.1f})")

        started = time.perf_counter()
        rows2, _ = importer.read_csv(text)
        with itsm.unit_of_work(Actor.system()) as service:
            again = importer.reconcile(service, rows2, "bench", dry_run=True)
        seconds = time.perf_counter() - started
        figures["reimport_unchanged_rate"] = round(args.n / seconds)
        print(f"re-import (dry run, all unchanged: {again.unchanged}): "
              f"{args.n / seconds:,.0f} CIs/s")

        with itsm.Session() as session:
            ids: dict[str, list[int]] = {t: [] for t, _ in SHARES}
            for ci_id, type_key in session.execute(select(ConfigItem.id, ConfigItem.type_key)):
                ids[type_key].append(ci_id)
            triples = make_relations(ids, total, rng)
            started = time.perf_counter()
            rows = []
            for source, kind, target in triples:
                dependent, provider = (source, target) \
                    if RELATION_KINDS[kind].dependent == "source" else (target, source)
                rows.append({"kind": kind, "source_id": source, "target_id": target,
                             "dependent_id": dependent, "provider_id": provider})
            for start in range(0, len(rows), 20_000):
                session.execute(insert(Relation), rows[start:start + 20_000])
            session.commit()
            # VACUUM as autovacuum soon would after a load: it sets the visibility map the
            # walk's index-only scans rely on (without it each index entry costs a heap
            # read). VACUUM cannot run in a transaction, hence autocommit.
            with itsm.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as maintenance:
                maintenance.exec_driver_sql("VACUUM ANALYZE")
            figures["relations_loaded"] = len(rows)
            print(f"relations: {len(rows)} loaded in {time.perf_counter() - started:.1f} s")
            # Time the analyses in the state a serving process is in: the load's own
            # data (the CSV, 300,000 relation rows, the reports) freed, and what lives as
            # long as the process frozen as itsm's start-up does. Otherwise every full
            # collection during the timings walks the benchmark's million objects, a
            # pause no server has.
            del text, rows, rows2, triples, report, again
            gc.collect()
            gc.freeze()

            # The floor: one round trip to the database, on this machine, now.
            floor = []
            for _ in range(200):
                started = time.perf_counter()
                session.connection().exec_driver_sql("SELECT 1").all()
                floor.append((time.perf_counter() - started) * 1000)
            figures["select_1_ms"] = {"p50": round(statistics.median(floor), 2),
                                      "p99": round(percentile(floor, 99), 2)}
            print(f"floor, SELECT 1 round trip: p50 {figures['select_1_ms']['p50']} ms, "
                  f"p99 {figures['select_1_ms']['p99']} ms")
            services = cmdb.service_type_keys(session)
            timings: dict[str, list[float]] = {}
            reached: dict[str, list[int]] = {}
            widest: list[tuple[int, int]] = []
            pool = [(t, i) for t, group in ids.items() for i in group]
            for _ in range(args.samples):
                type_key, ci_id = rng.choice(pool)
                started = time.perf_counter()
                result = graph.analyse(session, [ci_id], "impact", services)
                elapsed = (time.perf_counter() - started) * 1000
                timings.setdefault(type_key, []).append(elapsed)
                timings.setdefault("all", []).append(elapsed)
                reached.setdefault(type_key, []).append(len(result.walk.parent) - 1)
                widest.append((len(result.walk.parent), ci_id))
            table = {}
            print(f"impact of a CI, {args.samples} random CIs (ms):")
            for key in ["all", *sorted(k for k in timings if k != "all")]:
                values = timings[key]
                row = {"count": len(values), "p50": round(statistics.median(values), 2),
                       "p99": round(percentile(values, 99), 2),
                       "max": round(max(values), 2)}
                if key != "all":
                    row["reached_median"] = int(statistics.median(reached[key]))
                    row["reached_max"] = max(reached[key])
                table[key] = row
                print(f"  {key:18} n={row['count']:4} p50={row['p50']:8.2f} "
                      f"p99={row['p99']:8.2f} max={row['max']:8.2f}"
                      + (f"  reached median {row['reached_median']}, max "
                         f"{row['reached_max']}" if key != "all" else ""))
            figures["impact_ms"] = table
            hub = max(widest, key=lambda pair: pair[0])[1]  # the CI sampled that reaches most
            typical = ids["application"][len(ids["application"]) // 2]
    itsm.engine.dispose()
    figures["change_page_ms"] = change_pages(home, args.url, {"hub": hub, "typical": typical},
                                             args.page_requests)
    figures["load_average_after"] = os.getloadavg()[0]
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
