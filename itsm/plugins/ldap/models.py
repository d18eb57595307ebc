"""The ldap plugin's table: mapping rules added on its admin page, applied after the
rules of ``[plugins.ldap]`` in itsm.toml (migration ``ldap_0001``)."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base


class LdapRule(Base):
    """A directory group (DN) mapped to an itsm role, resolver group or agency."""

    __tablename__ = "ldap_rule"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "role", "group" or "agency"
    match: Mapped[str] = mapped_column(String(500))  # the directory group's DN
    value: Mapped[str] = mapped_column(String(200))  # role name, group name, agency code
    position: Mapped[int] = mapped_column(Integer)  # order of application, oldest first
