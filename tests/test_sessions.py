"""Web sessions, API tokens, the sign-in limit, CSRF on the API, passwords and private files.

Each test is a reproduction an outside tester ran against a running install:
- a cookie copied before signing out kept working for pages, ``/api/v1/me`` and token
  creation, and kept API access after a password change;
- a one-day token created a token that never expires;
- 40 parallel sign-ins for one address checked 19 passwords against a limit of 5;
- the API took the console's cookie without a CSRF token (a multipart upload, body-less
  POSTs);
- ``password``, ``12345678`` and eight spaces were accepted, for admins too;
- ``itsm.db`` was created 0644 and ``attachments/`` 0755.
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from http.cookiejar import CookieJar

import pytest
from sqlalchemy import select, update

from itsm.core import auth
from itsm.core.models import ApiToken, LoginFailure, WebSession, utcnow
from itsm.testing import TEST_DATABASE_ENV

PASSWORD = "correct horse battery"
EMAIL = "kim@example.org"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def kim(make_token):
    return make_token(EMAIL, role="agent", password=PASSWORD)


def sign_in(client, email: str = EMAIL, password: str = PASSWORD):
    token = CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token})


def signed_in(app, email: str = EMAIL, password: str = PASSWORD):
    client = app.test_client()
    assert sign_in(client, email, password).status_code == 302
    return client


def page_csrf(client) -> str:
    """The CSRF token a signed-in page gives its script."""
    return CSRF_META.search(client.get("/home").get_data(as_text=True)).group(1)


def copy_of(app, client):
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def works(client, csrf: str) -> dict[str, int]:
    """What a session cookie still opens: a page, the API, token creation."""
    return {"page": client.get("/home").status_code,
            "me": client.get("/api/v1/me").status_code,
            "token": client.post("/api/v1/tokens", json={"name": "stolen"},
                                 headers={"X-CSRF-Token": csrf}).status_code}


# -- sign-out, password change, expiry ------------------------------------------------------


def test_a_cookie_copied_before_signing_out_stops_working(app, kim):
    browser = signed_in(app)
    csrf = page_csrf(browser)
    thief = copy_of(app, browser)
    assert works(thief, csrf) == {"page": 200, "me": 200, "token": 201}
    signed_out = browser.post("/logout", data={"csrf_token": csrf})
    assert signed_out.status_code == 302
    assert works(thief, csrf) == {"page": 302, "me": 401, "token": 401}
    assert thief.get("/home").headers["Location"].startswith("/login")
    # The browser that signed out is out as well, and signing in again works.
    assert browser.get("/api/v1/me").status_code == 401
    assert works(signed_in(app), csrf)["page"] == 200


def test_a_password_change_ends_the_other_sessions_for_the_api_too(app, runner, kim):
    mine, other = signed_in(app), signed_in(app)
    other_csrf = page_csrf(other)
    assert other.get("/api/v1/me").status_code == 200
    changed = mine.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a new horse battery",
        "confirm_password": "a new horse battery", "csrf_token": page_csrf(mine)})
    assert changed.status_code == 302
    assert works(other, other_csrf) == {"page": 302, "me": 401, "token": 401}
    assert mine.get("/api/v1/me").status_code == 200  # the browser that changed it goes on
    # An admin setting the password from the command line ends the sessions as well.
    result = runner.invoke(["users", "password", EMAIL, "--password", "third horse battery"])
    assert result.exit_code == 0, result.output
    assert mine.get("/api/v1/me").status_code == 401


def _age_sessions(app, **values) -> None:
    with app.extensions["itsm"].Session() as db:
        db.execute(update(WebSession).values(**values))
        db.commit()


def test_a_session_ends_after_the_idle_time(app, kim):
    app.extensions["itsm"].settings["auth.session_idle_minutes"] = 30
    browser = signed_in(app)
    _age_sessions(app, last_seen_at=utcnow() - timedelta(minutes=29))
    assert browser.get("/api/v1/me").status_code == 200  # and this use counts as one
    _age_sessions(app, last_seen_at=utcnow() - timedelta(minutes=31))
    assert browser.get("/api/v1/me").status_code == 401
    assert browser.get("/home").status_code == 302


def test_a_session_ends_after_its_maximum_age_however_busy(app, kim):
    app.extensions["itsm"].settings["auth.session_max_hours"] = 12
    browser = signed_in(app)
    _age_sessions(app, created_at=utcnow() - timedelta(hours=11, minutes=59))
    assert browser.get("/home").status_code == 200
    _age_sessions(app, created_at=utcnow() - timedelta(hours=12, minutes=1),
                  last_seen_at=utcnow())
    assert browser.get("/home").status_code == 302
    assert browser.get("/api/v1/me").status_code == 401


def test_the_cookie_holds_no_user_id_only_a_secret_stored_hashed(app, kim):
    browser = signed_in(app)
    with browser.session_transaction() as state:
        assert set(state) == {"sid", "csrf"}
        secret = state["sid"]
    with app.extensions["itsm"].Session() as db:
        hashes = db.scalars(select(WebSession.secret_hash)).all()
    assert hashes == [auth.hash_token(secret)] and secret not in hashes


# -- tokens ------------------------------------------------------------------------------------


def _expiry(body: dict) -> datetime:
    return datetime.fromisoformat(body["expires_at"])


def _one_day_token(client, headers) -> tuple[dict, dict]:
    made = client.post("/api/v1/tokens", json={"name": "one day", "days": 1}, headers=headers)
    assert made.status_code == 201, made.get_json()
    return made.get_json(), {"Authorization": f"Bearer {made.get_json()['token']}"}


def test_a_one_day_token_cannot_make_a_token_that_never_expires(app, client, kim):
    parent, short = _one_day_token(client, kim)
    for body in ({"name": "x", "days": 0}, {"name": "x"}, {"name": "x", "days": 3650}):
        made = client.post("/api/v1/tokens", json=body, headers=short)
        assert made.status_code == 201, made.get_json()
        child = made.get_json()
        assert child["expires_at"] is not None
        assert _expiry(child) <= _expiry(parent), body
    with app.extensions["itsm"].Session() as db:
        assert db.scalar(select(ApiToken.id).where(ApiToken.expires_at.is_(None))) is None


def test_every_token_is_capped_by_token_max_days(app, client, runner, kim):
    settings = app.extensions["itsm"].settings
    settings["auth.token_max_days"] = 10
    cap = utcnow() + timedelta(days=10, minutes=1)
    for body in ({"name": "x", "days": 0}, {"name": "x"}, {"name": "x", "days": 3650}):
        made = client.post("/api/v1/tokens", json=body, headers=kim)
        assert made.status_code == 201 and _expiry(made.get_json()) <= cap, body
    cli = runner.invoke(["users", "token", EMAIL, "--days", "0"])
    assert cli.exit_code == 0, cli.output
    listed = runner.invoke(["users", "tokens", EMAIL])
    assert "never" not in listed.output
    # A token made before every token expired ends at the cap after its creation.
    old = {"Authorization": f"Bearer {cli.output.strip()}"}
    assert client.get("/api/v1/me", headers=old).status_code == 200
    with app.extensions["itsm"].Session() as db:
        db.execute(update(ApiToken).where(ApiToken.token_hash == auth.hash_token(
            cli.output.strip())).values(expires_at=None,
                                        created_at=utcnow() - timedelta(days=10, seconds=5)))
        db.commit()
    assert client.get("/api/v1/me", headers=old).status_code == 401


@pytest.mark.parametrize("days", [-1, "7", 1.5, True, None, 4000])
def test_token_days_that_are_not_a_count_of_days_get_a_field_message(client, kim, days):
    answer = client.post("/api/v1/tokens", json={"name": "x", "days": days}, headers=kim)
    assert answer.status_code == 422, answer.get_json()
    assert "days" in answer.get_json()["error"]["fields"]


# -- CSRF on the API -----------------------------------------------------------------------


def test_the_api_refuses_cookie_calls_without_the_csrf_token(app, kim):
    browser = signed_in(app)
    csrf = page_csrf(browser)
    created = browser.post("/api/v1/tickets", json={"title": "from the page"},
                           headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.get_json()
    number = created.get_json()["number"]
    attachment = {"file": (io.BytesIO(b"evil"), "evil.txt")}
    refused = {
        "json POST": browser.post("/api/v1/tickets", json={"title": "forged"}),
        "multipart upload": browser.post(f"/api/v1/tickets/{number}/attachments",
                                         data=attachment, content_type="multipart/form-data"),
        "body-less POST": browser.post("/api/v1/tokens"),
        "PATCH": browser.patch(f"/api/v1/tickets/{number}", json={"title": "forged"}),
        "DELETE": browser.delete("/api/v1/tokens/1"),
        "a wrong token": browser.post("/api/v1/tickets", json={"title": "forged"},
                                      headers={"X-CSRF-Token": "forged"}),
    }
    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 403)
    assert all(r.get_json()["error"]["code"] == "csrf" for r in refused.values())
    # Reads need none, and with the token the same upload is taken.
    assert browser.get(f"/api/v1/tickets/{number}/attachments").get_json()["items"] == []
    uploaded = browser.post(f"/api/v1/tickets/{number}/attachments",
                            data={"file": (io.BytesIO(b"ok"), "ok.txt")},
                            content_type="multipart/form-data", headers={"X-CSRF-Token": csrf})
    assert uploaded.status_code == 201


def test_bearer_calls_need_no_csrf_token(client, kim):
    created = client.post("/api/v1/tickets", json={"title": "a script"}, headers=kim)
    assert created.status_code == 201


# -- the sign-in limit, raced for real ----------------------------------------------------------


class CountingHasher:
    """The password hasher, counting the passwords it checks (from every thread)."""

    def __init__(self, hasher) -> None:
        self.hasher, self.checked, self.lock = hasher, 0, threading.Lock()

    def verify(self, password_hash, password):
        with self.lock:
            self.checked += 1
        return self.hasher.verify(password_hash, password)

    def __getattr__(self, name):
        return getattr(self.hasher, name)


def _attempt(base: str, email: str, password: str, start: threading.Barrier) -> int:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(base + "/login", timeout=60) as page:
        token = CSRF_INPUT.search(page.read().decode()).group(1)
    body = urllib.parse.urlencode({"email": email, "password": password,
                                   "csrf_token": token}).encode()
    start.wait(timeout=60)
    try:
        with opener.open(base + "/login", data=body, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_forty_parallel_sign_ins_check_at_most_five_passwords(app, live_server, kim,
                                                              monkeypatch):
    counting = CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    attempts = 40
    start = threading.Barrier(attempts)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        _attempt(live_server, EMAIL, "wrong guess", start))) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print(f"sign-in race: {attempts} attempts, {counting.checked} passwords checked, "
          f"answers {sorted(set(statuses))}")
    assert len(statuses) == attempts
    assert counting.checked <= auth.LOGIN_MAX_PER_EMAIL
    assert statuses.count(401) == counting.checked and statuses.count(429) >= 35
    # An attempt refused in the race may have seen another refused one's row for a moment:
    # fewer than five may have been checked. One by one, the rest are, and no more.
    alone = threading.Barrier(1)
    while counting.checked < auth.LOGIN_MAX_PER_EMAIL:
        assert _attempt(live_server, EMAIL, "wrong guess", alone) == 401
    assert _attempt(live_server, EMAIL, "wrong guess", alone) == 429
    # The limit holds for the right password too, and the refused attempts left no rows.
    assert _attempt(live_server, EMAIL, PASSWORD, alone) == 429
    assert counting.checked == auth.LOGIN_MAX_PER_EMAIL
    with app.extensions["itsm"].Session() as db:
        assert len(db.scalars(select(LoginFailure.id)).all()) == auth.LOGIN_MAX_PER_EMAIL


def test_the_limit_per_client_address_counts_across_addresses_raced(app, live_server, kim,
                                                                    monkeypatch):
    counting = CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    for n in range(30):
        auth_user = f"user{n}@example.org"
        with app.extensions["itsm"].Session() as db:
            auth.create_user(db, auth_user, password=PASSWORD)
            db.commit()
    start = threading.Barrier(30)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda n=n: statuses.append(
        _attempt(live_server, f"user{n}@example.org", "wrong guess", start)))
        for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert counting.checked <= auth.LOGIN_MAX_PER_ADDRESS
    assert statuses.count(429) >= 30 - auth.LOGIN_MAX_PER_ADDRESS


# -- passwords ---------------------------------------------------------------------------------

WEAK = [("password", "too common"), ("12345678", "too common"), ("Password1", "too common"),
        ("qwertyuiop", "too common"), (" " * 8, "only spaces"), (" " * 12, "only spaces")]


@pytest.mark.parametrize(("password", "why"), WEAK)
def test_common_passwords_and_spaces_are_refused_for_every_role(app, runner, password, why):
    for role in ("admin", "agent", "requester"):
        added = runner.invoke(["users", "add", f"{role}@example.org", "--role", role,
                               "--password", password])
        assert added.exit_code != 0
        assert why in str(added.exception) + added.output, (role, added.output)
    assert runner.invoke(["users", "add", EMAIL, "--role", "admin",
                          "--password", PASSWORD]).exit_code == 0
    changed = runner.invoke(["users", "password", EMAIL, "--password", password])
    assert changed.exit_code != 0 and why in str(changed.exception) + changed.output
    browser = signed_in(app)
    page = browser.post("/account/password", data={
        "current_password": PASSWORD, "new_password": password, "confirm_password": password,
        "csrf_token": page_csrf(browser)})
    assert page.status_code == 422
    assert why in page.get_data(as_text=True)
    with app.extensions["itsm"].Session() as db:
        user = auth.user_by_email(db, EMAIL)
        assert auth.check_password(user.password_hash, PASSWORD)  # unchanged
        with pytest.raises(auth.ValidationError) as refused:
            auth.create_user(db, "api@example.org", password=password)
        assert refused.value.fields == {"password": [why if why == "only spaces"
                                                     else "too common or easy to guess"]}


def test_the_quick_start_password_and_the_demo_password_pass(app):
    from itsm.core.demo import DEMO_PASSWORD

    for password in ("change-me-now", DEMO_PASSWORD, "a long secret", PASSWORD):
        assert auth.password_problem(password, "admin@example.org") is None, password


def test_init_refuses_a_common_admin_password_before_writing_anything(tmp_path):
    home = tmp_path / "instance"
    env = {**os.environ, "ITSM_HOME": str(home)}
    env.pop(TEST_DATABASE_ENV, None)
    result = subprocess.run([sys.executable, "-c", "from itsm.cli import main; main()",
                             "init", "--admin-email", "admin@example.org",
                             "--admin-password", "password"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "too common" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not home.exists()


# -- private files -----------------------------------------------------------------------------


def _mode(path) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


@pytest.mark.skipif(os.environ.get(TEST_DATABASE_ENV, "sqlite").split(":")[0] != "sqlite",
                    reason="the database file is SQLite's")
def test_database_config_and_attachments_are_created_private(tmp_path):
    home = tmp_path / "instance"
    env = {**os.environ, "ITSM_HOME": str(home)}
    for name in (TEST_DATABASE_ENV, "ITSM_DATABASE_URL", "ITSM_ATTACHMENTS_PATH"):
        env.pop(name, None)
    itsm = [sys.executable, "-c", "from itsm.cli import main; main()"]
    # The umask most systems give: without care, files come out 0644 and folders 0755.
    run = {"env": env, "capture_output": True, "text": True, "timeout": 180, "umask": 0o022}
    done = subprocess.run([*itsm, "init", "--admin-email", "admin@example.org",
                           "--admin-password", "change-me-now"], **run)
    assert done.returncode == 0, done.stderr
    token = subprocess.run([*itsm, "users", "token", "admin@example.org"], **run)
    script = (
        "import io, os, sys\n"
        "from itsm.core.app import create_app\n"
        "app = create_app()\n"
        "client = app.test_client()\n"
        "auth = {'Authorization': 'Bearer ' + sys.argv[1]}\n"
        "ticket = client.post('/api/v1/incidents', headers=auth,"
        " json={'title': 'a file', 'category': 'network'})\n"
        "assert ticket.status_code == 201, ticket.get_json()\n"
        "number = ticket.get_json()['number']\n"
        "up = client.post(f'/api/v1/incidents/{number}/attachments', headers=auth,"
        " data={'file': (io.BytesIO(b'secret'), 's.txt')}, content_type='multipart/form-data')\n"
        "assert up.status_code == 201, up.get_json()\n"
        "home = os.environ['ITSM_HOME']\n"
        "print(' '.join(oct(os.stat(os.path.join(home, n)).st_mode & 0o777)"
        " for n in ('itsm.db-wal', 'itsm.db-shm')))\n")
    used = subprocess.run([sys.executable, "-c", script, token.stdout.strip()], **run)
    assert used.returncode == 0, used.stderr
    assert used.stdout.split() == ["0o600", "0o600"]  # while the database is open
    assert _mode(home) == "0o700"
    assert _mode(home / "itsm.toml") == "0o600"
    assert _mode(home / "itsm.db") == "0o600"
    attachments = home / "attachments"
    assert _mode(attachments) == "0o700"
    shards = [p for p in attachments.iterdir() if p.is_dir()]
    files = [p for shard in shards for p in shard.iterdir()]
    assert shards and files
    assert {_mode(p) for p in shards} == {"0o700"} and {_mode(p) for p in files} == {"0o600"}

