"""Sign-in with OpenID Connect against a real provider: the npm package oidc-provider (a
certified implementation) started on 127.0.0.1 by the test, driven through its login and
consent forms."""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import sample_plugin

import itsm.plugins.oidc as oidc_plugin
from itsm.core.demo import ensure_agency, ensure_group

HERE = Path(__file__).parent / "oidc"
BASE = "http://localhost"
REDIRECT = f"{BASE}/sso/oidc/agency/callback"
SECRET = "itsm-client-secret-words-long-enough"
FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_provider(folder: Path, base: str) -> Iterator[str]:
    """oidc-provider on a free port of 127.0.0.1 whose clients come back to ``base``
    (itsm's address); yields its issuer URL."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and tests/oidc's oidc-provider are needed: "
                        "npm install --prefix tests/oidc")
        pytest.skip("node or oidc-provider is not installed (npm install --prefix tests/oidc)")
    port = _free_port()
    log = open(folder / "provider.log", "w")  # noqa: SIM115 - open while it runs
    server = subprocess.Popen([node, str(HERE / "provider.mjs"), str(port), base, SECRET],
                              stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{issuer}/.well-known/openid-configuration",
                                timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "provider.log").read_text()[-2000:])
            time.sleep(0.1)
        yield issuer
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def provider(tmp_path):
    with running_provider(tmp_path, BASE) as issuer:
        yield issuer


def two_providers(issuer: str) -> dict:
    """The motor vehicles agency's and the revenue agency's providers (two clients of
    one test provider), chosen by the e-mail address's domain."""
    return {"plugins.oidc.providers": {
        "dmv": {"issuer": issuer, "client_id": "itsm", "client_secret": SECRET,
                "label": "Motor Vehicles ID", "domains": ["dmv.example.org"],
                "scope": "openid email profile groups",
                "roles": {"dmv-desk": "agent"}, "groups": {"dmv-desk": "DMV desk"},
                "agencies": {"dmv-staff": "DMV"}},
        "tax": {"issuer": issuer, "client_id": "itsm-tax", "client_secret": SECRET,
                "label": "Revenue ID", "domains": ["tax.example.org"],
                "scope": "openid email profile groups",
                "agencies": {"tax-staff": "TAX"}}}}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, oidc_plugin]


@pytest.fixture
def itsm_config(itsm_config, provider):
    return {**itsm_config, "plugins.oidc.providers": {"agency": {
        "issuer": provider, "client_id": "itsm", "client_secret": SECRET,
        "label": "Sign in with the state's ID", "domains": ["dmv.example.org"],
        "scope": "openid email profile groups",
        "roles": {"dmv-desk": "agent"}, "groups": {"dmv-desk": "DMV desk"},
        "agencies": {"dmv-staff": "DMV"}}}}


@pytest.fixture
def install(app):
    with app.app_context(), app.extensions["itsm"].Session() as session:
        ensure_agency(session, "DMV", "Motor Vehicles")
        ensure_group(session, "DMV desk")
        session.commit()
    return app


