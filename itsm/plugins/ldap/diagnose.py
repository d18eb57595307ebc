"""Check the directory configuration for one person, step by step: what ``itsm auth
test-ldap`` prints and the admin page's "test this user" shows, from the same code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from itsm.plugin import ItsmError
from itsm.plugins.ldap import service


@dataclass(frozen=True)
class Step:
    """One step of the diagnosis: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    text: str

    @property
    def line(self) -> str:
        return f"{self.name}: {self.text}"


def diagnose(conf: dict[str, Any], roles: list[str], email: str,
             password: str | None = None) -> Iterator[Step]:
    """The steps for ``email``: connect, service bind, search, attributes, groups, the
    mapping's result, allowed, and (with ``password``) the person's own bind. Stops after
    the first step that fails."""
    try:
        service.check_settings(conf)
    except ItsmError as exc:
        yield Step("settings", False, exc.message)
        return
    tls = conf["start_tls"] and str(conf["url"]).startswith("ldap://")
    try:
        with service.service_connection(conf) as connection:
            yield Step("connect", True, f"ok ({conf['url']}{', StartTLS' if tls else ''})")
            yield Step("service bind", True, f"ok as {conf['bind_dn'] or '(anonymous)'}")
            person = service.find_person(conf, connection, email)
    except service.BindRefused as exc:
        yield Step("connect", True, f"ok ({conf['url']}{', StartTLS' if tls else ''})")
        yield Step("service bind", False, exc.message)
        return
    except ItsmError as exc:
        yield Step("connect", False, exc.message)
        return
    if person is None:
        yield Step("search", False, f"no single entry matches {email} under "
                                    f"{conf['user_base']!r} with {conf['user_filter']}")
        return
    yield Step("search", True, f"found {person.dn}")
    yield Step("attributes", True, f"e-mail {person.email}, name {person.name or '-'}, "
                                   f"phone {person.phone or '-'}")
    yield Step("groups", True, "; ".join(person.groups) or "none")
    try:
        identity = service.identity_for(conf, person, roles)
    except ItsmError as exc:
        yield Step("mapping", False, exc.message)
        return
    yield Step("mapping", True, f"role {identity.role}, groups "
                                f"{', '.join(identity.groups) or 'none'}, agency "
                                f"{identity.agency or 'none'}")
    if not service.allowed(conf, person):
        yield Step("allowed", False, "no, in none of the allowed groups "
                                     f"({'; '.join(conf['allowed_groups'])})")
        return
    yield Step("allowed", True, "yes")
    if password is not None:
        try:
            ok = service.authenticate(conf, email, password) is not None
        except ItsmError as exc:
            yield Step("password", False, exc.message)
            return
        yield Step("password", ok, "ok" if ok else "refused by the directory")
