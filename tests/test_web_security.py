"""Web security of the console and the portal, every built-in plugin enabled.

- CSRF: every POST form of every page, crawled as each role, carries the token, and every
  POST route outside the API refuses a request without it;
- the session cookie is HttpOnly, SameSite=Lax, and Secure when configured for https;
- every page sends the security headers, and no page holds an inline script or an
  ``on*=`` attribute (the Content-Security-Policy forbids them anyway);
- a stored-XSS payload written into every text field the API takes renders inert on
  every page, checked in the real browser;
- sign-in throttling, the password policy, token expiry and revocation.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

import every_plugin
import pytest
from sqlalchemy import update

from itsm.core import auth
from itsm.core.demo import DEMO_PASSWORD
from itsm.core.models import ApiToken, utcnow

REQUESTER_A = "pat@dot.demo.invalid"
AGENT = "agent@demo.invalid"
ADMIN = "security-admin@it.example"
ADMIN_PASSWORD = "a long admin secret"
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def admin(make_token):
    return make_token(ADMIN, role="admin", password=ADMIN_PASSWORD)


@pytest.fixture
def demo(app, runner, admin):
    every_plugin.load_demo(runner)
    return {"admin": admin}


def sign_in(client, email: str, password: str = DEMO_PASSWORD):
    token = every_plugin.csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return response


ROLES = {"requester": REQUESTER_A, "agent": AGENT, "admin": ADMIN}


def password_of(email: str) -> str:
    return ADMIN_PASSWORD if email == ADMIN else DEMO_PASSWORD


# -- pages: forms, headers, inline script ----------------------------------------------------


def test_every_page_has_tokens_on_its_forms_headers_and_no_inline_script(app, demo):
    problems, pages, forms = [], 0, 0
    for role, email in ROLES.items():
        client = app.test_client()
        sign_in(client, email, password_of(email))
        for url, html in every_plugin.crawl(client).items():
            pages += 1
            response = client.get(url)
            problems += [f"{role} {url}: {p}" for p in header_problems(response)]
            if INLINE_SCRIPT.search(html):
                problems.append(f"{role} {url}: inline <script>")
            if EVENT_ATTRIBUTE.search(html):
                problems.append(f"{role} {url}: an on*= attribute")
            for attributes, body in FORM.findall(html):
                if re.search(r'method="?post', attributes, re.I):
                    forms += 1
                    if 'name="csrf_token"' not in body:
                        problems.append(f"{role} {url}: a POST form without csrf_token: "
                                        f"{attributes.strip()}")
    print(f"web pages: {pages} pages and {forms} POST forms checked for 3 roles")
    assert pages > 30 and forms > 10
    assert problems == [], "\n".join(problems)


def header_problems(response) -> list[str]:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    problems = []
    if "script-src 'none'" not in csp and not re.search(r"script-src [^;]*'self'", csp):
        problems.append(f"no script-src restriction in the CSP ({csp!r})")
    if "unsafe-inline" in csp.split("style-src")[0]:
        problems.append("the CSP allows inline script")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if headers.get("X-Frame-Options") != "DENY" and "frame-ancestors 'none'" not in csp:
        problems.append("no frame protection")
    return problems


def test_error_pages_and_the_sign_in_page_send_the_headers_too(app, client, admin):
    for url in ("/login", "/no/such/page", "/records/no-such-collection",
                "/static/nothing.css"):
        response = client.get(url)
        assert header_problems(response) == [], (url, response.status_code)
    sign_in(client, ADMIN, ADMIN_PASSWORD)
    for url in ("/no/such/page", "/records/incidents/INC9999999"):
        response = client.get(url)
        assert response.status_code == 404
        assert header_problems(response) == [], url
    api = client.get("/api/v1/me", headers=admin)
    assert api.headers.get("X-Content-Type-Options") == "nosniff"


def test_every_post_route_outside_the_api_refuses_a_request_without_its_token(app, demo):
    client = app.test_client()
    sign_in(client, ADMIN, ADMIN_PASSWORD)
    numbers = dict(_first_numbers(client, demo["admin"]))
    itsm = app.extensions["itsm"]
    refused, routes = [], 0
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.rule.startswith("/api/"):
            continue
        owner = itsm.blueprint_owners.get(rule.endpoint.split(".")[0])
        if owner and not itsm.host.is_enabled(owner):
            continue  # a disabled plugin's pages answer 404 to everything
        values = {name: "1" for name in rule.arguments}
        if "collection" in rule.arguments:
            values["collection"] = next(iter(numbers))
        if "number" in rule.arguments:
            values["number"] = numbers.get(values.get("collection"), "INC0000001")
        url = rule.rule
        for name, value in values.items():
            url = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, url)
        routes += 1
        for data in ({}, {"csrf_token": "forged"}):
            response = client.post(url, data={"body": "no token", **data})
            if response.status_code != 400:
                refused.append(f"POST {url} {data}: {response.status_code}")
    assert routes > 15
    assert refused == [], "\n".join(refused)


# -- the session cookie ------------------------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_session_cookie_is_httponly_samesite_and_secure_when_configured(
        itsm_config, itsm_plugins, itsm_install_templates, secure):
    from itsm.core.app import create_app

    config = {**itsm_config, "session.secure_cookie": secure}
    application = create_app(config)
    application.extensions["itsm"].engine.dispose()
    assert application.config["SESSION_COOKIE_HTTPONLY"] is True
    assert application.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert application.config["SESSION_COOKIE_SECURE"] is secure
    with application.test_request_context("/login"):
        from flask import session

        session["csrf"] = "x"
        response = application.make_response("")
        application.session_interface.save_session(application, session, response)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure


# -- stored XSS, in the real browser -------------------------------------------------------------

MARKER = "xss-marker"
PAYLOAD = (f'<b id="{MARKER}">x</b>"\'><img src=x onerror=alert(1)>'
           "<script>alert(2)</script><svg onload=alert(3)>[md](javascript:alert(4))")


def _string_fields(schema: dict, document: dict) -> tuple[dict, dict]:
    """(every free-text property, an example of every other required one) of a schema."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
    texts, required = {}, {}
    for name, prop in schema.get("properties", {}).items():
        while "$ref" in prop:
            prop = document["components"]["schemas"][prop["$ref"].split("/")[-1]]
        if prop.get("readOnly"):
            continue
        kind = prop.get("type")
        if kind == "string" and not ({"enum", "format", "pattern"} & set(prop)):
            limit = prop.get("maxLength", len(PAYLOAD))
            if limit >= 20:
                texts[name] = PAYLOAD[:limit]
        elif name in schema.get("required", []):
            required[name] = _example(prop)
    return texts, required


