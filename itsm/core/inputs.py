"""The one input gate: text, integers and JSON from users, checked the same way everywhere.

The API, the console and portal forms, mail and imports all pass what a user sent through
these functions before the service layer sees it, so a value is refused (or normalised)
for the same reason whatever way it came in.

Text is normalised in two ways, both invisible to a reader:

* line endings become ``\\n`` (browsers send ``\\r\\n`` from a text area, mail and old
  exports may carry ``\\r``), so the same text typed in a form, sent by the API or
  imported compares, searches and diffs equal;
* Unicode becomes NFC (canonical composition): ``e`` + combining acute and ``é`` are one
  text, as the W3C character model asks of web content. NFKC is *not* used: it changes
  what a text says (``¹`` becomes ``1``, ``ﬁ`` becomes ``fi``, full-width forms
  collapse).

Refused are the characters no database stores as text: NUL (PostgreSQL refuses the whole
statement, SQLite would store it and an export would then not import elsewhere) and lone
UTF-16 surrogates (``"\\ud800"`` is valid JSON but no valid UTF-8, so encoding it for the
database or the response fails).
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import marshmallow
from marshmallow import Schema

from itsm.core.errors import ValidationError, messages_of

# Deeper than any document the API takes (an offering's form items nest about 4 deep) and
# far below Python's recursion limit, which json.loads and every walk of the result share.
MAX_JSON_DEPTH = 64

# The largest value of an INTEGER column (signed 32 bits on PostgreSQL and MariaDB): an id
# or number beyond it names nothing, and the database would refuse the query.
MAX_DB_INTEGER = 2**31 - 1

# 18 digits hold any 64-bit value; a longer string of digits is no id, page or version.
MAX_INT_DIGITS = 18

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_INTEGER = re.compile(r"-?[0-9]+")
# A JSON string (skipped whole, so brackets inside text never count) or one bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class InputError(ValidationError, ValueError):
    """A value a user sent that the gate refuses.

    ``field`` names where it was (the form field, the JSON key, the query parameter or
    ``_body``), ``reason`` says what is wrong in words a user can act on, and ``message``
    (also ``str(error)``) is the one line ``"<field>: <reason>"`` a CLI prints. Being a
    :class:`~itsm.core.errors.ValidationError`, it reaches the user as every refused input
    does: 422 with ``{field: [reason]}`` from the API, the form's message on a page, one
    line and exit status 1 from the CLI.
    """

    def __init__(self, reason: str, field: str = "text") -> None:
        super().__init__(f"{field}: {reason}", fields={field: [reason]})
        self.field = field
        self.reason = reason


def check_text(value: str, field: str = "text") -> str:
    """``value`` with line endings made ``\\n`` and Unicode in NFC.

    :raises InputError: naming ``field`` when the text holds a NUL character or a lone
        surrogate.
    """
    if value.isascii():  # most text: no surrogate, nothing to normalise (a C-speed test)
        if "\x00" in value:
            raise InputError("contains a NUL character", field)
        return value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value
    if "\x00" in value:
        raise InputError("contains a NUL character", field)
    if _LONE_SURROGATE.search(value):
        raise InputError("contains a lone surrogate (not valid Unicode text)", field)
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return value


def parse_int(value: str, field: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """The integer written in ``value``: ASCII digits with an optional leading minus.

    ``str.isdigit()`` accepts ``¹`` and ``٣`` and ``int()`` accepts ``٣``, spaces and
    underscores; neither is what a form or a query parameter means, so only
    ``-?[0-9]+`` of at most :data:`MAX_INT_DIGITS` digits passes.

    :param minimum: smallest value accepted (inclusive), or None.
    :param maximum: largest value accepted (inclusive), or None.
    :raises InputError: naming ``field`` when the text is no such integer or is outside
        the bounds.
    """
    if not isinstance(value, str) or not _ASCII_INTEGER.fullmatch(value) \
            or len(value.lstrip("-")) > MAX_INT_DIGITS:
        raise InputError("must be a whole number written in digits 0-9", field)
    number = int(value)
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        low = "" if minimum is None else f"at least {minimum}"
        high = "" if maximum is None else f"at most {maximum}"
        raise InputError(f"must be {' and '.join(p for p in (low, high) if p)}", field)
    return number


MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(value: str, field: str = "period") -> tuple[datetime, datetime]:
    """The first instant (UTC) of the month written ``YYYY-MM`` and of the month after.

    :raises InputError: naming ``field`` when ``value`` is no such month.
    """
    found = MONTH.match((value or "").strip())
    if not found:
        raise InputError("a month written YYYY-MM, e.g. 2026-11", field)
    year, number = int(found[1]), int(found[2])
    return (datetime(year, number, 1, tzinfo=UTC),
            datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC))


def json_depth(text: str | bytes) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest, counted without parsing
    (so a hostile document costs a regular-expression scan, not a recursion)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def check_json_depth(text: str | bytes, field: str = "_body",
                     limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nesting deeper than ``limit`` before anything parses or walks it.

    :raises InputError: naming ``field``.
    """
    brackets = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    if text.count(brackets[0]) + text.count(brackets[1]) <= limit:
        return  # cannot nest deeper than it opens: no scan (the common case, e.g. an import)
    if json_depth(text) > limit:
        raise InputError(f"nests deeper than {limit} levels", field)


def check_tree(value: Any, field: str = "_body") -> Any:
    """A parsed JSON value with every text in it (keys too) passed through
    :func:`check_text`; the innermost key names the field of an error."""
    if isinstance(value, str):
        return check_text(value, field)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = check_text(key, field) if isinstance(key, str) else key
            out[name] = check_tree(item, str(name))
        return out
    if isinstance(value, list):
        return [check_tree(item, field) for item in value]
    return value


def load_json(text: str | bytes, field: str = "_body", limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from a user: depth bounded, every text checked and normalised.

    :raises InputError: naming ``field`` (or the key inside it) for too deep a document,
        text that is not JSON, NUL characters and lone surrogates.
    """
    check_json_depth(text, field, limit)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError("is not valid JSON", field) from None
    return check_tree(value, field)


def load_input(schema: Schema, data: Any, *, what: str = "input", **kwargs: Any) -> Any:
    """``schema.load(data)`` for a plugin's service layer: anything but an object, or any
    marshmallow error, becomes a :class:`ValidationError` (422 with field messages) whose
    message starts with ``invalid <what>``; every text passes the input gate first
    (:mod:`itsm.core.inputs`: NUL and lone surrogates refused, the rest normalised); a
    list is expected instead of an object when the schema loads ``many``."""
    if not isinstance(data, list if getattr(schema, "many", False) else dict):
        kind = "a list" if getattr(schema, "many", False) else "an object"
        raise ValidationError(f"send {kind}", fields={"_body": [f"not {kind}"]})
    try:
        return schema.load(check_tree(data), **kwargs)
    except marshmallow.ValidationError as exc:
        raise ValidationError(f"invalid {what}: " + ", ".join(sorted(map(str, messages_of(exc)))),
                              fields=messages_of(exc)) from None
