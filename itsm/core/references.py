"""References: a record's field that names a thing another plugin keeps (a service, a
configuration item), stored by the thing's stable id so that a rename never breaks it.

A plugin provides a kind of thing with ``itsm_reference_kinds`` (a :class:`ReferenceKind`:
resolve a typed value, get by id, list choices, walk the dependency graph). A record type
declares which of its fields refer to which kind (``RecordType.references``); the record
service resolves what a user typed to the stable id and the API adds ``<field>_ref``.
With no enabled provider of a kind, its fields keep working as validated free text.
Providers tell others of renames, retirements and merges with :func:`reference_changed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from itsm.core.context import current_itsm
from itsm.core.errors import Conflict, ValidationError
from itsm.core.inputs import InputError, check_text
from itsm.core.models import Agency, Group, User
from itsm.core.workflow import flatten_reasons

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from itsm.core.auth import Actor
    from itsm.core.records import RecordService
    from itsm.core.state import Itsm

CHANGES = ("renamed", "retired", "merged")
MAX_VALUE = 200  # a typed reference longer than a name is never one
MAX_DEPTH = 12  # how far an impact walk follows dependencies across providers


@dataclass(frozen=True)
class Ref:
    """A thing a record refers to, as its provider describes it now.

    :param kind: the kind (``service``, ``configuration_item``, ``agency`` ...).
    :param id: the stable id, as text; never changes on rename.
    :param label: what people read.
    :param url: the console page of the thing, if any.
    :param status: ``active`` or ``retired``.
    :param merged_into: the stable id it was merged into, if it was.
    :param lifecycle: the provider's own word for where the thing is in its life (a
        catalog service: ``planned``, ``in_transition``, ``live``, ``retired``); empty
        when the provider keeps none, or for a thing being created.
    :param support_group: the stable id (kind ``group``) of the group that resolves
        incidents of the thing, if the provider names one (routing by service).
    """

    kind: str
    id: str
    label: str
    url: str | None = None
    status: str = "active"
    merged_into: str | None = None
    lifecycle: str = ""
    support_group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """What the API shows as ``<field>_ref``."""
        return {"kind": self.kind, "id": self.id, "label": self.label, "url": self.url,
                "status": self.status}


@dataclass(frozen=True)
class ImpactHit:
    """A thing reached by an impact (or dependency) walk, with the path from the start
    (both ends included). ``walked``: the provider's own walk already went on through
    this thing (it provides the thing's kind too, and what depends on it is among its
    hits), so the core does not walk it again with that kind's provider."""

    ref: Ref
    path: tuple[Ref, ...]
    walked: bool = False


@dataclass
class ReferenceKind:
    """A kind of thing a plugin provides (returned by ``itsm_reference_kinds``).

    :param name: the kind's name (``service``).
    :param label: what people read (``Service``).
    :param get: ``(session, id) -> Ref | None``, retired things too.
    :param resolve: ``(session, value) -> Ref | None`` for a typed value: the id,
        ``#<id>``, a name or an alias.
    :param choices: ``(session, actor, text, limit) -> [Ref]`` for pickers, scoped to
        what ``actor`` may see.
    :param impact: ``(session, ids) -> [ImpactHit]``, the things that depend on these.
    :param depends: ``(session, ids) -> [ImpactHit]``, the things these depend on.
    :param priority: with several providers of one kind the highest wins.
    :param set_status: ``(svc, id, status) -> Ref | None``: move the thing to the
        provider's lifecycle ``status`` for another plugin, in ``svc``'s transaction,
        through the provider's own rules (including ``itsm_reference_status_guard``);
        None when the provider lets nobody else change its things' status.
    """

    name: str
    label: str
    get: Callable[[Session, str], Ref | None]
    resolve: Callable[[Session, str], Ref | None]
    choices: Callable[[Session, Actor, str, int], list[Ref]]
    impact: Callable[[Session, list[str]], list[ImpactHit]] | None = None
    depends: Callable[[Session, list[str]], list[ImpactHit]] | None = None
    priority: int = 0
    set_status: Callable[[RecordService, str, str], Ref | None] | None = None


