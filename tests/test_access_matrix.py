"""The access matrix: role × agency × record type × page, every cell as the permission
model says, every built-in plugin enabled; and no read across agencies by any way in
(search, reports, links, attachments, journals, pages, inbound e-mail replies).

The model, in one table (``PAGES``) and one rule (``granted``):

- an anonymous caller gets 401 from every protected operation;
- an admin may do everything;
- any other role holds a permission when the plugin declares it for that role
  (``itsm_permissions`` and the record type's defaults);
- a requester stays inside their agency: another agency's record answers 404 on every
  page, as if it did not exist, and is never listed or found;
- a requester may move their own record through the transitions the workflow opens to
  requesters; an agent works records no group holds yet (the targets here).

The record types come from the enabled plugins, the roles from the permissions they
declare, so a new plugin's records and roles join the matrix without an edit here.
"""

from __future__ import annotations

import io
import re
from email.message import EmailMessage
from email.utils import make_msgid

import every_plugin
import pytest
from sqlalchemy import func, select

from itsm.core.auth import CORE_ROLES
from itsm.core.models import JournalEntry
from itsm.core.notify import reply_token

AGENCY_A, AGENCY_B = "DOT", "DOH"
REQUESTER_A, REQUESTER_B = "pat@dot.demo.invalid", "sam@doh.demo.invalid"
CANARY = "Zanzibarcanary"  # a word only agency B's records hold

# page: (permission, method, path after the record, body, status when done,
#        status when the permission is missing; a record the caller may not read
#        answers 404 on every page but the list, which leaves it out)
PAGES = {
    "list":        ("read", "GET", None, None, 200, 403),
    "search":      ("read", "GET", None, None, 200, 403),
    "read":        ("read", "GET", "", None, 200, 404),
    "journal":     ("read", "GET", "/journal", None, 200, 404),
    "links":       ("read", "GET", "/links", None, 200, 404),
    "attachments": ("read", "GET", "/attachments", None, 200, 404),
    "sla":         ("read", "GET", "/sla", None, 200, 404),
    "update":      ("update", "PATCH", "", {"title": "Edited in the matrix"}, 200, 403),
    "comment":     ("comment", "POST", "/comments", {"body": "Matrix comment"}, 201, 403),
    "attach":      ("comment", "POST", "/attachments", "file", 201, 403),
    "transition":  ("transition", "POST", "/transitions", "first", 200, 409),
}


# Where a plugin narrows the core rule for requesters with its own itsm_permission_check:
# record type -> (requesters may call the generic list, requesters may read this record).
NARROWER_FOR_REQUESTERS = {
    # They find articles through the knowledge search, and read published ones only.
    "article": (False, lambda record: record["state"] == "published"),
    # An agency reads its own agreement once it is active, and nothing else of the plugin.
    "mou": (True, lambda record: record["state"] == "active"),
}


def granted(role: str, permission, actor_agency: str | None, record_agency: str) -> bool:
    """The permission model of the core (``default_permission_check``), for a record
    no group holds."""
    if role == "admin":
        return True
    if permission is None or role not in permission.roles:
        return False
    return role != "requester" or actor_agency == record_agency


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def people(app, runner, make_token):
    """Every role: anonymous, both agencies' requesters, an agent, an admin, and one user
    for each role a plugin declares. ``{name: (role, agency, headers)}``."""
    every_plugin.load_demo(runner)
    itsm = app.extensions["itsm"]
    cast = {"anonymous": ("anonymous", None, {}),
            "requester A": ("requester", AGENCY_A,
                            make_token(REQUESTER_A, role="requester", agency=AGENCY_A)),
            "requester B": ("requester", AGENCY_B,
                            make_token(REQUESTER_B, role="requester", agency=AGENCY_B)),
            "agent": ("agent", None, make_token("matrix-agent@it.example", role="agent")),
            "admin": ("admin", None, make_token("matrix-admin@it.example", role="admin"))}
    declared = {role for p in itsm.permissions.values() for role in p.roles}
    for role in sorted(declared - set(CORE_ROLES)):
        cast[role] = (role, None, make_token(f"matrix-{role}@it.example", role=role))
    cast.update(directory_people(app, make_token))
    return cast


