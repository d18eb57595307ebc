"""Run the benchmark: load N incidents, serve itsm and the bare app with gunicorn, drive
them with wrk, measure what lies outside HTTP, print a table and write JSON.

Both servers run side by side on the same database and each operation is measured on
itsm then on the bare app, repetition after repetition, so that the noise of a shared
machine falls on both sides of the ratio alike.
"""

from __future__ import annotations

import compileall
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import itsm
from bench import generate

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua" / "load.lua"
DATA = Path(os.environ.get("ITSM_BENCH_DATA", Path(tempfile.gettempdir()) / "itsm_bench_data"))
PG_SERVER = os.environ.get("ITSM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = os.environ.get("ITSM_BENCH_PG_DB", "itsm_bench")
OPEN = "new,in_progress,on_hold"
ITSM_OPS = ("read", "queue", "queue_next", "search", "create", "create_suggest", "transition")
BARE_OPS = ("read", "queue", "queue_next", "create")
CREATE_BODIES = 2_000  # distinct create bodies, in turn (bench.generate.create_bodies)


@dataclass
class Settings:
    duration: int = 10
    repeat: int = 3
    concurrency: int = 8
    workers: int = 2
    seed: int = 42
    ops: tuple[str, ...] = ITSM_OPS
    import_max: int = 100_000  # beyond: import this many, replicate the rest in SQL
    import_jobs: int = 2  # `itsm records import --jobs`: processes validating batches


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    token: str = "-"
    lists: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def itsm_cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from itsm.cli import main; main()", *args]


def cpu_reference_s() -> float:
    """Seconds one core takes for a fixed Python loop (best of three): machines of the
    same name differ by twice or more, so runs on two machines compare only through it."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def machine() -> dict:
    return {"cores": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "cpu_reference_s": cpu_reference_s()}


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the database and the data ---------------------------------------------------------------


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(["psql", f"{PG_SERVER}/{database}", "-v", "ON_ERROR_STOP=1", "-qAtc",
                           sql], check=True, capture_output=True, text=True).stdout


def fresh_database(db: str, workdir: Path) -> str:
    if db == "sqlite":
        return f"sqlite:///{workdir / 'itsm.db'}"
    psql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {PG_DATABASE}")
    return f"{PG_SERVER}/{PG_DATABASE}"


def incidents_file(n: int, seed: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"incidents-{n}-{seed}.jsonl"
    if not path.exists():
        log(f"generating {n} incidents -> {path}")
        generate.write_incidents(path.with_suffix(".tmp"), n, seed=seed)
        path.with_suffix(".tmp").rename(path)
    return path


def sample_file(n: int, size: int, seed: int) -> Path:
    """Every (n / size)-th incident of the N file: the same mix of states and ages."""
    path = DATA / f"incidents-{n}-{seed}.sample-{size}.jsonl"
    if not path.exists():
        step = n // size
        with incidents_file(n, seed).open(encoding="utf-8") as source, \
                path.with_suffix(".tmp").open("w", encoding="utf-8") as out:
            for i, line in enumerate(source):
                if i % step == 0:
                    out.write(line)
        path.with_suffix(".tmp").rename(path)
    return path


def replicate(env: dict, copies: int) -> dict:
    """Multiply the imported incidents in SQL (PostgreSQL): each copy gets new ids and
    numbers, its own journal entries and SLA clocks. Used for N beyond what the bulk
    import loads in a practical time on a small machine; the import rate is measured on
    the imported part."""
    from itsm.core.models import JournalEntry, Record
    from itsm.core.sla_models import SlaClock
    from itsm.plugins.incident.models import Incident

    started = time.perf_counter()
    max_id = int(query(env, "SELECT max(id) FROM record")[0][0])
    max_number = int(query(env, "SELECT last_value FROM number_sequence "
                                "WHERE prefix = 'INC'")[0][0])
    tables = [
        (Record.__table__, "id", "id <= {max}"),
        (Incident.__table__, "id", "id <= {max}"),
        (JournalEntry.__table__, "record_id", "record_id <= {max}"),
        (SlaClock.__table__, "record_id", "record_id <= {max}"),
    ]
    for k in range(1, copies):
        offset, numbers = max_id * k, max_number * k
        for table, key, where in tables:
            columns = [c.name for c in table.columns if not (c.name == "id" and key != "id")]
            chosen = []
            for name in columns:
                if name == key:
                    chosen.append(f"{name} + {offset}")
                elif table.name == "record" and name == "number":
                    chosen.append(f"'INC' || lpad((substr(number, 4)::int + {numbers})::text,"
                                  " 7, '0')")
                else:
                    chosen.append(f'"{name}"')
            listed = ", ".join(f'"{c}"' for c in columns)
            psql(f"INSERT INTO {table.name} ({listed}) SELECT {', '.join(chosen)} "
                 f"FROM {table.name} WHERE {where.format(max=max_id)}", PG_DATABASE)
        log(f"copy {k + 1} of {copies} written")
    psql(f"SELECT setval(pg_get_serial_sequence('record', 'id'), {max_id * copies}); "
         f"UPDATE number_sequence SET last_value = {max_number * copies} "
         "WHERE prefix = 'INC'", PG_DATABASE)
    return {"copies": copies, "seconds": round(time.perf_counter() - started, 1)}


def prepare(db: str, n: int, workdir: Path, settings: Settings) -> tuple[dict, dict, dict]:
    """A fresh install with N incidents; returns (environment, tokens, import figures)."""
    url = fresh_database(db, workdir)
    env = {**os.environ, "ITSM_HOME": str(workdir / "home"), "ITSM_DATABASE_URL": url,
           "ITSM_LOG_LEVEL": "WARNING"}
    subprocess.run(itsm_cli("init"), env=env, check=True, capture_output=True)
    tokens = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from bench.generate import setup_people; "
         "from itsm.core.app import create_app; app = create_app(); ctx = app.app_context(); "
         "ctx.push(); print(json.dumps(setup_people(app.extensions['itsm'])))"],
        env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    imported = n if n <= settings.import_max or db != "postgresql" else settings.import_max
    data = incidents_file(n, settings.seed) if imported == n \
        else sample_file(n, imported, settings.seed)
    log(f"{db}: importing {imported} incidents")
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(itsm_cli("records", "import", str(data), "--type", "incident",
                                   "--batch", "2000", "--jobs", str(settings.import_jobs)),
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode:
        raise SystemExit(f"import failed: {done.stderr.strip().splitlines()[-1]}")
    line = done.stdout.strip().splitlines()[-1]
    log(line)
    rate = float(re.search(r"\(([\d.]+) records/s\)", line).group(1))
    # CPU seconds of the import process: on a shared machine, records per CPU second
    # says what the import costs whatever else runs meanwhile (the database's own work
    # is not in it).
    figures = {"records": imported, "records_per_s": rate, "wall_s": round(seconds, 2),
               "cpu_s": round(cpu, 1), "records_per_cpu_s": round(imported / cpu) if cpu else None,
               "message": line}
    if imported < n:
        figures["replicated"] = replicate(env, n // imported)
    if db == "postgresql":
        psql("VACUUM ANALYZE", PG_DATABASE)
    return env, tokens, figures


def query(env: dict, sql: str) -> list[tuple]:
    """Read-only SQL on the benchmark database (for lists of numbers and counts)."""
    from sqlalchemy import text

    from itsm.core.database import make_engine

    engine = make_engine(env["ITSM_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


# -- outside HTTP ----------------------------------------------------------------------------

SWEEP = """
import json, time
from itsm.core.app import create_app
from itsm.core import sla
app = create_app()
with app.app_context():
    itsm = app.extensions["itsm"]
    out = []
    for _ in range(2):
        t = time.perf_counter(); stats = sla.sweep(itsm)
        out.append({"seconds": round(time.perf_counter() - t, 3), "warned": stats.warned,
                    "breached": stats.breached})
print(json.dumps(out))
"""

# create_app, then the first request: the routes are registered on first use, so the
# time to a first answer is the figure a person restarting the service waits for.
COLD = ("import time; t = time.perf_counter(); from itsm.core.app import create_app; "
        "app = create_app(); n = len(app.extensions['itsm'].host.plugins); "
        "made = time.perf_counter() - t; status = app.test_client().get('/api/v1/').status_code; "
        "print(made, n, time.perf_counter() - t, status)")


def outside_http(env: dict, settings: Settings) -> dict:
    open_records = query(env, "SELECT count(*) FROM record WHERE type = 'incident' AND "
                              "state IN ('new', 'in_progress', 'on_hold')")[0][0]
    done = subprocess.run([sys.executable, "-c", SWEEP], env=env, capture_output=True,
                          text=True, check=True)
    first, steady = json.loads(done.stdout.strip().splitlines()[-1])
    # As pip does when it installs itsm: a checkout run with PYTHONDONTWRITEBYTECODE set
    # would otherwise compile every module again on every start.
    compileall.compile_dir(Path(itsm.__file__).parent, quiet=1)
    cold = []
    for _ in range(settings.repeat):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        if out[3] != "200":
            raise SystemExit(f"cold start: the first request answered {out[3]}")
        cold.append({"process_s": round(time.perf_counter() - started, 3),
                     "create_app_s": round(float(out[0]), 3), "plugins": int(out[1]),
                     "first_answer_s": round(float(out[2]), 3)})
    return {"open_records": open_records, "sweep_first": first, "sweep_steady": steady,
            "cold_start": cold,
            "cold_start_median_s": statistics.median(c["process_s"] for c in cold),
            "create_app_median_s": statistics.median(c["create_app_s"] for c in cold),
            "first_answer_median_s": statistics.median(c["first_answer_s"] for c in cold)}


# -- servers and load ------------------------------------------------------------------------


def start_server(name: str, app: str, env: dict, port: int, settings: Settings) -> Server:
    errors = open(Path(env["ITSM_HOME"]) / f"gunicorn-{name}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(settings.workers), "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "120", app],
        env=env, stdout=subprocess.DEVNULL, stderr=errors)
    probe = "/api/v1/" if name == "itsm" else "/health"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2)
            return Server(name, port, process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not start on port {port}")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


def worker_rss_mb(server: Server) -> list[float]:
    out = subprocess.run(["ps", "-o", "pid=,rss=", "--ppid", str(server.process.pid)],
                         capture_output=True, text=True).stdout
    return sorted(round(int(line.split()[1]) / 1024, 1) for line in out.strip().splitlines())


def get_json(server: Server, path: str) -> dict:
    request = urllib.request.Request(server.url + path)
    if server.token != "-":
        request.add_header("Authorization", f"Bearer {server.token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def write_list(server: Server, name: str, lines: list[str], workdir: Path) -> Path:
    path = workdir / f"{server.name}-{name}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    server.lists[name] = path
    return path


def queue_path(group: int) -> str:
    name = urllib.parse.quote(generate.group_name(group))
    return f"/api/v1/incidents?group={name}&state={OPEN}&sort=priority&limit=50"


def build_lists(server: Server, env: dict, workdir: Path, settings: Settings) -> None:
    rng = random.Random(settings.seed)
    numbers = [r[0] for r in query(env, "SELECT number FROM record WHERE type = 'incident' "
                                        "ORDER BY id")]
    sample = rng.sample(numbers, min(2000, len(numbers)))
    write_list(server, "read", [f"/api/v1/incidents/{n}" for n in sample], workdir)
    firsts = [queue_path(g) for g in range(generate.GROUPS)]
    write_list(server, "queue", firsts, workdir)
    nexts = []
    for path in firsts:
        cursor = get_json(server, path).get("next")
        if cursor:
            nexts.append(f"{path}&cursor={urllib.parse.quote(cursor)}")
    write_list(server, "queue_next", nexts or firsts, workdir)
    write_list(server, "search", [f"/api/v1/incidents?q={urllib.parse.quote(q)}&limit=50"
                                  for q in generate.SEARCHES], workdir)
    bodies = [json.dumps(b, separators=(",", ":"))
              for b in generate.create_bodies(CREATE_BODIES, seed=settings.seed)]
    write_list(server, "create", bodies, workdir)
    write_list(server, "create_suggest", bodies, workdir)


def wrk(server: Server, mode: str, items: Path | None, settings: Settings) -> dict:
    command = ["wrk", "-t1", f"-c{settings.concurrency}", f"-d{settings.duration}s",
               "--latency", "--timeout", "10s", "-s", str(LUA), server.url, "--",
               mode if mode in ("create", "create_suggest", "rt_create", "transition") else "get",
               server.token, str(items) if items else "-"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


def transition_lists(server: Server, env: dict, workdir: Path, settings: Settings) \
        -> list[Path]:
    """Fresh records for each repetition: a transition with If-Match "1" works once."""
    numbers = [r[0] for r in query(env, "SELECT number FROM record WHERE type = 'incident' "
                                        "AND state = 'new' AND version = 1 ORDER BY id DESC")]
    size = len(numbers) // settings.repeat
    return [write_list(server, f"transition-{i}", numbers[i * size:(i + 1) * size], workdir)
            for i in range(settings.repeat)]


def median_of(runs: list[dict]) -> dict:
    out = {key: round(statistics.median(r[key] for r in runs), 2)
           for key in ("rps", "p50_ms", "p99_ms")}
    out["errors"] = sum(r["errors"] for r in runs)
    out["runs"] = runs
    return out


def http_load(env: dict, tokens: dict, workdir: Path, settings: Settings) -> tuple[dict, dict]:
    itsm = start_server("itsm", "itsm.core.app:create_app()", env, 18080, settings)
    bare = start_server("bare", "bench.bare_app:create_app()", env, 18090, settings)
    itsm.token = tokens["agent"]
    try:
        for server in (itsm, bare):
            build_lists(server, env, workdir, settings)
        results: dict[str, dict] = {}
        for op in settings.ops:
            if op == "transition":
                continue
            runs: dict[str, list[dict]] = {"itsm": [], "bare": []}
            for i in range(settings.repeat):
                for server in (itsm, bare):
                    if server.name == "bare" and op not in BARE_OPS:
                        continue
                    figures = wrk(server, op, server.lists.get(op), settings)
                    runs[server.name].append(figures)
                    log(f"{op} {server.name} #{i + 1}: {figures['rps']:.0f} req/s, p50 "
                        f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
                        + (f", {figures['errors']} errors" if figures["errors"] else ""))
            results[op] = {name: median_of(r) for name, r in runs.items() if r}
        if "transition" in settings.ops:
            runs_t = []
            for i, path in enumerate(transition_lists(itsm, env, workdir, settings)):
                figures = wrk(itsm, "transition", path, settings)
                runs_t.append(figures)
                log(f"transition itsm #{i + 1}: {figures['rps']:.0f} req/s, p99 "
                    f"{figures['p99_ms']} ms, {figures['errors']} errors "
                    f"({path.read_text().count(chr(10))} records available)")
            results["transition"] = {"itsm": median_of(runs_t)}
        # Latency without queueing: one connection, so p99 is the service time of a page
        # and not the wait behind seven other requests on two workers.
        single = Settings(**{**settings.__dict__, "concurrency": 1,
                             "duration": max(5, settings.duration // 2)})
        for op in ("queue", "queue_next", "search"):
            if op not in settings.ops:
                continue
            runs = {"itsm": [], "bare": []}
            for i in range(settings.repeat):
                for server in (itsm, bare):
                    if server.name == "bare" and op not in BARE_OPS:
                        continue
                    figures = wrk(server, op, server.lists.get(op), single)
                    runs[server.name].append(figures)
                    log(f"{op} {server.name} 1 connection #{i + 1}: p50 {figures['p50_ms']} "
                        f"ms, p99 {figures['p99_ms']} ms")
            results[f"{op}@1"] = {name: median_of(r) for name, r in runs.items() if r}
        rss = {"itsm": worker_rss_mb(itsm), "bare": worker_rss_mb(bare)}
    finally:
        stop_server(itsm)
        stop_server(bare)
    return results, rss


def reuse_case(db: str, n: int, settings: Settings) -> dict:
    """The HTTP load (and cold start) on the database a previous run left (PostgreSQL):
    to measure a code change at N without loading N again."""
    workdir = Path(tempfile.mkdtemp(prefix=f"itsm-bench-{db}-{n}-reuse-"))
    try:
        env = {**os.environ, "ITSM_HOME": str(workdir / "home"),
               "ITSM_DATABASE_URL": f"{PG_SERVER}/{PG_DATABASE}", "ITSM_LOG_LEVEL": "WARNING"}
        (workdir / "home").mkdir()
        tokens = json.loads(subprocess.run(
            [sys.executable, "-c", "import json; from bench.generate import tokens_for; "
             "from itsm.core.app import create_app; app = create_app(); "
             "ctx = app.app_context(); ctx.push(); "
             "print(json.dumps(tokens_for(app.extensions['itsm'])))"],
            env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        count = query(env, "SELECT count(*) FROM record WHERE type = 'incident'")[0][0]
        outside = outside_http(env, settings)
        ops, rss = http_load(env, tokens, workdir, settings)
        return {"db": db, "n": count, "reused": True, **outside, "rss_mb": rss, "ops": ops}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_case(db: str, n: int, settings: Settings) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"itsm-bench-{db}-{n}-"))
    try:
        env, tokens, imported = prepare(db, n, workdir, settings)
        log(f"{db} {n}: sweep and cold start")
        outside = outside_http(env, settings)
        log(f"{db} {n}: HTTP load")
        ops, rss = http_load(env, tokens, workdir, settings)
        return {"db": db, "n": n, "import": imported, **outside, "rss_mb": rss, "ops": ops}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
