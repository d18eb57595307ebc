"""Admin pages for users, agencies and resolver groups, calling :mod:`itsm.core.people`.

A refused form is shown again with what was typed and a message at each field (422);
destructive actions (deactivate, revoke every token, remove a member) need a ticked
confirmation and are never the page's primary button.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from itsm.core import people
from itsm.core.admin.blueprint import bp
from itsm.core.admin.kit import Form, admin_view, refused
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError, ValidationError
from itsm.core.models import Agency, Group, User
from itsm.core.pagekit import page_actor, render_page


def _unit():
    return current_itsm().unit_of_work(page_actor())


def _confirmed() -> None:
    if request.form.get("confirm") != "y":
        raise ValidationError("tick the box to confirm", fields={"confirm": ["not confirmed"]})


def _choices() -> dict[str, list[tuple[str, str]]]:
    """The options of the users' forms: roles, agencies and groups, by their names."""
    with current_itsm().Session() as session:
        agencies = session.execute(select(Agency.code, Agency.name)
                                   .order_by(Agency.name)).all()
        groups = session.scalars(select(Group.name).order_by(Group.name)).all()
    with _unit() as service:
        roles = people.roles(service)
    return {"roles": [(r, r.replace("_", " ").capitalize()) for r in roles],
            "agencies": [(code, f"{name} ({code})") for code, name in agencies],
            "groups": [(g, g) for g in groups]}


# -- users ---------------------------------------------------------------------------------


def _active_arg() -> bool | None:
    return {"yes": True, "no": False}.get(request.args.get("active", ""))


@bp.route("/users")
@admin_view("admin.users")
def users():
    args = {k: request.args.get(k, "").strip()[:100] for k in ("q", "role", "agency", "group")}
    with _unit() as service:
        rows = people.list_users(service, text=args["q"], role=args["role"],
                                 agency=args["agency"], group=args["group"],
                                 active=_active_arg(), limit=people.LIST_LIMIT)
    form = Form(MultiDict({**args, "active": request.args.get("active", "")}))
    return render_page("admin/users.html", users=rows, form=form, choices=_choices(),
                       limit=people.LIST_LIMIT)


@bp.route("/users/new", methods=["GET", "POST"])
@admin_view("admin.users")
def user_new():
    form = Form(MultiDict({"role": "agent"}))
    if request.method == "POST":
        try:
            with _unit() as service:
                made = people.add_user(
                    service, request.form.get("email", ""), name=request.form.get("name", ""),
                    role=request.form.get("role", ""), agency=request.form.get("agency") or None,
                    groups=request.form.getlist("groups"))
                user_id = made.id
            flash("User added. Send them a password-reset mail to let them choose a "
                  "password.", "success")
            return redirect(url_for("admin.user_detail", user_id=user_id))
        except ItsmError as exc:
            form = refused(exc)
            status = 422
        return render_page("admin/user_new.html", status, form=form, choices=_choices())
    return render_page("admin/user_new.html", form=form, choices=_choices())


def _user_page(user_id: int, forms: dict[str, Form] | None = None, status: int = 200):
    with _unit() as service:
        found = people.user(service, user_id)
        data = people.user_dict(service, found)
    stored = MultiDict([("name", data["name"]), ("agency", data["agency"] or ""),
                        ("role", data["role"])] + [("groups", g) for g in data["groups"]])
    forms = {"edit": Form(stored), "role": Form(stored), "active": Form(),
             "tokens": Form(), "reset": Form(), **(forms or {})}
    return render_page("admin/user.html", status, user=data, forms=forms, choices=_choices(),
                       reset_available=data["active"])


@bp.route("/users/<int:user_id>")
@admin_view("admin.users")
def user_detail(user_id: int):
    return _user_page(user_id)


def _user_action(user_id: int, form_name: str, act, done: str):
    try:
        with _unit() as service:
            email = people.user(service, user_id).email
            act(service, email)
        flash(done, "success")
        return redirect(url_for("admin.user_detail", user_id=user_id))
    except ItsmError as exc:
        if exc.status == 404:
            raise
        return _user_page(user_id, {form_name: refused(exc)}, 422)


@bp.post("/users/<int:user_id>/edit")
@admin_view("admin.users")
def user_edit(user_id: int):
    return _user_action(user_id, "edit", lambda service, email: people.update_user(
        service, email, name=request.form.get("name", ""),
        agency=request.form.get("agency", ""), groups=request.form.getlist("groups")),
        "Changes saved.")


@bp.post("/users/<int:user_id>/role")
@admin_view("admin.users")
def user_role(user_id: int):
    return _user_action(user_id, "role", lambda service, email: people.set_role(
        service, email, request.form.get("role", "")), "Role changed.")


@bp.post("/users/<int:user_id>/active")
@admin_view("admin.users")
def user_active(user_id: int):
    active = request.form.get("active") == "yes"

    def act(service, email):
        if not active:
            _confirmed()
        people.set_active(service, email, active)

    return _user_action(user_id, "active", act,
                        "User reactivated." if active else
                        "User deactivated: their tokens are revoked and sessions ended.")


@bp.post("/users/<int:user_id>/tokens")
@admin_view("admin.users")
def user_tokens(user_id: int):
    def act(service, email):
        _confirmed()
        people.revoke_tokens(service, email)

    return _user_action(user_id, "tokens", act, "Every API token of the user is revoked.")


# -- agencies --------------------------------------------------------------------------------


