"""The conversation brings work back: a requester's reply to a record moves it and marks it.

Whatever way the reply comes (the portal, an e-mail through the mail gateway, an API
comment), it is a public comment through :meth:`RecordService.comment`, which calls
:func:`requester_replied`:

- when the record's workflow declares a transition for a requester's reply from the
  record's state (``Transition(customer_reply=True)``, e.g. an incident on hold waiting
  for the customer goes back to "in progress"), the record service runs it as the
  requester, so its guards, the ``itsm_transition_guard`` vetoes, the SLA clocks and the
  journal see it like any other move; a refusal leaves the record where it is;
- ``record.customer_reply_at`` is set: the queue shows the record "updated by customer"
  until its assignee opens it (:func:`assignee_opened`).

``customer_reply_at`` is a workspace marker of the row, not a field of the record: it is
written with a plain UPDATE that leaves the record's version alone (a reply must not make
a colleague's open edit form stale) and is not journaled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from itsm.core.models import Record, utcnow

if TYPE_CHECKING:
    from itsm.core.records import RecordService


def is_customer(service: RecordService, record: Record) -> bool:
    """Whether the actor speaks for the customer on ``record``: its requester, or a
    requester of its agency (who may comment on it)."""
    actor = service.actor
    if actor.id is None:
        return False
    if record.assignee_id is not None and record.assignee_id == actor.id:
        return False  # an agent who reported their own record and works it
    return record.requester_id == actor.id or not service.is_staff


def requester_replied(service: RecordService, record: Record) -> None:
    """Called after a public comment was journaled: bring the record back and mark it."""
    if not is_customer(service, record) or record.closed_at is not None:
        return
    service.customer_replied(record)
    _set_mark(service, record, utcnow())


def assignee_opened(service: RecordService, record: Record) -> None:
    """The record's assignee opened it: the customer's reply has been seen."""
    if record.customer_reply_at is None or service.actor.id is None:
        return
    if record.assignee_id != service.actor.id:
        return
    _set_mark(service, record, None)


def _set_mark(service: RecordService, record: Record, value) -> None:
    service.session.flush()  # the transition's own UPDATE (and its version check) first
    service.session.execute(update(Record.__table__).where(Record.__table__.c.id == record.id)
                            .values(customer_reply_at=value)
                            .execution_options(synchronize_session=False))
    set_committed_value(record, "customer_reply_at", value)