def collect_kinds(declared: Iterable[tuple[str, ReferenceKind]]) -> dict[str, ReferenceKind]:
    """The winning provider of each kind: the highest priority, then the first declared."""
    out: dict[str, ReferenceKind] = {}
    for _plugin, kind in declared:
        known = out.get(kind.name)
        if known is None or kind.priority > known.priority:
            out[kind.name] = kind
    return out


def _install(itsm: Itsm | None) -> Itsm:
    return itsm if itsm is not None else current_itsm()


def reference_kind(name: str, itsm: Itsm | None = None) -> ReferenceKind | None:
    """The enabled provider of kind ``name``, or None (its fields are free text)."""
    return getattr(_install(itsm), "reference_kinds", {}).get(name)


def _follow(session: Session, provider: ReferenceKind, ref: Ref | None) -> Ref | None:
    # A merged thing stands for what it was merged into (a few hops at most).
    for _ in range(5):
        if ref is None or not ref.merged_into:
            return ref
        ref = provider.get(session, ref.merged_into) or ref
        if not ref.merged_into or ref.id == ref.merged_into:
            return ref
    return ref


def resolve_reference(session: Session, kind: str, value: str, *, field: str | None = None,
                      itsm: Itsm | None = None) -> Ref:
    """The thing a user typed (an id, ``#<id>``, a name or an alias), following merges.

    :raises InputError: naming ``field`` (default: the kind) when the value is empty, too
        long, not text, or unknown to the kind's provider. With no provider, the value
        itself is the id and the label (after :func:`check_text`).
    """
    name = field or kind
    if not isinstance(value, str):
        raise InputError("must be text", name)
    text = check_text(value.strip(), name)
    if not text:
        raise InputError("must not be empty", name)
    if len(text) > MAX_VALUE:
        raise InputError(f"is longer than {MAX_VALUE} characters", name)
    provider = reference_kind(kind, itsm)
    if provider is None:
        return Ref(kind, text, text)
    found = _follow(session, provider, provider.resolve(session, text))
    if found is None:
        raise InputError(f"no {provider.label.lower()} is known as {text!r}", name)
    return found


def reference_get(session: Session, kind: str, id_: str,
                  itsm: Itsm | None = None) -> Ref | None:
    """The thing with stable id ``id_`` (retired too), or None when no provider knows it
    (free text, or a provider not enabled)."""
    provider = reference_kind(kind, itsm)
    if provider is None or not id_:
        return None
    return provider.get(session, str(id_))


def reference_label(session: Session, kind: str, id_: str, itsm: Itsm | None = None) -> str:
    """What people read for a stored reference: the provider's label, else the stored
    text itself."""
    found = reference_get(session, kind, id_, itsm)
    return found.label if found is not None else str(id_ or "")


def reference_ref(session: Session, kind: str, id_: str, itsm: Itsm | None = None) -> Ref:
    """The stored value ``id_`` as a :class:`Ref`: the provider's, or free text."""
    found = reference_get(session, kind, id_, itsm)
    return found if found is not None else Ref(kind, str(id_), str(id_))


def reference_choices(session: Session, actor: Actor, kind: str, text: str = "",
                      limit: int = 20, itsm: Itsm | None = None) -> list[Ref]:
    """What a picker offers for ``text`` (empty with no provider: type free text)."""
    provider = reference_kind(kind, itsm)
    if provider is None:
        return []
    return list(provider.choices(session, actor, (text or "").strip()[:MAX_VALUE],
                                 max(1, min(int(limit), 100))))[:limit]


