"""The directory's operations: find a person, check their password, read their groups,
map them to itsm by the ``[plugins.ldap]`` rules, and the sync that deactivates leavers.

ldap3 speaks LDAP in pure Python (no C library to build, the same on every platform);
every search filter is built with its value escaped (RFC 4515), never by pasting input.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

try:
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars
except ImportError as exc:  # the loader records this line as the plugin's load error
    raise ImportError("the ldap plugin needs the ldap3 library: pip install 'itsm[ldap]'") \
        from exc

from itsm.plugin import (
    Actor,
    Identity,
    ItsmError,
    User,
    ValidationError,
    deactivate_user,
    known_roles,
    provision_user,
)

log = logging.getLogger("itsm.ldap")

SOURCE = "ldap"
# Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups, at
# any depth, evaluated by the server in one search.
IN_CHAIN = "1.2.840.113556.1.4.1941"
NESTING = ("direct", "search", "active_directory")
MAX_NESTING = 20  # levels walked by "search": a cycle of groups ends here at the latest


class DirectoryError(ItsmError):
    """The directory cannot be asked (unreachable, TLS refused, service bind refused)."""

    status = 503
    code = "directory_unavailable"


class BindRefused(DirectoryError):
    """The directory answers but refuses the service account's bind."""


@dataclass(frozen=True)
class Person:
    """A person as the directory describes them."""

    dn: str
    email: str
    name: str
    phone: str
    groups: tuple[str, ...] = ()  # group DNs, direct and (as configured) nested


@dataclass
class SyncReport:
    checked: int = 0
    updated: int = 0
    deactivated: list[str] = field(default_factory=list)


def check_settings(conf: dict[str, Any]) -> None:
    """Refuse a configuration that cannot work, naming the setting."""
    if not str(conf["url"]).startswith(("ldap://", "ldaps://")):
        raise ValidationError(f"plugins.ldap.url must start with ldap:// or ldaps:// "
                              f"(it is {conf['url']!r})", fields={"url": ["not an LDAP URL"]})
    if conf["nested_groups"] not in NESTING:
        raise ValidationError(f"plugins.ldap.nested_groups must be one of "
                              f"{', '.join(NESTING)} (it is {conf['nested_groups']!r})",
                              fields={"nested_groups": ["unknown"]})
    if "{email}" not in conf["user_filter"]:
        raise ValidationError("plugins.ldap.user_filter must contain {email}",
                              fields={"user_filter": ["no {email}"]})


def _server(conf: dict[str, Any]) -> ldap3.Server:
    # ldap3 takes host and port, not a URL with a path ("ldap://host:389/" is common).
    url = urlsplit(conf["url"])
    secure = url.scheme == "ldaps"
    try:
        port = url.port or (636 if secure else 389)
    except ValueError:
        raise ValidationError(f"plugins.ldap.url has a bad port: {conf['url']!r}",
                              fields={"url": ["bad port"]}) from None
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=conf["ca_file"] or None)
    return ldap3.Server(url.hostname or "", port=port, use_ssl=secure, tls=tls,
                        connect_timeout=int(conf["timeout_seconds"]), get_info=ldap3.NONE)


def _open(conf: dict[str, Any], dn: str, password: str) -> ldap3.Connection:
    """A connection bound as ``dn``; raises DirectoryError when the server cannot be
    reached or secured, returns an unbound connection when the password is refused."""
    check_settings(conf)
    connection = ldap3.Connection(_server(conf), user=dn or None, password=password or None,
                                  receive_timeout=int(conf["timeout_seconds"]),
                                  read_only=True, raise_exceptions=False)
    try:
        connection.open()
        if conf["start_tls"] and conf["url"].startswith("ldap://") \
                and not connection.start_tls():
            raise DirectoryError(f"StartTLS refused by {conf['url']}: {connection.result}")
        connection.bind()
    except LDAPException as exc:
        raise DirectoryError(f"cannot reach the directory {conf['url']}: {exc}") from None
    return connection


@contextmanager
def service_connection(conf: dict[str, Any]) -> Iterator[ldap3.Connection]:
    """The service account's connection (searches); DirectoryError if it cannot bind."""
    connection = _open(conf, conf["bind_dn"], conf["bind_password"])
    try:
        if not connection.bound:
            raise BindRefused(f"the directory refused the service account "
                                 f"{conf['bind_dn'] or '(anonymous)'}: "
                                 f"{connection.result.get('description')}")
        yield connection
    finally:
        connection.unbind()


def _search(connection: ldap3.Connection, base: str, query: str,
            attributes: list[str]) -> list:
    try:
        ok = connection.search(base, query, attributes=attributes)
    except LDAPException as exc:
        raise DirectoryError(f"the directory search failed: {exc}") from None
    if not ok and connection.result.get("result") not in (0, 32):  # 32: no such object
        raise DirectoryError(f"the directory search failed: "
                             f"{connection.result.get('description')}")
    return list(connection.entries) if ok else []


def _first(entry, attribute: str) -> str:
    if not attribute or attribute not in entry.entry_attributes:
        return ""
    values = entry[attribute].values
    return str(values[0]) if values else ""