def _example(prop: dict):
    if "enum" in prop:
        return prop["enum"][0]
    return {"integer": prop.get("minimum", 1), "number": 1, "boolean": False,
            "array": [], "object": {}}.get(prop.get("type"), "2026-12-01")


def plant_payloads(client, admin: dict) -> int:
    """Write the payload into every free-text field of every JSON write operation, one
    operation at a time; returns how many writes were stored."""
    document = client.get("/api/v1/openapi.json").get_json()
    known = every_plugin.path_values(client, admin, document)
    stored = 0
    for method, template, operation in every_plugin.operations(document):
        schema = every_plugin.body_schema(operation)
        if method not in every_plugin.WRITES or schema is None:
            continue
        if "{" in template and template not in known:
            continue
        url = template.format(**known.get(template, {}))
        texts, required = _string_fields(schema, document)
        if not texts:
            continue
        response = client.open(url, method=method.upper(), json={**required, **texts},
                               headers=admin)
        if response.status_code >= 300:  # a field the payload breaks: the rest alone
            for name in texts:
                single = client.open(url, method=method.upper(), headers=admin,
                                     json={**required, name: texts[name]})
                stored += single.status_code < 300
        else:
            stored += 1
    # The file name of an attachment is user content too.
    for rt_collection, number in _first_numbers(client, admin):
        client.post(f"/api/v1/{rt_collection}/{number}/attachments", headers=admin,
                    content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"x"), f"{PAYLOAD[:80]}.txt")})
    return stored


def _first_numbers(client, admin):
    collections = client.get("/api/v1/", headers=admin).get_json()["collections"]
    for collection in collections:
        items = client.get(f"/api/v1/{collection}", headers=admin).get_json()["items"]
        if items:
            yield collection, items[0]["number"]


