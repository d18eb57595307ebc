"""A statement as a finance office takes it: CSV for its spreadsheet, PDF for its files.

The PDF is the statement page's own body (``billing/_statement.html``) in a print
layout, rendered by WeasyPrint: what the agency reads in the portal is what it files.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from itsm.plugin import render_pdf

CSV_COLUMNS = ("statement", "agency", "period", "state", "line", "kind", "service",
               "description", "quantity", "unit_price", "amount", "currency")


def statement_csv(data: dict[str, Any]) -> str:
    """One row per line, then a total row; amounts as plain decimals, dot separated."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    head = (data["number"], data["agency"], data["period"], data["state"])
    for line in data["lines"]:
        writer.writerow((*head, line["position"], line["kind_label"], line["service"],
                         _safe(line["description"]), line["quantity"], line["unit_price"],
                         line["amount"], data["currency"]))
    writer.writerow((*head, "", "Total", "", "", "", "", data["total"], data["currency"]))
    return out.getvalue()


def _safe(text: str) -> str:
    # A cell a spreadsheet would run as a formula (=, +, -, @) is written as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_pdf(data: dict[str, Any]) -> bytes:
    """The statement as a PDF document (the page size is the print template's CSS)."""
    return render_pdf("billing/statement_print.html", statement=data)
