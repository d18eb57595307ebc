"""The one input gate: text and integers from any way in (API, forms, mail, imports).

Text is refused when it holds a NUL character (PostgreSQL cannot store one, and a SQLite
file that holds one cannot be moved to PostgreSQL) or a lone surrogate (it cannot be
encoded as UTF-8 at all); otherwise it is returned in Unicode normal form C, so the same
words are stored the same way whatever the client sent. Integers are ASCII digits only:
``str.isdigit()`` accepts characters such as ``¹`` that ``int()`` refuses.
"""

from __future__ import annotations

import re
import unicodedata

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGER = re.compile(r"-?[0-9]{1,18}")


class InputError(ValueError):
    """A value that no part of itsm stores; ``field`` names where it came from."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_text(value: str, field: str = "text") -> str:
    """``value`` in normal form C; raise :class:`InputError` naming ``field`` when it holds
    a NUL character or a lone surrogate."""
    if "\x00" in value:
        raise InputError(field, "contains a NUL character (\\u0000), which is not text")
    if _LONE_SURROGATE.search(value):
        raise InputError(field, "contains a lone surrogate (\\ud800-\\udfff), which is not "
                                "text")
    return unicodedata.normalize("NFC", value)


def parse_int(value: str, field: str) -> int:
    """The integer written in ``value`` with ASCII digits (an optional leading minus);
    raise :class:`InputError` naming ``field`` for anything else."""
    text = value.strip() if isinstance(value, str) else ""
    if not _INTEGER.fullmatch(text):
        raise InputError(field, f"expected a whole number in digits 0-9, got {value!r:.40}")
    return int(text)
