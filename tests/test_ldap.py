"""Sign-in with a directory, against a real OpenLDAP server (Debian's slapd) that each test
starts on 127.0.0.1 with a temporary database: two agencies' people and nested groups."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import textwrap
import time

import pytest
import sample_plugin
from sqlalchemy import select

import itsm.plugins.ldap as ldap_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.jobs import run_cycle
from itsm.core.models import Agency, ApiToken, Group, GroupMember, LoginFailure, User, WebSession

SUFFIX = "dc=example,dc=org"
ROOT_DN, ROOT_PW = f"cn=admin,{SUFFIX}", "root-secret-words"
READER_DN, READER_PW = f"uid=itsm-reader,ou=system,{SUFFIX}", "reader-secret-words"
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"
ANN_PW, BOB_PW, EVE_PW = "ann directory words", "bob directory words", "eve directory words"
SCHEMAS = ("core", "cosine", "inetorgperson")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')

DIRECTORY = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example State IT
dc: example

dn: ou=system,{SUFFIX}
objectClass: organizationalUnit
ou: system

dn: {READER_DN}
objectClass: account
objectClass: simpleSecurityObject
uid: itsm-reader
userPassword: {READER_PW}

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: uid=ann,{PEOPLE}
objectClass: inetOrgPerson
uid: ann
cn: Ann Lee
sn: Lee
displayName: Ann Lee
mail: ann@dmv.example.org
telephoneNumber: +1 555 0101
userPassword: {ANN_PW}

dn: uid=bob,{PEOPLE}
objectClass: inetOrgPerson
uid: bob
cn: Bob Ray
sn: Ray
displayName: Bob Ray
mail: bob@tax.example.org
userPassword: {BOB_PW}

dn: uid=eve,{PEOPLE}
objectClass: inetOrgPerson
uid: eve
cn: Eve Contractor
sn: Contractor
mail: eve@example.org
userPassword: {EVE_PW}

dn: {GROUPS}
objectClass: organizationalUnit
ou: groups

dn: cn=dmv-desk,{GROUPS}
objectClass: groupOfNames
cn: dmv-desk
member: uid=ann,{PEOPLE}

dn: cn=dmv-staff,{GROUPS}
objectClass: groupOfNames
cn: dmv-staff
member: cn=dmv-desk,{GROUPS}

dn: cn=tax-staff,{GROUPS}
objectClass: groupOfNames
cn: tax-staff
member: uid=bob,{PEOPLE}

dn: cn=itsm-users,{GROUPS}
objectClass: groupOfNames
cn: itsm-users
member: cn=dmv-staff,{GROUPS}
member: cn=tax-staff,{GROUPS}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ldap_tool(tool: str, url: str, ldif: str) -> None:
    subprocess.run([tool, "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW],
                   input=ldif, text=True, check=True, capture_output=True, timeout=30)


class Slapd:
    """A running slapd with the test directory; ``modify`` and ``delete`` change it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def modify(self, ldif: str) -> None:
        _ldap_tool("ldapmodify", self.url, textwrap.dedent(ldif))

    def add(self, ldif: str) -> None:
        _ldap_tool("ldapadd", self.url, textwrap.dedent(ldif))

    def delete(self, dn: str) -> None:
        subprocess.run(["ldapdelete", "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW, dn],
                       check=True, capture_output=True, timeout=30)


@pytest.fixture
def slapd(tmp_path) -> Slapd:
    """slapd on a free port of 127.0.0.1 with an mdb database in a temporary folder,
    loaded with ldapadd; stopped after the test. Missing slapd skips, except in CI."""
    binary = shutil.which("slapd") or next(
        (p for p in ("/usr/sbin/slapd", "/usr/local/sbin/slapd") if os.path.exists(p)), None)
    if binary is None or shutil.which("ldapadd") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("slapd and ldap-utils are needed: apt-get install slapd ldap-utils")
        pytest.skip("slapd and ldap-utils are not installed")
    folder = tmp_path / "slapd"
    (folder / "db").mkdir(parents=True)
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    (folder / "slapd.conf").write_text(f"""{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder / 'slapd.pid'}
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {folder / 'db'}
""")
    url = f"ldap://127.0.0.1:{_free_port()}/"
    log = open(folder / "slapd.log", "w")  # noqa: SIM115 - open while slapd runs
    server = subprocess.Popen([binary, "-d", "0", "-h", url, "-f", str(folder / "slapd.conf")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(["ldapwhoami", "-x", "-H", url, "-D", ROOT_DN, "-w",
                                    ROOT_PW], capture_output=True, timeout=10)
            if probe.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("slapd did not start: "
                                   + (folder / "slapd.log").read_text()[-2000:])
            time.sleep(0.1)
        _ldap_tool("ldapadd", url, DIRECTORY)
        yield Slapd(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def ldap_settings(url: str, **extra) -> dict:
    return {"plugins.ldap.url": url, "plugins.ldap.start_tls": False,
            "plugins.ldap.bind_dn": READER_DN, "plugins.ldap.bind_password": READER_PW,
            "plugins.ldap.user_base": PEOPLE, "plugins.ldap.group_base": GROUPS,
            "plugins.ldap.nested_groups": "search",
            "plugins.ldap.allowed_groups": [f"cn=itsm-users,{GROUPS}"],
            "plugins.ldap.roles": {f"cn=dmv-desk,{GROUPS}": "agent"},
            "plugins.ldap.groups": {f"cn=dmv-desk,{GROUPS}": "DMV desk"},
            "plugins.ldap.agencies": {f"cn=dmv-staff,{GROUPS}": "DMV",
                                      f"cn=tax-staff,{GROUPS}": "TAX"},
            **extra}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, ldap_plugin]


@pytest.fixture
def itsm_config(itsm_config, slapd):
    return {**itsm_config, **ldap_settings(slapd.url)}


@pytest.fixture
def install(app):
    """The agencies and the resolver group the rules name, and a local admin."""
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        ensure_agency(session, "DMV", "Motor Vehicles")
        ensure_agency(session, "TAX", "Revenue")
        ensure_group(session, "DMV desk")
        auth.create_user(session, "root@example.org", role="admin",
                         password="local admin words")
        session.commit()
    return app


def sign_in_page(web, email: str, password: str):
    token = CSRF_INPUT.search(web.get("/login").get_data(as_text=True)).group(1)
    return web.post("/login", data={"email": email, "password": password, "csrf_token": token})


def user_facts(app, email: str) -> dict:
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == email))
        agency = session.get(Agency, user.agency_id) if user.agency_id else None
        groups = sorted(session.scalars(select(Group.name).join(
            GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)))
        return {"name": user.name, "phone": user.phone, "role": user.role,
                "agency": agency.code if agency else None, "groups": groups,
                "source": user.auth_source, "local_password": bool(user.password_hash),
                "active": user.active}


def test_a_directory_user_signs_in_on_the_page_and_is_created_with_the_mapping(install):
    web = install.test_client()
    assert sign_in_page(web, "Ann@DMV.example.org", ANN_PW).status_code == 302
    assert web.get("/home").status_code == 200
    assert user_facts(install, "ann@dmv.example.org") == {
        "name": "Ann Lee", "phone": "+1 555 0101", "role": "agent", "agency": "DMV",
        "groups": ["DMV desk"], "source": "ldap", "local_password": False, "active": True}


def test_a_directory_user_gets_an_api_token_with_the_directory_password(install):
    api = install.test_client()
    made = api.post("/api/v1/tokens", json={"name": "scripts", "email": "bob@tax.example.org",
                                            "password": BOB_PW})
    assert made.status_code == 201, made.get_json()
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {made.json['token']}"})
    assert me.json == {"email": "bob@tax.example.org", "name": "Bob Ray",
                       "role": "requester", "agency": "TAX", "groups": []}


def test_a_wrong_directory_password_is_refused_and_counted_by_the_limit(install):
    web = install.test_client()
    for _ in range(auth.LOGIN_MAX_PER_EMAIL):
        assert sign_in_page(web, "ann@dmv.example.org", "not her words").status_code == 401
    with install.app_context(), install.extensions["itsm"].Session() as session:
        assert session.scalar(select(LoginFailure.id).where(
            LoginFailure.email == "ann@dmv.example.org").limit(1)) is not None
    # The limit now holds even the right password back, on the page and the API alike.
    assert sign_in_page(web, "ann@dmv.example.org", ANN_PW).status_code == 429
    refused = install.test_client().post("/api/v1/tokens", json={
        "name": "x", "email": "ann@dmv.example.org", "password": ANN_PW})
    assert refused.status_code == 429


def test_a_person_outside_the_allowed_groups_cannot_sign_in(install):
    assert sign_in_page(install.test_client(), "eve@example.org", EVE_PW).status_code == 401


def test_a_user_moved_between_groups_gets_the_new_role_at_the_next_sign_in(install, slapd):
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    slapd.modify(f"""\
        dn: cn=dmv-desk,{GROUPS}
        changetype: modify
        replace: member
        member: uid=bob,{PEOPLE}

        dn: cn=tax-staff,{GROUPS}
        changetype: modify
        add: member
        member: uid=ann,{PEOPLE}
        """)
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    facts = user_facts(install, "ann@dmv.example.org")
    assert (facts["role"], facts["agency"], facts["groups"]) == ("requester", "TAX", [])


def test_the_sync_deactivates_leavers_and_ends_their_tokens_and_sessions(install, slapd,
                                                                         runner):
    ann_browser = install.test_client()
    assert sign_in_page(ann_browser, "ann@dmv.example.org", ANN_PW).status_code == 302
    bob_token = install.test_client().post("/api/v1/tokens", json={
        "name": "cli", "email": "bob@tax.example.org", "password": BOB_PW}).json["token"]
    bob = {"Authorization": f"Bearer {bob_token}"}
    assert install.test_client().get("/api/v1/me", headers=bob).status_code == 200
    # Ann leaves the organization; Bob leaves the groups that may use itsm.
    slapd.delete(f"uid=ann,{PEOPLE}")
    slapd.modify(f"""\
        dn: cn=tax-staff,{GROUPS}
        changetype: modify
        replace: member
        member: uid=eve,{PEOPLE}
        """)
    synced = runner.invoke(["ldap", "sync"])
    assert synced.exit_code == 0, synced.output
    assert "2 directory users checked, 0 up to date, 2 deactivated" in synced.output
    assert ann_browser.get("/home").status_code == 302  # back to the sign-in page
    assert install.test_client().get("/api/v1/me", headers=bob).status_code == 401
    with install.app_context(), install.extensions["itsm"].Session() as session:
        assert session.scalars(select(ApiToken.revoked_at)).all()[0] is not None
        assert all(s.ended_at is not None for s in session.scalars(select(WebSession)))
    assert not user_facts(install, "bob@tax.example.org")["active"]
    # A local admin is not the directory's to decide about, and still signs in.
    assert user_facts(install, "root@example.org")["active"]
    assert sign_in_page(install.test_client(), "root@example.org",
                        "local admin words").status_code == 302


def test_the_background_worker_runs_the_sync(install, slapd):
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    slapd.delete(f"uid=ann,{PEOPLE}")
    itsm = install.extensions["itsm"]
    with install.app_context():
        run_cycle(itsm)
    assert not user_facts(install, "ann@dmv.example.org")["active"]
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 401
    # Back in the directory (her group still names her: slapd keeps a member value whose
    # entry was deleted), she is active again at her next sign-in.
    slapd.add(DIRECTORY.split("\n\n")[4])
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    assert user_facts(install, "ann@dmv.example.org")["active"]


def test_an_unreachable_directory_deactivates_nobody_and_keeps_local_admins_in(install,
                                                                               slapd, runner):
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    itsm = install.extensions["itsm"]
    itsm.settings["plugins.ldap.url"] = f"ldap://127.0.0.1:{_free_port()}/"
    itsm.settings._plugins.clear()  # settings are read once per plugin
    failed = runner.invoke(["ldap", "sync"])
    assert failed.exit_code == 1 and "cannot reach the directory" in failed.output
    assert user_facts(install, "ann@dmv.example.org")["active"]
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 401
    assert sign_in_page(install.test_client(), "root@example.org",
                        "local admin words").status_code == 302


@pytest.fixture
def no_local_passwords(itsm_config):
    itsm_config["auth.local_passwords"] = False


def test_with_local_passwords_off_a_directory_user_cannot_use_a_local_one(
        no_local_passwords, install):
    web = install.test_client()
    assert sign_in_page(web, "ann@dmv.example.org", ANN_PW).status_code == 302
    with install.app_context(), install.extensions["itsm"].Session() as session:
        ann = session.scalar(select(User).where(User.email == "ann@dmv.example.org"))
        ann.password_hash = auth.hash_password("a local passphrase")  # set by an admin
        session.commit()
    assert sign_in_page(install.test_client(), "ann@dmv.example.org",
                        "a local passphrase").status_code == 401
    refused = install.test_client().post("/api/v1/tokens", json={
        "name": "x", "email": "ann@dmv.example.org", "password": "a local passphrase"})
    assert refused.status_code == 401
    assert sign_in_page(install.test_client(), "root@example.org",
                        "local admin words").status_code == 302


def test_itsm_auth_test_ldap_explains_each_step(install, runner):
    checked = runner.invoke(["auth", "test-ldap", "ann@dmv.example.org", "--password", ANN_PW])
    assert checked.exit_code == 0, checked.output
    lines = checked.output.splitlines()
    assert lines[0].startswith("connect: ok (ldap://127.0.0.1")
    assert lines[1] == f"service bind: ok as {READER_DN}"
    assert lines[2] == f"search: found uid=ann,{PEOPLE}"
    assert lines[3] == "attributes: e-mail ann@dmv.example.org, name Ann Lee, phone +1 555 0101"
    assert set(lines[4].removeprefix("groups: ").split("; ")) == {
        f"cn=dmv-desk,{GROUPS}", f"cn=dmv-staff,{GROUPS}", f"cn=itsm-users,{GROUPS}"}
    assert lines[5:] == ["mapping: role agent, groups DMV desk, agency DMV", "allowed: yes",
                         "password: ok"]
    outsider = runner.invoke(["auth", "test-ldap", "eve@example.org"])
    assert outsider.exit_code == 1 and "Error: allowed: no" in outsider.output
    unknown = runner.invoke(["auth", "test-ldap", "nobody@example.org"])
    assert unknown.exit_code == 1 and "Error: search: no single entry matches" in unknown.output
    wrong = runner.invoke(["auth", "test-ldap", "ann@dmv.example.org", "--password", "nope"])
    assert wrong.exit_code == 1 and "Error: password: refused by the directory" in wrong.output
    # `itsm ldap test` stays, as another name for the same diagnosis.
    alias = runner.invoke(["ldap", "test", "ann@dmv.example.org", "--password", ANN_PW])
    assert alias.exit_code == 0 and alias.output == checked.output


def test_itsm_auth_test_ldap_names_the_step_that_fails(install, runner):
    itsm = install.extensions["itsm"]
    itsm.settings["plugins.ldap.bind_password"] = "not the reader's words"
    itsm.settings._plugins.clear()  # settings are read once per plugin
    refused = runner.invoke(["auth", "test-ldap", "ann@dmv.example.org"])
    assert refused.exit_code == 1
    assert refused.output.splitlines()[0].startswith("connect: ok (ldap://127.0.0.1")
    assert refused.output.splitlines()[1].startswith(
        f"Error: service bind: the directory refused the service account {READER_DN}")
    itsm.settings["plugins.ldap.url"] = f"ldap://127.0.0.1:{_free_port()}/"
    itsm.settings._plugins.clear()
    down = runner.invoke(["auth", "test-ldap", "ann@dmv.example.org"])
    assert down.exit_code == 1
    assert down.output.startswith("Error: connect: cannot reach the directory ldap://127.0.0.1")


def test_the_sign_in_page_works_with_the_ldap_plugin_enabled(install):
    page = install.test_client().get("/login")
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)


