"""Shared pieces of the web console that plugins use: navigation entries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    """One entry of the console's navigation (returned by ``itsm_navigation``)."""

    label: str
    url: str
    order: int = 100
