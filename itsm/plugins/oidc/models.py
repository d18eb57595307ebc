"""The oidc plugin's table: mapping rules added on its admin page, applied after the
rules of each ``[plugins.oidc.providers.<name>]`` in itsm.toml (migration ``oidc_0001``)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, DirectoryRuleColumns


class OidcRule(DirectoryRuleColumns, Base):
    """A value of a provider's groups claim mapped to an itsm role, resolver group or
    agency."""

    __tablename__ = "oidc_rule"
    provider: Mapped[str] = mapped_column(String(64))  # the provider's name in itsm.toml