def _walk(session: Session, kind: str, ids: list[str], attribute: str,
          itsm: Itsm | None) -> list[ImpactHit]:
    """Breadth-first across providers: a hit of another kind is walked further with that
    kind's provider, its path joined to the path that reached it. The hits of one kind
    at one level are walked further in one call (a hub's 200 services: one walk, not
    200)."""
    out: dict[tuple[str, str], ImpactHit] = {}
    frontier: list[tuple[str, list[str], dict[str, tuple[Ref, ...]]]] = [(kind, ids, {})]
    seen = {(kind, i) for i in ids}
    for _ in range(MAX_DEPTH):
        following: dict[str, tuple[list[str], dict[str, tuple[Ref, ...]]]] = {}
        for walk_kind, walk_ids, prefixes in frontier:
            provider = reference_kind(walk_kind, itsm)
            step = getattr(provider, attribute, None) if provider else None
            if step is None or not walk_ids:
                continue
            for hit in step(session, list(walk_ids)):
                start = hit.path[0] if hit.path else None
                prefix = prefixes.get(start.id, ()) if start is not None else ()
                path = (*prefix[:-1], *hit.path) if prefix else hit.path
                key = (hit.ref.kind, hit.ref.id)
                if key in seen:
                    continue
                seen.add(key)
                out[key] = ImpactHit(hit.ref, path)
                if hit.ref.kind != walk_kind and not hit.walked:
                    further, further_prefixes = following.setdefault(hit.ref.kind, ([], {}))
                    further.append(hit.ref.id)
                    further_prefixes[hit.ref.id] = path
        if not following:
            break
        frontier = [(k, further, prefixes) for k, (further, prefixes) in following.items()]
    return list(out.values())


def reference_impact(session: Session, kind: str, ids: Iterable[str],
                     itsm: Itsm | None = None) -> list[ImpactHit]:
    """Everything that depends on the things ``ids`` of ``kind`` (services, agencies ...),
    each once with a shortest path, across providers (a configuration item's services,
    then those services' agencies). Empty with no provider."""
    return _walk(session, kind, [str(i) for i in ids if i not in (None, "")], "impact", itsm)


def reference_depends(session: Session, kind: str, ids: Iterable[str],
                      itsm: Itsm | None = None) -> list[ImpactHit]:
    """Everything the things ``ids`` of ``kind`` depend on (the other way round)."""
    return _walk(session, kind, [str(i) for i in ids if i not in (None, "")], "depends",
                 itsm)


def reference_changed(session: Session, ref: Ref, change: str, into: Ref | None = None,
                      itsm: Itsm | None = None) -> None:
    """Tell every plugin that a provider's thing was ``renamed``, ``retired`` or
    ``merged`` (``into`` the thing that stays), inside the provider's transaction."""
    if change not in CHANGES:
        raise ValueError(f"change must be one of {', '.join(CHANGES)}, not {change!r}")
    if change == "merged" and into is None:
        raise ValueError("a merge names the thing merged into")
    _install(itsm).hook.itsm_reference_changed(session=session, ref=ref, change=change,
                                               into=into)


def check_reference_status(session: Session, ref: Ref, status: str, actor: Actor,
                           itsm: Itsm | None = None) -> None:
    """Ask every plugin whether ``ref`` may move to the provider's lifecycle ``status``
    (``itsm_reference_status_guard``); a provider calls it before the change.

    :raises Conflict: 409 with every plugin's ``reasons``.
    """
    reasons = flatten_reasons(_install(itsm).hook.itsm_reference_status_guard(
        session=session, ref=ref, status=status, actor=actor))
    if reasons:
        raise Conflict(f"{ref.label} cannot become {status}: " + "; ".join(reasons),
                       reasons=reasons)


