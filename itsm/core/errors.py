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


def load_input(schema: Schema, data: Any, **kwargs: Any) -> dict[str, Any]:
    """``schema.load(data)`` for a plugin's service layer: anything but an object, or any
    marshmallow error, becomes a :class:`ValidationError` (422 with field messages)."""
    if not isinstance(data, dict):
        raise ValidationError("send an object", fields={"_": ["send an object"]})
    try:
        return schema.load(data, **kwargs)
    except marshmallow.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        raise ValidationError("invalid input: " + ", ".join(sorted(map(str, messages))),
                              fields=messages) from None
