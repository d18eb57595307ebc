"""Request Tracker 5 under the same create / read / queue / search load, over REST2.

RT comes from Debian's packages on the benchmark's PostgreSQL (``bench/peers/rt_setup.sh``)
and runs its own standalone server on 127.0.0.1. RT's basic authentication runs bcrypt
on every request (about a quarter of a second of CPU), so the client logs in once and
sends the session cookie, which is how a browser uses RT too.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench import generate

PORT = int(os.environ.get("RT_PORT", "18100"))
SERVER = "/usr/share/request-tracker5/libexec/rt-server"
USER, PASSWORD = os.environ.get("RT_USER", "root"), os.environ.get("RT_PASSWORD", "password")
URL = f"http://127.0.0.1:{PORT}"


def available() -> bool:
    return Path(SERVER).exists()


def start() -> subprocess.Popen:
    log = open(Path(tempfile.gettempdir()) / "itsm-bench-rt-server.log", "w")  # noqa: SIM115
    # Two workers, as many as gunicorn gets for itsm.
    process = subprocess.Popen([SERVER, "--port", str(PORT), "--max-workers", "2"],
                               stdout=log, stderr=log)
    for _ in range(600):
        try:
            urllib.request.urlopen(URL + "/NoAuth/Login.html", timeout=5)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("Request Tracker did not start: see bench/peers/rt_setup.sh")


def login() -> str:
    """Sign in once; the session cookie as ``name=value``."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    data = urllib.parse.urlencode({"user": USER, "pass": PASSWORD}).encode()
    opener.open(URL + "/NoAuth/Login.html", data=data, timeout=30)
    cookie = next(c for c in jar if c.name.startswith("RT_SID"))
    return f"{cookie.name}={cookie.value}"


def rest(cookie: str, path: str) -> dict:
    request = urllib.request.Request(URL + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def run(settings, *, wrk=None) -> dict:
    """RT's figures for create, read, queue and search (median of the repetitions)."""
    from bench.run import CREATE_BODIES, log, median_of

    if not available():
        return {"skipped": "Request Tracker 5 is not installed (bench/peers/rt_setup.sh)"}
    process = start()
    workdir = Path(tempfile.mkdtemp(prefix="itsm-bench-rt-"))
    token = "Cookie: " + login()
    cookie = token[len("Cookie: "):]
    try:
        results: dict[str, dict] = {}
        # create first: RT's tickets of this run are what read, queue and search see
        bodies = workdir / "create.txt"
        bodies.write_text("".join(
            json.dumps({"Queue": "General", "Subject": b["title"], "Content": b["description"],
                        "Priority": generate.PRIORITY[b["impact"] - 1][b["urgency"] - 1]},
                       separators=(",", ":")) + "\n"
            for b in generate.create_bodies(CREATE_BODIES, seed=settings.seed)))
        results["create"] = _ops(settings, "rt_create", token, bodies, "create", log,
                                 median_of)
        total = rest(cookie, "/REST/2.0/tickets?query=" + urllib.parse.quote("id > 0")
                     + "&per_page=1")["total"]
        rng = random.Random(settings.seed)
        reads = workdir / "read.txt"
        reads.write_text("\n".join(f"/REST/2.0/ticket/{rng.randint(1, total)}"
                                   for _ in range(2000)) + "\n")
        results["read"] = _ops(settings, "get", token, reads, "read", log, median_of)
        queue = workdir / "queue.txt"
        ticket_sql = "Queue = 'General' AND (Status = 'new' OR Status = 'open')"
        queue.write_text(f"/REST/2.0/tickets?query={urllib.parse.quote(ticket_sql)}"
                         "&orderby=Priority&order=DESC&per_page=50\n")
        results["queue"] = _ops(settings, "get", token, queue, "queue", log, median_of)
        search = workdir / "search.txt"
        search.write_text("".join(
            "/REST/2.0/tickets?query=" + urllib.parse.quote(f"Subject LIKE '{q}'")
            + "&per_page=50\n" for q in generate.SEARCHES))
        results["search"] = _ops(settings, "get", token, search, "search", log, median_of)
        return {"tickets": total, "ops": results, "server": "rt-server (standalone)",
                "database": "PostgreSQL"}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _ops(settings, mode, token, items, name, log, median_of) -> dict:
    from bench.run import Server, wrk

    server = Server("rt", PORT, None, token=token)
    runs = []
    for i in range(settings.repeat):
        figures = wrk(server, mode, items, settings)
        runs.append(figures)
        log(f"{name} RT5 #{i + 1}: {figures['rps']:.1f} req/s, p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms" + (f", {figures['errors']} errors"
                                             if figures["errors"] else ""))
    return median_of(runs)
