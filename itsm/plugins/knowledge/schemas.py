"""Marshmallow schemas: the article's own fields and the bodies of the plugin's API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from itsm.plugin import Boolean

# Stored as typed: numbers are upper case (INC0000042).
NUMBER = validate.Regexp(r"^[A-Z]{2,8}[0-9]{1,12}$", error="not a record number, e.g. INC0000042")


class ArticleSchema(Schema):
    """An article's own fields; itsm adds title, description (the Markdown body) and the
    rest. Dates and vote counts are kept by the plugin, never sent."""

    service = fields.String(validate=validate.Length(max=100), metadata={
        "description": "the service the article is about (VPN, e-mail ...)"})
    category = fields.String(validate=validate.Length(max=100), metadata={
        "description": "how-to, troubleshooting, known error ..."})
    review_note = fields.String(validate=validate.Length(max=5000), metadata={
        "description": "why a reviewer sent the article back to its author"})
    source_record = fields.String(allow_none=True, validate=NUMBER, metadata={
        "description": "number of the record the article was proposed from"})
    published_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    published_by = fields.String(dump_only=True, metadata={
        "description": "who published the text as it reads now"})
    retired_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    helpful_count = fields.Integer(dump_only=True, metadata={
        "description": "readers who said it helped"})
    not_helpful_count = fields.Integer(dump_only=True, metadata={
        "description": "readers who said it did not help"})


class VersionOut(Schema):
    version = fields.Integer(required=True, metadata={"description": "1 for the first"})
    title = fields.String(required=True)
    body = fields.String(required=True, metadata={"description": "Markdown"})
    author = fields.String(allow_none=True, metadata={"description": "e-mail"})
    created_at = fields.DateTime()


class VersionPage(Schema):
    items = fields.List(fields.Nested(VersionOut), required=True)


class VoteIn(Schema):
    class Meta:
        unknown = RAISE

    helpful = Boolean(required=True, metadata={
        "description": "true: the article helped; false: it did not"})


class VoteOut(Schema):
    article = fields.String(required=True)
    helpful = Boolean(required=True, metadata={"description": "your vote"})
    helpful_count = fields.Integer()
    not_helpful_count = fields.Integer()


class ProposalIn(Schema):
    class Meta:
        unknown = RAISE

    record = fields.String(required=True, validate=validate.Length(min=1, max=32), metadata={
        "description": "the resolved or closed record to write the article from"})
    title = fields.String(validate=validate.Length(min=1, max=300), metadata={
        "description": "default: the record's title"})


class ArticleHit(Schema):
    number = fields.String(required=True)
    title = fields.String(required=True)
    summary = fields.String(metadata={"description": "the start of the body, plain text"})
    service = fields.String()
    category = fields.String()
    score = fields.Float(allow_none=True, metadata={"description": "relevance when searching"})
    helpful_count = fields.Integer()
    not_helpful_count = fields.Integer()
    published_at = fields.DateTime(allow_none=True)
    url = fields.String(metadata={"description": "the article's portal page"})


class ArticleHitPage(Schema):
    items = fields.List(fields.Nested(ArticleHit), required=True)
