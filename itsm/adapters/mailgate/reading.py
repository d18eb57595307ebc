"""Reading one RFC 822 message: its headers, its text, its attachments, and whether it is
an automatic message that must never be answered with a record or a comment."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

QUOTE_HEADER = re.compile(r"^(On .+ wrote:|Am .+ schrieb .+:|Le .+ a écrit ?:)\s*$")
BULK_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")
# Subjects of vacation and absence notices from mailers that send no RFC 3834 header
# (Outlook's "Automatic reply:", Lotus Notes' "Auto:", localised ones of the same kind).
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[ -]?(reply|response)|auto:"
    r"|autoreply|away from (the )?office|on vacation|abwesenheitsnotiz|automatische antwort"
    r"|r[ée]ponse automatique|absence du bureau|respuesta autom[áa]tica"
    r"|risposta automatica|automatisch antwoord)", re.IGNORECASE)


class TooDeep(Exception):
    """The message's MIME parts nest deeper than the limit (or than Python can follow)."""


def parse_headers(raw: bytes) -> EmailMessage:
    """The message's header block only: cheap, and safe whatever its body holds."""
    return BytesParser(policy=default_policy).parsebytes(  # type: ignore[return-value]
        raw, headersonly=True)


def parse(raw: bytes, max_depth: int) -> EmailMessage:
    """The whole message; raise :class:`TooDeep` when its parts nest deeper than
    ``max_depth`` (a message nested thousands deep makes the parser itself recurse too
    deeply, so that is caught and reported the same way)."""
    try:
        mail = BytesParser(policy=default_policy).parsebytes(raw)
    except RecursionError:
        raise TooDeep(f"its MIME parts nest deeper than {max_depth} levels") from None
    depth = nesting_depth(mail)
    if depth > max_depth:
        raise TooDeep(f"its MIME parts nest {depth} levels deep (the limit is {max_depth})")
    return mail  # type: ignore[return-value]


def nesting_depth(mail: EmailMessage) -> int:
    """How deep the parts of ``mail`` nest (1: a single part), counted without recursion."""
    deepest, stack = 0, [(mail, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload)
    return deepest


def from_addresses(mail: EmailMessage) -> list[str]:
    """Every address in every From header, lower-cased."""
    values = [str(value) for value in mail.get_all("From") or []]
    return [address.strip().lower() for _, address in getaddresses(values) if address]


def return_path(mail: EmailMessage) -> str:
    """The envelope sender the delivering MTA recorded (``Return-Path``), or ``""``."""
    _, address = parseaddr(str(mail.get("Return-Path") or ""))
    return address.strip().lower()


def ignore_reason(mail: EmailMessage, own_addresses: set[str], own_domain: str) -> str | None:
    """Why ``mail`` must not be answered with a record (a loop, an auto-reply, bulk)."""
    if mail.get("X-Itsm-Event-Id") is not None:
        return "our own notification (X-Itsm-Event-Id)"
    auto = str(mail.get("Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"automatic message (Auto-Submitted: {auto})"
    precedence = str(mail.get("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"bulk message (Precedence: {precedence})"
    if mail.get("List-Id") is not None:
        return "mailing-list message (List-Id)"
    if mail.get("X-Auto-Response-Suppress") is not None:
        return "automatic message (X-Auto-Response-Suppress)"
    if mail.get("X-Autoreply") is not None or mail.get("X-Autorespond") is not None:
        return "automatic reply (X-Autoreply)"
    if mail.get_content_type() == "multipart/report":
        return "delivery report (multipart/report)"
    if AUTO_REPLY_SUBJECT.match(" ".join(str(mail.get("Subject") or "").split())):
        return "automatic reply (its subject says so)"
    path = mail.get("Return-Path")
    if path is not None and str(path).strip() in ("<>", ""):
        return "bounce (empty Return-Path)"
    _, sender = parseaddr(str(mail.get("From") or ""))
    if sender and sender.lower() in own_addresses:
        return f"sent by itsm itself ({sender})"
    message_id = str(mail.get("Message-ID") or "").strip().lower()
    if own_domain and message_id.startswith("<itsm.") and \
            message_id.endswith(f"@{own_domain}>"):
        return "our own notification (Message-ID)"
    return None


class _HtmlText(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def body_text(mail: EmailMessage) -> str:
    """The text of the message: its text/plain body, else its HTML body as text."""
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content.replace("\r\n", "\n").strip()


def strip_quoted(text: str) -> str:
    """A reply without the quoted message below it (``>`` lines, "On ... wrote:")."""
    kept: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    while kept and (not kept[-1].strip() or QUOTE_HEADER.match(kept[-1].strip())):
        kept.pop()
    return "\n".join(kept).strip()


def attachments(mail: EmailMessage) -> list[tuple[str, str, bytes]]:
    """(file name, content type, bytes) of every attachment."""
    out = []
    for index, part in enumerate(mail.iter_attachments(), start=1):
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        name = part.get_filename() or f"attachment-{index}.{part.get_content_subtype()}"
        out.append((name, part.get_content_type(), data))
    return out