def directory_people(app, make_token) -> dict:
    """Users the sign-in plugins made, as they make them at sign-in: the directory's
    groups mapped by the ldap and oidc plugins' own rules to role and agency, the user
    created by the core from that identity (no local password), then given a token."""
    from itsm.core.auth import known_roles, provision_user
    from itsm.plugins.ldap import service as ldap
    from itsm.plugins.oidc import service as oidc

    itsm = app.extensions["itsm"]
    roles = known_roles(list(itsm.permissions.values()))
    groups = "ou=groups,dc=state,dc=example"
    ldap_rules = {"roles": {f"cn=desk,{groups}": "agent"}, "groups": {},
                  "agencies": {f"cn=dot-staff,{groups}": AGENCY_A,
                               f"cn=doh-staff,{groups}": AGENCY_B},
                  "default_role": "requester"}
    provider = oidc.Provider(name="state", issuer="https://id.state.example",
                             client_id="itsm", client_secret="", label="State ID",
                             roles={"it-desk": "agent"},
                             agencies={"dot-staff": AGENCY_A, "doh-staff": AGENCY_B})

    def ldap_identity(email: str, *member_of: str):
        person = ldap.Person(dn=f"uid={email.split('@')[0]},ou=people,dc=state,dc=example",
                             email=email, name=email, phone="",
                             groups=tuple(f"cn={g},{groups}" for g in member_of))
        return ldap.identity_for(ldap_rules, person, roles)

    def oidc_identity(email: str, *member_of: str):
        return oidc.identity_for(provider, {"email": email, "email_verified": True,
                                            "groups": list(member_of)}, roles)

    made = {"ldap requester A": ldap_identity("lee@dot.demo.invalid", "dot-staff"),
            "ldap requester B": ldap_identity("lou@doh.demo.invalid", "doh-staff"),
            "ldap agent": ldap_identity("lin@it.example", "desk"),
            "oidc requester A": oidc_identity("oda@dot.demo.invalid", "dot-staff"),
            "oidc requester B": oidc_identity("obi@doh.demo.invalid", "doh-staff"),
            "oidc agent": oidc_identity("oz@it.example", "it-desk", "doh-staff")}
    cast = {}
    with app.app_context(), itsm.Session() as session:
        for who, identity in made.items():
            user = provision_user(session, identity)
            assert user.auth_source in ("ldap", "oidc") and not user.password_hash
            session.commit()
            agency = identity.agency if identity.role == "requester" else None
            cast[who] = (identity.role, agency, None)
    return {who: (role, agency, make_token(made[who].email))
            for who, (role, agency, _) in cast.items()}


def open_target(client, app, admin: dict, rt, title: str, agency: str = AGENCY_A) -> str:
    """A record of type ``rt`` in ``agency``, requested by that agency's requester and
    held by no group. Made from a title, or else as a copy of a demo record."""
    base = f"/api/v1/{rt.collection}"
    requester = REQUESTER_A if agency == AGENCY_A else REQUESTER_B
    core = {"agency": agency, "requester": requester}
    made = client.post(base, json={"title": title, **core}, headers=admin)
    if made.status_code != 201:
        fields = app.extensions["itsm"].types.schemas[rt.name]["in"]().fields
        writable = {f.data_key or name for name, f in fields.items() if not f.dump_only}
        demo = client.get(base, headers=admin).get_json()["items"]
        assert demo, f"no way to open a {rt.name}: {made.get_json()}"
        copy = {k: v for k, v in demo[0].items() if k in writable and v not in (None, "", [])}
        made = client.post(base, json={**copy, "title": title, **core, "group": None,
                                       "assignee": None}, headers=admin)
    assert made.status_code == 201, (rt.name, made.get_json())
    return made.get_json()["number"]


def call_page(client, rt, page: str, number: str, headers: dict):
    permission, method, suffix, body, _, _ = PAGES[page]
    base = f"/api/v1/{rt.collection}"
    if page == "list":
        return client.get(base, query_string={"limit": 200}, headers=headers)
    if page == "search":
        return client.get(base, query_string={"q": number}, headers=headers)
    url = f"{base}/{number}{suffix}"
    if body == "file":
        return client.post(url, data={"file": (io.BytesIO(b"matrix"), "matrix.txt")},
                           content_type="multipart/form-data", headers=headers)
    if body == "first":
        return client.post(url, json={"name": first_transition(rt).name}, headers=headers)
    return client.open(url, method=method, json=body, headers=headers)


