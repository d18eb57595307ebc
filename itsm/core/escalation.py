"""Whom a record escalates to: the contract between a process that escalates its records
(incidents on SLA warnings and breaches) and one that agrees escalation paths with each
agency (its MOU), neither importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from itsm.core.context import current_itsm
from itsm.core.models import Record


@dataclass(frozen=True)
class EscalationStep:
    """One level of an escalation path.

    :param level: 1 for the first person to turn to, 2 for the next, …
    :param name: who.
    :param email: where they are told.
    :param after_minutes: how long after the record's target was breached this level is
        turned to (0: at the breach). Level 1 is also told when the target is at risk
        (the SLA warning).
    :param role: their role, for people (``Project lead``).
    :param source: where the path is agreed, for the record's note (``MOU0000003``).
    """

    level: int
    name: str
    email: str
    after_minutes: int = 0
    role: str = ""
    source: str = ""


def escalation_path(session: Session, record: Record) -> list[EscalationStep]:
    """The agreed path for ``record`` by level, or ``[]`` when no plugin agrees one (the
    escalating process then falls back to its own contacts)."""
    path = current_itsm().hook.itsm_escalation_path(session=session, record=record)
    return sorted(path or (), key=lambda step: (step.level, step.after_minutes))
