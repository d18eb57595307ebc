"""The relationship plugin's pages: a relationship manager's agencies, each agency's
situation this month, and the monthly service reviews (which the agency's own people
read in the portal)."""

from __future__ import annotations

from flask import Response

from itsm.plugin import (
    Agency,
    current_itsm,
    page_actor,
    page_blueprint,
    render_page,
    render_pdf,
)
from itsm.plugins.relationship import service as relationship

pages = page_blueprint("relationship_pages", __name__, url_prefix="/relationship",
                       static_folder="static")


def review_pdf_bytes(data: dict) -> bytes:
    """A review as the PDF that is mailed and downloaded (the page's own sections)."""
    return render_pdf("relationship/review_print.html", data=data)


@pages.get("/")
def portfolio():
    """The agencies the signed-in relationship manager looks after."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        agencies = [{"code": a.code, "name": a.name} for a in relationship.portfolio(svc)]
    return render_page("relationship/portfolio.html", agencies=agencies)


@pages.get("/agencies/<code>")
def agency(code: str):
    """One agency's situation this month, from every process."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        data = relationship.situation(svc, code[:32])
    return render_page("relationship/agency.html", data=data)


@pages.get("/agencies/<code>/reviews")
def agency_reviews(code: str):
    """The agency's monthly service reviews, newest first."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        agency = relationship.agency_for(svc, code[:32], reviews=True)
        items = [{"id": r.id, "period": r.period}
                 for r in relationship.reviews(svc, agency.code)]
        name = agency.name
    return render_page("relationship/reviews.html", items=items, agency_name=name)


@pages.get("/reviews")
def my_reviews():
    """The portal's "Service reviews": the signed-in person's own agency's."""
    actor = page_actor()
    with current_itsm().unit_of_work(actor) as svc:
        agency = svc.session.get(Agency, actor.agency_id) if actor.agency_id else None
        if agency is None:
            return render_page("relationship/reviews.html", items=[],
                               agency_name="no agency")
        items = [{"id": r.id, "period": r.period}
                 for r in relationship.reviews(svc, agency.code)]
    return render_page("relationship/reviews.html", items=items, agency_name=agency.name)


@pages.get("/reviews/<int:review_id>")
def review(review_id: int):
    """One kept review."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        data = relationship.review_dict(svc.session, relationship.review(svc, review_id))
    return render_page("relationship/review.html", data=data)


@pages.get("/reviews/<int:review_id>.pdf")
def review_pdf(review_id: int):
    """One kept review as a PDF."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        data = relationship.review_dict(svc.session, relationship.review(svc, review_id))
    return Response(review_pdf_bytes(data), mimetype="application/pdf", headers={
        "Content-Disposition":
            f'attachment; filename="service-review-{data["agency"]}-{data["period"]}.pdf"'})
