"""The knowledge plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    ApprovalScope,
    Conflict,
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


# What a publisher publishes: the text, and where and for whom it appears.
PUBLICATION_SCOPE = ApprovalScope(
    "publication", ("title", "description", "service", "category", "agency_id"))


def _publish(record: Record, actor: Actor) -> None:
    record.published_by = actor.email
    record.published_scope = PUBLICATION_SCOPE.values(record)
    record.published_digest = PUBLICATION_SCOPE.digest(record.published_scope)


def publication_changes(record: Record) -> list[str]:
    """The fields of a published article changed since its publication (empty: none)."""
    if not getattr(record, "published_digest", ""):
        return []
    now = PUBLICATION_SCOPE.values(record)
    if PUBLICATION_SCOPE.digest(now) == record.published_digest:
        return []
    return PUBLICATION_SCOPE.changes(record.published_scope or {}, now)


@hookimpl
def itsm_record_prepare(record: Record, change: RecordChange) -> None:
    """Dates of publishing and retiring, set with the transition; what was published,
    and an edit in place of a published article only by someone who may publish."""
    if record.type != knowledge.TYPE:
        return
    if change.kind == "updated" and record.state == knowledge.PUBLISHED:
        changed = publication_changes(record)
        if changed and not allowed(change.actor, PUBLISH_PERMISSION, record):
            raise Conflict(f"{record.number} is published: {', '.join(changed)} change only "
                           f"by someone who may publish ({change.actor.email} may not); "
                           "revise it (back to draft) and submit it for review",
                           reasons=[f"{name} is in the published text" for name in changed])
        if changed:
            _publish(record, change.actor)
        return
    if change.kind != "transitioned":
        return
    if record.state == knowledge.PUBLISHED:
        record.published_at, record.retired_at = utcnow(), None
        _publish(record, change.actor)
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
    edited = [name for name in ("title", "description", "service", "category", "agency")
              if name in change.changes]
    if change.kind == "updated" and edited and record.state == knowledge.PUBLISHED:
        before = change.changes.get("published_by", [record.published_by])[0]
        knowledge.system_note(session, record, PUBLICATION_SCOPE.superseded_note(
            edited, f"by {before}") + f"; republished by {change.actor.email}.")


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
        return [NavItem("Knowledge", "/knowledge", order=40, group="process",
                        record_type="article")]
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
