"""Deliverables approved by a role, and the default checklist's template documents at
the address the plugin serves them (``/transitions/templates/…``; the old
``/templates/…`` answered 404).

Revision ID: transition_gate_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "transition_gate_0004"
down_revision = "transition_gate_0003"
branch_labels = None
depends_on = None

MOVED = {f"/templates/{name}": f"/transitions/templates/{name}"
         for name in ("service-desk-knowledge.md", "contact-list.md")}


def _move_links(mapping: dict[str, str]) -> None:
    bind = op.get_bind()
    deliverable = sa.table("transition_deliverable", sa.column("document_url", sa.String))
    for old, new in mapping.items():
        bind.execute(sa.update(deliverable).where(deliverable.c.document_url == old)
                     .values(document_url=new))
    template = sa.table("transition_template", sa.column("id", sa.Integer),
                        sa.column("items", sa.JSON))
    for row in bind.execute(sa.select(template.c.id, template.c["items"])).all():
        items = row[1] or []
        moved = [{**item, "document_url": mapping.get(item.get("document_url", ""),
                                                      item.get("document_url", ""))}
                 for item in items]
        if moved != items:
            bind.execute(sa.update(template).where(template.c.id == row.id)
                         .values(items=moved))


def upgrade() -> None:
    with op.batch_alter_table("transition_deliverable") as batch:
        batch.add_column(sa.Column("approver_role", sa.String(100), nullable=False,
                                   server_default=""))
    _move_links(MOVED)


def downgrade() -> None:
    _move_links({new: old for old, new in MOVED.items()})
    with op.batch_alter_table("transition_deliverable") as batch:
        batch.drop_column("approver_role")
