"""A view decorator that opens the unit of work: the route of a plugin gets the
:class:`~itsm.core.records.RecordService` of the caller and commits when it returns."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any


def with_service(view: Callable | None = None, *, page: bool = False) -> Callable:
    """Open one unit of work (one transaction) for a view and pass its service first.

    ``@with_service`` on an API route authenticates the caller like the core's routes
    (a Bearer token, else the signed-in web user; 401 without either);
    ``@with_service(page=True)`` on a route of a :func:`~itsm.core.console.page_blueprint`
    uses the page's signed-in user. The change, its journal and its outbox events commit
    together when the view returns; an exception rolls everything back.
    """

    def decorate(function: Callable) -> Callable:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from itsm.core.app import current_itsm

            if page:
                from itsm.core.console import page_actor

                actor = page_actor()
            else:
                from itsm.core.api import current_actor

                actor = current_actor()
            with current_itsm().unit_of_work(actor) as service:
                return function(service, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def unit_of_work(actor: Any):
    """``with unit_of_work(actor) as service:`` — one transaction of the current
    application for ``actor`` (what :func:`with_service` opens for a view)."""
    from itsm.core.app import current_itsm

    return current_itsm().unit_of_work(actor)
