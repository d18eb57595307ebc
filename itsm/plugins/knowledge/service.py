"""What the knowledge plugin does with articles, always through a record service.

Every function takes the :class:`~itsm.core.records.RecordService` of the caller's unit
of work, so the API, the pages and the demo data share one set of permission checks
and one transaction per command.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Conflict,
    Forbidden,
    NotFound,
    Record,
    RecordService,
    ValidationError,
    current_itsm,
    search_ranked,
    search_terms,
    utcnow,
)
from itsm.plugins.knowledge.models import Article, ArticleVersion, Vote
from itsm.plugins.knowledge.rendering import plain_text

TYPE = "article"
PUBLISHED = "published"
SUMMARY_LENGTH = 200
# A record in one of these states holds an answer worth writing down.
PROPOSE_FROM_STATES = ("resolved", "closed")
# Fields of another record type whose text belongs in an article proposed from it.
ANSWER_WORDS = ("resolution", "workaround")


def portal_url(number: str) -> str:
    """Where anyone signed in reads the article."""
    return f"/knowledge/{number}"


def console_url(number: str) -> str:
    """Where staff work on the article."""
    return f"/records/articles/{number}"


# -- who reads what ----------------------------------------------------------------------


def requester_may_read(actor: Actor, record: Any) -> bool:
    """Requesters read published articles meant for everyone or for their own agency.

    ``record`` may be an article or any row with ``state`` and ``agency_id`` (the core
    checks link targets on plain rows).
    """
    if record.state != PUBLISHED:
        return False
    return record.agency_id is None or record.agency_id == actor.agency_id


def published_for(actor: Actor) -> list[Any]:
    """SQL conditions matching the published articles ``actor`` may read."""
    conditions: list[Any] = [Record.state == PUBLISHED]
    if actor.role == "requester":
        conditions.append(or_(Record.agency_id.is_(None), Record.agency_id == actor.agency_id))
    return conditions


def get_article(service: RecordService, number: str) -> Article:
    """The article ``number`` if the actor may read it (else NotFound)."""
    number = (number or "").strip().upper()
    if not number or len(number) > 32 or "\x00" in number:
        raise NotFound(f"no knowledge article {number[:32]!r}")
    return service.get(number, TYPE)


# -- versions ----------------------------------------------------------------------------


def add_version(session: Session, article: Article, actor: Actor) -> ArticleVersion:
    """Record the article's current title and body as its next version."""
    last = session.scalar(select(func.max(ArticleVersion.version))
                          .where(ArticleVersion.article_id == article.id)) or 0
    version = ArticleVersion(article_id=article.id, version=last + 1, title=article.title,
                             body=article.description or "", author_id=actor.id,
                             created_at=utcnow())
    session.add(version)
    return version


def system_note(session: Session, article: Article, text: str) -> None:
    """A work note on the article by the system, in the caller's transaction."""
    RecordService(current_itsm(), session, Actor.system()).comment(article, text,
                                                                   public=False)


def versions(service: RecordService, article: Article) -> list[dict[str, Any]]:
    """Every version of the article, oldest first (staff only)."""
    service.require("knowledge.history", article)
    rows = service.session.scalars(select(ArticleVersion).where(
        ArticleVersion.article_id == article.id).order_by(ArticleVersion.version))
    return [{"version": v.version, "title": v.title, "body": v.body,
             "author": service.ref("user", v.author_id),
             "created_at": v.created_at.isoformat()} for v in rows]


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """Lines of a unified diff between two versions as ``(kind, text)`` pairs, kind being
    ``added``, ``removed``, ``same`` or ``hunk``."""
    before = [f"# {old['title']}", "", *old["body"].splitlines()]
    after = [f"# {new['title']}", "", *new["body"].splitlines()]
    lines = []
    for line in difflib.unified_diff(before, after, f"version {old['version']}",
                                     f"version {new['version']}", lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "added", "-": "removed"}.get(line[:1], "same")
        lines.append((kind, line[1:] if kind != "hunk" else line))
    return lines


# -- votes -------------------------------------------------------------------------------


def vote(service: RecordService, article: Article, helpful: bool) -> dict[str, Any]:
    """Record whether the article helped the actor; a second vote replaces the first.

    The counts change in the same transaction, by relative updates, so votes arriving
    together are all counted. A vote does not edit the article: its version (what an
    editor's If-Match compares) stays as it is.
    """
    service.require("knowledge.vote", article)
    if service.actor.id is None:
        raise Forbidden("only people vote on articles")
    if article.state != PUBLISHED:
        raise Conflict(f"{article.number} is not published: only published articles take "
                       "votes", reasons=["the article is not published"])
    session = service.session
    mine = session.scalar(select(Vote).where(Vote.article_id == article.id,
                                             Vote.user_id == service.actor.id))
    helpful_delta = not_helpful_delta = 0
    if mine is None:
        session.add(Vote(article_id=article.id, user_id=service.actor.id, helpful=helpful,
                         created_at=utcnow(), updated_at=utcnow()))
        helpful_delta, not_helpful_delta = (1, 0) if helpful else (0, 1)
    elif mine.helpful != helpful:
        mine.helpful, mine.updated_at = helpful, utcnow()
        helpful_delta, not_helpful_delta = (1, -1) if helpful else (-1, 1)
    session.flush()
    if helpful_delta or not_helpful_delta:
        table = Article.__table__
        session.execute(update(table).where(table.c.id == article.id).values(
            helpful_count=table.c.helpful_count + helpful_delta,
            not_helpful_count=table.c.not_helpful_count + not_helpful_delta))
        session.expire(article, ["helpful_count", "not_helpful_count"])
    return {"article": article.number, "helpful": helpful,
            "helpful_count": article.helpful_count,
            "not_helpful_count": article.not_helpful_count}


