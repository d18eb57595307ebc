"""The application state of the current Flask application, for code inside a request or a
command: a low module, so that any part of the core can ask for it without importing the
application factory (which imports the whole core)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from itsm.core.state import Itsm


def current_itsm() -> Itsm:
    """The :class:`~itsm.core.state.Itsm` of the current Flask application (inside a
    request or command)."""
    return current_app.extensions["itsm"]
