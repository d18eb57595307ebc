"""Full-text search over records, one interface on every database, and suggestions.

Every record's ``title`` and ``description`` are indexed by the database itself:

- SQLite: an FTS5 table ``record_search`` (porter stemming) kept in step with ``record``
  by triggers;
- PostgreSQL: a table ``record_search`` holding each record's
  ``to_tsvector('english', title || ' ' || description)``, with a GIN index, kept in step
  by triggers (core_0006): a search checks the stored document instead of building it
  again for every candidate row; and ``record_search_word``, every word those documents
  held (core_0007), so that a typed word's start is asked of the index as the whole
  words it stands for (see :func:`_pg_query`);
- MariaDB/MySQL: a ``FULLTEXT`` index on ``(title, description)``.

Plugins never write SQL for it: :func:`matching` gives the ids of the records that match
some text, ready to use in a ``WHERE record.id IN (...)``, and :func:`ranked` gives the
best matches first with a score. A plugin that stores searchable text puts it in the
record's ``title`` and ``description`` (a knowledge article's body is its description).

Suggestions: a record type created with ``suggest=True`` (see
:class:`~itsm.core.records.RecordType`) gets, on creation and on
``GET /api/v1/<collection>/<number>/suggestions``, the best answers other plugins offer
through the ``itsm_suggestions`` hook (published articles, known errors ...), so the
plugin that owns the record knows none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    column,
    event,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from itsm.core.database import plan_each_run
from itsm.core.models import Record

if TYPE_CHECKING:
    from itsm.core.auth import Actor
    from itsm.core.state import Itsm

MAX_TERMS = 12
MAX_TERM_LENGTH = 40
PG_CONFIG = "english"
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Suggestion:
    """One answer offered for a record (returned by ``itsm_suggestions``).

    :param number: the suggested record's number (``KB0000012``).
    :param title: its title.
    :param kind: what it is, for people (``Knowledge article``, ``Known error``).
    :param summary: a short excerpt or the workaround, plain text.
    :param score: relevance, higher is better; :func:`ranked` gives comparable scores.
    :param url: where a person reads it (a console or portal page), if any.
    """

    number: str
    title: str
    kind: str
    summary: str = ""
    score: float = 0.0
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Left out when ranking free text (suggestions): they match nearly everything.
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "cannot", "could",
    "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in",
    "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "please",
    "since", "so", "that", "the", "their", "them", "then", "there", "this", "to", "too",
    "us", "was", "we", "were", "what", "when", "where", "which", "while", "who", "why",
    "will", "with", "you", "your"
})


def terms(text_: str, *, ranking: bool = False) -> list[str]:
    """The words of a search text, lower-cased, de-duplicated and bounded; ``ranking``
    also drops stop words and one- and two-letter words."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text_ or ""):
        word = word.lower()[:MAX_TERM_LENGTH]
        if ranking and (len(word) < 3 or word in STOP_WORDS):
            continue
        if word not in seen and word != "_" * len(word):
            seen[word] = None
        if len(seen) == MAX_TERMS:
            break
    return list(seen)


def _sqlite_query(words: Sequence[str], any_term: bool) -> str:
    # Each word becomes a quoted FTS5 string (quotes doubled) with a prefix star: no
    # operator or column filter the user types can reach the FTS5 query language.
    quoted = ['"' + w.replace('"', '""') + '"*' for w in words]
    return (" OR " if any_term else " ").join(quoted)


def _mysql_query(words: Sequence[str], any_term: bool) -> str:
    # Boolean mode: '+' requires a word, '*' matches its prefix. Only \w characters
    # remain in the words, so no other operator can be formed.
    return " ".join(("" if any_term else "+") + w + "*" for w in words)


# PostgreSQL: each record's document, stored by the triggers of core_0006 (the database's
# own, like SQLite's FTS5 table of the same name: not a model).
PG_SEARCH = table("record_search", column("record_id", Integer), column("document"))


def _pg_prefix_query(words: Sequence[str], any_term: bool):
    # to_tsquery over words made of \w characters only, each quoted as a lexeme. The
    # statements that search are planned with the words' own statistics on each run
    # (see itsm.core.database.plan_each_run).
    joined = (" | " if any_term else " & ").join("'" + w + "':*" for w in words)
    return func.to_tsquery(literal_column(f"'{PG_CONFIG}'"),
                           bindparam("ts_query", joined, unique=True))


