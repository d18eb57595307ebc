"""Whether a message really comes from the address in its From header.

Anyone can write any From header. A message is believed to come from its From address
when one of these holds:

- it carries the reply token of a mail itsm sent to that address about that record, in
  the address it was sent to (``desk+<token>@…``, from our Reply-To) or in the
  Message-ID it answers (In-Reply-To, References);
- the receiving MTA checked it: an ``Authentication-Results`` header (RFC 8601) of a
  trusted authserv-id says ``dkim=pass`` for the From domain, ``spf=pass`` for an
  envelope sender in the From domain, or ``dmarc=pass`` for the From domain. Headers of
  other authserv-ids are ignored (anyone can write one), and of a trusted one only the
  topmost counts: the MTA adds its own on top, a forged copy lies below it;
- a DKIM signature of the From domain verifies here (dkimpy), over the whole body.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from email.utils import getaddresses

from itsm.plugin import reply_token

MESSAGE_ID_TOKEN = re.compile(r"<itsm\.([A-Za-z]{2,8}[0-9]{1,12})\.(?:[^<>@]+\.)?"
                              r"([a-z2-7]{24})@[^<>]+>", re.IGNORECASE)
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


# -- reply tokens ----------------------------------------------------------------------------


def token_candidates(mail: EmailMessage, number: str) -> list[str]:
    """Tokens the message offers for record ``number``: sub-addresses it was sent to and
    the tokens of our Message-IDs it answers."""
    found: list[str] = []
    values = [str(v) for name in RECIPIENT_HEADERS for v in mail.get_all(name) or []]
    for _, address in getaddresses(values):
        local = address.rpartition("@")[0]
        if "+" in local:
            found.append(local.rpartition("+")[2].lower())
    for name in ("In-Reply-To", "References"):
        for value in mail.get_all(name) or []:
            for match in MESSAGE_ID_TOKEN.finditer(str(value)):
                if match.group(1).upper() == number.upper():
                    found.append(match.group(2).lower())
    return found


def has_reply_token(mail: EmailMessage, secret_key: str, number: str, sender: str) -> bool:
    """True when the message carries the reply token of ``number`` for ``sender``."""
    if not secret_key:  # without a key there are no tokens worth the name
        return False
    expected = reply_token(secret_key, number, sender)
    return any(hmac.compare_digest(expected, candidate)
               for candidate in token_candidates(mail, number))


# -- Authentication-Results (RFC 8601) -------------------------------------------------------


def _without_comments(value: str) -> str:
    """``value`` without (comments), which may nest; quoted strings are kept as they are."""
    out, depth, quoted, escaped = [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def parse_authentication_results(value: str) -> tuple[str, list[tuple[str, str, dict]]]:
    """(authserv-id, [(method, result, {property: value})]) of one header value."""
    parts = [p.strip() for p in _without_comments(" ".join(value.split())).split(";")]
    head = parts[0].split()
    authserv_id = head[0].lower() if head else ""
    results = []
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue  # "none", or something this parser does not know
        method, _, result = words[0].partition("=")
        props = {}
        for word in words[1:]:
            key, sep, prop = word.partition("=")
            if sep:
                props[key.lower()] = prop.strip('"').lower()
        results.append((method.split("/")[0].lower(), result.lower(), props))
    return authserv_id, results


def verified_by_mta(mail: EmailMessage, trusted_ids: Iterable[str], sender: str) -> str | None:
    """How a trusted MTA's Authentication-Results vouches for ``sender``, or None."""
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    if not trusted:
        return None
    domain = domain_of(sender)
    for value in mail.get_all("Authentication-Results") or []:
        authserv_id, results = parse_authentication_results(str(value))
        if authserv_id not in trusted:
            continue
        for method, result, props in results:
            if result != "pass":
                continue
            if method == "dkim" and domain in (props.get("header.d", ""),
                                               domain_of(props.get("header.i", ""))):
                return f"dkim=pass for {domain} ({authserv_id})"
            if method == "spf" and domain_of(props.get("smtp.mailfrom", "")) == domain:
                return f"spf=pass for {domain} ({authserv_id})"
            if method == "dmarc" and props.get("header.from", "") == domain:
                return f"dmarc=pass for {domain} ({authserv_id})"
        return None  # the topmost header of a trusted id decides; forged ones lie below
    return None


# -- DKIM verified here ----------------------------------------------------------------------


DnsFunc = Callable[..., bytes | None]


def verified_by_dkim(raw: bytes, sender: str, dnsfunc: DnsFunc | None = None) -> str | None:
    """``dkim=pass for <domain>`` when a DKIM signature of ``sender``'s domain verifies,
    else None. A signature with a body length (``l=``) does not count: text could be added
    below the signed part. ``dnsfunc`` looks up the key (dkimpy's own DNS lookup by
    default); None when dkimpy is not installed."""
    try:
        import dkim
        from dkim.util import InvalidTagValueList, parse_tag_value
    except ImportError:
        return None
    domain = domain_of(sender)
    checker = dkim.DKIM(raw)
    signatures = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
    for index, value in enumerate(signatures):
        try:
            tags = parse_tag_value(re.sub(rb"\s+", b"", value))
        except InvalidTagValueList:
            continue
        if tags.get(b"d", b"").decode("ascii", "replace").lower() != domain or b"l" in tags:
            continue
        try:
            kwargs = {"dnsfunc": dnsfunc} if dnsfunc is not None else {}
            if checker.verify(idx=index, **kwargs):
                return f"dkim=pass for {domain} (verified by itsm)"
        except Exception:  # noqa: BLE001 - a broken signature or DNS failure verifies nothing
            continue
    return None
