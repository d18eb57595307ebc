"""What plugins tell each other about the services of a service catalog, through hooks.

A catalog plugin owns its services; other plugins (a transition gate) never import it.
They see a service as a :class:`ServiceRef` and reach the catalog through the hooks
``itsm_service_lookup``, ``itsm_service_status_requested`` and
``itsm_service_status_guard`` (see :mod:`itsm.core.hookspecs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsm.core.errors import Conflict
from itsm.core.workflow import flatten_reasons

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from itsm.core.auth import Actor
    from itsm.core.state import Itsm


@dataclass(frozen=True)
class ServiceRef:
    """A service of a catalog as other plugins see it.

    :param key: the catalog's stable key of the service (a slug such as ``vpn``).
    :param name: the name people read.
    :param status: its current status (the catalog's own words: ``planned``,
        ``in_transition``, ``live``, ``retired``); empty for a service being created.
    :param id: the catalog's stable id of the service, which a rename of its key or name
        never changes; None when the catalog has none (or the service is being created).
        A plugin that keeps a reference stores it (:attr:`stable_key`), not the key.
    """

    key: str
    name: str
    status: str = ""
    id: int | None = None

    @property
    def stable_key(self) -> str:
        """What to store to find this service again after a rename: ``#<id>`` when the
        catalog gives an id (``itsm_service_lookup`` accepts it), else the key."""
        return f"#{self.id}" if self.id is not None else self.key


def check_status_change(itsm: Itsm, session: Session, service: ServiceRef, status: str,
                        actor: Actor) -> None:
    """Ask every plugin whether ``service`` may move to ``status``; raise
    :class:`~itsm.core.errors.Conflict` (409 with ``reasons``) with every refusal."""
    reasons = flatten_reasons(itsm.hook.itsm_service_status_guard(
        session=session, service=service, status=status, actor=actor))
    if reasons:
        raise Conflict(f"service {service.key} cannot become {status}: " + "; ".join(reasons),
                       reasons=reasons)