def request_reference_status(svc: RecordService, kind: str, value: str,
                             status: str) -> Ref | None:
    """Ask the provider of ``kind`` to move the thing ``value`` (an id or what a user
    typed) to ``status`` in ``svc``'s transaction. None when no provider is enabled, it
    changes no status for others, or does not know the thing; a refusal raises."""
    provider = reference_kind(kind, svc.itsm)
    if provider is None or provider.set_status is None or not value:
        return None
    found = _follow(svc.session, provider, provider.resolve(svc.session, str(value)[:MAX_VALUE]))
    if found is None:
        return None
    return provider.set_status(svc, found.id, status)


def resolve_fields(session: Session, references: dict[str, str], values: dict[str, Any],
                   itsm: Itsm | None = None) -> dict[str, Any]:
    """Replace the typed values of reference fields in ``values`` by stable ids (a list
    field: a list of ids, duplicates dropped); every unknown value is a field message."""
    out = dict(values)
    errors: dict[str, list[str]] = {}
    for name, kind in references.items():
        if name not in out or out[name] is None:
            continue
        value = out[name]
        try:
            if isinstance(value, list | tuple):
                ids: list[str] = []
                for item in value:
                    ref = resolve_reference(session, kind, item, field=name, itsm=itsm)
                    if ref.id not in ids:
                        ids.append(ref.id)
                out[name] = ids
            elif value == "":
                out[name] = ""
            else:
                out[name] = resolve_reference(session, kind, value, field=name,
                                              itsm=itsm).id
        except InputError as exc:
            errors.setdefault(name, []).append(exc.reason)
    if errors:
        raise ValidationError("unknown references: " + ", ".join(sorted(errors)),
                              fields=errors)
    return out


def field_refs(session: Session, references: dict[str, str], values: dict[str, Any],
               itsm: Itsm | None = None) -> dict[str, Any]:
    """``<field>_ref`` (one id) or ``<field>_refs`` (a list) for the API output."""
    out: dict[str, Any] = {}
    for name, kind in references.items():
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, list | tuple):
            out[f"{name}_refs"] = [reference_ref(session, kind, v, itsm).as_dict()
                                   for v in value]
        else:
            out[f"{name}_ref"] = (reference_ref(session, kind, value, itsm).as_dict()
                                  if value else None)
    return out


# -- the core's own kinds: people, groups, agencies ----------------------------------------


def _by_id(value: str) -> int | None:
    text = value[1:] if value.startswith("#") else value
    return int(text) if text.isdigit() and len(text) < 12 else None


def _user_ref(user: User | None) -> Ref | None:
    if user is None:
        return None
    return Ref("user", str(user.id), user.name or user.email, None,
               "active" if user.active else "retired")


def _group_ref(group: Group | None) -> Ref | None:
    return None if group is None else Ref("group", str(group.id), group.name)


def _agency_ref(agency: Agency | None) -> Ref | None:
    return None if agency is None else Ref("agency", str(agency.id), agency.name or agency.code)


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") \
        + "%"


def _get(model: type) -> Callable[[Session, str], Any]:
    def get(session: Session, id_: str) -> Any:
        number = _by_id(id_)
        return session.get(model, number) if number is not None else None
    return get


def _resolve_user(session: Session, value: str) -> Ref | None:
    number = _by_id(value)
    if number is not None and (found := session.get(User, number)) is not None:
        return _user_ref(found)
    return _user_ref(session.scalar(select(User).where(User.email == value.lower())))


def _resolve_group(session: Session, value: str) -> Ref | None:
    number = _by_id(value)
    if number is not None and (found := session.get(Group, number)) is not None:
        return _group_ref(found)
    return _group_ref(session.scalar(select(Group).where(Group.name == value)))


def _resolve_agency(session: Session, value: str) -> Ref | None:
    number = _by_id(value)
    if number is not None and (found := session.get(Agency, number)) is not None:
        return _agency_ref(found)
    return _agency_ref(session.scalar(select(Agency).where(
        or_(Agency.code == value, Agency.name == value)).limit(1)))


def _staff(actor: Actor) -> bool:
    return actor.is_system or actor.role != "requester"


