"""Errors the service layer raises; the API, pages and CLI each turn them into their own form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import marshmallow

if TYPE_CHECKING:
    from marshmallow import Schema


class ItsmError(Exception):
    """Base of every error a user may see. ``status`` is the HTTP status it maps to."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationError(ItsmError):
    status = 422
    code = "invalid"


class NotFound(ItsmError):
    status = 404
    code = "not_found"


class Unauthorized(ItsmError):
    status = 401
    code = "unauthorized"


class Forbidden(ItsmError):
    status = 403
    code = "forbidden"


class Conflict(ItsmError):
    """A transition refused by the workflow or a guard; ``reasons`` lists every refusal."""

    status = 409
    code = "conflict"

    def __init__(self, message: str, *, reasons: list[str] | None = None, fields=None) -> None:
        super().__init__(message, fields=fields)
        self.reasons = reasons or []


class StaleRecord(ItsmError):
    """The client wrote with an old version (If-Match did not match)."""

    status = 412
    code = "stale"


class ConfigError(ItsmError):
    code = "config"


class PluginError(ItsmError):
    code = "plugin"


def load_input(schema: Schema, data: Any, *, what: str = "input", **kwargs: Any) -> Any:
    """``schema.load(data)`` for a plugin's service layer: anything but an object, or any
    marshmallow error, becomes a :class:`ValidationError` (422 with field messages) whose
    message starts with ``invalid <what>``; every text passes the input gate first
    (:mod:`itsm.core.inputs`: NUL and lone surrogates refused, the rest normalised); a
    list is expected instead of an object when the schema loads ``many``."""
    if not isinstance(data, list if getattr(schema, "many", False) else dict):
        kind = "a list" if getattr(schema, "many", False) else "an object"
        raise ValidationError(f"send {kind}", fields={"_body": [f"not {kind}"]})
    from itsm.core.inputs import check_tree  # it imports this module

    try:
        return schema.load(check_tree(data), **kwargs)
    except marshmallow.ValidationError as exc:
        raise ValidationError(f"invalid {what}: " + ", ".join(sorted(map(str, messages_of(exc)))),
                              fields=messages_of(exc)) from None


def messages_of(exc: marshmallow.ValidationError) -> dict[str, Any]:
    """A marshmallow error's messages by field (``_`` for messages of no field)."""
    return exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