def first_transition(rt):
    """The first transition the workflow has from the record's initial state."""
    return rt.workflow.from_state(rt.workflow.initial)[0]


def expected(rt, page: str, role: str, agency: str | None, itsm, record: dict):
    """(status, listed) the model promises for one cell."""
    permission_name, _, _, _, done, refused = PAGES[page]
    declared = itsm.permissions
    if role == "anonymous":
        return 401, False
    readable = granted(role, declared.get(f"{rt.name}.read"), agency, AGENCY_A)
    may_list = role == "admin" or role in getattr(declared.get(f"{rt.name}.read"),
                                                   "roles", ())
    if role == "requester" and rt.name in NARROWER_FOR_REQUESTERS:
        lists, reads = NARROWER_FOR_REQUESTERS[rt.name]
        may_list, readable = may_list and lists, readable and reads(record)
    if page in ("list", "search"):
        return (200, readable) if may_list else (refused, False)
    if not readable:
        return 404, False
    permission = declared.get(f"{rt.name}.{permission_name}")
    allowed = granted(role, permission, agency, AGENCY_A)
    if page == "transition":
        transition = first_transition(rt)
        allowed = allowed or (transition.requester and agency == AGENCY_A
                              and role == "requester")
    return (done if allowed else refused), False


def test_every_cell_of_the_access_matrix_answers_as_the_model_says(app, client, people):
    itsm = app.extensions["itsm"]
    admin = people["admin"][2]
    types = [rt for rt in itsm.types if rt.workflow.from_state(rt.workflow.initial)]
    assert len(types) >= 5, "every built-in record type should be in the matrix"
    wrong, cells = [], 0
    for rt in types:
        for who, (role, agency, headers) in people.items():
            number = open_target(client, app, admin, rt, f"Matrix {rt.name} for {who}")
            record = client.get(f"/api/v1/{rt.collection}/{number}", headers=admin).get_json()
            for page in PAGES:
                status, listed = expected(rt, page, role, agency, itsm, record)
                response = call_page(client, rt, page, number, headers)
                cells += 1
                got = response.status_code
                body = response.get_json(silent=True) or {}
                ok = got == status
                if page == "transition" and status == 200:
                    # Allowed to move: the workflow may still ask for fields (409/422),
                    # but never for lack of permission.
                    reasons = " ".join((body.get("error") or {}).get("reasons", []))
                    ok = got in (200, 409, 422) and "may not move" not in reasons
                elif page == "transition" and status == 409:
                    reasons = " ".join((body.get("error") or {}).get("reasons", []))
                    ok = got == 409 and "may not move" in reasons
                if ok and page in ("list", "search") and got == 200:
                    numbers = {item.get("number") for item in body.get("items", [])}
                    ok = (number in numbers) == listed
                    if page == "list" and not listed and role == "requester":
                        ok = ok and all(item.get("agency") == agency
                                        for item in body.get("items", []))
                if not ok:
                    wrong.append(f"{rt.name:16} {who:14} {page:12} expected {status}"
                                 f"{' listed' if listed else ''}, got {got}: "
                                 f"{response.get_data(as_text=True)[:160]}")
    print(f"access matrix: {len(types)} record types × {len(people)} roles × {len(PAGES)} "
          f"pages = {cells} cells")
    assert wrong == [], f"{len(wrong)} of {cells} cells differ from the model:\n" + \
        "\n".join(wrong)


# -- nothing of agency B reaches agency A's requester, whatever the way in -------------------


