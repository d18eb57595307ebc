"""State machines that plugins declare for their record types, with their guards.

A :class:`Workflow` is plain data: states, transitions, the roles allowed to run each,
the fields each requires, and guard functions. The record service asks it which moves
are possible and why one is refused; other plugins add vetoes through the
``itsm_transition_guard`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from itsm.core.errors import PluginError

ANY_STATE = "*"

Guard = Callable[[Any, Any, dict], "str | None"]


@dataclass(frozen=True)
class State:
    """A workflow state.

    :param final: a record in a final state is closed (``closed_at`` is set); only
        transitions that name it explicitly as a source leave it (a reopen).
    :param waiting: SLA clocks pause while a record is in this state (on hold).
    :param customer: the record waits for its requester here (the queue's "Waiting for
        customer" view lists records in such states).
    :param stops: SLA metrics met when a record enters this state (``("resolution",)``
        on a "resolved" state). When no state of a workflow names a metric, the defaults
        apply: ``response`` is met on leaving the initial state, ``resolution`` on
        entering a final state.
    """

    name: str
    label: str = ""
    final: bool = False
    waiting: bool = False
    stops: tuple[str, ...] = ()
    customer: bool = False

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Transition:
    """A move from one of ``source`` states to ``target``.

    :param source: the states it starts from; ``("*",)`` means every non-final state.
    :param roles: the roles that may run it (admin always may); empty means anyone who
        holds ``<type>.transition`` on the record.
    :param requester: the record's own requester may run it too, without
        ``<type>.transition`` (confirming a resolution, reopening): list ``"requester"``
        in ``roles`` as well when ``roles`` is not empty.
    :param required: fields that must hold a value once the transition is applied (sent
        with it or already on the record), e.g. ``("resolution_notes",)``.
    :param fields: other fields the transition may set; anything else sent is refused.
    :param guards: functions ``(record, actor, data) -> reason or None``.
    :param destructive: it ends or throws away the work (cancel, reject, close): pages
        never make it the primary action and ask for a confirmation first.
    :param customer_reply: run by the record service itself, as the requester, when the
        record's requester replies (a public comment) while the record is in one of
        ``source``: the conversation brings the work back (on hold waiting for the
        customer -> in progress). Its guards decide whether this reply does (a refusal
        leaves the record where it is; the reply is kept). Never offered as an action
        and never run on request.
    """

    name: str
    source: tuple[str, ...]
    target: str
    label: str = ""
    roles: tuple[str, ...] = ()
    requester: bool = False
    required: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    guards: tuple[Guard, ...] = field(default=(), compare=False)
    destructive: bool = False
    customer_reply: bool = False

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def settable(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.required, *self.fields)))


class Workflow:
    """The states and transitions of one record type."""

    def __init__(self, states: Sequence[State], transitions: Sequence[Transition],
                 initial: str | None = None) -> None:
        self.states = {s.name: s for s in states}
        self.transitions = {t.name: t for t in transitions}
        self.initial = initial or states[0].name
        self._validate(states, transitions)

    def _validate(self, states: Sequence[State], transitions: Sequence[Transition]) -> None:
        if len(self.states) != len(states):
            raise PluginError("workflow declares a state twice")
        if len(self.transitions) != len(transitions):
            raise PluginError("workflow declares a transition twice")
        if self.initial not in self.states:
            raise PluginError(f"workflow's initial state {self.initial!r} is not a state")
        for t in transitions:
            for name in (*t.source, t.target):
                if name != ANY_STATE and name not in self.states:
                    raise PluginError(f"transition {t.name!r} names unknown state {name!r}")

    def state(self, name: str) -> State:
        return self.states.get(name) or State(name)

    def leaves(self, transition: Transition, state: str) -> bool:
        if state in transition.source:
            return True
        return ANY_STATE in transition.source and not self.state(state).final

    def from_state(self, state: str) -> list[Transition]:
        """Transitions whose source includes ``state``, in declaration order."""
        return [t for t in self.transitions.values() if self.leaves(t, state)]

    def actions(self, state: str) -> list[Transition]:
        """The transitions people may run from ``state`` (not those run on a reply)."""
        return [t for t in self.from_state(state) if not t.customer_reply]

    def on_customer_reply(self, state: str) -> list[Transition]:
        """The transitions a requester's reply runs from ``state``, first allowed wins."""
        return [t for t in self.from_state(state) if t.customer_reply]

    def check(self, transition: Transition, record: Any, actor: Any, data: dict,
              values: dict[str, Any]) -> list[str]:
        """Reasons the workflow itself refuses ``transition`` (empty when allowed).

        :param values: the record's field values with ``data`` applied.
        """
        reasons: list[str] = []
        if not self.leaves(transition, record.state):
            reasons.append(f"cannot {transition.title.lower()} from state "
                           f"{self.state(record.state).title!r}")
        if transition.roles and actor.role != "admin" and actor.role not in transition.roles:
            reasons.append(f"only {_or(transition.roles)} may {transition.title.lower()}")
        for name in transition.required:
            if values.get(name) in (None, "", [], {}):
                reasons.append(f"{name} is required to {transition.title.lower()}")
        for guard in transition.guards:
            reason = guard(record, actor, data)
            if reason:
                reasons.append(reason)
        return reasons


def _or(names: Iterable[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def flatten_reasons(results: Iterable[str | list[str] | None]) -> list[str]:
    """Turn the results of the guard hook (strings, lists, Nones) into one list."""
    out: list[str] = []
    for item in results:
        if not item:
            continue
        out.extend([item] if isinstance(item, str) else [r for r in item if r])
    return out
