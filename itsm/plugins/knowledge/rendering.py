"""Article bodies: Markdown rendered to safe HTML, and the same text as plain words.

CommonMark with raw HTML turned off: ``<script>`` and every other tag a writer types come
out escaped, and markdown-it's link validation drops ``javascript:``, ``vbscript:`` and
``data:`` (except images) links. No hand-written sanitiser is needed, and none is used.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


def _link_open(renderer, tokens, idx, options, env) -> str:
    # Articles link to vendors' pages: the reader's session must not follow the link.
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


@cache
def _markdown() -> MarkdownIt:
    # Made on first use: markdown-it is a large import that the start-up does not need.
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    parser.add_render_rule("link_open", _link_open)
    return parser


def render_markdown(body: str | None) -> Markup:
    """The article body as HTML that is safe to put into a page as it is."""
    return Markup(_markdown().render(body or ""))  # safe: raw HTML is off, see above


@lru_cache(maxsize=1024)
def plain_text(body: str | None, limit: int | None = None) -> str:
    """The words of a Markdown body without its markup, on one line; cut at ``limit``
    characters (on a word boundary, with an ellipsis).

    Kept for the latest bodies asked for: the same articles are suggested for many new
    records, and parsing one costs more than the rest of its suggestion."""
    parts: list[str] = []
    for token in _markdown().parse(body or ""):
        if token.type == "inline":
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
            parts.append(" ")
        elif token.type in ("code_block", "fence"):
            parts.append(token.content + " ")
    text = " ".join("".join(parts).split())
    if limit is not None and len(text) > limit:
        cut = text[:limit - 1].rsplit(" ", 1)[0] if " " in text[:limit - 1] else text[:limit - 1]
        text = cut.rstrip(" ,.;:") + "…"
    return text
