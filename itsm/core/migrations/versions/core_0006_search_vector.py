"""PostgreSQL full-text search: each record's document stored once, not rebuilt per search.

core_0004 indexed the expression ``to_tsvector(title || ' ' || description)``. Only the
GIN index could tell whether a record matches: checking one row meant running
``to_tsvector`` on its text again, far too slow record after record, so a search page
gathered every match from the index and fetched each one from the table before keeping
the 50 newest. A common word matches tens of thousands of incidents at a million (some
25,000 to 37,000 pages read for one page of results), so a search page cost hundreds of
milliseconds and grew with the desk's size.

The table ``record_search`` (one row per record: its id and its ``tsvector``, with a GIN
index) now holds the document, computed once when the record is written: by a statement
trigger on insert (one pass over the inserted rows, so bulk imports stay bulk) and a row
trigger when a title or description changes; rows go with their record (``ON DELETE
CASCADE``). A search page first walks the newest records of its order and checks each
one's stored document, reading about as many as it takes to fill the page whatever the
size of the desk; only for words too rare among them does it take every match from the
GIN index (see ``itsm.core.query.search_page``). The expression index is dropped:
nothing reads it any more.

Like SQLite's FTS5 table of the same name (core_0004), the table is the database's own,
derived from ``record``: not in the models, not exported, rebuilt by the triggers on
import. SQLite and MariaDB/MySQL keep their index of core_0004 as it is.

Revision ID: core_0006
Revises: core_0005
"""

from alembic import op

revision = "core_0006"
down_revision = "core_0005"
branch_labels = None
depends_on = None

# What core_0004 indexed, and what itsm.core.search matched, to the letter.
DOCUMENT = ("to_tsvector('english'::regconfig, "
            "(COALESCE({row}title, '') || ' ') || COALESCE({row}description, ''))")

INSERT_FUNCTION = (
    "CREATE OR REPLACE FUNCTION record_search_insert() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO record_search (record_id, document) "
    f"SELECT id, {DOCUMENT.format(row='')} FROM record_search_new "
    "ON CONFLICT (record_id) DO UPDATE SET document = excluded.document; "
    "RETURN NULL; END $$")
UPDATE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION record_search_update() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO record_search (record_id, document) "
    f"VALUES (NEW.id, {DOCUMENT.format(row='NEW.')}) "
    "ON CONFLICT (record_id) DO UPDATE SET document = excluded.document; "
    "RETURN NULL; END $$")

PG_UP = [
    "CREATE TABLE record_search ("
    "record_id integer PRIMARY KEY REFERENCES record (id) ON DELETE CASCADE, "
    "document tsvector NOT NULL)",
    # Inserts: one statement for all the rows an INSERT wrote (transition table).
    INSERT_FUNCTION,
    "CREATE TRIGGER record_search_ai AFTER INSERT ON record "
    "REFERENCING NEW TABLE AS record_search_new "
    "FOR EACH STATEMENT EXECUTE FUNCTION record_search_insert()",
    # Edits: only when the title or description really changed.
    UPDATE_FUNCTION,
    "CREATE TRIGGER record_search_au AFTER UPDATE OF title, description ON record "
    "FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title "
    "OR OLD.description IS DISTINCT FROM NEW.description) "
    "EXECUTE FUNCTION record_search_update()",
    # The triggers' lock keeps writers out until the table is filled and committed.
    f"INSERT INTO record_search (record_id, document) SELECT id, {DOCUMENT.format(row='')} "
    "FROM record ORDER BY id",
    "SET LOCAL maintenance_work_mem = '256MB'",
    "CREATE INDEX ix_record_search_document ON record_search USING gin (document)",
    "DROP INDEX IF EXISTS ix_record_fulltext",
    # Statistics now: the planner chooses between the two plans of a search by them.
    "ANALYZE record_search",
]

PG_DOWN = [
    f"CREATE INDEX ix_record_fulltext ON record USING gin (({DOCUMENT.format(row='')}))",
    "DROP TRIGGER IF EXISTS record_search_au ON record",
    "DROP TRIGGER IF EXISTS record_search_ai ON record",
    "DROP TABLE IF EXISTS record_search",
    "DROP FUNCTION IF EXISTS record_search_update()",
    "DROP FUNCTION IF EXISTS record_search_insert()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DOWN:
            op.execute(statement)
