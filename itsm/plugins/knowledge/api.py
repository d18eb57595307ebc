"""The knowledge plugin's API routes (beside the core's ``/api/v1/articles`` collection).

- ``GET  /api/v1/knowledge/search?q=``: published articles the caller may read;
- ``GET  /api/v1/articles/<number>/versions``: the version history (staff);
- ``POST /api/v1/articles/<number>/votes``: ``{"helpful": true}``, one vote per person;
- ``POST /api/v1/articles/proposals``: ``{"record": "INC0000001"}`` drafts an article
  from a resolved record and links the two.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from itsm.plugin import API_PREFIX as PREFIX
from itsm.plugin import (
    InputError,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
    parse_int,
    type_schemas,
    with_etag,
)
from itsm.plugins.knowledge import service as knowledge
from itsm.plugins.knowledge.schemas import (
    ArticleHitPage,
    ArticleSchema,
    ProposalIn,
    VersionPage,
    VoteIn,
    VoteOut,
)

api = Blueprint("knowledge_api", __name__, url_prefix=PREFIX)
TAGS = ["knowledge"]
SEARCH_LIMIT = 20


@api.get("/knowledge/search")
@document(summary="search the published knowledge articles", response=ArticleHitPage,
          tags=TAGS, params=[
              {"name": "q", "in": "query", "schema": {"type": "string"},
               "description": "words to find; empty lists the latest articles"},
              {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                          "maximum": 50}}])
def search_articles():
    try:
        limit = parse_int(request.args.get("limit", str(SEARCH_LIMIT)), "limit", minimum=1,
                          maximum=50)
    except InputError:
        raise ValidationError("limit: a number from 1 to 50",
                              fields={"limit": ["1 to 50"]}) from None
    text = request.args.get("q", "")[:500]
    with current_itsm().unit_of_work(current_actor()) as service:
        hits = knowledge.search_published(service, text, limit)
        items = [knowledge.hit(article, score) for article, score in hits]
    return jsonify({"items": items})


@api.get("/articles/<number>/versions")
@document(summary="every version of an article's title and body, oldest first",
          response=VersionPage, tags=TAGS)
def article_versions(number: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        article = knowledge.get_article(service, number)
        items = knowledge.versions(service, article)
    return jsonify({"items": items})


@api.post("/articles/<number>/votes")
@document(summary="say whether a published article helped; a new vote replaces yours",
          body=VoteIn, response=VoteOut, tags=TAGS)
def vote_on_article(number: str):
    data = VoteIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        article = knowledge.get_article(service, number)
        result = knowledge.vote(service, article, data["helpful"])
    return jsonify(result)


@api.post("/articles/proposals")
@document(summary="draft an article from a resolved or closed record, linked to it",
          body=ProposalIn, response=type_schemas("article", ArticleSchema)["out"],
          status=201, tags=TAGS)
def propose_article():
    data = ProposalIn().load(json_body())
    overrides = {"title": data["title"]} if data.get("title") else {}
    with current_itsm().unit_of_work(current_actor()) as service:
        article = knowledge.propose(service, data["record"], overrides)
        body = service.to_dict(article)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"{PREFIX}/articles/{article.number}"
    return with_etag(response, article.version)
