"""``python -m bench``: run the itsm benchmark (see bench/README.md)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from bench import report, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--db", action="append", choices=("sqlite", "postgresql"),
                        help="database (repeatable; default both)")
    parser.add_argument("-n", "--records", action="append", type=int,
                        help="incidents to load (repeatable; default 100000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--ops", default=",".join(run.ITSM_OPS),
                        help="operations, comma-separated")
    parser.add_argument("--import-jobs", type=int, default=2,
                        help="processes validating the import's batches (itsm records "
                             "import --jobs)")
    parser.add_argument("--peer", action="store_true",
                        help="also drive Request Tracker 5 (see bench/peers/)")
    parser.add_argument("--reuse", action="store_true",
                        help="PostgreSQL only: load nothing, measure on the database the "
                             "previous run left")
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:  # found out before minutes of loading, not after
        parser.exit(2, "python -m bench: wrk is not installed (apt-get install wrk)\n")
    settings = run.Settings(duration=args.duration, repeat=args.repeat,
                            concurrency=args.concurrency, import_jobs=args.import_jobs,
                            ops=tuple(o for o in args.ops.split(",") if o))
    result = {"machine": run.machine(), "settings": asdict(settings), "cases": []}
    for n in args.records or [100_000]:
        for db in args.db or ["sqlite", "postgresql"]:
            case = (run.reuse_case if args.reuse else run.run_case)(db, n, settings)
            if args.peer:
                from bench.peers import rt

                case["peer"] = rt.run(settings)
            result["cases"].append(case)
            if args.out:  # after every case: a long run that stops keeps what it measured
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(report.render(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