def test_stored_xss_payloads_render_inert_in_the_browser(app, live_server, browser, demo):
    client = app.test_client()
    stored = plant_payloads(client, demo["admin"])
    assert stored >= 10, f"only {stored} writes took the payload"
    fired, injected, visited = [], [], 0
    for role, email in (("admin", ADMIN), ("requester", REQUESTER_A)):
        crawler = app.test_client()
        sign_in(crawler, email, password_of(email))
        urls = [u for u, html in every_plugin.crawl(crawler).items() if MARKER in html]
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.on("dialog", lambda dialog, r=role, p=page: (
            fired.append((r, p.url, dialog.message)), dialog.dismiss()))
        page.goto(live_server + "/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password_of(email))
        page.click("button[type=submit]")
        page.wait_for_url("**/home")
        for url in urls:
            page.goto(live_server + url)
            visited += 1
            found = page.evaluate(
                "() => [...document.querySelectorAll("
                f"'#{MARKER}, img[src=\"x\"], svg[onload], script:not([src]), "
                "a[href^=\"javascript:\"]')].map(e => e.outerHTML.slice(0, 80))")
            if found:
                injected.append(f"{role} {url}: {found}")
            assert MARKER in page.content(), f"{url}: the payload should show as text"
        page.close()
    print(f"stored XSS: {stored} writes, {visited} pages holding the payload opened")
    assert visited >= 5
    assert fired == [] and injected == [], "\n".join([*map(str, fired), *injected])


# -- sign-in, passwords, tokens ---------------------------------------------------------------


def test_sign_in_from_one_address_is_throttled_across_many_accounts(app, client, admin):
    for attempt in range(auth.LOGIN_MAX_PER_ADDRESS):
        token = every_plugin.csrf_of(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"email": f"guess{attempt}@it.example", "password": "x",
                                    "csrf_token": token})
    token = every_plugin.csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": ADMIN, "password": ADMIN_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 429
    assert client.get("/home").status_code == 302


@pytest.mark.parametrize(("password", "why"), [
    ("short", "at least 8 characters"),
    ("kim@it.example", "e-mail address"),
    ("KIM@it.example", "e-mail address"),
    ("kim", "at least 8 characters"),
    ("x" * 2000, "at most 1024 characters"),
])
def test_password_policy_is_the_same_for_the_cli_and_the_console(app, runner, client,
                                                                password, why):
    added = runner.invoke(["users", "add", "kim@it.example", "--role", "agent",
                           "--password", password])
    assert added.exit_code != 0 and why in added.output + str(added.exception)
    assert runner.invoke(["users", "add", "kim@it.example", "--role", "agent",
                          "--password", "kim's own long secret"]).exit_code == 0
    changed = runner.invoke(["users", "password", "kim@it.example", "--password", password])
    assert changed.exit_code != 0 and why in changed.output + str(changed.exception)
    sign_in(client, "kim@it.example", "kim's own long secret")
    token = every_plugin.csrf_of(client.get("/account/password").get_data(as_text=True))
    page = client.post("/account/password", data={
        "current_password": "kim's own long secret", "new_password": password,
        "confirm_password": password, "csrf_token": token})
    assert page.status_code == 422 and why in page.get_data(as_text=True)


def test_a_long_password_that_is_not_the_address_is_accepted(app, runner):
    result = runner.invoke(["users", "add", "lee@it.example", "--password",
                            "lee@it.example's own long secret"])
    assert result.exit_code == 0, result.output
    # The address with a character added is the address still.
    result = runner.invoke(["users", "add", "kit@it.example", "--password", "kit@it.example!"])
    assert result.exit_code != 0 and "mostly the e-mail address" in str(result.exception)


