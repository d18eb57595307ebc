"""'Forgot password?' end to end, through a real SMTP server (aiosmtpd) on 127.0.0.1: the
link works once, expires, and a newer request or a new password invalidates it; the
answer never tells whether an address exists; requests are rate limited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from test_email import SmtpServer, parts

import itsm.adapters.email as email_plugin
from itsm.core.admin.models import PasswordReset
from itsm.core.models import Event, utcnow

PASSWORD = "correct horse battery"
NEW_PASSWORD = "violet kettle harbour"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(r"https://itsm\.example/password/reset/([A-Za-z0-9_-]+)")
PAT = "pat@example.org"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def itsm_plugins():
    return [email_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp):
    return {**itsm_config, "plugins.initial": [],
            "plugins.email.host": "127.0.0.1", "plugins.email.port": smtp.port,
            "plugins.email.sender": "Service Desk <desk@itsm.example>",
            "plugins.email.base_url": "https://itsm.example"}


@pytest.fixture
def pat(make_token):
    return make_token(PAT, role="requester", password=PASSWORD)


def csrf(client, path="/login") -> str:
    return TOKEN.search(client.get(path).text).group(1)


def ask(client, email: str):
    return client.post("/password/forgot", data={"email": email,
                                                 "csrf_token": csrf(client)})


def mailed_token(itsm, smtp) -> str:
    assert itsm.outbox.drain().failed == 0
    message = smtp.mailbox.to(PAT)[-1]
    text, html = parts(message)
    assert "choose a new password" in message["Subject"]
    found = LINK.search(text)
    assert found and found.group(0) in html
    return found.group(1)


def set_password(client, token: str, password=NEW_PASSWORD, confirm=None):
    path = f"/password/reset/{token}"
    return client.post(path, data={"password": password, "confirm": confirm or password,
                                   "csrf_token": csrf(client, "/login")})


def signs_in(client, password: str) -> bool:
    response = client.post("/login", data={"email": PAT, "password": password,
                                           "csrf_token": csrf(client)})
    return response.status_code == 302


def test_the_sign_in_page_offers_it(client):
    assert 'href="/password/forgot">Forgot password?' in client.get("/login").text


def test_a_mailed_link_sets_a_new_password_once(app, client, itsm, pat, smtp):
    answer = ask(client, "Pat@Example.org")
    assert answer.status_code == 200 and 'id="reset-sent"' in answer.text
    with itsm.Session() as session:
        row = session.scalar(select(PasswordReset))
        event = session.scalar(select(Event).where(Event.name == "account.password_reset"))
    token = mailed_token(itsm, smtp)
    # Stored hashed; the outbox holds no secret either.
    assert row.token_hash != token and token not in str(event.payload)
    assert client.get(f"/password/reset/{token}").status_code == 200
    mismatch = set_password(client, token, confirm="something else entirely")
    assert mismatch.status_code == 422 and "Differs from the new password" in mismatch.text
    weak = set_password(client, token, password="password")
    assert weak.status_code == 422 and "Too common" in weak.text
    done = set_password(client, token)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert signs_in(app.test_client(), NEW_PASSWORD)
    assert not signs_in(app.test_client(), PASSWORD)
    again = client.get(f"/password/reset/{token}")
    assert again.status_code == 400 and "no longer works" in again.text
    assert set_password(client, token, password="another fine phrase").status_code == 400


def test_a_newer_link_a_new_password_and_time_end_a_link(client, itsm, pat, smtp):
    ask(client, PAT)
    first = mailed_token(itsm, smtp)
    ask(client, PAT)
    second = mailed_token(itsm, smtp)
    assert first != second
    assert client.get(f"/password/reset/{first}").status_code == 400
    assert client.get(f"/password/reset/{second}").status_code == 200
    # A password change (here by the CLI's service) ends the link too.
    from itsm.core import auth
    from itsm.core.models import User

    with itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == PAT))
        auth.set_password(session, user, "quite another phrase")
        session.commit()
    assert client.get(f"/password/reset/{second}").status_code == 400
    ask(client, PAT)
    third = mailed_token(itsm, smtp)
    with itsm.Session() as session:
        session.execute(update(PasswordReset).where(PasswordReset.token_hash.is_not(None))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert client.get(f"/password/reset/{third}").status_code == 400


def test_the_answer_is_the_same_for_unknown_addresses_and_is_rate_limited(client, itsm,
                                                                          pat, smtp):
    unknown = ask(client, "nobody@example.org")
    known = ask(client, PAT)
    strip = re.compile(r'value="[^"]*"')
    assert unknown.status_code == known.status_code == 200
    assert strip.sub("", unknown.text) == strip.sub("", known.text)
    itsm.outbox.drain()
    assert smtp.mailbox.to("nobody@example.org") == []
    for _ in range(2):  # three an hour per address
        assert ask(client, PAT).status_code == 200
    limited = ask(client, PAT)
    assert limited.status_code == 429 and "Too many requests" in limited.text
    assert ask(client, "nobody@example.org").status_code == 200  # counted per address
    assert ask(client, "").status_code == 422
    assert client.get("/password/reset/x").status_code == 400
    assert client.get("/password/reset/" + "a" * 5000).status_code in (400, 404)


def test_an_admin_sends_the_link_from_the_users_page(app, client, itsm, pat, smtp,
                                                     make_token):
    make_token("root@example.org", role="admin", password=PASSWORD)
    client.post("/login", data={"email": "root@example.org", "password": PASSWORD,
                                "csrf_token": csrf(client)})
    users = client.get("/admin/users?q=pat").text
    user_id = re.search(r'href="/admin/users/(\d+)"', users).group(1)
    with client.session_transaction() as state:
        token = state["csrf"]
    sent = client.post(f"/admin/users/{user_id}/reset", data={"csrf_token": token})
    assert sent.status_code == 302
    link = mailed_token(itsm, smtp)
    assert app.test_client().get(f"/password/reset/{link}").status_code == 200
