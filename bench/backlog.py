"""``python -m bench.backlog``: import history into a running itsm and time its pages.

The reported case: ``itsm records import`` of 20,000 past open incidents (every SLA
target long breached) while ``itsm serve`` runs with its own worker thread. Measured
here, on 127.0.0.1:

1. a page (``GET /api/v1/incidents?state=new,in_progress&limit=50``, one request at a
   time) before the import, during it, and while the server's worker runs its sweep and
   outbox cycles afterwards;
2. what the import set off: outbox events, deliveries, escalation steps and work notes
   (all must be 0), and that every clock shows its breach.

The install sends every incident notification to the log channel and names an
escalation contact, so anything the import set off would show as a delivery.

    python -m bench.backlog -n 20000                      # SQLite in a temporary folder
    python -m bench.backlog -n 20000 --database-url postgresql://postgres@127.0.0.1/x

The PostgreSQL database named is emptied first.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

PAGE = "/api/v1/incidents?state=new,in_progress&limit=50"
ITSM = str(Path(sys.executable).with_name("itsm"))  # the console script beside python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def itsm(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([ITSM, *args], env=env, text=True,
                          capture_output=True, check=False)
    if done.returncode:
        raise SystemExit(f"itsm {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def history(path: Path, n: int) -> None:
    """``n`` open incidents reported 30 to 60 days ago: every target long breached."""
    from itsm.core.demo import DEMO_USERS

    agent, requester = DEMO_USERS[0][0], DEMO_USERS[2][0]  # Service Desk; DOT
    now = datetime.now(UTC)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            created = now - timedelta(days=30, minutes=i * 2)
            out.write(json.dumps({
                "title": f"Printer on floor {i % 40} jams", "category": "hardware",
                "impact": 1 + i % 3, "urgency": 1 + (i // 3) % 3,
                "requester": requester, "group": "Service Desk",
                "state": ("new", "in_progress")[i % 2], "assignee": agent,
                "created_at": created.isoformat(), "updated_at": created.isoformat()}) + "\n")


class Sampler(threading.Thread):
    """GETs the page one request after another and keeps each latency by phase."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.phase = "before"
        self.times: dict[str, list[float]] = {}
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        request = urllib.request.Request(self.url + PAGE,
                                         headers={"Authorization": f"Bearer {self.token}"})
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
            except OSError:
                self.errors += 1
                continue
            self.times.setdefault(self.phase, []).append(time.perf_counter() - started)
            time.sleep(0.02)


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"count": len(values)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"count": len(values), "p50_ms": round(cuts[49] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def figures(env: dict[str, str], after_id: int = 0) -> dict[str, int]:
    """What the records after ``after_id`` (the imported ones) have set off."""
    code = (
        "import json, sys\n"
        "from sqlalchemy import func, select\n"
        "from itsm.core.app import create_app\n"
        "from itsm.core.models import Delivery, Event, JournalEntry, Record\n"
        "from itsm.core.sla_models import SlaClock\n"
        "from itsm.plugins.incident.models import Escalation\n"
        "app = create_app()\n"
        "itsm = app.extensions['itsm']\n"
        "first = int(sys.argv[1])\n"
        "def n(model, *where):\n"
        "    with itsm.Session() as s:\n"
        "        return s.scalar(select(func.count()).select_from(model).where(*where))\n"
        "with itsm.Session() as s:\n"
        "    last = s.scalar(select(func.max(Record.id))) or 0\n"
        "print(json.dumps({'last_id': last, 'records': n(Record, Record.id > first),\n"
        "    'events': n(Event, Event.record_id > first),\n"
        "    'deliveries': n(Delivery, Delivery.event_id.in_(select(Event.id).where(\n"
        "        Event.record_id > first))),\n"
        "    'escalations': n(Escalation, Escalation.record_id > first),\n"
        "    'escalation_notes': n(JournalEntry, JournalEntry.record_id > first,\n"
        "                          JournalEntry.body.like('Escalated%')),\n"
        "    'clocks_breached': n(SlaClock, SlaClock.record_id > first,\n"
        "                         SlaClock.breached.is_(True)),\n"
        "    'clocks_running': n(SlaClock, SlaClock.record_id > first,\n"
        "                        SlaClock.state == 'running'),\n"
        "    'due_unannounced': n(SlaClock, SlaClock.record_id > first,\n"
        "                         SlaClock.breach_sent.is_(False),\n"
        "                         SlaClock.breach_due_at.is_not(None))}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(after_id)], env=env, text=True,
                          capture_output=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--records", type=int, default=20_000)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--after", type=float, default=30.0,
                        help="seconds of worker cycles measured after the import")
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="itsm-backlog-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ITSM_")},
           "ITSM_HOME": str(home)}
    if args.database_url:
        env["ITSM_DATABASE_URL"] = args.database_url
        from sqlalchemy import text

        from itsm.core.database import make_engine
        engine = make_engine(args.database_url)
        with engine.begin() as connection:  # an empty database: drop what a run left
            if engine.dialect.name == "postgresql":
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    itsm(env, "init", "--admin-email", "admin@demo.invalid", "--admin-password",
         "a long secret for the bench")
    with (home / "itsm.toml").open("a", encoding="utf-8") as config:
        config.write('\n[plugins.incident]\nnotify_channels = ["log"]\n'
                     'escalation_contacts = ["duty.manager@demo.invalid"]\n')
    itsm(env, "demo")
    token = itsm(env, "users", "token", "admin@demo.invalid").strip()
    data = home / "history.jsonl"
    history(data, args.records)

    port = free_port()
    server = subprocess.Popen([ITSM, "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        before = figures(env)
        sampler = Sampler(url, token)
        sampler.start()
        time.sleep(10)
        sampler.phase = "import"
        started = time.perf_counter()
        out = itsm(env, "records", "import", str(data), "--type", "incident",
                   "--batch", "2000")
        imported = time.perf_counter() - started
        sampler.phase = "after"
        time.sleep(args.after)  # the server's worker runs its cycles meanwhile
        sampler.stop.set()
        sampler.join()
        after = figures(env, before["last_id"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "records": args.records, "database": args.database_url or "sqlite",
        "import_seconds": round(imported, 1), "import_output": out.strip(),
        "set_off": {k: after[k] for k in
                    ("events", "deliveries", "escalations", "escalation_notes")},
        "clocks": {k: after[k] for k in ("records", "clocks_breached", "clocks_running",
                                         "due_unannounced")},
        "page": {phase: percentiles(values) for phase, values in sampler.times.items()},
        "page_errors": sampler.errors,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
