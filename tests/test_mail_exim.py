"""Inbound mail through a real MTA: Debian's exim4 on 127.0.0.1 pipes each message for
desk@itsm.example (and desk+<token>@itsm.example) to ``itsm mail ingest`` of the test's
install, and mail is sent to it with swaks, as a mail client's server would.

exim runs as a foreground daemon from a configuration this test writes into a temporary
folder. Run by root, exim will not run a pipe as root (root is on its fixed never_users
list), so the pipe runs as ``nobody`` and relays each message through a Unix socket to
``itsm mail ingest`` run by the test's own user (``nobody`` may not be able to read this
environment at all); its exit status and output go back to exim as the pipe's own.
Everything for other domains (bounces, itsm's own mails) lands in one mbox file.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select

import itsm.adapters.email as email_plugin
import itsm.adapters.mailgate as mailgate_plugin
import itsm.plugins.incident as incident_plugin
from itsm.core.models import JournalEntry, Record
from itsm.core.notify import reply_token

ANN = "ann@north.example"
ADMIN = "admin@itsm.example"
SECRET = "test-secret"
DESK = "desk@itsm.example"


def _binaries() -> tuple[str, str]:
    exim = shutil.which("exim4") or shutil.which("exim")
    swaks = shutil.which("swaks")
    if exim and swaks:
        return exim, swaks
    missing = "exim4" if not exim else "swaks"
    if os.environ.get("CI") == "true":  # CI installs them (.ci/run): missing is a failure
        pytest.fail(f"{missing} is not installed: apt-get install exim4-daemon-light swaks")
    pytest.skip(f"{missing} is not installed: apt-get install exim4-daemon-light swaks")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def folder():
    """A folder the pipe's user can reach (pytest's own temporary folders are root's)."""
    path = Path(tempfile.mkdtemp(prefix="itsm-exim-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def exim_port():
    return free_port()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, email_plugin, mailgate_plugin]


@pytest.fixture
def itsm_config(itsm_config, folder, exim_port):
    url = itsm_config["database.url"]
    if url.startswith("sqlite"):
        url = f"sqlite:///{folder / 'itsm.db'}"
    return {**itsm_config, "home": str(folder / "instance"), "database.url": url,
            "attachments.path": str(folder / "attachments"), "plugins.initial": [],
            "secret_key": SECRET,
            "plugins.email.sender": f"Service Desk <{DESK}>",
            # itsm's own mails (the bounces) go out through the same exim
            "plugins.email.host": "127.0.0.1", "plugins.email.port": exim_port}


CONFIG = """\
{exim_user}
primary_hostname = mx.itsm.example
qualify_domain = itsm.example
domainlist local_domains = itsm.example
spool_directory = {folder}/spool
log_file_path = {folder}/log/%slog
pid_file_path = {folder}/exim.pid
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port}
acl_smtp_rcpt = acl_rcpt
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
keep_environment =

begin acl
acl_rcpt:
  accept

begin routers
itsm_desk:
  driver = accept
  domains = +local_domains
  local_parts = desk
  local_part_suffix = +*
  local_part_suffix_optional
  transport = itsm_ingest
outside:
  driver = accept
  transport = mbox

begin transports
itsm_ingest:
  driver = pipe
  command = {itsm} mail ingest
  user = {user}
  environment = <; {environment}
  message_prefix =
  return_path_add
  envelope_to_add
  delivery_date_add
  return_fail_output
  temp_errors = 75
  timeout = 60s
mbox:
  driver = appendfile
  file = {folder}/mbox
  user = {user}
  return_path_add
  envelope_to_add

begin retry
*  *  F,1m,1m
"""


class Exim:
    """An exim daemon on 127.0.0.1 and what it wrote."""

    def __init__(self, binary: str, swaks: str, folder: Path, port: int) -> None:
        self.binary, self.swaks, self.folder, self.port = binary, swaks, folder, port
        self.process: subprocess.Popen | None = None

    def start(self, config: str) -> None:
        for name in ("spool", "log"):
            (self.folder / name).mkdir(exist_ok=True)
        path = self.folder / "exim.conf"
        path.write_text(config)
        path.chmod(0o644)  # exim refuses a configuration others may write
        errors = self.folder / "log" / "stderr"
        with errors.open("wb") as stderr:  # a file: a pipe nobody reads could fill up
            self.process = subprocess.Popen(
                [self.binary, "-C", str(path), "-bdf", "-oX", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"exim did not start: {errors.read_text()!r}")
            time.sleep(0.1)
        raise RuntimeError("exim did not listen within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def log(self) -> str:
        path = self.folder / "log" / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def send(self, message: EmailMessage, *, envelope_from: str, to: str) -> str:
        """Hand ``message`` to exim with swaks; wait until exim is done with it; return
        exim's queue id."""
        data = self.folder / "message.eml"
        data.write_bytes(message.as_bytes())
        result = subprocess.run(
            [self.swaks, "--server", f"127.0.0.1:{self.port}", "--from", envelope_from,
             "--to", to, "--data", f"@{data}", "--timeout", "30"],
            capture_output=True, text=True, timeout=60)
        found = re.search(r"250 OK id=(\S+)", result.stdout)
        assert found, result.stdout + result.stderr
        self.wait_for(f"{found.group(1)} Completed")
        return found.group(1)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"exim never logged {text!r}:\n{self.log()}")

    def mbox(self) -> str:
        path = self.folder / "mbox"
        return path.read_text(errors="replace") if path.exists() else ""


RELAY = """\
# exim's pipe, run as {user}: hand the message to the test's own ``itsm mail ingest``
# through a Unix socket and exit with its status, its output on stdout for exim's bounce.
import socket
import sys

message = sys.stdin.buffer.read()
with socket.socket(socket.AF_UNIX) as sock:
    sock.connect({socket_path!r})
    sock.sendall(message)
    sock.shutdown(socket.SHUT_WR)
    answer = b"".join(iter(lambda: sock.recv(65536), b""))
status, _, output = answer.partition(b"\\n")
sys.stdout.buffer.write(output)
sys.exit(int(status))
"""


class IngestRelay(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Runs ``itsm mail ingest`` for each message the pipe relays, as this process's user.

    exim never runs a pipe as root, and the pipe's user may not be able to read this
    environment (an interpreter or a checkout under /root), so the pipe only relays: the
    command that takes the mail is the real ``itsm mail ingest``, with the install's
    settings, as an MTA's pipe would run it."""

    daemon_threads = True

    def __init__(self, path: Path, environment: dict[str, str]) -> None:
        self.environment = {**os.environ, **environment}
        super().__init__(str(path), RelayHandler)
        path.chmod(0o666)  # the pipe's user connects


class RelayHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        message = self.rfile.read()
        itsm_command = Path(sys.executable).with_name("itsm")
        done = subprocess.run([str(itsm_command), "mail", "ingest"], input=message,
                              capture_output=True, env=self.server.environment, timeout=60)
        self.wfile.write(f"{done.returncode}\n".encode() + done.stdout + done.stderr)


def _pipe_command(folder: Path, environment: dict[str, str]) -> tuple[str, IngestRelay | None]:
    """The pipe's command, and the relay it talks to when exim's pipe cannot be us."""
    if os.geteuid() != 0:
        return str(Path(sys.executable).with_name("itsm")), None
    relay = IngestRelay(folder / "ingest.sock", environment)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    script = folder / "relay.py"
    script.write_text(RELAY.format(user="nobody", socket_path=str(folder / "ingest.sock")))
    script.chmod(0o644)
    return f"/usr/bin/python3 -S -I {script}", relay


def _hand_over(folder: Path, user: pwd.struct_passwd) -> None:
    """Give the install's folder to the pipe's user (SQLite writes beside its file)."""
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
    os.chown(folder, user.pw_uid, user.pw_gid)


@pytest.fixture
def exim(app, folder, exim_port, itsm_config):
    binary, swaks = _binaries()
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    environment = {
        "ITSM_HOME": itsm_config["home"], "ITSM_DATABASE_URL": itsm_config["database.url"],
        "ITSM_SECRET_KEY": SECRET, "ITSM_ATTACHMENTS_PATH": itsm_config["attachments.path"],
        "ITSM_PLUGINS_EMAIL_SENDER": f"Service Desk <{DESK}>",
    }
    itsm_command, relay = _pipe_command(folder, environment)
    # exim's own processes as the caller: its spool and log are in the test's folder
    exim_user = "exim_user = root\nexim_group = root" if os.geteuid() == 0 else ""
    config = CONFIG.format(exim_user=exim_user, folder=folder, port=exim_port,
                           itsm=itsm_command,
                           user=user.pw_name,
                           environment=" ; ".join(f"{k}={v}" for k, v in environment.items()))
    server = Exim(binary, swaks, folder, exim_port)
    server.start(config)
    if os.geteuid() == 0:
        _hand_over(folder, user)
    yield server
    server.stop()
    if relay is not None:
        relay.shutdown()
        relay.server_close()


def counts(itsm) -> tuple[int, int]:
    with itsm.Session() as session:
        return (session.scalar(select(func.count()).select_from(Record)),
                session.scalar(select(func.count()).select_from(JournalEntry)))


def mail(subject: str, body: str, sender: str = ANN, to: str = DESK, **headers) \
        -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="north.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


@pytest.fixture
def people(make_token):
    make_token(ANN, role="requester", agency="NORTH")
    make_token("bob@south.example", role="requester", agency="SOUTH")
    make_token(ADMIN, role="admin")


def test_reply_with_token_through_exim_becomes_a_comment(app, exim, people):
    itsm = app.extensions["itsm"]
    exim.send(mail("Printer on fire", "The printer on floor 2 is smoking."),
              envelope_from=ANN, to=DESK)
    with itsm.Session() as session:
        number = session.scalar(select(Record.number))
    assert number, exim.log()
    token = reply_token(SECRET, number, ANN)
    exim.send(mail(f"Re: [{number}] Printer on fire", "It is out now, thanks.",
                   to=f"desk+{token}@itsm.example"),
              envelope_from=ANN, to=f"desk+{token}@itsm.example")
    with itsm.Session() as session:
        bodies = session.scalars(select(JournalEntry.body).where(
            JournalEntry.kind == "commented")).all()
    assert bodies == ["It is out now, thanks."], exim.log()
    assert "R=itsm_desk T=itsm_ingest" in exim.log()


def test_forged_admin_reply_through_exim_is_refused_with_a_bounce(app, exim, people):
    itsm = app.extensions["itsm"]
    exim.send(mail("Printer on fire", "The printer on floor 2 is smoking."),
              envelope_from=ANN, to=DESK)
    with itsm.Session() as session:
        number = session.scalar(select(Record.number))
    before = counts(itsm)
    exim.send(mail(f"Re: [{number}]", "Closing this, all fine.", sender=ADMIN),
              envelope_from="mallory@evil.example", to=DESK)
    assert counts(itsm) == before
    assert "mallory@evil.example" not in exim.mbox()  # itsm took it: exim bounced nothing
    bounce = bounces_mailed(app, exim, "mallory@evil.example")
    assert "Auto-Submitted: auto-replied" in bounce
    assert f"the reply to {number} was not added" in " ".join(bounce.split())


def bounces_mailed(app, exim: Exim, to: str) -> str:
    """Deliver itsm's outbox (the bounce) through exim; the mbox once it holds a mail
    for ``to``."""
    itsm = app.extensions["itsm"]
    with app.app_context():
        stats = itsm.outbox.drain()
    assert stats.delivered == 1, stats.errors
    deadline = time.monotonic() + 30
    while f"Envelope-to: {to}" not in exim.mbox() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"Envelope-to: {to}" in exim.mbox(), exim.log()
    return exim.mbox()


def test_two_from_addresses_through_exim_are_refused(app, exim, people):
    itsm = app.extensions["itsm"]
    before = counts(itsm)
    exim.send(mail("Printer on fire", "smoking", sender=f"{ADMIN}, {ANN}"),
              envelope_from="mallory@evil.example", to=DESK)
    assert counts(itsm) == before
    bounce = bounces_mailed(app, exim, "mallory@evil.example")
    assert "names 2 senders in From" in " ".join(bounce.split())
