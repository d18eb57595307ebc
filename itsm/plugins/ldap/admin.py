"""The ldap plugin's admin page: its configuration (secrets masked), the mapping rules of
itsm.toml, the rules stored here (add, change, remove; audited), and "test a person",
the same diagnosis as ``itsm auth test-ldap``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from itsm.plugin import (
    AdminPage,
    ItsmError,
    ValidationError,
    admin_view,
    current_itsm,
    error_text,
    field_messages,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.ldap import rules, service
from itsm.plugins.ldap.diagnose import diagnose

admin = page_blueprint("ldap_admin", __name__, url_prefix="/admin/sign-in/ldap")
PAGE = AdminPage("Directory (LDAP)", "ldap_admin.settings", "Sign-in",
                 description="the directory's settings, its mapping rules, and a test of "
                             "one person's sign-in")
SECRETS = ("bind_password",)
RULE_KEYS = ("roles", "groups", "agencies")


@dataclass
class Form:
    """What a form shows: the values (typed or stored) and the messages per field."""

    values: MultiDict = field(default_factory=MultiDict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def _refused(exc: ItsmError) -> Form:
    form = Form(MultiDict(request.form), field_messages(exc.fields or {}))
    if not form.errors:
        form.general.append(error_text(exc))
    return form


def _shown(key: str, value: Any) -> str:
    if key in SECRETS:
        return "set (hidden)" if value else "not set"
    if isinstance(value, list | tuple):
        return "; ".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value not in ("", None) else "not set"


def _file_rules(conf: dict[str, Any]) -> list[dict[str, str]]:
    kinds = {"roles": "role", "groups": "group", "agencies": "agency"}
    out = []
    for key, kind in kinds.items():
        for match, value in conf[key].items():
            values = [value] if isinstance(value, str) else value
            out.append({"kind": rules.KINDS[kind], "match": match, "value": ", ".join(values)})
    return out


def _choices() -> dict[str, list[tuple[str, str]]]:
    from sqlalchemy import select

    from itsm.plugin import Agency, Group

    with current_itsm().Session() as session:
        agencies = session.execute(select(Agency.code, Agency.name).order_by(Agency.name))
        groups = session.scalars(select(Group.name).order_by(Group.name))
        return {"kinds": list(rules.KINDS.items()),
                "roles": [(r, r.replace("_", " ").capitalize())
                          for r in rules.known_roles_of(session)],
                "groups": [(g, g) for g in groups],
                "agencies": [(code, f"{name} ({code})") for code, name in agencies]}


def _page(status: int = 200, form: Form | None = None, test: Form | None = None,
          steps: list | None = None):
    itsm = current_itsm()
    conf = itsm.plugin_settings("ldap")
    settings = [(key, _shown(key, value)) for key, value in conf.items()
                if key not in RULE_KEYS]
    with itsm.Session() as session:
        stored = [{"id": r.id, "kind": rules.KINDS.get(r.kind, r.kind), "match": r.match,
                   "value": r.value} for r in rules.stored(session)]
    return render_page("ldap/admin.html", status, settings=settings,
                       file_rules=_file_rules(conf), stored=stored, form=form or Form(),
                       test=test or Form(), steps=steps, choices=_choices())


@admin.route("/", methods=["GET"])
@admin_view()
def settings():
    return _page()


@admin.route("/rules", methods=["POST"])
@admin_view()
def rule_add():
    actor = page_actor()
    try:
        with current_itsm().unit_of_work(actor) as work:
            rules.add(work.session, actor, request.form.get("kind", ""),
                      request.form.get("match", ""), request.form.get("value", ""))
    except ItsmError as exc:
        return _page(422, form=_refused(exc))
    flash("Rule added: it applies from the next sign-in and sync.", "success")
    return redirect(url_for("ldap_admin.settings"))


@admin.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@admin_view()
def rule_edit(rule_id: int):
    actor = page_actor()
    itsm = current_itsm()
    with itsm.Session() as session:
        rule = rules.get(session, rule_id)
        form, status = Form(MultiDict({"kind": rule.kind, "match": rule.match,
                                       "value": rule.value})), 200
    if request.method == "POST":
        try:
            with itsm.unit_of_work(actor) as work:
                rules.change(work.session, actor, rule_id, request.form.get("kind", ""),
                             request.form.get("match", ""), request.form.get("value", ""))
            flash("Rule saved.", "success")
            return redirect(url_for("ldap_admin.settings"))
        except ItsmError as exc:
            form, status = _refused(exc), 422
    return render_page("ldap/rule.html", status, rule_id=rule_id, form=form,
                       remove=Form(), choices=_choices())


@admin.route("/rules/<int:rule_id>/remove", methods=["POST"])
@admin_view()
def rule_remove(rule_id: int):
    actor = page_actor()
    try:
        if request.form.get("confirm") != "y":
            raise ValidationError("tick the box to confirm",
                                  fields={"confirm": ["not confirmed"]})
        with current_itsm().unit_of_work(actor) as work:
            rules.remove(work.session, actor, rule_id)
    except ValidationError as exc:
        with current_itsm().Session() as session:
            rule = rules.get(session, rule_id)
            form = Form(MultiDict({"kind": rule.kind, "match": rule.match,
                                   "value": rule.value}))
        return render_page("ldap/rule.html", 422, rule_id=rule_id, form=form,
                           remove=_refused(exc), choices=_choices())
    flash("Rule removed.", "success")
    return redirect(url_for("ldap_admin.settings"))


@admin.route("/test", methods=["POST"])
@admin_view()
def test_person():
    """The steps of ``itsm auth test-ldap`` for the address typed (no password)."""
    email = request.form.get("email", "").strip()
    if not email:
        return _page(422, test=Form(MultiDict(request.form),
                                    {"email": ["enter the person's e-mail address"]}))
    itsm = current_itsm()
    steps = list(diagnose(rules.effective_settings(itsm), service.role_names(itsm), email))
    return _page(test=Form(MultiDict(request.form)), steps=steps)
