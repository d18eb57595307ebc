"""Billing's pages: statements for billing staff and for the agencies' billing contacts.

Staff with ``billing.manage`` compute, review and issue statements and credit issued ones;
an agency's billing contacts read its issued statements (the portal's "Statements") and
download them as CSV or PDF. Every write goes through :mod:`.service`.
"""

from __future__ import annotations

from datetime import date

from flask import Response, flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    Agency,
    ItsmError,
    current_itsm,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.billing import service as billing
from itsm.plugins.billing.exports import statement_csv, statement_pdf

pages = page_blueprint("billing_pages", __name__, url_prefix="/billing",
                       static_folder="static")


def _list_page(status: int = 200, form: dict | None = None, errors: dict | None = None):
    with current_itsm().unit_of_work(page_actor()) as service:
        items = [billing.statement_dict(service, s) for s in billing.statements(service)]
        manage = service.can(billing.MANAGE)
        agencies = service.session.scalars(select(Agency).order_by(Agency.name)).all() \
            if manage else []
    last_month = date.today().replace(day=1).toordinal() - 1
    return render_page("billing/statements.html", status, items=items, manage=manage,
                       agencies=agencies, form=form or {}, errors=errors or {},
                       default_period=date.fromordinal(last_month).strftime("%Y-%m"))


@pages.get("/statements")
def statements():
    """The statements the signed-in person may read."""
    return _list_page()


@pages.post("/statements")
def generate():
    """Compute (again) an agency's draft statement for a month."""
    form = {"agency": request.form.get("agency", ""), "period": request.form.get("period", "")}
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            found = billing.generate(service, form["agency"], form["period"])
            statement_id, number = found.id, found.number
    except ItsmError as exc:
        if exc.status in (401, 403):
            raise
        return _list_page(422 if exc.fields else exc.status, form,
                          exc.fields or {"period": [exc.message]})
    flash(f"{number} has been computed as a draft.", "success")
    return redirect(url_for(".statement", statement_id=statement_id))


def _statement_page(statement_id: int, status: int = 200, form: dict | None = None,
                    errors: dict | None = None):
    with current_itsm().unit_of_work(page_actor()) as service:
        data = billing.statement_dict(service, billing.statement(service, statement_id))
        manage = service.can(billing.MANAGE)
    return render_page("billing/statement.html", status, statement=data, manage=manage,
                       form=form or {}, errors=errors or {})


@pages.get("/statements/<int:statement_id>")
def statement(statement_id: int):
    """One statement, its lines and (for billing staff) its next step."""
    return _statement_page(statement_id)


STEPS = billing.STEPS


@pages.post("/statements/<int:statement_id>/<step>")
def move(statement_id: int, step: str):
    """Mark reviewed, issue, or reopen as a draft."""
    if step not in STEPS:
        return _statement_page(statement_id, 404)
    if step == "issue" and request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: an issued statement never changes.", "error")
        return redirect(url_for(".statement", statement_id=statement_id))
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            number = STEPS[step](service, statement_id).number
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        flash(exc.message, "error")
        return redirect(url_for(".statement", statement_id=statement_id))
    flash({"review": f"{number} is reviewed.", "issue": f"{number} has been issued.",
           "reopen": f"{number} is a draft again."}[step], "success")
    return redirect(url_for(".statement", statement_id=statement_id))


@pages.post("/statements/<int:statement_id>/credits")
def add_credit(statement_id: int):
    """Credit an issued statement on the agency's next one."""
    form = {"amount": request.form.get("amount", ""), "reason": request.form.get("reason", "")}
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            billing.credit(service, statement_id, form["amount"], form["reason"])
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        return _statement_page(statement_id, 422, form, exc.fields or {"amount": [exc.message]})
    flash("The credit has been recorded: the agency's next statement bills it.", "success")
    return redirect(url_for(".statement", statement_id=statement_id))


def _download(statement_id: int, kind: str) -> Response:
    with current_itsm().unit_of_work(page_actor()) as service:
        data = billing.statement_dict(service, billing.statement(service, statement_id))
    name = f"{data['number']}-{data['agency']}"
    if kind == "csv":
        body, mimetype = statement_csv(data).encode(), "text/csv; charset=utf-8"
    else:
        body, mimetype = statement_pdf(data), "application/pdf"
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{name}.{kind}"'})


@pages.get("/statements/<int:statement_id>.csv")
def statement_csv_download(statement_id: int):
    """The statement as CSV."""
    return _download(statement_id, "csv")


@pages.get("/statements/<int:statement_id>.pdf")
def statement_pdf_download(statement_id: int):
    """The statement as PDF."""
    return _download(statement_id, "pdf")