@bp.route("/agencies", methods=["GET", "POST"])
@admin_view("admin.groups")
def agencies():
    form, status = Form(), 200
    if request.method == "POST":
        try:
            with _unit() as service:
                made = people.add_agency(service, request.form.get("code", ""),
                                         request.form.get("name", ""),
                                         request.form.get("contacts", ""))
                code = made.code
            flash(f"Agency {code} added.", "success")
            return redirect(url_for("admin.agencies"))
        except ItsmError as exc:
            form, status = refused(exc), 422
    with _unit() as service:
        rows = people.list_agencies(service)
    return render_page("admin/agencies.html", status, agencies=rows, form=form)


@bp.route("/agencies/<code>", methods=["GET", "POST"])
@admin_view("admin.groups")
def agency(code: str):
    code = code[:32]
    with _unit() as service:
        found = next((a for a in people.list_agencies(service) if a["code"] == code), None)
    if found is None:
        abort(404)
    form, status = Form(MultiDict({"name": found["name"], "contacts": found["contacts"],
                                   "active": "y" if found["active"] else ""})), 200
    if request.method == "POST":
        try:
            with _unit() as service:
                people.update_agency(service, code, name=request.form.get("name", ""),
                                     contacts=request.form.get("contacts", ""),
                                     active=request.form.get("active") == "y")
            flash("Agency saved.", "success")
            return redirect(url_for("admin.agencies"))
        except ItsmError as exc:
            form, status = refused(exc), 422
    return render_page("admin/agency.html", status, agency=found, form=form)


# -- groups ----------------------------------------------------------------------------------


def _people_options() -> list[tuple[str, str]]:
    with current_itsm().Session() as session:
        rows = session.execute(select(User.email, User.name).where(User.active.is_(True))
                               .order_by(User.name, User.email).limit(2000)).all()
    return [(email, f"{name} ({email})" if name else email) for email, name in rows]


@bp.route("/groups", methods=["GET", "POST"])
@admin_view("admin.groups")
def groups():
    form, status = Form(), 200
    if request.method == "POST":
        try:
            with _unit() as service:
                made = people.add_group(service, request.form.get("name", ""),
                                        description=request.form.get("description", ""),
                                        email=request.form.get("email", ""),
                                        manager=request.form.get("manager") or None)
                group_id = made.id
            flash("Group added. Add its members below.", "success")
            return redirect(url_for("admin.group", group_id=group_id))
        except ItsmError as exc:
            form, status = refused(exc), 422
    with _unit() as service:
        rows = people.list_groups(service)
    return render_page("admin/groups.html", status, groups=rows, form=form,
                       people=_people_options())


def _group_page(group_id: int, forms: dict[str, Form] | None = None, status: int = 200):
    with _unit() as service:
        data = people.group_dict(service, people.group(service, group_id))
    stored = MultiDict({"name": data["name"], "description": data["description"],
                        "email": data["email"], "manager": data["manager"] or ""})
    forms = {"edit": Form(stored), "add": Form(), "remove": Form(), **(forms or {})}
    return render_page("admin/group.html", status, group=data, forms=forms,
                       people=_people_options())


@bp.route("/groups/<int:group_id>")
@admin_view("admin.groups")
def group(group_id: int):
    return _group_page(group_id)


def _group_action(group_id: int, form_name: str, act, done: str):
    try:
        with _unit() as service:
            act(service)
        flash(done, "success")
        return redirect(url_for("admin.group", group_id=group_id))
    except ItsmError as exc:
        if exc.status == 404 and not exc.fields:
            raise
        return _group_page(group_id, {form_name: refused(exc)}, 422)


@bp.post("/groups/<int:group_id>/edit")
@admin_view("admin.groups")
def group_edit(group_id: int):
    manager = request.form.get("manager", "")
    return _group_action(group_id, "edit", lambda service: people.update_group(
        service, group_id, name=request.form.get("name", ""),
        description=request.form.get("description", ""), email=request.form.get("email", ""),
        manager=manager or None, clear_manager=not manager), "Group saved.")


@bp.post("/groups/<int:group_id>/members")
@admin_view("admin.groups")
def group_add_member(group_id: int):
    def act(service: Any) -> None:
        email = request.form.get("email", "").strip()
        if not email:
            raise ValidationError("choose a person", fields={"email": ["required"]})
        people.add_member(service, group_id, email)

    return _group_action(group_id, "add", act, "Member added.")


@bp.post("/groups/<int:group_id>/members/remove")
@admin_view("admin.groups")
def group_remove_member(group_id: int):
    return _group_action(group_id, "remove", lambda service: people.remove_member(
        service, group_id, request.form.get("email", "")), "Member removed.")


@bp.post("/users/<int:user_id>/reset")
@admin_view("admin.users")
def user_reset(user_id: int):
    """Mail the user a password-reset link (the admin never learns the password)."""
    from itsm.core.admin.kit import record_admin_audit
    from itsm.core.password_reset import request_reset

    itsm = current_itsm()
    try:
        with _unit() as service:
            found = people.user(service, user_id)
            service.require(people.USERS)
            event = request_reset(service.session, found.email, request.remote_addr or "",
                                  base_url=request.url_root, limited=False)
            if event is None:
                raise ValidationError(f"{found.email} cannot get a reset link: deactivated, "
                                      "or signs in through a directory only")
            record_admin_audit(service.session, service.actor, "user.password_reset",
                               f"user {found.email}", None, {"mailed": found.email})
    except ValidationError as exc:
        return _user_page(user_id, {"reset": refused(exc)}, 422)
    itsm.outbox.committed([event])
    flash(f"A password-reset link is on its way to {found.email}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))
