"""The account page: a person sets the name others see and the time zone of their pages."""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from itsm.core.context import current_itsm
from itsm.core.display import install_zone, update_profile, zone_names
from itsm.core.errors import ValidationError
from itsm.core.models import User
from itsm.core.pagekit import _actor, _render, bp


@bp.route("/account", methods=["GET", "POST"])
def account():
    actor = _actor()
    itsm = current_itsm()
    if request.method == "GET":
        with itsm.Session() as db:
            user = db.get(User, actor.id)
            values = {"name": user.name, "time_zone": user.time_zone}
        return _account_page(values, {})
    values = {"name": request.form.get("name", ""),
              "time_zone": request.form.get("time_zone", "")}
    with itsm.Session() as db:
        try:
            update_profile(db, actor, actor.id, **values)
        except ValidationError as exc:
            return _account_page(values, exc.fields, 422)
        db.commit()
    flash("Your name and time zone have been saved.", "success")
    return redirect(url_for("console.account"))


def _account_page(values: dict[str, str], errors: dict, status: int = 200):
    return _render("console/account.html", status, values=values, errors=errors,
                   zones=zone_names(), install_zone=install_zone().key)