# A word's start that stands for more whole words than this is asked as a prefix.
MAX_EXPANSION = 32
_EXPANSIONS = "itsm.search.expansions"  # session.info key, emptied when a transaction ends

# Each word as to_tsquery reads it, and, when that is one lexeme, the stored words that
# start with it (a range of the B-tree in byte order; at most one more than the most used).
_EXPAND = text(
    "SELECT CAST(q AS text) AS normal, numnode(q) AS nodes, "
    "CASE WHEN numnode(q) = 1 THEN ARRAY("
    "  SELECT DISTINCT v.word FROM record_search_word v "
    "  WHERE v.word >= x.lexeme AND v.word < x.lexeme || chr(1114111) "
    "  ORDER BY v.word LIMIT :most) END AS expansion "
    "FROM unnest(CAST(:words AS text[])) WITH ORDINALITY AS w(word, position) "
    "CROSS JOIN LATERAL to_tsquery(CAST(:config AS regconfig), "
    "                              quote_literal(w.word) || ':*') AS q "
    "CROSS JOIN LATERAL (SELECT (tsvector_to_array(to_tsvector("
    '  CAST(:config AS regconfig), w.word)))[1] COLLATE "C" AS lexeme) AS x '
    "ORDER BY w.position")


def _quoted(lexeme: str) -> str:
    """A lexeme as tsquery input reads it, whatever characters it holds."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _pg_query(session: Session, words: Sequence[str], any_term: bool):
    """The tsquery of ``words``, each the start of a word: asked as the whole words it
    stands for where the stored words (core_0007) say there are at most
    :data:`MAX_EXPANSION` of them, which the GIN index answers several times faster than
    a prefix; otherwise as the prefix. Worked out once per transaction."""
    key = (tuple(words), any_term)
    known = session.info.setdefault(_EXPANSIONS, {})
    if key not in known:
        parts = []
        for normal, nodes, expansion in session.execute(
                _EXPAND, {"config": PG_CONFIG, "words": list(words),
                          "most": MAX_EXPANSION + 1}):
            if not nodes:  # a stop word: to_tsquery leaves it out too
                continue
            if expansion is None or len(expansion) > MAX_EXPANSION:
                parts.append(f"({normal})")
            elif expansion:
                parts.append("(" + " | ".join(_quoted(w) for w in expansion) + ")")
            elif not any_term:  # no stored word starts so: nothing can match every word
                parts = []
                break
        known[key] = (" | " if any_term else " & ").join(parts)
    from sqlalchemy.dialects.postgresql import TSQUERY  # PostgreSQL's alone: imported there

    return cast(bindparam("ts_query", known[key], unique=True), TSQUERY)


@event.listens_for(Session, "after_transaction_end")
def _forget_expansions(session: Session, transaction) -> None:
    # Words stored by later transactions must be seen by later searches.
    session.info.pop(_EXPANSIONS, None)


def _scored(session: Session, words: list[str], any_term: bool,
            types: Sequence[str] = ()) -> Select | None:
    """``SELECT record_id, score`` of the records matching ``words``; higher scores first.

    ``types`` limits the matches before they are scored (MariaDB; on PostgreSQL the
    planner starts from :func:`ranked`'s condition on the type, a column of ``record``,
    and scores only those records): free text matches most of a big desk's incidents,
    and scoring them all only to keep five knowledge articles made every incident's
    creation slower as the desk grew.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        fts_query = bindparam("fts_query", _sqlite_query(words, any_term), unique=True)
        return (select(literal_column("rowid").label("record_id"),
                       (-func.bm25(literal_column("record_search"))).label("score"))
                .select_from(text("record_search"))
                .where(text("record_search MATCH :fts_query").bindparams(fts_query)))
    if dialect == "postgresql":
        # Matched by whole words, scored by the words as typed: the same scores as before
        # the words were stored, whichever way a word is asked.
        document = PG_SEARCH.c.document
        score = func.ts_rank(document, _pg_prefix_query(words, any_term))
        return (select(PG_SEARCH.c.record_id, score.label("score"))
                .where(document.op("@@")(_pg_query(session, words, any_term))))
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import match as mysql_match  # only there: a large import

        match = mysql_match(Record.title, Record.description,
                            against=_mysql_query(words, any_term)).in_boolean_mode()
        stmt = select(Record.id.label("record_id"), match.label("score")).where(match > 0)
        return stmt.where(Record.type.in_(types)) if types else stmt
    return None


