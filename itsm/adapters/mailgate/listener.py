"""The optional SMTP listener: aiosmtpd hands each message to :func:`ingest`."""

from __future__ import annotations

import logging

from aiosmtpd.controller import Controller
from flask import Flask

from itsm.adapters.mailgate.service import MailDeferred, MailRejected, ingest
from itsm.plugin import ItsmError

log = logging.getLogger("itsm.mailgate")


class MailgateHandler:
    """Answers 250 for a message taken (or ignored, or held), 550 for one refused and 451
    for a sender over the rate limit."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        itsm = self.app.extensions["itsm"]
        try:
            with self.app.app_context():
                # Refused while the client still waits: it tells the sender (550), so
                # itsm mails no bounce of its own.
                outcome = ingest(itsm, envelope.original_content or envelope.content,
                                 bounce=False)
        except MailRejected as exc:
            return f"550 {exc.message}"[:500]
        except MailDeferred as exc:
            return f"451 {exc.message}"[:500]
        except ItsmError as exc:
            return f"554 {exc.message}"[:500]
        except Exception:  # keep the listener up; the MTA retries a 451
            log.exception("mail from %s could not be ingested", envelope.mail_from)
            return "451 temporary failure, try again later"
        return f"250 {outcome.line()}"[:500]


def start_listener(app: Flask, host: str, port: int) -> Controller:
    """Start the SMTP listener in a background thread; ``.stop()`` it when done."""
    settings = app.extensions["itsm"].plugin_settings("mailgate")
    limit = int(settings.get("max_bytes") or 0) or None
    controller = Controller(MailgateHandler(app), hostname=host, port=port,
                            data_size_limit=limit)
    controller.start()
    return controller