def test_tokens_expire_and_revoked_tokens_stop_at_once(app, client, runner, make_token):
    headers = make_token("tok@it.example", role="agent")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    # A token made through the API for one day works until its day is over.
    made = client.post("/api/v1/tokens", json={"name": "one day", "days": 1}, headers=headers)
    assert made.status_code == 201
    short = {"Authorization": f"Bearer {made.get_json()['token']}"}
    assert client.get("/api/v1/me", headers=short).status_code == 200
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        session.execute(update(ApiToken).where(ApiToken.id == made.get_json()["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    expired = client.get("/api/v1/me", headers=short)
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == "Bearer"
    # Revoked through the API: the next call is refused.
    other = client.post("/api/v1/tokens", json={"name": "revoke me"}, headers=headers)
    revoked = {"Authorization": f"Bearer {other.get_json()['token']}"}
    assert client.delete(f"/api/v1/tokens/{other.get_json()['id']}",
                         headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=revoked).status_code == 401
    # Nobody revokes someone else's token.
    intruder = make_token("intruder@it.example", role="agent")
    first = client.get("/api/v1/tokens", headers=headers).get_json()["items"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{first}", headers=intruder).status_code == 404
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    # Revoked with the CLI.
    listed = runner.invoke(["users", "tokens", "tok@it.example"])
    assert listed.exit_code == 0, listed.output
    token_id = int(re.search(r"^\s*(\d+)", listed.output, re.M).group(1))
    assert runner.invoke(["users", "revoke", str(token_id)]).exit_code == 0
    assert client.get("/api/v1/me", headers=headers).status_code == 401


# -- sign-in methods' routes -------------------------------------------------------------------

HOSTILE = ["", "x" * 5000, "../../admin", "<script>alert(1)</script>", "'\"><svg onload=x>",
           "%00", "\u0000nul", "https://evil.example/", "//evil.example", "état\u202e",
           "a@b@c", "@", "ann@dmv.example.org\r\nSet-Cookie: x=1"]


def test_sign_in_routes_answer_hostile_input_without_a_5xx_or_a_reflected_script(app):
    """Every GET route of the sign-in plugins (``/sso/...``: the provider chosen by e-mail,
    by name, and the callback with a forged state, code, error and description), called
    anonymously with hostile values, answers with the sign-in page or a redirect to it:
    never a 5xx, never the value as markup, never a redirect to another site."""
    itsm = app.extensions["itsm"]
    itsm.settings.update({"plugins.oidc.providers": {"state": {
        "issuer": "http://127.0.0.1:9", "client_id": "itsm", "client_secret": "s",
        "domains": ["dmv.example.org"]}}})
    itsm.settings._plugins.clear()  # settings are read once per plugin
    rules = [r for r in app.url_map.iter_rules()
             if r.rule.startswith("/sso/") and "GET" in (r.methods or ())]
    assert {r.endpoint for r in rules} >= {"oidc.choose", "oidc.start", "oidc.callback"}
    problems, calls = [], 0
    for rule in rules:
        for value in HOSTILE + ["state"]:
            url = rule.rule
            for name in rule.arguments:
                url = re.sub(rf"<(?:[^:<>]+:)?{name}>", value.replace("/", "%2F") or "x", url)
            queries = [{"email": value}, {"state": value, "code": value},
                       {"state": value, "error": value, "error_description": value}]
            for query in queries:
                client = app.test_client()
                response = client.get(url, query_string=query, follow_redirects=True)
                calls += 1
                location = response.request.path
                text = response.get_data(as_text=True)
                if response.status_code >= 500:
                    problems.append(f"{url} {query}: {response.status_code}")
                elif not location.startswith(("/login", "/sso/")):
                    problems.append(f"{url} {query}: ended at {location}")
                elif "<script>alert(1)" in text or "<svg onload" in text:
                    problems.append(f"{url} {query}: the value came back as markup")
                elif response.status_code == 200 and header_problems(response):
                    problems.append(f"{url} {query}: {header_problems(response)}")
    print(f"sign-in routes: {len(rules)} routes, {calls} hostile calls")
    assert problems == [], "\n".join(problems[:40])


def test_sign_in_admin_forms_refuse_hostile_input_at_their_fields(app, demo):
    """The sign-in plugins' admin forms (mapping rules, "test a person"), sent hostile
    values by an admin: a 4xx page with the field's message, never a 5xx or the value
    as markup; nothing stored."""
    from sqlalchemy import func, select

    from itsm.plugins.ldap.models import LdapRule
    from itsm.plugins.oidc.models import OidcRule

    client = app.test_client()
    sign_in(client, ADMIN, ADMIN_PASSWORD)
    forms = {"/admin/sign-in/ldap/rules": ("kind", "match", "value"),
             "/admin/sign-in/oidc/rules": ("provider", "kind", "match", "value"),
             "/admin/sign-in/ldap/test": ("email",),
             "/admin/sign-in/oidc/test": ("provider", "base", "email", "groups")}
    problems, calls = [], 0
    for url, names in forms.items():
        for value in HOSTILE:
            with client.session_transaction() as cookie:
                token = cookie["csrf"]
            response = client.post(url, data={**{n: value for n in names},
                                              "csrf_token": token})
            calls += 1
            text = response.get_data(as_text=True)
            if response.status_code >= 500:
                problems.append(f"{url} {value[:30]!r}: {response.status_code}")
            elif url.endswith("/rules") and response.status_code != 422:
                problems.append(f"{url} {value[:30]!r}: {response.status_code}, not 422")
            elif "<script>alert(1)" in text or "<svg onload" in text:
                problems.append(f"{url} {value[:30]!r}: the value came back as markup")
    with app.app_context(), app.extensions["itsm"].Session() as session:
        stored = session.scalar(select(func.count()).select_from(LdapRule)) + \
            session.scalar(select(func.count()).select_from(OidcRule))
    print(f"sign-in admin forms: {calls} hostile posts")
    assert problems == [] and stored == 0, "\n".join(problems)
