"""Marshmallow schemas of the core's API and the builder of each record type's schemas.

A record type's API schemas are composed from the core fields every record shares and
the type's own schema, so validation and the OpenAPI document come from one source.
"""

from __future__ import annotations

from collections.abc import Mapping

import marshmallow
from marshmallow import RAISE, Schema, fields, pre_load, validate

from itsm.core import inputs

# The name of InputSchema's hook, for code that applies the gate itself (the bulk import).
GATE_HOOK = "_gate_text"


class Boolean(fields.Boolean):
    """true or false, nothing else: marshmallow's own Boolean also takes 0, 1, "yes",
    "on" and more, so ``"public": 0`` passed where the document says boolean. Forms turn
    their check boxes into True/False before they load (see the console's form_value)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        raise self.make_error("invalid", input=value)


class InputSchema(Schema):
    """Base of the schemas that load what a user sent: every text in the input passes the
    input gate (:mod:`itsm.core.inputs`) before the fields see it, so a NUL character or a
    lone surrogate is a field message whatever way the data came (API, page, mail, CLI)
    and the stored text is normalised the same way. Each record type's ``In`` schema
    derives from it through :class:`CoreRecordIn`."""

    @pre_load
    def _gate_text(self, data, **kwargs):
        try:
            return inputs.check_tree(data)
        except inputs.InputError as exc:
            raise marshmallow.ValidationError({exc.field: [exc.reason]}) from None


class CoreRecordIn(InputSchema):
    """Fields every record type accepts on create and update."""

    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    description = fields.String(validate=validate.Length(max=100_000))
    priority = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=5),
                              strict=True)
    agency = fields.String(allow_none=True, validate=validate.Length(max=32),
                           metadata={"description": "agency code"})
    requester = fields.Email(allow_none=True, metadata={"description": "requester e-mail"})
    assignee = fields.Email(allow_none=True, metadata={"description": "assignee e-mail"})
    group = fields.String(allow_none=True, validate=validate.Length(max=100),
                          metadata={"description": "assignment group name"})


class CoreRecordOut(Schema):
    """Fields every record shows."""

    number = fields.String(required=True, metadata={"example": "INC0000042"})
    type = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String()
    state = fields.String(required=True)
    state_label = fields.String()
    priority = fields.Integer(allow_none=True)
    agency = fields.String(allow_none=True)
    requester = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    group = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    version = fields.Integer(required=True, metadata={"description": "for If-Match"})
    transitions = fields.List(fields.String(), metadata={
        "description": "transitions possible from the current state"})


class TransitionIn(InputSchema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    comment = fields.String(validate=validate.Length(max=100_000))
    version = fields.Integer(strict=True, metadata={"description": "same as If-Match"})
    # Declared last: the attribute name shadows the marshmallow module in this class body.
    fields = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "field values the transition sets (its required fields)"})


class TransitionOut(Schema):
    name = fields.String(required=True)
    label = fields.String()
    target = fields.String(metadata={"description": "the state it leads to"})
    required = fields.List(fields.String(), metadata={
        "description": "fields that must hold a value (send them in `fields`)"})
    fields_ = fields.List(fields.String(), data_key="fields", metadata={
        "description": "every field the transition may set"})
    allowed = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), metadata={
        "description": "why it is refused now (empty when allowed)"})


class CommentIn(InputSchema):
    class Meta:
        unknown = RAISE

    body = fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    public = Boolean(load_default=True, metadata={
        "description": "false makes a work note, visible to IT staff only"})


class CommentOut(Schema):
    id = fields.Integer()
    body = fields.String()
    public = fields.Boolean()
    author = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LinkIn(InputSchema):
    class Meta:
        unknown = RAISE

    target = fields.String(required=True, validate=validate.Length(min=1, max=32),
                           metadata={"description": "number of the linked record"})
    kind = fields.String(load_default="relates_to", validate=validate.Length(max=32))


class RecordRefOut(Schema):
    number = fields.String()
    type = fields.String()
    title = fields.String()
    state = fields.String()
    available = fields.Boolean(metadata={
        "description": "false for a record of a disabled or uninstalled process"})


class LinkOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    direction = fields.String(metadata={"description": "outgoing or incoming"})
    label = fields.String()
    record = fields.Nested(RecordRefOut)


class JournalOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    actor = fields.String(allow_none=True)
    created_at = fields.DateTime()
    public = fields.Boolean()
    body = fields.String()
    data = fields.Dict()


class AttachmentOut(Schema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    created_at = fields.DateTime()


class SlaClockOut(Schema):
    metric = fields.String()
    target_minutes = fields.Integer(allow_none=True)
    elapsed_minutes = fields.Float()
    remaining_minutes = fields.Float(allow_none=True, metadata={
        "description": "negative once the target is passed"})
    percent = fields.Float(allow_none=True)
    state = fields.String()
    paused = fields.Boolean()
    breached = fields.Boolean()
    warned = fields.Boolean()
    breach_due_at = fields.String(allow_none=True)
    met_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    calendar = fields.String(allow_none=True)
    source = fields.String(allow_none=True)


class SuggestionOut(Schema):
    number = fields.String(required=True)
    title = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "e.g. Knowledge article"})
    summary = fields.String()
    score = fields.Float(metadata={"description": "relevance, higher is better"})
    url = fields.String(metadata={"description": "where a person reads it"})


class TokenIn(InputSchema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    days = fields.Integer(strict=True, validate=validate.Range(min=0, max=3650), metadata={
        "description": "lifetime in days (default auth.token_days; 0: as long as allowed); "
                       "never more than auth.token_max_days, nor than the token that "
                       "creates this one"})
    # Without a token or a session: the first token of a person, from their e-mail and
    # password (a directory's, through the sign-in methods, or the local one).
    email = fields.String(load_only=True, validate=validate.Length(max=254), metadata={
        "description": "with password, instead of a token: sign in and get a token"})
    password = fields.String(load_only=True, validate=validate.Length(max=1024))


class TokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked = fields.Boolean()
    token = fields.String(metadata={"description": "the secret; only in the create answer"})


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    reasons = fields.List(fields.String())
    fields = fields.Dict(metadata={"description": "field name to list of messages"})


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody, required=True)


_TYPE_SCHEMAS: dict[tuple[str, type[Schema] | None], dict[str, type[Schema]]] = {}


class ReferenceOut(Schema):
    """A stored reference as the API shows it beside the stored id (``<field>_ref``)."""

    kind = fields.String(metadata={"description": "service, configuration_item ..."})
    id = fields.String(metadata={"description": "the stable id stored in the field"})
    label = fields.String(metadata={"description": "what people read"})
    url = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "active or retired"})


def type_schemas(name: str, own: type[Schema] | None,
                 references: Mapping[str, str] | None = None) -> dict[str, type[Schema]]:
    """The ``In``, ``Out`` and ``Page`` schemas of one record type; ``references`` (the
    type's reference fields) add ``<field>_ref`` or ``<field>_refs`` to ``Out``.

    Built once per type and schema: the OpenAPI document names components by class, and
    a fresh class after each enable/disable would appear twice (``Out`` and ``Out1``).
    """
    key = (name, own, tuple(sorted((references or {}).items())))
    if key not in _TYPE_SCHEMAS:
        _TYPE_SCHEMAS[key] = _build_type_schemas(name, own, dict(references or {}))
    return _TYPE_SCHEMAS[key]


def _reference_fields(own: type[Schema] | None, references: dict[str, str]) -> dict:
    declared = own._declared_fields if own is not None else {}
    out: dict[str, fields.Field] = {}
    for name, kind in references.items():
        if isinstance(declared.get(name), fields.List):
            out[f"{name}_refs"] = fields.List(fields.Nested(ReferenceOut), metadata={
                "description": f"the {kind} references of {name}, with their labels"})
        else:
            out[f"{name}_ref"] = fields.Nested(ReferenceOut, allow_none=True, metadata={
                "description": f"the {kind} {name} refers to, with its label"})
    return out


def _build_type_schemas(name: str, own: type[Schema] | None,
                        references: dict[str, str] | None = None) -> dict[str, type[Schema]]:
    stem = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    own_bases = (own,) if own else ()
    record_in = type(f"{stem}In", (CoreRecordIn, *own_bases),
                     {"Meta": type("Meta", (), {"unknown": RAISE})})
    record_out = type(f"{stem}Out", (CoreRecordOut, *own_bases),
                      _reference_fields(own, references or {}))

    def page_fields() -> dict:
        return {"items": fields.List(fields.Nested(record_out), required=True),
                "next": fields.String(allow_none=True, metadata={
                    "description": "cursor of the next page; null on the last page"})}

    page = type(f"{stem}Page", (Schema,), page_fields())
    # The create response of a type with ``suggest=True``: the record and the answers
    # (unless the request said ``?suggest=false``).
    created = type(f"{stem}Created", (record_out,), {
        "suggestions": fields.List(fields.Nested(SuggestionOut), metadata={
            "description": "what other plugins suggest, best first; left out when the "
                           "request asks ?suggest=false"}),
        "suggestions_skipped": fields.String(metadata={
            "description": "present when the suggestions could not be looked up (they are "
                           "best-effort): the record is created all the same"})})
    return {"in": record_in, "out": record_out, "page": page, "created": created}
