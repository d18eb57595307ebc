"""The problem plugin's console pages: the known error database and incident trends.

Problems themselves use the core's generic record pages (``/records/problems``); these
pages add what only problem management needs. Staff only: the service layer refuses
anyone without ``problem.read`` (known errors) or ``problem.trends`` (trends).
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    ItsmError,
    ValidationError,
    current_itsm,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.problem import service as problems
from itsm.plugins.problem.models import PROBLEM

pages = page_blueprint("problem_pages", __name__, url_prefix="/problems")


@pages.get("/known-errors")
def known_errors():
    """Search the known error database."""
    text = request.args.get("q", "").strip()[:500].replace("\x00", "")
    with current_itsm().unit_of_work(page_actor()) as service:
        found = [problems.known_error_dict(p) for p in problems.known_errors(service, text)]
    return render_page("problem/known_errors.html", items=found, q=text)


@pages.get("/trends")
def trends():
    """Values shared by many recent incidents, and whether a problem covers them."""
    itsm = current_itsm()
    error, report = None, None
    with itsm.unit_of_work(page_actor()) as service:
        service.require(problems.TRENDS_PERMISSION)
        rt = problems.incident_type()
        try:
            days, minimum = problems.trend_options(request.args.get("days"),
                                                   request.args.get("min"))
        except ValidationError as exc:
            error = exc.message
            days, minimum = problems.trend_options()
        if rt is None:
            error = error or (f"No record type {problems.incident_type_name()!r} is enabled: "
                              "enable its plugin or set [plugins.problem] incident_type.")
        else:
            report = problems.trends(service, days, minimum)
    return render_page("problem/trends.html", 400 if error and rt is not None else 200,
                       report=report, days=days, minimum=minimum, error=error,
                       incident_label=rt.title if rt else problems.incident_type_name())


@pages.post("/trends/open")
def open_from_trend():
    """Open a problem for one trend and link its incidents."""
    form = request.form
    try:
        days, _ = problems.trend_options(form.get("days"), None)
        with current_itsm().unit_of_work(page_actor()) as service:
            problem = problems.open_problem_for_trend(service, form.get("field", ""),
                                                      form.get("value", ""), days)
            number = problem.number
    except ItsmError as exc:
        if exc.status in (401, 403):  # the console's error page says why
            raise
        flash(exc.message, "error")
        return redirect(url_for(".trends"))
    flash(f"{number} has been opened and its incidents linked.", "success")
    return redirect(url_for("console.record_detail", collection=PROBLEM.collection,
                            number=number))
