"""The article's workflow and record type: draft → review → published → retired.

- ``submit`` (draft → review) and ``send_back`` (review → draft, with a ``review_note``);
- ``publish`` (review → published) needs the ``knowledge.publish`` permission besides
  the agent role, so an install can keep publishing to a few editors with its own
  ``itsm_permission_check``;
- ``revise`` (published → draft) takes a published article off the portal for a new
  revision; small corrections can be edited in place, every edit is a new version;
- ``retire`` (published → retired) and ``restore`` (retired → draft).
"""

from __future__ import annotations

from flask import has_app_context

from itsm.plugin import Actor, RecordType, State, Transition, Workflow
from itsm.plugins.knowledge.models import Article
from itsm.plugins.knowledge.schemas import ArticleSchema

PUBLISH_PERMISSION = "knowledge.publish"


def allowed(actor: Actor, permission: str, record=None) -> bool:
    """Whether ``actor`` holds ``permission`` (optionally on ``record``), asked of every
    plugin's ``itsm_permission_check`` like the record service does."""
    from itsm.plugin import current_itsm

    return bool(current_itsm().hook.itsm_permission_check(
        actor=actor, permission=permission, record=record))


def may_publish(record: Article, actor: Actor, data: dict) -> str | None:
    """Guard of ``publish``: the actor needs ``knowledge.publish``."""
    if not has_app_context():  # no install to ask: the transition's roles decide
        return None
    if allowed(actor, PUBLISH_PERMISSION, record):
        return None
    return f"{actor.email} may not publish knowledge articles"


def has_body(record: Article, actor: Actor, data: dict) -> str | None:
    """Guard of ``submit`` and ``publish``: an article without a body helps nobody."""
    if not (record.description or "").strip():
        return "the article has no body yet: write it in the description"
    return None


WORKFLOW = Workflow(
    states=[State("draft"), State("review", label="In review"), State("published"),
            State("retired", final=True)],
    transitions=[
        Transition("submit", ("draft",), "review", label="Submit for review",
                   roles=("agent",), guards=(has_body,)),
        Transition("send_back", ("review",), "draft", label="Send back",
                   roles=("agent",), required=("review_note",)),
        Transition("publish", ("review",), "published", roles=("agent",),
                   guards=(has_body, may_publish)),
        Transition("revise", ("published",), "draft", label="Revise", roles=("agent",)),
        Transition("retire", ("published",), "retired", roles=("agent",)),
        Transition("restore", ("retired",), "draft", roles=("agent",)),
    ],
)

ARTICLE = RecordType(
    name="article", model=Article, prefix="KB", collection="articles", workflow=WORKFLOW,
    schema=ArticleSchema, label="Knowledge article",
    # Staff-only as a type: requesters never create or comment on articles. Their read
    # access to published articles is granted in ``itsm_permissions`` and narrowed per
    # article by the plugin's ``itsm_permission_check``.
    requester_roles=())