def my_vote(service: RecordService, article: Article) -> bool | None:
    """The actor's vote on the article: True, False, or None before voting."""
    if service.actor.id is None:
        return None
    return service.session.scalar(select(Vote.helpful).where(
        Vote.article_id == article.id, Vote.user_id == service.actor.id))


# -- finding published articles ----------------------------------------------------------


def search_published(service: RecordService, text: str, limit: int = 20) \
        -> list[tuple[Article, float | None]]:
    """Published articles the actor may read: the best matches for ``text`` (every word
    must match), or the most recently published when ``text`` has no word."""
    service.require("knowledge.search")
    conditions = published_for(service.actor)
    if search_terms(text):
        hits = search_ranked(service.session, text, types=[TYPE], where=conditions,
                             limit=limit, any_term=False)
    else:
        latest = service.session.scalars(
            select(Article).where(*conditions)
            .order_by(Article.published_at.desc(), Article.id.desc()).limit(limit))
        hits = [(article, None) for article in latest]
    return [(a, score) for a, score in hits if service.can(f"{TYPE}.read", a)]


def hit(article: Article, score: float | None = None) -> dict[str, Any]:
    """A search result: enough to list an article and link to it."""
    return {"number": article.number, "title": article.title,
            "summary": plain_text(article.description, SUMMARY_LENGTH),
            "service": article.service, "category": article.category, "score": score,
            "helpful_count": article.helpful_count,
            "not_helpful_count": article.not_helpful_count,
            "published_at": article.published_at.isoformat() if article.published_at else None,
            "url": portal_url(article.number)}


# -- proposals from resolved records -----------------------------------------------------


def may_propose_from(record: Any) -> bool:
    """Whether ``record`` is of another type and in a state that holds an answer."""
    return record.type != TYPE and record.state in PROPOSE_FROM_STATES


def proposal_values(service: RecordService, source: Record) -> dict[str, Any]:
    """A draft article written from ``source``: its title, its description followed by
    every text field of its type that holds a resolution or a workaround."""
    data = service.to_dict(source)
    sections = [(data.get("description") or "").strip()]
    for key, value in data.items():
        if any(word in key for word in ANSWER_WORDS) and isinstance(value, str) \
                and value.strip():
            sections.append(f"## {key.replace('_', ' ').capitalize()}\n\n{value.strip()}")
    values: dict[str, Any] = {"title": source.title[:300],
                              "description": "\n\n".join(s for s in sections if s)[:100_000],
                              "source_record": source.number}
    for key in ("service", "category"):
        if isinstance(data.get(key), str) and data[key].strip():
            values[key] = data[key].strip()[:100]
    return values


def source_record(service: RecordService, number: str) -> Record:
    """The record to propose an article from, if the actor may read it and it is done."""
    number = (number or "").strip().upper()
    if not number or len(number) > 32 or "\x00" in number:
        raise ValidationError("name the record to write the article from",
                              fields={"record": ["missing"]})
    try:
        source = service.get(number)
    except NotFound:
        raise ValidationError(f"no record {number} to write an article from",
                              fields={"record": ["no such record"]}) from None
    if source.type == TYPE:
        raise ValidationError("an article is written from another record, not an article",
                              fields={"record": ["is an article"]})
    if source.state not in PROPOSE_FROM_STATES:
        raise Conflict(f"{source.number} is not resolved yet: propose an article once it is "
                       "resolved or closed", reasons=[f"{source.number} is not resolved"])
    return source


def propose(service: RecordService, number: str, overrides: dict[str, Any] | None = None) \
        -> Article:
    """Create a draft article from the resolved record ``number`` and link the two.

    ``overrides`` replaces parts of the proposal (the title, the body ...). Refused while
    another article proposed from the same record is not retired.
    """
    source = source_record(service, number)
    service.require(f"{TYPE}.create")
    earlier = service.session.scalar(select(Article.number).where(
        Article.source_record == source.number, Article.state != "retired"))
    if earlier:
        raise Conflict(f"{earlier} was already proposed from {source.number}: improve it "
                       "instead", reasons=[f"{earlier} exists"])
    values = {**proposal_values(service, source), **(overrides or {})}
    values["source_record"] = source.number
    article = service.create(TYPE, values)
    service.link(article, source.number, "relates_to")
    return article
