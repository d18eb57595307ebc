#!/bin/sh
# The full benchmark: 100,000 incidents on SQLite and PostgreSQL, then 1,000,000 on
# PostgreSQL with Request Tracker 5 beside it. Figures go to bench/results/.
# Needs: wrk, a PostgreSQL server (ITSM_BENCH_PG, default postgresql://postgres@127.0.0.1:5432),
# itsm installed with the server and postgresql extras; for the peer, bench/peers/rt_setup.sh.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
STAMP=$(date -u +%Y%m%dT%H%MZ)
mkdir -p bench/results
"$PYTHON" -m bench --db sqlite --db postgresql -n 100000 \
    --out "bench/results/$STAMP-100k.json" "$@"
PEER=""
[ -x /usr/share/request-tracker5/libexec/rt-server ] && PEER="--peer"
"$PYTHON" -m bench --db postgresql -n 1000000 $PEER \
    --out "bench/results/$STAMP-1m-postgresql.json" "$@"
