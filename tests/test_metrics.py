"""What operations watch: /metrics, /healthz and /readyz, scraped by a real Prometheus
(Debian's ``prometheus``) from itsm served by gunicorn with two workers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import itsm.plugins.incident as incident_plugin
from itsm.core.models import Event

PROMETHEUS = shutil.which("prometheus")
GUNICORN = Path(sys.executable).with_name("gunicorn")


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


def report(client, token, title="Badge reader dead") -> str:
    answer = client.post("/api/v1/incidents", headers=token,
                         json={"title": title, "category": "hardware", "impact": 2,
                               "urgency": 2})
    assert answer.status_code == 201, answer.json
    return answer.json["number"]


def sample(body: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus's text format."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        key, _, rest = series.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if key == name and found == want:
            return float(value)
    return None


# -- served by the test client -----------------------------------------------------------------


def test_healthz_answers_without_the_database_and_readyz_checks_it(client, itsm):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.text == "database reachable, migrations at head\n"
    with itsm.engine.begin() as connection:  # as if a newer itsm was installed unmigrated
        connection.execute(text("DELETE FROM alembic_version"))
    stale = client.get("/readyz")
    assert stale.status_code == 503
    assert stale.text.startswith("migrations pending: core (") and "itsm db upgrade" in stale.text


def test_readyz_is_503_while_the_database_is_unreachable(itsm_config):
    from itsm.core.app import create_app

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app({**itsm_config,
                      "database.url": f"postgresql://itsm@127.0.0.1:{port}/itsm"})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.text.startswith("database unavailable: ")


def test_metrics_count_requests_by_url_rule_and_status(client, agent, itsm):
    number = report(client, agent)
    for _ in range(3):
        assert client.get(f"/api/v1/incidents/{number}", headers=agent).status_code == 200
    assert client.get("/api/v1/incidents/INC9999999", headers=agent).status_code == 404
    body = client.get("/metrics").text
    rule = "/api/v1/<collection>/<record_number:number>"
    assert sample(body, "itsm_http_requests_total", route=rule, method="GET",
                  status="200") >= 3
    assert sample(body, "itsm_http_requests_total", route=rule, method="GET",
                  status="404") >= 1
    assert f"INC{number}" not in body and number not in body  # rules, never raw paths
    assert sample(body, "itsm_http_request_duration_seconds_count", route=rule,
                  method="GET") >= 4
    with itsm.Session() as session:
        waiting = session.scalar(select(func.count()).select_from(Event)
                                 .where(Event.dispatched_at.is_(None)))
    assert waiting >= 1
    assert sample(body, "itsm_outbox_backlog") == waiting
    assert sample(body, "itsm_outbox_dead") == 0
    assert sample(body, "itsm_worker_last_cycle_timestamp_seconds") == 0


def test_metrics_are_for_allowed_addresses_and_admin_tokens(client, agent, make_token, itsm):
    away = {"REMOTE_ADDR": "192.0.2.10"}
    refused = client.get("/metrics", environ_base=away)
    assert refused.status_code == 403
    assert "metrics.allow" in refused.text
    assert client.get("/metrics", environ_base=away, headers=agent).status_code == 403
    assert client.get("/metrics", environ_base=away,
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    admin = make_token("ops@example.org", role="admin")
    assert client.get("/metrics", environ_base=away, headers=admin).status_code == 200
    itsm.settings["metrics.allow"] = ["192.0.2.0/24"]
    assert client.get("/metrics", environ_base=away).status_code == 200
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is no longer listed


# -- a real Prometheus scraping itsm under gunicorn ----------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, urllib.error.URLError):
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def query(prometheus: str, promql: str) -> float | None:
    status, body = get(f"{prometheus}/api/v1/query?"
                       + urllib.parse.urlencode({"query": promql}))
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def gunicorn(app, itsm_config, tmp_path):
    """itsm served by gunicorn with two workers on the test database, their request
    counters summed through PROMETHEUS_MULTIPROC_DIR."""
    if not GUNICORN.exists():
        pytest.fail("gunicorn is missing: pip install -e '.[test]'")
    port = free_port()
    folder = tmp_path / "prometheus-multiproc"
    folder.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ITSM_")},
           "ITSM_HOME": itsm_config["home"], "ITSM_DATABASE_URL": itsm_config["database.url"],
           "ITSM_SECRET_KEY": "test-secret", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(GUNICORN), "-w", "2", "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
         "itsm.core.app:create_app()"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{url}/healthz")[0] == 200, 60, "gunicorn to serve itsm")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def prometheus(gunicorn, tmp_path):
    """Debian's Prometheus on a free port of 127.0.0.1, scraping itsm every second."""
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing in CI: .ci/run installs it (apt-get install "
                        "prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    port = free_port()
    target = gunicorn.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: itsm\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['{target}']\n", encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{url}/-/ready")[0] == 200, 60, "prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_prometheus_scrapes_the_outbox_backlog_and_every_workers_requests(
        client, agent, itsm, gunicorn, prometheus, tmp_path):
    for i in range(3):
        report(client, agent, f"Badge reader {i} dead")
    with itsm.Session() as session:
        waiting = session.scalar(select(func.count()).select_from(Event)
                                 .where(Event.dispatched_at.is_(None)))
    for _ in range(20):  # new connections: both workers answer some of them
        assert get(f"{gunicorn}/readyz")[0] == 200
    log = tmp_path / "prometheus.log"
    try:
        assert wait_for(lambda: query(prometheus, 'up{job="itsm"}') == 1, 30,
                        "the first scrape")
        assert wait_for(lambda: query(prometheus, "itsm_outbox_backlog") == waiting, 30,
                        f"itsm_outbox_backlog == {waiting}")
        promql = 'sum(itsm_http_requests_total{route="/readyz",status="200"})'
        assert wait_for(lambda: query(prometheus, promql) == 20, 30, f"{promql} == 20")
        assert query(prometheus, "itsm_outbox_dead") == 0
        assert query(prometheus, "itsm_sla_sweep_lag_seconds") == 0
        # A scrape is counted once answered: the next scrape shows it.
        scrapes = 'sum(itsm_http_request_duration_seconds_count{route="/metrics"})'
        assert wait_for(lambda: (query(prometheus, scrapes) or 0) >= 1, 30, scrapes)
    except AssertionError:
        print(log.read_text(errors="replace")[-3000:])
        raise


def test_the_allowed_networks_can_be_set_in_the_environment(monkeypatch, tmp_path):
    from itsm.core.config import load_settings

    monkeypatch.setenv("ITSM_METRICS_ALLOW", "10.0.0.0/8, ::1/128")
    assert load_settings({"home": str(tmp_path)})["metrics.allow"] == ["10.0.0.0/8",
                                                                      "::1/128"]
