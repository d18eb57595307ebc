"""``Idempotency-Key`` on creates: a retry gets the first answer, not a second record.

As the IETF draft "The Idempotency-Key HTTP Header Field" describes it: the client sends a
unique key with a ``POST``; the first answer (status and body) is kept with the key, the
user and a fingerprint of the request, stored in the transaction that makes the record,
so it exists exactly when the record does. Then:

* a retry with the same key and the same request gets the stored answer (no new record);
* the same key with a different request is refused with 422;
* the same key while the first request is still being processed is refused with 409;
* a key is forgotten after ``api.idempotency_hours`` (24 by default).

The key is claimed in a short transaction of its own before the create, so a concurrent
retry sees the claim at once instead of waiting on the creating transaction's locks. A
create that fails gives the claim up: the client may correct the request and send it
again under the same key. A claim whose request died with its process is taken over
after :data:`ABANDONED`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from itsm.core.errors import Conflict, ValidationError
from itsm.core.models import IdempotencyKey, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from itsm.core.app import Itsm

HEADER = "Idempotency-Key"

# A request still "in flight" after this long died with its process (a request that
# takes longer has long been given up by any proxy or client): its key is taken over.
ABANDONED = timedelta(minutes=5)

MAX_KEY = 255

# The headers of the first answer that a replay repeats.
KEPT_HEADERS = ("Location", "ETag")


@dataclass
class Claim:
    """A key this request holds: its answer is stored with :func:`store`, or the claim is
    given up with :func:`release` when the request fails."""

    id: int


def key_of(raw: str | None) -> str | None:
    """The key sent in the header, or None without one.

    The draft makes the value a Structured Field string (``"8e03978e-..."``); a bare
    token is accepted too, as most clients send one.

    :raises ValidationError: for an empty, over-long or non-printable key.
    """
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or len(value) > MAX_KEY or not value.isascii() or not value.isprintable():
        raise ValidationError(
            f"{HEADER} must be 1 to {MAX_KEY} printable ASCII characters, e.g. a UUID",
            fields={HEADER: [f"1 to {MAX_KEY} printable ASCII characters"]})
    return value


def fingerprint(method: str, path: str, body: Any) -> str:
    """The request as the key stands for it: method, path and the JSON body (keys sorted,
    so the same object with its keys in another order is the same request)."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def claim(itsm: Itsm, user_id: int, key: str, print_: str) -> Claim | Response:
    """Take ``key`` for this request, or the stored answer of the request that took it.

    :returns: a :class:`Claim` to go on with, or the first answer to send again.
    :raises ValidationError: 422 when the key was used for a different request.
    :raises Conflict: 409 while the first request with the key is being processed.
    """
    now = utcnow()
    with itsm.Session() as session:
        row = _find(session, user_id, key, now)
        if row is None:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
            hours = float(itsm.settings["api.idempotency_hours"])
            row = IdempotencyKey(user_id=user_id, client_key=key, fingerprint=print_,
                                 created_at=now, expires_at=now + timedelta(hours=hours))
            session.add(row)
            try:
                session.commit()
                return Claim(row.id)
            except IntegrityError:  # a concurrent request took the key first
                session.rollback()
                row = _find(session, user_id, key, now)
                if row is None:
                    raise _in_flight() from None
        if row.fingerprint != print_:
            raise ValidationError(
                f"this {HEADER} was used for a different request: use a new key for a new "
                "request", fields={HEADER: ["already used with a different request"]})
        if row.status is None:
            if row.created_at > now - ABANDONED:
                raise _in_flight()
            taken = session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == row.id, IdempotencyKey.status.is_(None),
                       IdempotencyKey.created_at == row.created_at)
                .values(created_at=now))
            session.commit()
            if taken.rowcount != 1:
                raise _in_flight()
            return Claim(row.id)
        return _replay(row)


def store(session: Session, held: Claim, status: int, body: dict[str, Any],
          headers: dict[str, str]) -> None:
    """Keep the answer with the key, in the caller's (the create's) transaction."""
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    session.execute(update(IdempotencyKey).where(IdempotencyKey.id == held.id).values(
        status=status, response={"body": body, "headers": kept}))


def release(itsm: Itsm, held: Claim) -> None:
    """Give the key up after the request failed, so that it can be sent again."""
    with itsm.Session() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == held.id,
                                                     IdempotencyKey.status.is_(None)))
        session.commit()


def _find(session: Session, user_id: int, key: str, now) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.client_key == key,
        IdempotencyKey.expires_at > now))


def _in_flight() -> Conflict:
    return Conflict(f"a request with this {HEADER} is still being processed: retry in a "
                    "moment to get its answer", fields={HEADER: ["request in flight"]})


def _replay(row: IdempotencyKey) -> Response:
    stored = row.response or {}
    response = jsonify(stored.get("body", {}))
    response.status_code = row.status or 200
    response.headers.update(stored.get("headers", {}))
    return response
