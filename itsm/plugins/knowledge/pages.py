"""Knowledge pages: the portal (search, read, vote) for everyone signed in, and the staff
pages for versions and for proposing an article from a resolved record.

Staff edit articles on the console's generic record pages (``/records/articles/...``);
``templates/records/article/detail.html`` shows the rendered body there.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    MAX_DB_INTEGER,
    InputError,
    ItsmError,
    NotFound,
    current_itsm,
    error_text,
    page_actor,
    page_blueprint,
    parse_int,
    render_page,
)
from itsm.plugins.knowledge import service as knowledge
from itsm.plugins.knowledge.rendering import render_markdown

pages = page_blueprint("knowledge", __name__, url_prefix="/knowledge")
pages.add_app_template_filter(render_markdown, "kb_markdown")
PAGE_SIZE = 30


@pages.get("")
def search_page():
    """Search the published articles (all of them, latest first, without words)."""
    text = request.args.get("q", "").strip()[:500]
    with current_itsm().unit_of_work(page_actor()) as service:
        hits = [knowledge.hit(article, score) for article, score
                in knowledge.search_published(service, text, PAGE_SIZE)]
        staff = service.is_staff
    return render_page("knowledge/search.html", q=text, hits=hits, staff=staff)


@pages.get("/<number>")
def article_page(number: str):
    """Read an article, with the vote buttons."""
    with current_itsm().unit_of_work(page_actor()) as service:
        article = knowledge.get_article(service, number)
        context = {"article": service.to_dict(article),
                   "my_vote": knowledge.my_vote(service, article),
                   "can_vote": (article.state == knowledge.PUBLISHED
                                and service.can("knowledge.vote", article)),
                   "staff": service.is_staff,
                   "console_url": knowledge.console_url(article.number)}
    return render_page("knowledge/article.html", **context)


@pages.post("/<number>/vote")
def vote_page(number: str):
    helpful = request.form.get("helpful")
    if helpful not in ("yes", "no"):
        flash("Choose whether the article helped.", "error")
        return redirect(url_for(".article_page", number=number.upper()))
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            article = knowledge.get_article(service, number)
            knowledge.vote(service, article, helpful == "yes")
    except NotFound:
        raise
    except ItsmError as exc:
        flash(error_text(exc), "error")
    else:
        flash("Thank you: your answer has been recorded.", "success")
    return redirect(url_for(".article_page", number=number.upper()) + "#vote")


@pages.get("/<number>/versions")
def versions_page(number: str):
    """Every version of an article; ``?a=1&b=3`` compares two of them."""
    with current_itsm().unit_of_work(page_actor()) as service:
        article = knowledge.get_article(service, number)
        data = service.to_dict(article)
        history = knowledge.versions(service, article)
    by_number = {v["version"]: v for v in history}
    newest = history[-1]["version"] if history else 0
    a = _version_arg("a", max(newest - 1, 1), by_number)
    b = _version_arg("b", newest, by_number)
    changes = knowledge.diff(by_number[a], by_number[b]) if a and b and a != b else []
    return render_page("knowledge/versions.html", article=data, versions=history[::-1],
                       a=a, b=b, changes=changes,
                       console_url=knowledge.console_url(article.number))


def _version_arg(name: str, default: int, known: dict[int, Any]) -> int:
    try:
        value = parse_int(request.args.get(name, ""), name, minimum=1, maximum=MAX_DB_INTEGER)
    except InputError:
        value = default
    return value if value in known else (default if default in known else 0)


PROPOSAL_FIELDS = ("title", "description", "service", "category")


@pages.route("/propose", methods=["GET", "POST"])
def propose_page():
    """A draft article prefilled from a resolved record; saving creates it."""
    number = request.values.get("from", "").strip().upper()
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    message = ""
    with itsm.unit_of_work(page_actor()) as service:
        service.require("article.create")
        source = knowledge.source_record(service, number)
        values = knowledge.proposal_values(service, source)
        source_title = source.title
    if request.method == "POST":
        overrides = {name: request.form.get(name, "").replace("\r\n", "\n").strip()
                     for name in PROPOSAL_FIELDS}
        try:
            with itsm.unit_of_work(page_actor()) as service:
                article = knowledge.propose(service, number, overrides)
                created = article.number
        except ItsmError as exc:
            errors = {k: [str(m) for m in v] if isinstance(v, list) else [str(v)]
                      for k, v in (exc.fields or {}).items()}
            message = error_text(exc)
            values = {**values, **overrides}
        else:
            flash(f"{created} has been drafted from {number}.", "success")
            return redirect(knowledge.console_url(created))
    return render_page("knowledge/propose.html", 422 if message else 200, source=number,
                       source_title=source_title, values=values, errors=errors,
                       message=message)