def matching(session: Session, text_: str, *, any_term: bool = False) -> Select | None:
    """A ``SELECT record.id`` of the records whose title or description match ``text_``.

    Every word must match (as a word or the start of one), unless ``any_term``.
    ``None`` when the text has no word at all: the caller decides what that means.
    """
    words = terms(text_)
    if not words:
        return None
    if session.get_bind().dialect.name == "postgresql":
        # The ids alone: the planner may then check each record's stored document while
        # it walks a page's order, rather than gather every match first.
        return select(PG_SEARCH.c.record_id).where(
            PG_SEARCH.c.document.op("@@")(_pg_query(session, words, any_term)))
    scored = _scored(session, words, any_term)
    if scored is None:  # an unknown dialect: a slow but correct fallback
        conditions = [Record.title.ilike(f"%{w}%") | Record.description.ilike(f"%{w}%")
                      for w in words]
        return select(Record.id).where((or_ if any_term else and_)(*conditions))
    return select(scored.subquery().c.record_id)


def row_matches(session: Session, text_: str, record_id: Any) -> ColumnElement[bool] | None:
    """Whether the record whose id is ``record_id`` (a column) matches every word of
    ``text_``, checked row by row against its stored document, without the index.

    For a list that walks records in its own order and keeps the first that match: its
    cost follows the records walked, not the number of matches in the whole database.
    ``None`` where the database stores no document apart (SQLite, MariaDB) or when the
    text has no word.
    """
    words = terms(text_)
    if not words or session.get_bind().dialect.name != "postgresql":
        return None
    document = (select(PG_SEARCH.c.document).where(PG_SEARCH.c.record_id == record_id)
                .scalar_subquery())
    return document.op("@@")(_pg_query(session, words, False))


def ranked(session: Session, text_: str, *, types: Iterable[str] | None = None,
           exclude: Iterable[int] = (), where: Sequence[Any] = (), limit: int = 5,
           any_term: bool = True) -> list[tuple[Record, float]]:
    """The records best matching ``text_``, best first, with a score in (0, 1].

    :param types: only records of these types.
    :param exclude: record ids to leave out (the record being worked on).
    :param where: extra conditions on the record's model, e.g. ``Record.state == "x"``;
        a plugin passes its own model's columns to filter on its own fields.
    """
    words = terms(text_, ranking=True)
    if not words:
        return []
    type_list = list(types or ())
    scored = _scored(session, words, any_term, type_list)
    if scored is None:
        ids = matching(session, text_, any_term=any_term)
        scored = select(ids.subquery().c.id.label("record_id"),
                        literal_column("1.0").label("score"))
    hits = scored.subquery()
    stmt = (select(Record, hits.c.score).join(hits, hits.c.record_id == Record.id)
            .order_by(hits.c.score.desc(), Record.id.desc()).limit(max(1, min(limit, 50))))
    if type_list:
        stmt = stmt.where(Record.type.in_(type_list))
    excluded = list(exclude)
    if excluded:
        stmt = stmt.where(Record.id.not_in(excluded))
    for condition in where:
        stmt = stmt.where(condition)
    rows = session.execute(plan_each_run(stmt)).all()
    if not rows:
        return []
    best = max(float(score or 0) for _, score in rows) or 1.0
    return [(record, round(max(float(score or 0), 0.0) / best, 4) or 0.0001)
            for record, score in rows]


def suggestions(itsm: Itsm, session: Session, actor: Actor, text_: str,
                record: Record | None = None, limit: int = 5) -> list[Suggestion]:
    """What the enabled plugins suggest for ``text_``, best first, at most ``limit``."""
    found: dict[str, Suggestion] = {}
    for _plugin, item in itsm.results("itsm_suggestions", session=session, actor=actor,
                                      text=text_, record=record, limit=limit):
        if isinstance(item, Suggestion) and (
                item.number not in found or found[item.number].score < item.score):
            found[item.number] = item
    return sorted(found.values(), key=lambda s: (-s.score, s.number))[:limit]
