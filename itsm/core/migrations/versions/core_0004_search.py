"""Full-text search over record titles and descriptions, with each database's own index.

SQLite: an FTS5 table over ``record`` (external content) kept in step by triggers.
PostgreSQL: a GIN index on the ``to_tsvector`` expression ``itsm.core.search`` queries.
MariaDB/MySQL: a FULLTEXT index.

Revision ID: core_0004
Revises: core_0003
"""

from alembic import op

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None

PG_EXPRESSION = ("to_tsvector('english'::regconfig, "
                 "(COALESCE(title, '') || ' ') || COALESCE(description, ''))")

SQLITE_UP = [
    "CREATE VIRTUAL TABLE record_search USING fts5("
    "title, description, content='record', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER record_search_ai AFTER INSERT ON record BEGIN "
    "INSERT INTO record_search(rowid, title, description) "
    "VALUES (new.id, new.title, new.description); END",
    "CREATE TRIGGER record_search_ad AFTER DELETE ON record BEGIN "
    "INSERT INTO record_search(record_search, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); END",
    "CREATE TRIGGER record_search_au AFTER UPDATE OF title, description ON record BEGIN "
    "INSERT INTO record_search(record_search, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); "
    "INSERT INTO record_search(rowid, title, description) "
    "VALUES (new.id, new.title, new.description); END",
    "INSERT INTO record_search(record_search) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS record_search_au",
    "DROP TRIGGER IF EXISTS record_search_ad",
    "DROP TRIGGER IF EXISTS record_search_ai",
    "DROP TABLE IF EXISTS record_search",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_record_fulltext ON record USING gin (({PG_EXPRESSION}))")
    elif dialect in ("mysql", "mariadb"):
        op.execute("CREATE FULLTEXT INDEX ix_record_fulltext ON record (title, description)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    elif dialect in ("postgresql", "mysql", "mariadb"):
        op.drop_index("ix_record_fulltext", table_name="record")
