"""The MOU plugin's web pages: agreements, the printable document, compliance reports,
and the agency's own agreement in the portal (``/mou/my``).

Agreements are edited through the API and moved through their workflow on the core's
generic record page (``/records/mous/<number>``); these pages show what only agreements
have. Every page reads through the service layer, so an agency user sees only the
agency's agreement in force, and another agency's answers 404.
"""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    Agency,
    ItsmError,
    NotFound,
    current_itsm,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.mou import compliance, participation, service
from itsm.plugins.mou import document as export
from itsm.plugins.mou import template as templates
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
        # Parties by name: the agency's code is what the record stores, not what people say.
        agencies = dict(svc.session.execute(select(Agency.code, Agency.name).where(
            Agency.code.in_({m["agency"] for m in items if m.get("agency")}))).all())
    return render_page("mou/list.html", items=items, agencies=agencies)


@pages.get("/my")
def mine():
    """The agency's agreement in force: who to call, the escalation path, the targets; for
    the agency's delegates, every agreement of the agency and where to take part."""
    actor = page_actor()
    with current_itsm().unit_of_work(actor) as svc:
        mou = service.active_for_agency(svc.session, actor.agency_id)
        data = service.agreement_dict(svc, service.get(svc, mou.number)) if mou else None
        delegate = participation.is_delegate(svc.session, actor)
        own = [svc.to_dict(m) for m in participation.agency_agreements(svc)] \
            if delegate else []
    return render_page("mou/my.html", data=data, delegate=delegate, agreements=own,
                       targets=export.target_rows(data) if data else [])


def _part_page(number: str, status: int = 200, form: dict | None = None,
               errors: dict | None = None):
    with current_itsm().unit_of_work(page_actor()) as svc:
        mou = service.get(svc, number)
        rows = participation.proposals(svc, mou)
        data = {"number": mou.number, "title": mou.title, "state": mou.state,
                "sections": [{"key": s.key, "title": s.title}
                             for s in service.sections(svc.session, mou)],
                "proposals": [participation.proposal_dict(p) for p in rows]}
        staff = svc.can(f"{service.MOU.name}.update", mou) and svc.is_staff
    return render_page("mou/take_part.html", status, data=data, staff=staff,
                       form=form or {}, errors=errors or {})


@pages.get("/agreements/<number>/take-part")
def take_part(number: str):
    """Comment on a section, propose an amendment, follow the proposals."""
    return _part_page(number)


def _part_action(number: str, action, done: str, fields: tuple[str, ...]):
    form = {name: request.form.get(name, "") for name in fields}
    try:
        with current_itsm().unit_of_work(page_actor()) as svc:
            action(svc, service.get(svc, number), form)
    except ItsmError as exc:
        if exc.status in (401, 403, 404):
            raise
        fields = exc.fields or {"body": [exc.message]}
        # Field messages as lines of text, whatever their shape (a nested field's dict).
        errors = {key: [str(m) for m in (value if isinstance(value, list) else [value])]
                  for key, value in fields.items()}
        return _part_page(number, 422, form, errors)
    flash(done, "success")
    return redirect(url_for(".take_part", number=number))


@pages.post("/agreements/<number>/take-part/comment")
def comment_section(number: str):
    """A comment on one section."""
    return _part_action(number, lambda svc, mou, f: participation.comment_on_section(
        svc, mou, f["section"], f["body"]), "Your comment is in the agreement's "
        "conversation.", ("section", "body"))


@pages.post("/agreements/<number>/take-part/propose")
def propose_amendment(number: str):
    """A proposed new text for one section."""
    return _part_action(number, lambda svc, mou, f: participation.propose(svc, mou, {
        "summary": f["summary"], "sections": {f["section"]: f["text"]}}),
        "Your proposal is sent: the relationship manager takes it up.",
        ("section", "summary", "text"))


@pages.post("/agreements/<number>/proposals/<int:proposal_id>/<step>")
def decide_proposal(number: str, proposal_id: int, step: str):
    """IT staff adopt or decline a proposal."""
    if step not in ("adopt", "decline"):
        raise NotFound("no such page")

    def run(svc, mou, form):
        if step == "adopt":
            participation.adopt(svc, mou, proposal_id)
        else:
            participation.decline(svc, mou, proposal_id, form["reason"])

    done = {"adopt": "The proposal is adopted: an amendment to approve, or the draft's text.",
            "decline": "The proposal is declined; the agency reads why."}[step]
    return _part_action(number, run, done, ("reason",))


@pages.get("/template")
def standard_template():
    """The standard agreement every MOU starts from (IT staff and agencies' delegates)."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        if not svc.is_staff and not participation.is_delegate(svc.session, svc.actor):
            raise NotFound("no such page")
        latest = templates.latest(svc.session)
        sections = latest.sections if latest else templates.standard_sections()
        version = latest.version if latest else None
    return render_page("mou/template.html", sections=sections, version=version)


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
    agency = args.get("agency", "")
    with current_itsm().unit_of_work(page_actor()) as svc:
        query = select(Agency.code, Agency.name).order_by(Agency.code)
        if not svc.can(service.REPORT_PERMISSION) \
                and participation.is_delegate(svc.session, svc.actor):
            # An agency's delegate: their own agency's compliance, and no other.
            query = query.where(Agency.id == svc.actor.agency_id)
        else:
            svc.require(service.REPORT_PERMISSION)
        agencies = svc.session.execute(query).all()
        if len(agencies) == 1:
            agency = agencies[0][0]
        start, end = compliance.parse_period(None, None)
        try:
            start, end = compliance.parse_period(args.get("from"), args.get("to"))
            if agency and agency in {code for code, _ in agencies}:
                report = compliance.report(svc.session, agency[:32], start, end)
        except ItsmError as exc:
            error, status = exc.message, exc.status
    charts = [compliance.chart(line) for line in report["targets"]] if report else []
    return render_page("mou/compliance.html", status, report=report, charts=charts,
                       agencies=agencies, error=error, agency=agency,
                       start=start, end=end)
