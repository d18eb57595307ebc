"""Approvals bound to scope: what an approval covered, as a digest, and what changed since.

A plugin that asks for an approval (a CAB decision, a signature, an acceptance) declares
the approval's *scope*: the names of the fields the approver saw (the record's own, or
values the plugin computes). When the approval is given, the plugin stores the scope's
values, their digest and the record's version beside it; a guard that relies on the
approval compares the record's current scope with the approved one and refuses, naming
the fields that differ. An edit in scope after the approval is either refused or
supersedes the approval, as the plugin decides; :meth:`ApprovalScope.superseded_note` is
the journal's wording for the second case.

The digest is a SHA-256 of a canonical JSON text: keys sorted, datetimes in UTC ISO
form, and the fields the scope calls unordered (a set of services) sorted and without
repeats, so ``["b", "a"]`` and ``["a", "b", "a"]`` approve the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any


def _canonical(value: Any, unordered: bool = False) -> Any:
    """``value`` as plain JSON data that compares equal when it means the same."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # the database hands back naive UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_canonical(v) for v in value]
        if unordered or isinstance(value, (set, frozenset)):
            unique = {json.dumps(i, sort_keys=True): i for i in items}
            items = [unique[k] for k in sorted(unique)]
        return items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def canonical_values(values: Mapping[str, Any], unordered: Iterable[str] = ()) \
        -> dict[str, Any]:
    """The scope's values as canonical JSON data (what an approval stores)."""
    sets = set(unordered)
    return {name: _canonical(value, name in sets) for name, value in values.items()}


def scope_digest(values: Mapping[str, Any], unordered: Iterable[str] = ()) -> str:
    """A stable SHA-256 (hex) of the values of a scope; ``unordered`` fields compare as
    sets."""
    text = json.dumps(canonical_values(values, unordered), sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scope_changes(approved_values: Mapping[str, Any], current_values: Mapping[str, Any],
                  unordered: Iterable[str] = ()) -> list[str]:
    """The fields whose value differs between the approved scope and the current one, in
    the order the approved scope lists them (then any field only the current one has)."""
    sets = list(unordered)
    approved = canonical_values(approved_values, sets)
    current = canonical_values(current_values, sets)
    names = [*approved, *(n for n in current if n not in approved)]
    return [n for n in names if approved.get(n) != current.get(n)]


@dataclass(frozen=True)
class ApprovalScope:
    """What one kind of approval covers, as a plugin declares it.

    ``name`` is the approval's name in messages ("CAB approval"), ``fields`` the names of
    the values in scope, ``unordered`` those among them that are sets.
    """

    name: str
    fields: tuple[str, ...]
    unordered: frozenset[str] = frozenset()

    def values(self, source: Any, overrides: Mapping[str, Any] | None = None) \
            -> dict[str, Any]:
        """The scope's values read from ``source`` (a mapping or an object's attributes),
        with ``overrides`` (values about to be set) taking precedence."""
        overrides = overrides or {}
        out = {}
        for name in self.fields:
            if name in overrides:
                out[name] = overrides[name]
            elif isinstance(source, Mapping):
                out[name] = source.get(name)
            else:
                out[name] = getattr(source, name, None)
        return canonical_values(out, self.unordered)

    def digest(self, values: Mapping[str, Any]) -> str:
        """:func:`scope_digest` of ``values`` under this scope."""
        return scope_digest({n: values.get(n) for n in self.fields}, self.unordered)

    def changes(self, approved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        """:func:`scope_changes` restricted to this scope's fields."""
        return scope_changes({n: approved.get(n) for n in self.fields},
                             {n: current.get(n) for n in self.fields}, self.unordered)

    def touched(self, names: Iterable[str]) -> list[str]:
        """The fields of this scope among ``names`` (the fields an edit sets)."""
        given = set(names)
        return [n for n in self.fields if n in given]

    def superseded_note(self, changed: Iterable[str], approval: str = "") -> str:
        """The journal's line when an edit supersedes an approval:
        ``CAB approval superseded: services, environment changed``."""
        what = f"{self.name} {approval}".strip()
        return f"{what} superseded: {', '.join(changed)} changed"

    def refusal(self, changed: Iterable[str], subject: str = "") -> str:
        """The guard's reason when the scope moved since the approval."""
        names = ", ".join(changed)
        who = f"{subject} " if subject else ""
        return (f"{who}differs from what the {self.name} covered: {names} changed since "
                "(ask for approval again)")