def find_person(conf: dict[str, Any], connection: ldap3.Connection, email: str) \
        -> Person | None:
    """The one person whose e-mail is ``email`` with their groups, or None (none, or
    several: an ambiguous address signs nobody in)."""
    email = (email or "").strip()
    if not email:
        return None
    query = conf["user_filter"].replace("{email}", escape_filter_chars(email))
    attributes = [a for a in (conf["email_attribute"], conf["name_attribute"],
                              conf["phone_attribute"]) if a]
    found = _search(connection, conf["user_base"], query, attributes)
    if len(found) != 1:
        if len(found) > 1:
            log.warning("ldap: %d entries match %s; nobody signs in with it", len(found),
                        email)
        return None
    entry = found[0]
    return Person(dn=entry.entry_dn, email=_first(entry, conf["email_attribute"]) or email,
                  name=_first(entry, conf["name_attribute"]),
                  phone=_first(entry, conf["phone_attribute"]),
                  groups=groups_of(conf, connection, entry.entry_dn))


def groups_of(conf: dict[str, Any], connection: ldap3.Connection, dn: str) -> tuple[str, ...]:
    """The DNs of the groups ``dn`` is a member of, nested as ``nested_groups`` says."""
    if not conf["group_base"]:
        return ()
    member = conf["member_attribute"]
    if conf["nested_groups"] == "active_directory":
        query = f"(&{conf['group_filter']}({member}:{IN_CHAIN}:={escape_filter_chars(dn)}))"
        return tuple(e.entry_dn for e in _search(connection, conf["group_base"], query, []))
    found: dict[str, str] = {}
    frontier = [dn]
    for _level in range(MAX_NESTING):
        members = "".join(f"({member}={escape_filter_chars(d)})" for d in frontier)
        query = f"(&{conf['group_filter']}(|{members}))"
        new = [e.entry_dn for e in _search(connection, conf["group_base"], query, [])
               if e.entry_dn.lower() not in found]
        found.update((d.lower(), d) for d in new)
        if not new or conf["nested_groups"] == "direct":
            break
        frontier = new
    return tuple(found.values())


def authenticate(conf: dict[str, Any], email: str, password: str) -> Person | None:
    """The person of ``email`` when ``password`` is their directory password, else None.
    Raises DirectoryError when the directory cannot be asked."""
    if not password:  # an empty password would be an unauthenticated bind: "success"
        return None
    with service_connection(conf) as connection:
        person = find_person(conf, connection, email)
    if person is None:
        return None
    own = _open(conf, person.dn, password)
    try:
        return person if own.bound else None
    finally:
        own.unbind()


def _matching(rules: dict[str, Any], groups: tuple[str, ...]) -> list[Any]:
    """The values of ``rules`` (group DN -> value) whose DN is one of ``groups``, in the
    rules' order; DNs compare without regard to case, as LDAP compares them."""
    mine = {g.lower() for g in groups}
    return [value for dn, value in rules.items() if dn.lower() in mine]


def allowed(conf: dict[str, Any], person: Person) -> bool:
    """Whether ``person`` may use itsm: a member of an allowed group, if any is set."""
    wanted = {g.lower() for g in conf["allowed_groups"]}
    return not wanted or bool(wanted & {g.lower() for g in person.groups})


def identity_for(conf: dict[str, Any], person: Person, roles: list[str]) -> Identity:
    """What the rules make of ``person``: role (first matching rule, else the default),
    resolver groups (every matching rule), agency (first matching rule; none when agency
    rules exist and none matches)."""
    role = next(iter(_matching(conf["roles"], person.groups)), conf["default_role"])
    if role not in roles:
        raise ValidationError(f"the ldap rules give the unknown role {role!r} "
                              f"(roles: {', '.join(roles)})", fields={"role": ["unknown role"]})
    groups: list[str] = []
    for value in _matching(conf["groups"], person.groups):
        groups.extend([value] if isinstance(value, str) else value)
    managed: list[str] = []
    for value in conf["groups"].values():
        managed.extend([value] if isinstance(value, str) else value)
    agency = None
    if conf["agencies"]:
        agency = next(iter(_matching(conf["agencies"], person.groups)), "")
    return Identity(email=person.email, source=SOURCE, name=person.name, phone=person.phone,
                    directory_groups=person.groups, role=role,
                    groups=tuple(dict.fromkeys(groups)),
                    managed_groups=tuple(dict.fromkeys(managed)), agency=agency)


def role_names(itsm) -> list[str]:
    return known_roles(list(itsm.permissions.values()))


def sync(itsm, conf: dict[str, Any], progress: Callable[[int], None] | None = None,
         total: Callable[[int], None] | None = None) -> SyncReport:
    """Check every active directory user against the directory: update the ones still
    there and allowed, deactivate the others (tokens revoked, web sessions ended).

    All or nothing: a directory that cannot be asked (unreachable, a search failing
    midway) raises DirectoryError and deactivates nobody, so an outage never locks
    everyone out.
    """
    from sqlalchemy import select

    from itsm.plugins.ldap.rules import RULES

    report = SyncReport()
    roles = role_names(itsm)
    with itsm.unit_of_work(Actor.system()) as service:
        session = service.session
        conf = {**conf, **RULES.applied(conf, session)}  # the admin page's after the file's
        users = session.scalars(select(User).where(User.auth_source == SOURCE,
                                                   User.active.is_(True))
                                .order_by(User.id)).all()
        if total:
            total(len(users))
        with service_connection(conf) as connection:
            for user in users:
                person = find_person(conf, connection, user.email)
                report.checked += 1
                if person is None or not allowed(conf, person):
                    deactivate_user(session, user)
                    report.deactivated.append(user.email)
                    log.info("ldap sync: deactivated %s (%s)", user.email,
                             "not in the directory" if person is None else
                             "in none of the allowed groups")
                else:
                    provision_user(session, identity_for(conf, person, roles))
                    report.updated += 1
                if progress:
                    progress(1)
    return report
