"""Request forms as data: an offering's form is a list of field definitions, checked
when the offering is saved and turned into a marshmallow schema when a request comes in.

A field definition::

    {"name": "laptop_model", "label": "Model", "type": "choice", "required": true,
     "choices": ["Standard", "Power user"], "help": "Power user needs approval"}

Types: text, textarea, integer, date, email, choice, multichoice, checkbox.
"""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import Schema, fields, validate, validates_schema

from itsm.plugin import Boolean, ValidationError, messages_of

FIELD_TYPES = ("text", "textarea", "integer", "date", "email", "choice", "multichoice",
               "checkbox")
CHOICE_TYPES = ("choice", "multichoice")
REQUIRED = "this field is required"


class FieldDefinition(Schema):
    """One field of an offering's form, as stored and as imported."""

    class Meta:
        unknown = marshmallow.RAISE

    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,49}$", error="use lower-case letters, digits and _ "
                                        "(start with a letter, at most 50)"))
    label = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(load_default="text", validate=validate.OneOf(FIELD_TYPES))
    required = Boolean(load_default=False)
    choices = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                          load_default=list)
    help = fields.String(load_default="", validate=validate.Length(max=500))
    max_length = fields.Integer(load_default=None, allow_none=True,
                                validate=validate.Range(1, 20000))

    @validates_schema
    def _choices_match_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("type") in CHOICE_TYPES and not data.get("choices"):
            raise marshmallow.ValidationError("a choice field needs choices", "choices")
        if data.get("type") not in CHOICE_TYPES and data.get("choices"):
            raise marshmallow.ValidationError("only choice fields have choices", "choices")


def check_definition(definition: Any) -> list[dict[str, Any]]:
    """The form definition, normalised; raises marshmallow.ValidationError (messages by
    field position) when it is not a list of valid, uniquely named fields."""
    if not isinstance(definition, list):
        raise marshmallow.ValidationError("the form is a list of field definitions")
    loaded = FieldDefinition(many=True).load(definition)
    names = [f["name"] for f in loaded]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise marshmallow.ValidationError(f"field names must be unique: {', '.join(doubles)}")
    return loaded


def _field(definition: dict[str, Any]) -> fields.Field:
    required = bool(definition.get("required"))
    kind = definition.get("type", "text")
    common: dict[str, Any] = {"required": required,
                              "error_messages": {"required": REQUIRED, "null": REQUIRED}}
    limit = definition.get("max_length") or (20000 if kind == "textarea" else 500)
    if kind in ("text", "textarea"):
        checks = [validate.Length(min=1 if required else 0, max=limit)]
        return fields.String(validate=checks, **common)
    if kind == "email":
        return fields.Email(validate=validate.Length(max=254), **common)
    if kind == "integer":
        return fields.Integer(strict=False, **common)
    if kind == "date":
        return fields.Date(**common)
    if kind == "choice":
        return fields.String(validate=validate.OneOf(
            definition["choices"], error="choose one of: {choices}"), **common)
    if kind == "multichoice":
        inner = fields.String(validate=validate.OneOf(definition["choices"],
                                                      error="choose from: {choices}"))
        checks = [validate.Length(min=1, error="choose at least one")] if required else []
        return fields.List(inner, validate=checks, **common)
    if kind == "checkbox":
        if required:
            return Boolean(validate=validate.Equal(True, error="tick this box"),
                                  **common)
        return Boolean(load_default=False)
    raise ValueError(f"unknown field type {kind!r}")


def schema_for(definition: list[dict[str, Any]]) -> Schema:
    """A marshmallow schema instance validating answers to the form ``definition``;
    unknown answers are refused."""
    cls = Schema.from_dict({d["name"]: _field(d) for d in definition}, name="OfferingForm")
    return cls(unknown=marshmallow.RAISE)


def validate_answers(definition: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    """The answers checked against the form and made JSON-ready (dates as ISO text).

    Raises marshmallow.ValidationError with one list of messages per field.
    """
    if not isinstance(answers, dict):
        raise marshmallow.ValidationError({"answers": ["send the answers as an object"]})
    schema = schema_for(definition)
    return schema.dump(schema.load(answers))


def from_form(definition: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """Answers from an HTML form (``request.form``): empty inputs are left out, so a
    required one reads as missing; lists for multichoice; a ticked box is true."""
    answers: dict[str, Any] = {}
    for d in definition:
        name, kind = d["name"], d.get("type", "text")
        if kind == "multichoice":
            values = [v for v in form.getlist(name) if v]
            if values:
                answers[name] = values
        elif kind == "checkbox":
            if form.get(name):
                answers[name] = True
        else:
            raw = (form.get(name) or "").replace("\r\n", "\n").replace("\x00", "")
            raw = raw.rstrip() if kind == "textarea" else raw.strip()
            if raw:
                answers[name] = raw
    return answers


def summary_of(definition: list[dict[str, Any]], answers: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, answer) pairs in form order, for pages and descriptions."""
    out = []
    for d in definition:
        if d["name"] not in answers:
            continue
        value = answers[d["name"]]
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out.append((d["label"], str(value)))
    return out


def checked_answers(form: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    """A request's answers checked against its offering's form; a 422 naming each
    missing or invalid answer (``fields={"answers": {name: [messages]}}``) otherwise."""
    try:
        return validate_answers(form, answers)
    except marshmallow.ValidationError as exc:
        messages = messages_of(exc)
        messages = messages.get("answers", messages) if len(messages) == 1 else messages
        raise ValidationError("some answers are missing or invalid: "
                              + ", ".join(sorted(map(str, messages))),
                              fields={"answers": messages}) from None