def test_directory_lookups_escape_what_people_type(install):
    # Pasted into the filter unescaped, each of these would find Ann alone, and her
    # password would sign in whoever typed it.
    for typed in ("ann@dmv*", "*)(uid=ann", "ann@dmv.example.org)(|(uid=*"):
        assert sign_in_page(install.test_client(), typed, ANN_PW).status_code == 401, typed


def test_a_bad_configuration_is_named_by_its_setting(install, runner):
    itsm = install.extensions["itsm"]
    itsm.settings["plugins.ldap.user_filter"] = "(mail=*)"
    itsm.settings._plugins.clear()  # settings are read once per plugin
    checked = runner.invoke(["auth", "test-ldap", "ann@dmv.example.org"])
    assert checked.exit_code == 1
    assert checked.output.strip() == \
        "Error: settings: plugins.ldap.user_filter must contain {email}"


def admin_browser(app):
    web = app.test_client()
    assert sign_in_page(web, "root@example.org", "local admin words").status_code == 302
    return web


def form_post(web, url: str, data: dict):
    token = CSRF_INPUT.search(web.get("/admin/sign-in/ldap/").get_data(as_text=True)).group(1)
    return web.post(url, data={**data, "csrf_token": token})


def test_the_admin_page_shows_the_settings_and_manages_stored_rules(install):
    from itsm.core.admin.models import AdminAudit
    from itsm.plugins.ldap.models import LdapRule
    from itsm.testing import schema_drift

    itsm = install.extensions["itsm"]
    assert schema_drift(itsm.engine, ["ldap_rule"]) == []
    with install.app_context(), itsm.Session() as session:
        ensure_group(session, "Tax desk")
        session.commit()
    web = admin_browser(install)
    page = web.get("/admin/sign-in/ldap/").get_data(as_text=True)
    assert "Directory (LDAP)" in page and "set (hidden)" in page and READER_PW not in page
    # Settings read by their labels, each with the key to change in itsm.toml.
    assert "<td>Directory server</td>" in page and "<td>Groups within groups</td>" in page
    assert "<td>set (hidden)</td><td><code>bind_password</code></td>" in page
    assert "<td>Role when no rule matches</td><td>Requester</td>" in page  # not a code
    assert f"cn=dmv-desk,{GROUPS}" in page and "Mapping rules added here" in page
    # A wrong rule is refused at its field, with what was typed.
    refused = form_post(web, "/admin/sign-in/ldap/rules", {
        "kind": "role", "match": f"cn=tax-staff,{GROUPS}", "value": "wizard"})
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Unknown role" in text and f'value="cn=tax-staff,{GROUPS}"' in text
    # Rules added here apply after itsm.toml's at the next sign-in.
    for kind, match, value in (("role", "tax-staff", "agent"), ("group", "tax-staff", "Tax desk"),
                               ("role", "dmv-desk", "admin"),  # the file maps it: not used
                               ("group", "dmv-desk", "Tax desk")):  # groups add up
        added = form_post(web, "/admin/sign-in/ldap/rules", {
            "kind": kind, "match": f"cn={match},{GROUPS}", "value": value})
        assert added.status_code == 302, added.get_data(as_text=True)
    assert sign_in_page(install.test_client(), "bob@tax.example.org", BOB_PW).status_code == 302
    bob = user_facts(install, "bob@tax.example.org")
    assert (bob["role"], bob["agency"], bob["groups"]) == ("agent", "TAX", ["Tax desk"])
    assert sign_in_page(install.test_client(), "ann@dmv.example.org", ANN_PW).status_code == 302
    ann = user_facts(install, "ann@dmv.example.org")
    assert (ann["role"], ann["groups"]) == ("agent", ["DMV desk", "Tax desk"])
    with install.app_context(), itsm.Session() as session:
        first = session.scalars(select(LdapRule).order_by(LdapRule.position)).first()
    # Changed, then removed (only once confirmed); every change is in the admin audit.
    edit = f"/admin/sign-in/ldap/rules/{first.id}"
    assert 'value="agent"' in web.get(edit).get_data(as_text=True)
    assert form_post(web, edit, {"kind": "role", "match": first.match,
                                 "value": "requester"}).status_code == 302
    unconfirmed = form_post(web, f"{edit}/remove", {})
    assert unconfirmed.status_code == 422 and "Not confirmed" in unconfirmed.get_data(
        as_text=True)
    assert form_post(web, f"{edit}/remove", {"confirm": "y"}).status_code == 302
    with install.app_context(), itsm.Session() as session:
        actions = session.scalars(select(AdminAudit.action).order_by(AdminAudit.id)).all()
        assert session.get(LdapRule, first.id) is None
    assert actions == ["ldap.rule.add"] * 4 + ["ldap.rule.change", "ldap.rule.remove"]
    # "Test a person": the same steps as the command line.
    tested = form_post(web, "/admin/sign-in/ldap/test", {"email": "ann@dmv.example.org"})
    text = tested.get_data(as_text=True)
    assert tested.status_code == 200
    assert f"<strong>Search:</strong> found uid=ann,{PEOPLE}" in text
    assert "<strong>Mapping:</strong> role agent, groups DMV desk, Tax desk, agency DMV" \
        in text
    outsider = form_post(web, "/admin/sign-in/ldap/test", {"email": "eve@example.org"})
    assert "<strong>Allowed:</strong> failed — no, in none of the allowed groups" in \
        outsider.get_data(as_text=True)


def test_the_admin_page_is_for_admins_only(install):
    web = install.test_client()
    assert sign_in_page(web, "bob@tax.example.org", BOB_PW).status_code == 302
    assert web.get("/admin/sign-in/ldap/").status_code == 403
    with web.session_transaction() as cookie:
        token = cookie["csrf"]
    assert web.post("/admin/sign-in/ldap/rules", data={
        "kind": "role", "match": "cn=x", "value": "admin",
        "csrf_token": token}).status_code == 403
