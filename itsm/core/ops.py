"""What operations watch: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

``/metrics`` is Prometheus's text format, written by ``prometheus_client``:

- ``itsm_http_requests_total{route,method,status}`` and the latency histogram
  ``itsm_http_request_duration_seconds{route,method}``, by URL rule (``/api/v1/incidents/
  <number>``), never the raw path, so that a record number is not a new series;
- the background work's figures (:mod:`itsm.core.health`), read from the database at
  scrape time: the outbox backlog and its dead deliveries, the SLA sweep's lag, when
  the worker last finished a cycle. They are the same from every process, whoever
  delivers.

Request counters live in each process. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder the workers share (emptied before each
start): each worker then writes its counters there and any of them answers a scrape with
the sum of all (prometheus_client's multiprocess mode). Without it a scrape sees the
counters of the worker that answered only.

``/metrics`` answers an admin's token (``Authorization: Bearer``) or a client address
inside ``metrics.allow`` (CIDRs, default the loopback addresses); behind a proxy the
address is the proxy's. ``/healthz`` says the process is up and touches nothing;
``/readyz`` answers 200 when the database is reachable and its schema at the head of the
core's and every enabled plugin's migrations, else 503.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from itsm.core import health

bp = Blueprint("ops", __name__)

# The request metrics of this process (in multiprocess mode their values go to files).
REQUESTS = CollectorRegistry(auto_describe=True)
REQUEST_COUNT = Counter("itsm_http_requests", "HTTP requests answered, by URL rule and status",
                        ("route", "method", "status"), registry=REQUESTS)
REQUEST_SECONDS = Histogram(
    "itsm_http_request_duration_seconds", "Time to answer an HTTP request, by URL rule",
    ("route", "method"), registry=REQUESTS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

_STARTED = "itsm.metrics.started"
# Prometheus's text exposition format, which every Prometheus 2 and 3 reads.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "(unmatched)"  # a URL no rule matches: one series for all of them


class _Background:
    """The background work's figures, read from the database when scraped."""

    def __init__(self, itsm) -> None:
        self.itsm = itsm

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = health.figures(self.itsm)
        gauges = (
            ("itsm_outbox_events_waiting", "Events not fanned out into deliveries yet",
             found.events_waiting),
            ("itsm_outbox_deliveries_waiting", "Deliveries due and not sent yet",
             found.deliveries_waiting),
            ("itsm_outbox_backlog", "Events and due deliveries waiting", found.waiting),
            ("itsm_outbox_oldest_waiting_seconds", "How long the longest-waiting event or "
             "delivery has waited", found.oldest_waiting_seconds),
            ("itsm_outbox_retrying", "Deliveries waiting for their next attempt after a "
             "failure", found.deliveries_retrying),
            ("itsm_outbox_dead", "Deliveries that used up their attempts", found.dead),
            ("itsm_sla_due_unannounced", "SLA warnings and breaches due and not announced",
             found.sweep_due),
            ("itsm_sla_sweep_lag_seconds", "How late the oldest unannounced SLA warning or "
             "breach is", found.sweep_lag_seconds),
        )
        for name, text, value in gauges:
            yield GaugeMetricFamily(name, text, value=value)
        last = found.worker_finished_at
        yield GaugeMetricFamily("itsm_worker_last_cycle_timestamp_seconds",
                                "When a background worker last finished a cycle (Unix time; "
                                "0: never)", value=last.timestamp() if last else 0.0)


def _allowed(address: str | None, networks: list[str]) -> bool:
    try:
        client = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    for network in networks:
        try:
            if client in ipaddress.ip_network(str(network), strict=False):
                return True
        except ValueError:
            continue  # a bad entry grants nothing; itsm doctor's settings check names it
    return False


def _admin_token() -> bool:
    """Whether the request carries an admin's token (a bad one answers 401)."""
    from itsm.core.api import current_actor

    if not request.headers.get("Authorization"):
        return False
    actor = current_actor()
    return actor is not None and actor.role == "admin"


@bp.get("/metrics")
def metrics() -> Response:
    itsm = current_app.extensions["itsm"]
    allowed = itsm.settings["metrics.allow"]
    if isinstance(allowed, str):
        allowed = [item.strip() for item in allowed.split(",")]
    if not _admin_token() and not _allowed(request.remote_addr, list(allowed)):
        return Response("metrics: send an admin's token, or scrape from an address in "
                        "metrics.allow\n", status=403, mimetype="text/plain")
    background = CollectorRegistry(auto_describe=True)
    background.register(_Background(itsm))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        requests = CollectorRegistry()
        MultiProcessCollector(requests)  # every gunicorn worker's counters, summed
    else:
        requests = REQUESTS
    body = generate_latest(requests) + generate_latest(background)
    return Response(body, content_type=TEXT_FORMAT, headers={"Cache-Control": "no-store"})


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})


@bp.get("/readyz")
def readyz() -> Response:
    check = health.ready(current_app.extensions["itsm"])
    return Response(check.message + "\n", status=200 if check.ok else 503,
                    mimetype="text/plain", headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Register the routes and count every request by its URL rule and status."""
    app.register_blueprint(bp)

    @app.before_request
    def start_timer() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        started = request.environ.pop(_STARTED, None)
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        REQUEST_COUNT.labels(rule, request.method, str(response.status_code)).inc()
        if started is not None:
            REQUEST_SECONDS.labels(rule, request.method).observe(time.perf_counter() - started)
        return response
