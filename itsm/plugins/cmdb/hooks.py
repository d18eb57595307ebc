"""The cmdb plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

import click
from flask import Blueprint

from itsm.plugin import (
    Actor,
    AdminPage,
    DemoContext,
    NavItem,
    Permission,
    ReferenceKind,
    hookimpl,
)
from itsm.plugins.cmdb import service as cmdb


@hookimpl
def itsm_permissions() -> list[Permission]:
    """Read (requesters: their agency's CIs only), write, and administer (types,
    imports)."""
    return [Permission(cmdb.READ, "see configuration items and their impact",
                       ("agent", "requester")),
            Permission(cmdb.WRITE, "add, change, relate and retire configuration items",
                       ("agent",)),
            Permission(cmdb.ADMIN, "define CI types and import configuration items")]


@hookimpl
def itsm_reference_kinds() -> list[ReferenceKind]:
    """"configuration_item", and "service" below a catalog's (see kinds.py)."""
    from itsm.plugins.cmdb import kinds

    return kinds.reference_kinds()


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes, the console pages and the CI types' admin pages."""
    from itsm.plugins.cmdb import forms  # noqa: F401 (its routes are on the pages)
    from itsm.plugins.cmdb.admin import bp as admin_pages
    from itsm.plugins.cmdb.api import api
    from itsm.plugins.cmdb.pages import pages

    return [api, pages, admin_pages]


@hookimpl
def itsm_admin_pages() -> list[AdminPage]:
    """The CI types and their attributes, for who holds ``cmdb.admin``."""
    from itsm.plugins.cmdb.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm cmdb import|show|impact|export|types``."""
    from itsm.plugins.cmdb.cli import cmdb_group

    return [cmdb_group]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """Configuration items, for staff (requesters reach their CIs from their records)."""
    if actor.role in ("requester",):
        return None
    return [NavItem("Configuration items", "/cmdb/cis", order=55)]


@hookimpl
def itsm_demo_data(ctx: DemoContext) -> None:
    """A small graph: servers, databases, applications and two business services."""
    from itsm.plugins.cmdb.demo import load_demo

    load_demo(ctx)
