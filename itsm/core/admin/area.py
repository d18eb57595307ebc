"""The admin area as the application registers it: the blueprint with every core admin
page's views."""

from __future__ import annotations

from flask import Flask

from itsm.core.admin import install_views, people_views, views
from itsm.core.admin.blueprint import bp

PAGES = (views, people_views, install_views)  # their views are on bp


def register(app: Flask) -> None:
    """Register the admin area on ``app``."""
    app.register_blueprint(bp)
