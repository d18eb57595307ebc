"""Sign-in with OpenID Connect against a real provider: the npm package oidc-provider (a
certified implementation) started on 127.0.0.1 by the test, driven through its login and
consent forms."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import sample_plugin

import itsm.plugins.oidc as oidc_plugin
from itsm.core.demo import ensure_agency, ensure_group

HERE = Path(__file__).parent / "oidc"
REDIRECT = "http://localhost/sso/oidc/agency/callback"
SECRET = "itsm-client-secret-words-long-enough"
FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def provider(tmp_path):
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and tests/oidc's oidc-provider are needed: "
                        "npm install --prefix tests/oidc")
        pytest.skip("node or oidc-provider is not installed (npm install --prefix tests/oidc)")
    port = _free_port()
    log = open(tmp_path / "provider.log", "w")  # noqa: SIM115 - open while it runs
    server = subprocess.Popen([node, str(HERE / "provider.mjs"), str(port), REDIRECT, SECRET],
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
                raise RuntimeError((tmp_path / "provider.log").read_text()[-2000:])
            time.sleep(0.1)
        yield issuer
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


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


def through_provider(start_location: str, login: str) -> str:
    """Walk the provider's login and consent forms as a browser would; return the
    callback URL it sends the browser back to."""
    browser = requests.Session()
    url, response = start_location, None
    for _step in range(20):
        if url.startswith(REDIRECT):
            return url
        if url is not None:
            response = browser.get(url, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url = urljoin(response.url, response.headers["Location"])
            continue
        action, body = FORM.search(response.text).groups()
        fields = {name: html.unescape(value) for name, value in HIDDEN.findall(body)}
        if 'name="login"' in body:
            fields.update(login=login, password="any password")
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
    assert 'href="/sso/oidc/agency/start"' in page and "Sign in with the state&#39;s ID" in page
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
