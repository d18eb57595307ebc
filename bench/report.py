"""The benchmark's table, and the issue's targets checked against the figures."""

from __future__ import annotations

OPS = ("create", "create_suggest", "read", "queue", "queue_next", "search", "transition",
       "queue@1", "queue_next@1", "search@1")
RATIO_TARGETS = {"create": 0.60, "read": 0.75, "queue": 0.75, "queue_next": 0.75}
P99_TARGETS = {"queue": 50.0, "queue_next": 50.0, "search": 200.0}


def _fmt(value, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def case_table(case: dict) -> list[str]:
    lines = [f"== {case['db']}, {case['n']:,} incidents (op@1: one connection) ==",
             f"{'operation':<15} {'itsm req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'bare req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'errors':>7}"]
    for op in OPS:
        figures = case["ops"].get(op)
        if not figures:
            continue
        mine, bare = figures.get("itsm", {}), figures.get("bare")
        ratio = mine["rps"] / bare["rps"] if bare and bare["rps"] else None
        errors = mine.get("errors", 0) + (bare or {}).get("errors", 0)
        lines.append(f"{op:<15} {_fmt(mine.get('rps')):>10} {_fmt(mine.get('p50_ms'), '.1f'):>8} "
                     f"{_fmt(mine.get('p99_ms'), '.1f'):>8} "
                     f"{_fmt(bare and bare['rps']):>10} {_fmt(bare and bare['p50_ms'], '.1f'):>8} "
                     f"{_fmt(bare and bare['p99_ms'], '.1f'):>8} {_fmt(ratio, '.2f'):>6} "
                     f"{errors:>7}")
    peer = case.get("peer")
    if peer:
        for op, figures in peer.get("ops", {}).items():
            lines.append(f"RT5 {op:<11} {_fmt(figures['rps'], '.1f'):>10} "
                         f"{_fmt(figures['p50_ms'], '.1f'):>8} "
                         f"{_fmt(figures['p99_ms'], '.1f'):>8}")
    if case.get("reused"):
        lines.append("(measured on the database of the previous run: no import; the sweep "
                     "then has nothing new to announce)")
    imp = case.get("import") or {"records_per_s": 0, "records": 0, "wall_s": 0}
    first, steady = case["sweep_first"], case["sweep_steady"]
    if not case.get("import"):
        lines.append("bulk import: not measured in this run")
    else:
        lines.append(
            f"bulk import: {imp['records_per_s']:,.0f} records/s ({imp['records']:,} records, "
            f"{imp['wall_s']} s wall with start-up"
            + (f", {imp['records_per_cpu_s']:,} records per CPU second of the importer"
               if imp.get("records_per_cpu_s") else "") + ")"
            + (f"; replicated x{imp['replicated']['copies']} in SQL to reach N "
               f"({imp['replicated']['seconds']} s)" if imp.get("replicated") else ""))
    lines += [
        f"SLA sweep over {case['open_records']:,} open incidents: first {first['seconds']} s "
        f"({first['warned']:,} warnings, {first['breached']:,} breaches announced), "
        f"then {steady['seconds']} s",
        f"cold start, all built-in plugins: {case['cold_start_median_s']} s process "
        f"({case['create_app_median_s']} s create_app"
        + (f", {case['first_answer_median_s']} s to the first answer"
           if "first_answer_median_s" in case else "") + ")",
        f"RSS per worker after the load: itsm {case['rss_mb']['itsm']} MB, "
        f"bare {case['rss_mb']['bare']} MB",
    ]
    return lines


def targets(case: dict) -> list[str]:
    out = []
    for op, floor in RATIO_TARGETS.items():
        figures = case["ops"].get(op, {})
        if "itsm" in figures and "bare" in figures and figures["bare"]["rps"]:
            ratio = figures["itsm"]["rps"] / figures["bare"]["rps"]
            out.append(f"{op} ratio {ratio:.2f} >= {floor:.2f}: "
                       + ("met" if ratio >= floor else "MISSED"))
    for op, ceiling in P99_TARGETS.items():
        for name in (op, f"{op}@1"):
            figures = case["ops"].get(name, {}).get("itsm")
            if figures:
                out.append(f"{name} p99 {figures['p99_ms']:.1f} ms < {ceiling:.0f} ms: "
                           + ("met" if figures["p99_ms"] < ceiling else "MISSED"))
    if case.get("import"):
        rate = case["import"]["records_per_s"]
        out.append(f"bulk import {rate:,.0f}/s >= 5,000/s: "
                   + ("met" if rate >= 5000 else "MISSED"))
    # The steady sweep scans the clocks of every open record (by due time); the first one
    # also announces the backlog of warnings and breaches the loaded history left due.
    steady, first = case["sweep_steady"], case["sweep_first"]
    open_records = max(case["open_records"], 1)
    per_100k = steady["seconds"] * 100_000 / open_records
    out.append(f"steady sweep {steady['seconds']} s over {open_records:,} open "
               f"({per_100k:.2f} s per 100,000) < 5 s: " + ("met" if per_100k < 5 else "MISSED"))
    announced = first["warned"] + first["breached"]
    if announced:
        rate = announced / max(first["seconds"], 0.001)
        out.append(f"first sweep announced {announced:,} in {first['seconds']} s "
                   f"({rate:,.0f}/s; 100,000 due would take {100_000 / rate:.0f} s): "
                   + ("met" if 100_000 / rate < 5 else "MISSED"))
    cold = case["create_app_median_s"]
    out.append(f"cold start {cold} s < 1 s: " + ("met" if cold < 1 else "MISSED"))
    if "first_answer_median_s" in case:  # routes are registered on first use
        first_answer = case["first_answer_median_s"]
        out.append(f"cold start to the first answer {first_answer} s < 1 s: "
                   + ("met" if first_answer < 1 else "MISSED"))
    return out


def render(result: dict) -> str:
    m = result["machine"]
    s = result["settings"]
    lines = [f"itsm benchmark, {m['date']}: {m['cores']} cores, load average at start "
             f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}, Python {m['python']}",
             *([f"one core: {m['cpu_reference_s']} s for a loop of 5,000,000 additions in "
                "Python (compare runs of two machines by it)"] if "cpu_reference_s" in m else []),
             f"gunicorn {s['workers']} workers, wrk 1 thread x {s['concurrency']} connections, "
             f"{s['duration']} s per run, median of {s['repeat']} runs", ""]
    for case in result["cases"]:
        lines += case_table(case)
        lines += ["targets: " + "; ".join(targets(case)), ""]
    return "\n".join(lines)
