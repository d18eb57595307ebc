"""The knowledge plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    DemoContext,
    NavItem,
    Permission,
    Record,
    RecordChange,
    RecordType,
    Suggestion,
    hookimpl,
    search_ranked,
    utcnow,
)
from itsm.plugins.knowledge import service as knowledge
from itsm.plugins.knowledge.rendering import plain_text
from itsm.plugins.knowledge.workflow import ARTICLE, PUBLISH_PERMISSION, allowed

SUGGESTION_KIND = "Knowledge article"


@hookimpl
def itsm_record_types() -> list[RecordType]:
    return [ARTICLE]


@hookimpl
def itsm_permissions() -> list[Permission]:
    return [
        # Replaces the type's automatic staff-only read: requesters read too, and the
        # permission check below narrows them to published articles.
        Permission("article.read", "read knowledge articles (requesters: published ones)",
                   ("agent", "requester")),
        Permission(PUBLISH_PERMISSION, "publish knowledge articles", ("agent",)),
        Permission("knowledge.search", "search the published knowledge",
                   ("agent", "requester")),
        Permission("knowledge.vote", "say whether a published article helped",
                   ("agent", "requester")),
        Permission("knowledge.history", "see every version of an article", ("agent",)),
    ]


@hookimpl
def itsm_permission_check(actor: Actor, permission: str, record: Record | None) \
        -> bool | None:
    """Requesters read (and vote on) published articles only; everything else is the
    core default's to decide (returns None)."""
    if actor.role != "requester" or permission not in ("article.read", "knowledge.vote"):
        return None
    if record is None:
        # The generic list would apply agency scoping meant for tickets; requesters find
        # articles through the knowledge search instead.
        return False if permission == "article.read" else None
    return knowledge.requester_may_read(actor, record)


@hookimpl
def itsm_record_prepare(record: Record, change: RecordChange) -> None:
    """Dates of publishing and retiring, set with the transition."""
    if record.type != knowledge.TYPE or change.kind != "transitioned":
        return
    if record.state == knowledge.PUBLISHED:
        record.published_at, record.retired_at = utcnow(), None
    elif record.state == "retired":
        record.retired_at = utcnow()
    elif change.transition == "restore":
        record.retired_at = None


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """A new version whenever an article's title or body changes, in the transaction of
    the change."""
    if record.type != knowledge.TYPE:
        return
    if change.kind == "created" or (
            change.kind == "updated" and {"title", "description"} & set(change.changes)):
        knowledge.add_version(session, record, change.actor)


@hookimpl
def itsm_suggestions(session: Session, actor: Actor, text: str, record: Record | None,
                     limit: int) -> list[Suggestion]:
    """Published articles matching a new record's title and description."""
    hits = search_ranked(session, text, types=[knowledge.TYPE], limit=limit,
                         where=knowledge.published_for(actor),
                         exclude=[record.id] if record is not None else [])
    return [Suggestion(article.number, article.title, SUGGESTION_KIND,
                       summary=plain_text(article.description, knowledge.SUMMARY_LENGTH),
                       score=score, url=knowledge.portal_url(article.number))
            for article, score in hits if allowed(actor, "article.read", article)]


@hookimpl
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """"Propose a knowledge article" on resolved or closed records of other types."""
    if knowledge.may_propose_from(record) and allowed(actor, f"{knowledge.TYPE}.create"):
        return [NavItem("Propose a knowledge article",
                        f"/knowledge/propose?from={record.number}", order=50)]
    return None


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    if allowed(actor, "knowledge.search"):
        return [NavItem("Knowledge", "/knowledge", order=40)]
    return None


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    from itsm.plugins.knowledge.api import api
    from itsm.plugins.knowledge.pages import pages

    return [api, pages]


@hookimpl
def itsm_demo_data(ctx: DemoContext) -> None:
    from itsm.plugins.knowledge.demo import load_demo_articles

    load_demo_articles(ctx)