def test_no_operation_nor_page_shows_another_agencys_records(app, client, people):
    """Agency B's records carry a canary word, a comment, a link and an attachment; agency
    A's requester then calls every GET operation of the document, searches for the word,
    and walks every console and portal page reachable from the home page."""
    itsm = app.extensions["itsm"]
    admin = people["admin"][2]
    secrets_of_b: set[str] = {CANARY}
    for rt in itsm.types:
        number = open_target(client, app, admin, rt, f"{CANARY} secret of B", AGENCY_B)
        secrets_of_b.add(number)
        base = f"/api/v1/{rt.collection}/{number}"
        client.post(f"{base}/comments", json={"body": f"{CANARY} comment"}, headers=admin)
        client.post(f"{base}/attachments", headers=admin, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(CANARY.encode()), f"{CANARY}.txt")})
    # A record of A linked to one of B: A's requester sees the link of neither side.
    first = next(iter(itsm.types))
    mine = open_target(client, app, admin, first, "Printer of A")
    theirs = sorted(n for n in secrets_of_b if n.startswith(first.prefix))[0]
    client.post(f"/api/v1/{first.collection}/{mine}/links", json={"target": theirs},
                headers=admin)

    requester = people["requester A"][2]
    document = client.get("/api/v1/openapi.json").get_json()
    known = every_plugin.path_values(client, admin, document)
    leaks, calls = [], 0
    for method, template, operation in every_plugin.operations(document):
        if method != "get":
            continue
        if "{" in template and template not in known:
            continue
        url = template.format(**known[template]) if "{" in template else template
        queries = [{}]
        if any(p["name"] == "q" for p in operation.get("parameters", [])):
            queries.append({"q": CANARY})
        for query in queries:
            response = client.get(url, query_string=query, headers=requester)
            calls += 1
            leaks += [f"GET {url} {query}: {s}" for s in _found(response, secrets_of_b, url)]
    for url, html in every_plugin.crawl(client, people_login(client, REQUESTER_A)).items():
        calls += 1
        leaks += [f"page {url}: {s}" for s in sorted(secrets_of_b) if s in html]
    for rt in itsm.types:  # a guess at a page of each of B's records
        for number in sorted(n for n in secrets_of_b if n.startswith(rt.prefix)):
            for url in (f"/records/{rt.collection}/{number}",):
                response = client.get(url)
                leaks += [f"page {url}: {s}" for s in _found(response, secrets_of_b, url)]
    print(f"cross-agency probe: {calls} calls by {REQUESTER_A}")
    assert calls > 50
    assert leaks == [], "\n".join(leaks)


def test_queue_views_counts_and_totals_stay_inside_the_agency(app, client, people):
    """Agency A's requester lists every type's queue, each built-in view, a sort by agency
    and requester, and the API's total: none shows or counts a record of agency B."""
    from itsm.core.queues import builtin_views

    itsm = app.extensions["itsm"]
    admin = people["admin"][2]
    requester = people["requester A"][2]
    secrets_of_b: set[str] = set()
    for rt in itsm.types:
        secrets_of_b.add(open_target(client, app, admin, rt, f"{CANARY} queue of B", AGENCY_B))
    people_login(client, REQUESTER_A)
    leaks = []
    for rt in itsm.types:
        base = f"/api/v1/{rt.collection}"
        listed = client.get(base, query_string={"limit": 200}, headers=requester)
        if listed.status_code != 200:
            continue
        body = listed.get_json()
        if body["total"]["exact"] and body["next"] is None \
                and body["total"]["count"] != len(body["items"]):
            leaks.append(f"{base}: total {body['total']} for {len(body['items'])} items")
        for args in ({"q": CANARY}, {"agency": AGENCY_B}, {"sort": "agency"}):
            answer = client.get(base, query_string=args, headers=requester).get_json()
            if args != {"sort": "agency"} and answer["total"]["count"]:
                leaks.append(f"{base} {args}: counts {answer['total']['count']}")
            leaks += [f"{base} {args}: {s}" for s in
                      _found(client.get(base, query_string=args, headers=requester),
                             secrets_of_b, base)]
        for view in [None, *builtin_views(rt)]:
            url = f"/records/{rt.collection}" + (f"?view={view.key}" if view else "")
            page = client.get(url)
            leaks += [f"page {url}: {s}" for s in _found(page, secrets_of_b, url)]
            if CANARY in page.get_data(as_text=True):
                leaks.append(f"page {url}: {CANARY}")
    assert leaks == [], "\n".join(leaks)


def _found(response, secrets: set[str], url: str) -> list[str]:
    """The secrets in the answer, but for those the caller sent (a 404 names the number
    it did not find)."""
    text = response.get_data(as_text=True)
    return [secret for secret in sorted(secrets) if secret in text and secret not in url]


