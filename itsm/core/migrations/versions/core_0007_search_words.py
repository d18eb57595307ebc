"""PostgreSQL full-text search: the words of the stored documents, so that a word's start
is looked up as the whole words it stands for.

A search takes each typed word as the start of a word ("passw" finds "password"). The
GIN index answers such a prefix (``'crash':*``) by gathering every entry of every word
that starts with it into one bitmap, entry by entry, before it can combine the words of
the search: at a million incidents, "outlook crash" took 25-40 ms in the index alone.
The same words asked as whole words (``'outlook' & 'crash'``) take 4-5 ms, because the
index then steps through the rarer word's entries and skips in the other's.

The table ``record_search_word`` holds every word (lexeme) that any stored document has
held, once: a search first looks up which words start with each typed word (a range of
a B-tree in byte order) and asks the index for those whole words (``'crash' |
'crashdump'``); a start that stands for too many words is still asked as a prefix (see
``itsm.core.search``). The record triggers of core_0006 add a document's new words in the
same statement that stores the document, so the words are never behind the documents a
search can see. Words are not removed when a record is edited or deleted: a word no
document holds any more only adds a term that matches nothing.

The words are added without a unique constraint, only when no row holds them yet: two
records bringing the same new word at the same moment may both add it (a search reads
them with DISTINCT), but no writer ever waits for another's word to commit.

Revision ID: core_0007
Revises: core_0006
"""

from alembic import op

from itsm.core.migrations.versions.core_0006_search_vector import (
    DOCUMENT,
    INSERT_FUNCTION,
    UPDATE_FUNCTION,
)

revision = "core_0007"
down_revision = "core_0006"
branch_labels = None
depends_on = None

# The new words of the documents in the relation ``{docs}``: each word of the statement's
# documents looked up once (a batch of 2,000 imported incidents holds some 60,000 words,
# a few thousand of them different).
NEW_WORDS = (
    "INSERT INTO record_search_word (word) "
    "SELECT lexeme FROM (SELECT DISTINCT unnest(tsvector_to_array(document)) AS lexeme "
    "FROM {docs}) AS words "
    "WHERE NOT EXISTS (SELECT 1 FROM record_search_word w WHERE w.word = words.lexeme)")

# A trigger's statements are planned once per connection, at its first run: on a new
# install, when the table of words is empty and a scan of it costs nothing. Kept, that
# plan would scan the whole table for each new word of every record written after, so
# the functions plan their statements with the index.
BY_INDEX = "SET enable_seqscan = off"

PG_UP = [
    # No writer between the words filled below and the triggers that keep them.
    "LOCK TABLE record IN SHARE ROW EXCLUSIVE MODE",
    'CREATE TABLE record_search_word (word text COLLATE "C" NOT NULL)',
    "CREATE OR REPLACE FUNCTION record_search_insert() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "WITH stored AS (INSERT INTO record_search (record_id, document) "
    f"SELECT id, {DOCUMENT.format(row='')} FROM record_search_new "
    "ON CONFLICT (record_id) DO UPDATE SET document = excluded.document "
    f"RETURNING document) {NEW_WORDS.format(docs='stored')}; "
    "RETURN NULL; END $$ " + BY_INDEX,
    "CREATE OR REPLACE FUNCTION record_search_update() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "WITH stored AS (INSERT INTO record_search (record_id, document) "
    f"VALUES (NEW.id, {DOCUMENT.format(row='NEW.')}) "
    "ON CONFLICT (record_id) DO UPDATE SET document = excluded.document "
    f"RETURNING document) {NEW_WORDS.format(docs='stored')}; "
    "RETURN NULL; END $$ " + BY_INDEX,
    "INSERT INTO record_search_word (word) "
    "SELECT DISTINCT lexeme FROM record_search, unnest(tsvector_to_array(document)) AS lexeme "
    "ORDER BY lexeme",
    "CREATE INDEX ix_record_search_word ON record_search_word (word)",
    "ANALYZE record_search_word",
]

# core_0006's trigger functions, as they were.
PG_DOWN = [
    INSERT_FUNCTION,
    UPDATE_FUNCTION,
    "DROP TABLE IF EXISTS record_search_word",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DOWN:
            op.execute(statement)
