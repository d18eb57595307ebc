"""Errors the service layer raises; the API, pages and CLI each turn them into their own form."""

from __future__ import annotations

from typing import Any

import marshmallow


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


class SchemaMissing(ItsmError):
    """A table the code needs is not in the database: an upgrade was not run. Not the
    database being down (503, retry): nothing changes until an admin migrates."""

    status = 500
    code = "schema_missing"


def messages_of(exc: marshmallow.ValidationError) -> dict[str, Any]:
    """A marshmallow error's messages by field (``_`` for messages of no field)."""
    return exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