def _user_choices(session: Session, actor: Actor, text: str, limit: int) -> list[Ref]:
    query = select(User).where(User.active.is_(True))
    if not _staff(actor):  # a requester sees the people of their own agency only
        query = query.where(User.agency_id == actor.agency_id)
    if text:
        query = query.where(or_(func.lower(User.email).like(_like(text), escape="\\"),
                                func.lower(User.name).like(_like(text), escape="\\")))
    return [_user_ref(u) for u in session.scalars(query.order_by(User.email).limit(limit))]


def _group_choices(session: Session, actor: Actor, text: str, limit: int) -> list[Ref]:
    if not _staff(actor):
        return []
    query = select(Group)
    if text:
        query = query.where(func.lower(Group.name).like(_like(text), escape="\\"))
    return [_group_ref(g) for g in session.scalars(query.order_by(Group.name).limit(limit))]


def _agency_choices(session: Session, actor: Actor, text: str, limit: int) -> list[Ref]:
    query = select(Agency)
    if not _staff(actor):
        query = query.where(Agency.id == actor.agency_id)
    if text:
        query = query.where(or_(func.lower(Agency.code).like(_like(text), escape="\\"),
                                func.lower(Agency.name).like(_like(text), escape="\\")))
    return [_agency_ref(a) for a in session.scalars(query.order_by(Agency.code).limit(limit))]


def core_kinds() -> list[ReferenceKind]:
    """The kinds the core keeps itself; any plugin's provider of the same name wins."""
    return [
        ReferenceKind("user", "Person", lambda s, i: _user_ref(_get(User)(s, i)),
                      _resolve_user, _user_choices, priority=-100),
        ReferenceKind("group", "Group", lambda s, i: _group_ref(_get(Group)(s, i)),
                      _resolve_group, _group_choices, priority=-100),
        ReferenceKind("agency", "Agency", lambda s, i: _agency_ref(_get(Agency)(s, i)),
                      _resolve_agency, _agency_choices, priority=-100),
    ]


def convert_stored_references(connection: Any, table: str, column: str, kind: str, *,
                              many: bool = False, key: str = "id",
                              only: Iterable[Any] | None = None) -> int:
    """Turn free text stored in ``table.column`` into stable ids where the enabled
    provider of ``kind`` resolves it (the text stays where it does not): the data step of
    a plugin's Alembic revision that makes a field a reference. ``many``: the column
    holds a JSON list; ``only``: the ``key`` values of the rows to convert (say, records
    whose approval covers the names as they are should keep them). Returns how many rows
    changed; 0 outside an application (no provider to ask) or with no provider of
    ``kind``.
    """
    import sqlalchemy as sa
    from flask import has_app_context
    from sqlalchemy.orm import Session as OrmSession

    if not has_app_context():
        return 0
    provider = reference_kind(kind)
    if provider is None:
        return 0
    rows = sa.table(table, sa.column(key), sa.column(column, sa.JSON() if many else sa.Text()))
    session = OrmSession(bind=connection)  # reads the provider's rows on this connection
    memo: dict[str, str] = {}

    def stable(value: str) -> str:
        if value not in memo:
            known = provider.get(session, value)
            found = known or provider.resolve(session, value)
            memo[value] = found.id if found is not None else value
        return memo[value]

    changed = 0
    query = sa.select(rows.c[key], rows.c[column])
    if only is not None:
        query = query.where(rows.c[key].in_(list(only)))
    for row_id, value in connection.execute(query).all():
        if many:
            items = [i for i in (value or []) if isinstance(i, str)]
            new: Any = list(dict.fromkeys(stable(i) for i in items if i))
            same = new == items
        else:
            new = stable(value) if value else value
            same = new == value
        if not same:
            connection.execute(sa.update(rows).where(rows.c[key] == row_id)
                               .values({column: new}))
            changed += 1
    session.close()
    return changed