def through_provider(start_location: str, login: str,
                     browser: requests.Session | None = None, back_to: str = BASE) -> str:
    """Walk the provider's login, consent and sign-out forms as a browser would (a fresh
    one unless ``browser`` is given, which keeps the provider's session); return the URL
    it sends the browser back to itsm with. Each form walked is noted in
    ``browser.forms``."""
    browser = browser or requests.Session()
    browser.forms = []
    url, response = start_location, None
    for _step in range(20):
        if url is not None and url.startswith(back_to):
            return url
        if url is not None:
            response = browser.get(url, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url = urljoin(response.url, response.headers["Location"])
            continue
        action, body = FORM.search(response.text).groups()
        fields = {name: html.unescape(value) for name, value in HIDDEN.findall(body)}
        # The sign-out page's buttons stand outside its form (form="op.logoutForm").
        signing_out = 'name="logout"' in response.text
        browser.forms.append("login" if 'name="login"' in body else
                             "sign-out" if signing_out else "consent")
        if 'name="login"' in body:
            fields.update(login=login, password="any password")
        if signing_out:  # "Yes, sign me out" of the provider's session too
            fields.update(logout="yes")
        response = browser.post(urljoin(response.url, html.unescape(action)), data=fields,
                                allow_redirects=False, timeout=10)
        url = urljoin(response.url, response.headers["Location"]) \
            if response.is_redirect else None
    raise AssertionError("the provider never sent the browser back")


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_person_signs_in_with_the_provider_and_is_mapped(install):
    web = install.test_client()
    page = web.get("/login").get_data(as_text=True)
    # A provider with domains is chosen by the work e-mail address typed on the page.
    assert 'action="/sso/oidc/start"' in page and 'name="email"' in page
    assert "Continue with your organization&#39;s account" in page
    assert "/sso/oidc/agency/start" not in page
    start = web.get("/sso/oidc/agency/start")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    back = web.get(callback_path(through_provider(start.headers["Location"], "ann")))
    assert back.status_code == 302 and back.headers["Location"].endswith("/home")
    assert web.get("/api/v1/me").json == {"email": "ann@dmv.example.org", "name": "Ann Lee",
                                          "role": "agent", "agency": "DMV",
                                          "groups": ["DMV desk"]}


def test_a_tampered_state_and_a_replayed_callback_are_refused(install):
    web = install.test_client()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    callback = callback_path(through_provider(start, "ann"))
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    refused = web.get(tampered, follow_redirects=True)
    assert "the sign-in&#39;s state does not match" in refused.get_data(as_text=True)
    assert web.get("/api/v1/me").status_code == 401
    # The flow's state is used up: the genuine callback, replayed, is refused too.
    replayed = web.get(callback, follow_redirects=True)
    assert "state does not match" in replayed.get_data(as_text=True)
    assert web.get("/api/v1/me").status_code == 401


def test_a_provider_cannot_sign_in_addresses_of_another_agency(install):
    web = install.test_client()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    refused = web.get(callback_path(through_provider(start, "mallory")),
                      follow_redirects=True)
    assert "may not sign in addresses of tax.example.org" in refused.get_data(as_text=True)
    assert web.get("/api/v1/me").status_code == 401


def test_the_id_token_is_refused_for_another_audience_after_expiry_or_another_nonce(
        install, provider):
    from itsm.plugins.oidc import service

    web = install.test_client()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    code = parse_qs(urlsplit(through_provider(start, "ann")).query)["code"][0]
    with web.session_transaction() as cookie:
        flow = cookie["oidc_flow"]
    document = requests.get(f"{provider}/.well-known/openid-configuration", timeout=5).json()
    tokens = requests.post(document["token_endpoint"], auth=("itsm", SECRET), timeout=5, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": flow["verifier"]}).json()
    settings = service.providers(install.extensions["itsm"].plugin_settings("oidc"))
    agency = settings["agency"]
    claims = service.verify_id_token(agency, document, tokens["id_token"], flow["nonce"], 5)
    assert claims["email"] == "ann@dmv.example.org" and claims["aud"] == "itsm"
    refusals = {
        "aud": dict(provider=replace(agency, client_id="another-client")),
        "exp": dict(now=int(time.time()) + 3 * 3600),
        "nonce": dict(nonce="a nonce of another flow"),
        "iss": dict(provider=replace(agency, issuer="http://127.0.0.1:1")),
    }
    for claim, change in refusals.items():
        arguments = {"provider": agency, "nonce": flow["nonce"], **change}
        with pytest.raises(service.SignInRefused, match=claim):
            service.verify_id_token(arguments["provider"], document, tokens["id_token"],
                                    arguments["nonce"], 5, now=arguments.get("now"))
    # A replayed code is refused by the provider.
    again = requests.post(document["token_endpoint"], auth=("itsm", SECRET), timeout=5, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": flow["verifier"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def csrf_of(web) -> str:
    with web.session_transaction() as cookie:
        return cookie.get("csrf") or ""


def test_signing_out_of_itsm_ends_the_providers_session_too(install):
    web, idp = install.test_client(), requests.Session()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    web.get(callback_path(through_provider(start, "ann", idp)))
    assert idp.forms == ["login", "consent"]
    # Signed in at the provider, a second sign-in goes straight through.
    again = install.test_client()
    start = again.get("/sso/oidc/agency/start").headers["Location"]
    assert again.get(callback_path(through_provider(start, "ann", idp))).status_code == 302
    assert idp.forms == [] and again.get("/api/v1/me").status_code == 200
    token = csrf_of(web)
    out = web.post("/logout", data={"csrf_token": token})
    assert out.status_code == 200
    onwards = html.unescape(REFRESH.search(out.get_data(as_text=True)).group(1))
    end = urlsplit(onwards)
    assert f"{end.scheme}://{end.netloc}" == install.extensions["itsm"].plugin_settings(
        "oidc")["providers"]["agency"]["issuer"]
    query = parse_qs(end.query)
    assert query["post_logout_redirect_uri"] == [f"{BASE}/login"]
    assert query["client_id"] == ["itsm"] and query["id_token_hint"][0].count(".") == 2
    assert web.get("/api/v1/me").status_code == 401  # the local session ended first
    back = through_provider(onwards, "ann", idp)
    assert idp.forms == ["sign-out"] and back == f"{BASE}/login"
    assert "You have signed out." in web.get("/login").get_data(as_text=True)
    # The provider's session is gone: the next sign-in asks for the login again.
    start = install.test_client().get("/sso/oidc/agency/start").headers["Location"]
    through_provider(start, "ann", idp)
    assert idp.forms[0] == "login"


def test_a_password_sign_out_goes_to_the_sign_in_page(install):
    from itsm.core import auth

    with install.app_context(), install.extensions["itsm"].Session() as session:
        auth.create_user(session, "root@example.org", role="admin",
                         password="local admin words")
        session.commit()
    web = install.test_client()
    page = web.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    web.post("/login", data={"email": "root@example.org", "password": "local admin words",
                             "csrf_token": token})
    out = web.post("/logout", data={"csrf_token": csrf_of(web)})
    assert out.status_code == 302 and out.headers["Location"] == "/login"


def test_a_replayed_code_with_a_fresh_state_is_refused(install):
    web = install.test_client()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    first = through_provider(start, "ann")
    assert web.get(callback_path(first)).status_code == 302
    stolen = parse_qs(urlsplit(first).query)["code"][0]
    # Someone replays the used code in a flow of their own: its state matches, the code
    # does not (the provider took it back at its first use).
    other = install.test_client()
    state = parse_qs(urlsplit(other.get("/sso/oidc/agency/start").headers["Location"])
                     .query)["state"][0]
    refused = other.get(f"/sso/oidc/agency/callback?code={stolen}&state={state}",
                        follow_redirects=True)
    assert "the identity provider refused the code" in refused.get_data(as_text=True)
    assert other.get("/api/v1/me").status_code == 401


def test_a_forged_id_token_is_refused(install, provider):
    import base64
    import json

    from itsm.plugins.oidc import service

    web = install.test_client()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    code = parse_qs(urlsplit(through_provider(start, "ann")).query)["code"][0]
    with web.session_transaction() as cookie:
        flow = cookie["oidc_flow"]
    document = requests.get(f"{provider}/.well-known/openid-configuration", timeout=5).json()
    id_token = requests.post(document["token_endpoint"], auth=("itsm", SECRET), timeout=5,
                             data={"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": REDIRECT,
                                   "code_verifier": flow["verifier"]}).json()["id_token"]
    head, body, signature = id_token.split(".")

    def encoded(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    promoted = encoded({**claims, "groups": ["dmv-desk", "dmv-staff", "admins"]})
    agency = service.providers(install.extensions["itsm"].plugin_settings("oidc"))["agency"]
    forgeries = {"changed claims": f"{head}.{promoted}.{signature}",
                 "no signature": f"{encoded({'alg': 'none', 'typ': 'JWT'})}.{body}.",
                 "HMAC with the public key": f"{encoded({'alg': 'HS256'})}.{body}.{signature}"}
    for token in forgeries.values():
        with pytest.raises(service.SignInRefused, match="the ID token is not valid"):
            service.verify_id_token(agency, document, token, flow["nonce"], 5)


def test_itsm_auth_test_oidc_explains_each_step(install, runner):
    checked = runner.invoke(["auth", "test-oidc", "--url", BASE])
    assert checked.exit_code == 0, checked.output
    lines = checked.output.splitlines()
    assert lines[0] == "provider: agency (Sign in with the state's ID; domains dmv.example.org)"
    assert lines[1].startswith("discovery: ok, issuer http://127.0.0.1:")
    assert lines[2].startswith("keys: ") and "signing key" in lines[2]
    assert lines[3] == "client: ok, itsm accepted by the token endpoint"
    assert lines[4] == f"redirect: ok, the provider accepts {REDIRECT}"
    assert lines[5] == ("sign-out: single sign-out through the provider's end-session "
                        "endpoint")
    without = runner.invoke(["auth", "test-oidc", "agency"])
    assert without.exit_code == 0 and "redirect: register <itsm's address>" in without.output
    elsewhere = runner.invoke(["auth", "test-oidc", "--url", "https://itsm.example.net"])
    assert elsewhere.exit_code == 1
    assert "Error: redirect: the provider refused https://itsm.example.net/sso/oidc/agency/" \
           "callback" in elsewhere.output
    unknown = runner.invoke(["auth", "test-oidc", "tax"])
    assert unknown.exit_code == 1
    assert unknown.output.strip() == ("Error: settings: no provider 'tax' in "
                                      "[plugins.oidc.providers] (there are: agency)")
    itsm = install.extensions["itsm"]
    itsm.settings["plugins.oidc.providers"]["agency"]["client_secret"] = "not the secret"
    itsm.settings._plugins.clear()  # settings are read once per plugin
    wrong = runner.invoke(["auth", "test-oidc"])
    assert wrong.exit_code == 1 and "Error: client: the provider refused the client itsm " \
                                    "(check client_id and client_secret)" in wrong.output
    itsm.settings["plugins.oidc.providers"]["agency"]["issuer"] = f"http://127.0.0.1:" \
                                                                  f"{_free_port()}"
    itsm.settings._plugins.clear()
    down = runner.invoke(["auth", "test-oidc"])
    assert down.exit_code == 1
    assert "Error: discovery: the identity provider cannot be reached" in down.output


def test_the_provider_is_chosen_by_the_email_address_typed_on_the_sign_in_page(install):
    web = install.test_client()
    chosen = web.get("/sso/oidc/start?email=Ann%40DMV.example.org")
    # A page that continues to the provider: the browser came from a form.
    assert chosen.status_code == 200
    onwards = html.unescape(REFRESH.search(chosen.get_data(as_text=True)).group(1))
    query = parse_qs(urlsplit(onwards).query)
    assert query["client_id"] == ["itsm"] and query["login_hint"] == ["Ann@DMV.example.org"]
    back = web.get(callback_path(through_provider(onwards, "ann")))
    assert back.status_code == 302 and web.get("/api/v1/me").json["role"] == "agent"
    for typed, message in (("bob@tax.example.org", "no identity provider signs in "
                                                    "addresses of tax.example.org"),
                           ("", "enter your work e-mail address")):
        refused = install.test_client().get(f"/sso/oidc/start?email={typed}",
                                            follow_redirects=True)
        assert refused.status_code == 200 and message in refused.get_data(as_text=True)


def test_the_admin_page_shows_the_providers_and_manages_stored_rules(install, runner):
    from sqlalchemy import select

    from itsm.core import auth
    from itsm.core.admin.models import AdminAudit
    from itsm.plugins.oidc.models import OidcRule
    from itsm.testing import schema_drift

    itsm = install.extensions["itsm"]
    assert schema_drift(itsm.engine, ["oidc_rule"]) == []
    with install.app_context(), itsm.Session() as session:
        auth.create_user(session, "root@example.org", role="admin",
                         password="local admin words")
        ensure_group(session, "Licences")
        session.commit()
    web = install.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      web.get("/login").get_data(as_text=True)).group(1)
    web.post("/login", data={"email": "root@example.org", "password": "local admin words",
                             "csrf_token": token})
    page = web.get("/admin/sign-in/oidc/").get_data(as_text=True)
    assert "Identity providers (OIDC)" in page and "set (hidden)" in page and SECRET not in page
    assert "<td>Client secret</td><td>set (hidden)</td>" in page
    assert "<td>Claim listing the person&#39;s groups</td>" in page
    assert "dmv-desk" in page and "DMV desk" in page

    def post(url: str, data: dict):
        return web.post(url, data={**data, "csrf_token": csrf_of(web)})

    refused = post("/admin/sign-in/oidc/rules", {"provider": "agency", "kind": "agency",
                                                  "match": "dmv-staff", "value": "NOPE"})
    assert refused.status_code == 422
    assert "There is no agency with the code" in refused.get_data(as_text=True)
    for kind, match, value in (("group", "dmv-staff", "Licences"),
                               ("role", "dmv-staff", "admin")):
        assert post("/admin/sign-in/oidc/rules", {"provider": "agency", "kind": kind,
                                                   "match": match, "value": value}
                    ).status_code == 302
    # Ann is dmv-desk (agent by the file, which comes first) and dmv-staff.
    ann = install.test_client()
    start = ann.get("/sso/oidc/agency/start").headers["Location"]
    ann.get(callback_path(through_provider(start, "ann")))
    assert ann.get("/api/v1/me").json["role"] == "agent"
    assert ann.get("/api/v1/me").json["groups"] == ["DMV desk", "Licences"]
    # The test: the command line's steps, and the mapping of typed claims.
    tested = post("/admin/sign-in/oidc/test", {"provider": "agency", "base": BASE,
                                               "email": "dan@dmv.example.org",
                                               "groups": "dmv-staff"})
    text = html.unescape(tested.get_data(as_text=True))
    assert f"<strong>Redirect:</strong> ok, the provider accepts {REDIRECT}" in text
    assert "<strong>Mapping:</strong> role admin, groups Licences, agency DMV" in text
    cli = runner.invoke(["auth", "test-oidc", "--email", "dan@dmv.example.org", "--groups",
                         "dmv-staff"])
    assert cli.exit_code == 0, cli.output
    assert cli.output.splitlines()[-1] == "mapping: role admin, groups Licences, agency DMV"
    with install.app_context(), itsm.Session() as session:
        rule = session.scalars(select(OidcRule).where(OidcRule.kind == "role")).one()
    assert post(f"/admin/sign-in/oidc/rules/{rule.id}", {
        "provider": "agency", "kind": "role", "match": "dmv-staff", "value": "agent"}
        ).status_code == 302
    assert post(f"/admin/sign-in/oidc/rules/{rule.id}/remove", {}).status_code == 422
    assert post(f"/admin/sign-in/oidc/rules/{rule.id}/remove",
                {"confirm": "y"}).status_code == 302
    with install.app_context(), itsm.Session() as session:
        actions = session.scalars(select(AdminAudit.action).order_by(AdminAudit.id)).all()
    assert actions == ["oidc.rule.add", "oidc.rule.add", "oidc.rule.change",
                       "oidc.rule.remove"]
    assert web.get(f"/admin/sign-in/oidc/rules/{rule.id}").status_code == 404
    assert post(f"/admin/sign-in/oidc/rules/{rule.id}/remove",
                {"confirm": "y"}).status_code == 404
    # Not for anyone else: Ann (an agent) is refused.
    assert ann.get("/admin/sign-in/oidc/").status_code == 403


def test_a_long_id_token_is_not_kept_and_the_sign_out_still_works(install, monkeypatch):
    from itsm.plugins.oidc import pages

    monkeypatch.setattr(pages, "ID_TOKEN_KEPT", 10)  # as if the token held 500 groups
    web, idp = install.test_client(), requests.Session()
    start = web.get("/sso/oidc/agency/start").headers["Location"]
    web.get(callback_path(through_provider(start, "ann", idp)))
    with web.session_transaction() as cookie:
        assert cookie["oidc_signed_in"] == {"provider": "agency", "id_token": ""}
    out = web.post("/logout", data={"csrf_token": csrf_of(web)})
    onwards = html.unescape(REFRESH.search(out.get_data(as_text=True)).group(1))
    query = parse_qs(urlsplit(onwards).query)
    assert "id_token_hint" not in query and query["client_id"] == ["itsm"]
    assert through_provider(onwards, "ann", idp) == f"{BASE}/login"
    assert idp.forms == ["sign-out"]
