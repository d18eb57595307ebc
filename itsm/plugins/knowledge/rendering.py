"""Article bodies: Markdown rendered to safe HTML, and the same text as plain words.

CommonMark with raw HTML turned off: ``<script>`` and every other tag a writer types come
out escaped, and markdown-it's link validation drops ``javascript:``, ``vbscript:`` and
``data:`` (except images) links. No hand-written sanitiser is needed, and none is used.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _link_open(renderer, tokens, idx, options, env) -> str:
    # Articles link to vendors' pages: the reader's session must not follow the link.
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


_markdown.add_render_rule("link_open", _link_open)


def render_markdown(body: str | None) -> Markup:
    """The article body as HTML that is safe to put into a page as it is."""
    return Markup(_markdown.render(body or ""))  # safe: raw HTML is off, see above


def plain_text(body: str | None, limit: int | None = None) -> str:
    """The words of a Markdown body without its markup, on one line; cut at ``limit``
    characters (on a word boundary, with an ellipsis)."""
    parts: list[str] = []
    for token in _markdown.parse(body or ""):
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