def people_login(client, email: str) -> str:
    """Sign ``email`` in to the console with the demo password; the home page's URL."""
    from itsm.core.demo import DEMO_PASSWORD

    page = client.get("/login")
    token = every_plugin.csrf_of(page.get_data(as_text=True))
    signed = client.post("/login", data={"email": email, "password": DEMO_PASSWORD,
                                         "csrf_token": token})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:300]
    return "/home"


# -- inbound e-mail ----------------------------------------------------------------------------


def reply(number: str, sender: str, secret_key: str) -> bytes:
    """A reply as to a mail itsm sent ``sender`` about ``number`` (with its reply token),
    so that only the permissions decide."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"desk+{reply_token(secret_key, number, sender)}@itsm.example"
    message["Subject"] = f"Re: [{number}] your ticket"
    message["Message-ID"] = make_msgid(domain="matrix.example")
    message.set_content(f"{CANARY} reply from {sender}")
    return message.as_bytes()


def taken(result) -> bool:
    """``itsm mail ingest`` took the mail (not refused, with or without a bounce)."""
    return result.exit_code == 0 and result.output.startswith(("created", "commented"))


def test_an_email_reply_reaches_a_record_only_through_its_agency(app, runner, people):
    """Every record type: the other agency's requester can neither add a reply to a
    record nor learn its title; its own requester adds one where the model lets them."""
    itsm = app.extensions["itsm"]
    if "mailgate" not in {info.name for info in itsm.host.plugins.values()
                          if itsm.host.is_enabled(info.name)}:
        pytest.skip("the inbound e-mail plugin is not built in")
    admin = people["admin"][2]
    client = app.test_client()
    wrong = []
    for rt in itsm.types:
        title = f"Mail target {rt.name} secret title"
        number = open_target(client, app, admin, rt, title)

        def journal_size() -> int:
            with itsm.Session() as session:
                return session.scalar(select(func.count()).select_from(JournalEntry)
                                      .where(JournalEntry.body.contains(CANARY)))

        before = journal_size()
        secret = itsm.settings["secret_key"]
        result = runner.invoke(["mail", "ingest"], input=reply(number, REQUESTER_B, secret))
        if taken(result) or journal_size() != before or "secret" in result.output:
            wrong.append(f"{rt.name}: the other agency's reply: {result.output.strip()}")
        may_comment = granted("requester", itsm.permissions.get(f"{rt.name}.comment"),
                              AGENCY_A, AGENCY_A)
        result = runner.invoke(["mail", "ingest"], input=reply(number, REQUESTER_A, secret))
        added = journal_size() == before + 1
        if added != may_comment or taken(result) != may_comment:
            wrong.append(f"{rt.name}: own requester's reply (may comment: {may_comment}): "
                         f"{result.output.strip()}")
    assert wrong == [], "\n".join(wrong)


def test_anonymous_gets_401_from_every_protected_operation(app, client):
    """The first row of the matrix for every operation of the document, the plugins'
    reports and exports included: without a token, 401 before anything else is looked at."""
    document = client.get("/api/v1/openapi.json").get_json()
    wrong, protected = [], 0
    for method, template, operation in every_plugin.operations(document):
        if operation.get("security", document.get("security")) == []:
            continue
        protected += 1
        # A value of the parameter's shape (a record number is letters then digits: a
        # path that is no operation's answers 404 to anyone).
        enums = {p["name"]: p["schema"]["enum"][0] if "enum" in p["schema"]
                 else p["schema"]["example"] for p in operation.get("parameters", [])
                 if "enum" in p.get("schema", {}) or "example" in p.get("schema", {})}
        url = re.sub(r"\{([^}]+)\}", lambda m, e=enums: str(e.get(m.group(1), 1)), template)
        for headers in ({}, {"Authorization": "Bearer itsm_forged"}):
            response = client.open(url, method=method.upper(), json={}, headers=headers)
            if response.status_code != 401 or \
                    response.headers.get("WWW-Authenticate") != "Bearer":
                wrong.append(f"{method.upper()} {template} {headers}: "
                             f"{response.status_code}")
    assert protected > 100
    assert wrong == [], "\n".join(wrong)


ADMIN_PASSWORD = "matrix admin passphrase"


def _admin_url(rule) -> str:
    """A URL of an admin page's rule, with a value of each argument's shape."""
    values = {}
    for name in rule.arguments:
        converter = rule._converters.get(name)
        options = getattr(converter, "items", None) or getattr(converter, "options", None)
        if options:
            values[name] = sorted(options)[0]
        elif type(converter).__name__.endswith("IntegerConverter"):
            values[name] = 1
        else:
            values[name] = "tickets" if name == "name" else "x"
    return rule.build(values, append_unknown=False)[1]


def test_non_admins_get_403_on_every_admin_page_and_admin_api(app, make_token):
    """Every view protected by ``admin_view`` (the core's admin area and every plugin's
    admin pages), by GET and POST, refuses each role that does not hold its permission;
    the groups API refuses writes to all but admins and reads to requesters."""
    import re as _re

    itsm = app.extensions["itsm"]
    make_token("matrix-root@it.example", role="admin", password=ADMIN_PASSWORD)
    cast = {"requester": make_token("m-req@it.example", role="requester", agency=AGENCY_A,
                                    password=ADMIN_PASSWORD),
            "agent": make_token("m-agent@it.example", role="agent", password=ADMIN_PASSWORD)}
    declared = {role for p in itsm.permissions.values() for role in p.roles}
    for role in sorted(declared - set(CORE_ROLES)):
        cast[role] = make_token(f"m-{role}@it.example", role=role, password=ADMIN_PASSWORD)
    rules = [(rule, app.view_functions[rule.endpoint].admin_permission)
             for rule in app.url_map.iter_rules()
             if hasattr(app.view_functions.get(rule.endpoint), "admin_permission")]
    assert len(rules) >= 15
    wrong, checked = [], 0
    for role, headers in cast.items():
        email = f"m-{role.replace('requester', 'req')}@it.example"
        client = app.test_client()
        token = _re.search(r'name="csrf_token" value="([^"]+)"',
                           client.get("/login").text).group(1)
        assert client.post("/login", data={"email": email, "password": ADMIN_PASSWORD,
                                           "csrf_token": token}).status_code == 302
        with client.session_transaction() as state:
            csrf = state["csrf"]
        for rule, permission in rules:
            held = permission in itsm.permissions and role in itsm.permissions[permission].roles
            if held:
                continue
            url = _admin_url(rule)
            for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                checked += 1
                response = client.open(url, method=method, data={"csrf_token": csrf})
                if response.status_code != 403:
                    wrong.append(f"{role} {method} {url}: {response.status_code}")
        api = "/api/v1/groups"
        writes = [("POST", api, {"name": "Matrix group"}),
                  ("PATCH", f"{api}/1", {"name": "Renamed"}),
                  ("POST", f"{api}/1/members", {"email": "m-agent@it.example"}),
                  ("DELETE", f"{api}/1/members/m-agent@it.example", None)]
        reads = [("GET", api, None), ("GET", f"{api}/1", None), ("GET", f"{api}/1/members", None)]
        for method, url, body in writes + (reads if role == "requester" else []):
            checked += 1
            response = app.test_client().open(url, method=method, json=body, headers=headers)
            if response.status_code != 403:
                wrong.append(f"{role} {method} {url}: {response.status_code}")
    assert checked > 60
    assert wrong == [], "\n".join(wrong)


# -- the admin area ----------------------------------------------------------------------------


def test_every_admin_page_refuses_who_lacks_its_permission(app, make_token):
    """Each page of the admin sidebar, the core's and every plugin's, opens (200) for the
    roles holding its permission and answers 403 to every other signed-in role."""
    from flask import url_for

    from itsm.core.admin.kit import admin_pages

    itsm = app.extensions["itsm"]
    password = "correct horse battery"
    roles = sorted({"requester", "agent", "admin",
                    *(r for p in itsm.permissions.values() for r in p.roles)})
    with app.test_request_context():
        pages = [(page, url_for(page.endpoint)) for _, page in admin_pages()]
    assert {"/admin/service-levels", "/admin/catalog/"} <= {url for _, url in pages}
    wrong = []
    for role in roles:
        email = f"admin-matrix-{role}@it.example"
        make_token(email, role=role, agency=AGENCY_A if role == "requester" else None,
                   password=password)
        client = app.test_client()
        token = every_plugin.csrf_of(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token}).status_code == 302
        for page, url in pages:
            declared = itsm.permissions.get(page.permission)
            allowed = role == "admin" or (declared is not None and role in declared.roles)
            got = client.get(url).status_code
            if got != (200 if allowed else 403):
                wrong.append(f"{role:16} {url}: {got}")
    assert not wrong, "\n".join(wrong)
# -- in-app notifications ----------------------------------------------------------------------


def test_notifications_never_carry_another_agencys_records(app, client, people):
    """Events of agency B's records that name agency A's requester (as an approver, in a
    work note) never reach A's inbox; the same of A's own record does."""
    from itsm.core.models import Event, Record

    itsm = app.extensions["itsm"]
    admin = people["admin"][2]
    theirs = [open_target(client, app, admin, rt, f"{CANARY} secret of B", AGENCY_B)
              for rt in itsm.types]
    first = next(iter(itsm.types))
    mine = open_target(client, app, admin, first, "Printer of A")
    for rt, number in zip(itsm.types, theirs, strict=True):
        client.post(f"/api/v1/{rt.collection}/{number}/comments", headers=admin,
                    json={"body": f"@{REQUESTER_A} {CANARY}", "public": False})
    with app.app_context(), itsm.Session() as session:
        for number in [*theirs, mine]:
            record = session.scalar(select(Record).where(Record.number == number))
            session.add(Event(name="matrix.approval_requested", record_id=record.id,
                              payload={"record": {"number": number, "type": record.type,
                                                  "title": record.title},
                                       "approvers": [REQUESTER_A]}))
        session.commit()
        itsm.outbox.fan_out(limit=10_000)
        itsm.outbox.deliver_due(10_000, only=["inbox"])
    requester = people["requester A"][2]
    listed = client.get("/api/v1/notifications", headers=requester)
    assert listed.status_code == 200
    assert [n["record"]["number"] for n in listed.json["items"]] == [mine]
    web = app.test_client()
    people_login(web, REQUESTER_A)
    page = web.get("/notifications").get_data(as_text=True)
    assert mine in page
    assert [s for s in [CANARY, *theirs] if s in page] == []
# -- configuration items: a table of their own, scoped by agency -------------------------------

# (method, path after /api/v1/cmdb, body) -> the roles that may; others get 403 (or 404
# for a CI they may not read). "{ci}" is a CI of agency A, used by nobody else.
CMDB_CELLS = (
    ("GET", "/cis", None, ("admin", "agent", "requester")),
    ("GET", "/cis/{ci}", None, ("admin", "agent", "requester A")),
    ("GET", "/cis/{ci}/impact", None, ("admin", "agent", "requester A")),
    ("PATCH", "/cis/{ci}", {"location": "Matrix room"}, ("admin", "agent")),
    ("POST", "/cis", {"name": "Matrix server", "type": "server"}, ("admin", "agent")),
    ("POST", "/types", {"key": "matrix", "label": "Matrix"}, ("admin",)),
    ("POST", "/import", {"format": "json", "content": "[]", "keep_missing": True},
     ("admin",)),
)


def test_configuration_items_answer_by_role_and_stay_inside_their_agency(app, client,
                                                                          people):
    admin = people["admin"][2]
    mine = client.post("/api/v1/cmdb/cis", headers=admin, json={
        "name": "Matrix application of A", "type": "application", "agency": AGENCY_A})
    theirs = client.post("/api/v1/cmdb/cis", headers=admin, json={
        "name": f"{CANARY} database of B", "type": "database", "agency": AGENCY_B})
    shared = client.post("/api/v1/cmdb/cis", headers=admin, json={
        "name": f"{CANARY} service used by B", "type": "business_service",
        "used_by": [AGENCY_B]})
    assert {mine.status_code, theirs.status_code, shared.status_code} == {201}
    ci = mine.get_json()["id"]
    wrong = []
    for who, (role, agency, headers) in people.items():
        for method, path, body, allowed in CMDB_CELLS:
            url = "/api/v1/cmdb" + path.format(ci=ci)
            response = client.open(url, method=method, json=body, headers=headers)
            # "requester A" stands for every requester of agency A, directory-made too.
            may = role in allowed or who in allowed or (
                role == "requester" and agency == AGENCY_A and "requester A" in allowed)
            if role == "anonymous":
                want = (401,)
            elif may:
                want = (200, 201)
            elif "{ci}" in path and role == "requester":
                want = (404, 403)
            else:
                want = (403,)
            if response.status_code not in want:
                wrong.append(f"{who:12} {method} {path}: {response.status_code} not {want}")
    assert wrong == [], "\n".join(wrong)
    requester = people["requester A"][2]
    for path in ("/cis", f"/cis?q={CANARY}", "/export", f"/cis/{ci}/impact",
                 f"/cis/{theirs.get_json()['id']}", f"/cis/{shared.get_json()['id']}/history"):
        text = client.get("/api/v1/cmdb" + path, headers=requester).get_data(as_text=True)
        assert CANARY not in text, path
    people_login(client, REQUESTER_A)
    for path in ("/cmdb/cis", f"/cmdb/cis?q={CANARY}", f"/cmdb/cis/{ci}/graph"):
        page = client.get(path)
        text = page.get_data(as_text=True)  # the search box repeats the words asked
        assert page.status_code == 200 and "of B" not in text and "by B" not in text, path
    wrong = []
    for email, may in ((REQUESTER_A, ()), ("agent@demo.invalid", ("write",))):
        browser = app.test_client()
        people_login(browser, email)
        with browser.session_transaction() as state:
            csrf = state["csrf"]
        for method, path, needs in CMDB_CONSOLE_CELLS:
            url = path.format(ci=ci)
            response = browser.open(url, method=method, data={"csrf_token": csrf})
            want = (200, 302, 422) if needs in may else (403,)
            if response.status_code not in want:
                wrong.append(f"{email} {method} {url}: {response.status_code} not {want}")
    assert wrong == [], "\n".join(wrong)


# The console's CI forms (method, path, what it needs): "write" is cmdb.write (agents by
# default), "admin" cmdb.admin (admins only); admin pages are also in the admin sweeps.
CMDB_CONSOLE_CELLS = (
    ("GET", "/cmdb/cis/new", "write"), ("POST", "/cmdb/cis/new", "write"),
    ("GET", "/cmdb/cis/{ci}/edit", "write"), ("POST", "/cmdb/cis/{ci}/edit", "write"),
    ("POST", "/cmdb/cis/{ci}/relations", "write"),
    ("POST", "/cmdb/cis/{ci}/retire", "write"),
    ("GET", "/admin/cmdb/types/", "admin"), ("POST", "/admin/cmdb/types/new", "admin"),
)


# -- satisfaction: reports to staff; an agency's people never see another agency's ----------


def test_satisfaction_reports_never_show_another_agencys_ratings(app, client, people,
                                                                make_token):
    from datetime import timedelta

    from itsm.core.models import Agency, utcnow
    from itsm.plugins.incident.models import Incident

    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        ids = {a.code: a.id for a in session.scalars(select(Agency))}
        for number, code in (("INC9900001", AGENCY_A), ("INC9900002", AGENCY_B)):
            session.add(Incident(number=number, type="incident", title="Rated",
                                 state="resolved", agency_id=ids[code], satisfaction=1,
                                 satisfaction_comment=f"{CANARY} of {code}"
                                 if code == AGENCY_B else "slow",
                                 resolved_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    for name in ("requester A", "requester B"):
        assert client.get("/api/v1/satisfaction",
                          headers=people[name][2]).status_code == 403
    everyone = client.get("/api/v1/satisfaction?by=agency", headers=people["admin"][2])
    assert everyone.status_code == 200
    assert {r["number"] for r in everyone.json["low"]} >= {"INC9900001", "INC9900002"}
    a_staff = make_token("matrix-a-agent@dot.example", role="agent", agency=AGENCY_A)
    theirs = client.get("/api/v1/satisfaction?by=agency", headers=a_staff)
    assert theirs.status_code == 200
    assert "INC9900002" not in theirs.text and CANARY not in theirs.text
    assert "INC9900001" in theirs.text
    assert len(theirs.json["items"]) == 1
