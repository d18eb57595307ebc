"""The MOU plugin's web pages: agreements, the printable document, compliance reports,
and the agency's own agreement in the portal (``/mou/my``).

Agreements are edited through the API and moved through their workflow on the core's
generic record page (``/records/mous/<number>``); these pages show what only agreements
have. Every page reads through the service layer, so an agency user sees only the
agency's agreement in force, and another agency's answers 404.
"""

from __future__ import annotations

from flask import Response, request
from sqlalchemy import select

from itsm.plugin import Agency, ItsmError, current_itsm, page_actor, page_blueprint, render_page
from itsm.plugins.mou import compliance, service
from itsm.plugins.mou import document as export
from itsm.plugins.mou.models import Mou

pages = page_blueprint("mou_pages", __name__, url_prefix="/mou", static_folder="static")
LIST_LIMIT = 500


@pages.get("/")
def agreements():
    """The agreements the user may read, newest first."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        svc.require("mou.read")
        rows = [m for m in svc.session.scalars(select(Mou).order_by(Mou.id.desc())
                                                .limit(LIST_LIMIT))
                if svc.can("mou.read", m)]
        items = [svc.to_dict(m) for m in rows]
    return render_page("mou/list.html", items=items)


@pages.get("/my")
def mine():
    """The agency's agreement in force: who to call, the escalation path, the targets."""
    actor = page_actor()
    with current_itsm().unit_of_work(actor) as svc:
        mou = service.active_for_agency(svc.session, actor.agency_id)
        data = service.agreement_dict(svc, service.get(svc, mou.number)) if mou else None
    return render_page("mou/my.html", data=data,
                       targets=export.target_rows(data) if data else [])


@pages.get("/agreements/<number>")
def agreement_document(number: str):
    """The whole agreement as a printable document, with the amendments' diffs."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        data = service.agreement_dict(svc, service.get(svc, number))
        staff = svc.is_staff
    return render_page("mou/document.html", data=data, standalone=False, staff=staff,
                       targets=export.target_rows(data), contacts=export.contact_lines(data))


@pages.get("/agreements/<number>.md")
def agreement_markdown(number: str):
    """The agreement as a Markdown file."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        data = service.agreement_dict(svc, service.get(svc, number))
    return Response(export.to_markdown(data), mimetype="text/markdown", headers={
        "Content-Disposition": f'attachment; filename="{data["number"]}.md"'})


@pages.get("/compliance")
def compliance_report():
    """An agency's compliance with its agreement over a period, printable, with charts."""
    args = request.args
    report, error, status = None, None, 200
    with current_itsm().unit_of_work(page_actor()) as svc:
        svc.require(service.REPORT_PERMISSION)
        agencies = svc.session.execute(select(Agency.code, Agency.name)
                                       .order_by(Agency.code)).all()
        start, end = compliance.parse_period(None, None)
        try:
            start, end = compliance.parse_period(args.get("from"), args.get("to"))
            if args.get("agency"):
                report = compliance.report(svc.session, args["agency"][:32], start, end)
        except ItsmError as exc:
            error, status = exc.message, exc.status
    charts = [compliance.chart(line) for line in report["targets"]] if report else []
    return render_page("mou/compliance.html", status, report=report, charts=charts,
                       agencies=agencies, error=error, agency=args.get("agency", ""),
                       start=start, end=end)
