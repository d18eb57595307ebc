"""The oidc plugin's table: mapping rules added on its admin page, applied after the
rules of each ``[plugins.oidc.providers.<name>]`` in itsm.toml (migration ``oidc_0001``)."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base


class OidcRule(Base):
    """A value of a provider's groups claim mapped to an itsm role, resolver group or
    agency."""

    __tablename__ = "oidc_rule"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))  # the provider's name in itsm.toml
    kind: Mapped[str] = mapped_column(String(16))  # "role", "group" or "agency"
    match: Mapped[str] = mapped_column(String(500))  # a value of the groups claim
    value: Mapped[str] = mapped_column(String(200))  # role name, group name, agency code
    position: Mapped[int] = mapped_column(Integer)  # order of application, oldest first
