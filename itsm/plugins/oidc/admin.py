"""The oidc plugin's admin page: each provider's configuration (client secret masked)
and mapping rules from itsm.toml, the rules stored here (add, change, remove; audited),
and a test of a provider and of a person's claims, the same steps as ``itsm auth
test-oidc``."""

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
from itsm.plugins.oidc import rules, service
from itsm.plugins.oidc.diagnose import diagnose, mapping_step

admin = page_blueprint("oidc_admin", __name__, url_prefix="/admin/sign-in/oidc")
PAGE = AdminPage("Identity providers (OIDC)", "oidc_admin.settings", "Sign-in",
                 description="the OpenID Connect providers, their mapping rules, and a "
                             "test of a provider and of a person's claims")
SHOWN = ("issuer", "client_id", "client_secret", "label", "domains", "scope", "groups_claim",
         "default_role", "leeway_seconds")


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
    if key == "client_secret":
        return "set (hidden)" if value else "not set"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "any"
    return str(value) if value not in ("", None) else "not set"


def _file_rules(provider: service.Provider) -> list[dict[str, str]]:
    out = []
    for kind, name in rules.FIELD.items():
        for match, value in getattr(provider, name).items():
            values = [value] if isinstance(value, str) else value
            out.append({"kind": rules.KINDS[kind], "match": match, "value": ", ".join(values)})
    return out


def _providers() -> dict[str, service.Provider]:
    return service.providers(current_itsm().plugin_settings("oidc"))


def _choices() -> dict[str, list[tuple[str, str]]]:
    from sqlalchemy import select

    from itsm.plugin import Agency, Group

    with current_itsm().Session() as session:
        agencies = session.execute(select(Agency.code, Agency.name).order_by(Agency.name))
        groups = session.scalars(select(Group.name).order_by(Group.name))
        return {"providers": [(n, f"{p.label} ({n})") for n, p in _providers().items()],
                "kinds": list(rules.KINDS.items()),
                "roles": [(r, r.replace("_", " ").capitalize()) for r in rules.role_names()],
                "groups": [(g, g) for g in groups],
                "agencies": [(code, f"{name} ({code})") for code, name in agencies]}


def _page(status: int = 200, form: Form | None = None, test: Form | None = None,
          steps: list | None = None):
    try:
        found = _providers()
        problem = ""
    except ItsmError as exc:  # an incomplete provider: say so, keep the page
        found, problem = {}, error_text(exc)
    shown = [{"name": name, "settings": [(k, _shown(k, getattr(p, k))) for k in SHOWN],
              "rules": _file_rules(p)} for name, p in found.items()]
    with current_itsm().Session() as session:
        stored = [{"id": r.id, "provider": r.provider, "kind": rules.KINDS.get(r.kind, r.kind),
                   "match": r.match, "value": r.value} for r in rules.stored(session)]
    return render_page("oidc/admin.html", status, providers=shown, problem=problem,
                       stored=stored, form=form or Form(), test=test or Form(),
                       steps=steps, choices=_choices() if found else {})


@admin.route("/", methods=["GET"])
@admin_view()
def settings():
    return _page()


def _rule_fields() -> tuple[str, str, str, str]:
    return tuple(request.form.get(k, "") for k in ("provider", "kind", "match", "value"))


@admin.route("/rules", methods=["POST"])
@admin_view()
def rule_add():
    actor = page_actor()
    try:
        with current_itsm().unit_of_work(actor) as work:
            rules.add(work.session, actor, *_rule_fields())
    except ItsmError as exc:
        return _page(422, form=_refused(exc))
    flash("Rule added: it applies from each person's next sign-in.", "success")
    return redirect(url_for("oidc_admin.settings"))


def _rule_form(rule_id: int) -> Form:
    with current_itsm().Session() as session:
        rule = rules.get(session, rule_id)
        return Form(MultiDict({"provider": rule.provider, "kind": rule.kind,
                               "match": rule.match, "value": rule.value}))


@admin.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@admin_view()
def rule_edit(rule_id: int):
    actor = page_actor()
    form, status = _rule_form(rule_id), 200
    if request.method == "POST":
        try:
            with current_itsm().unit_of_work(actor) as work:
                rules.change(work.session, actor, rule_id, *_rule_fields())
            flash("Rule saved.", "success")
            return redirect(url_for("oidc_admin.settings"))
        except ItsmError as exc:
            form, status = _refused(exc), 422
    return render_page("oidc/rule.html", status, rule_id=rule_id, form=form, remove=Form(),
                       choices=_choices())


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
        return render_page("oidc/rule.html", 422, rule_id=rule_id, form=_rule_form(rule_id),
                           remove=_refused(exc), choices=_choices())
    flash("Rule removed.", "success")
    return redirect(url_for("oidc_admin.settings"))


@admin.route("/test", methods=["POST"])
@admin_view()
def test_provider():
    """The steps of ``itsm auth test-oidc PROVIDER [--url] [--email --groups]``."""
    itsm = current_itsm()
    typed = Form(MultiDict(request.form))
    chosen = rules.effective_providers(itsm).get(request.form.get("provider", ""))
    if chosen is None:
        typed.errors["provider"] = ["choose a configured provider"]
        return _page(422, test=typed)
    base = request.form.get("base", "").strip() or None
    if base and not base.startswith(("https://", "http://")):
        typed.errors["base"] = ["an address starting with https://"]
        return _page(422, test=typed)
    steps = list(diagnose(chosen, float(itsm.plugin_settings("oidc")["timeout_seconds"]),
                          base))
    email = request.form.get("email", "").strip()
    if email and all(step.ok for step in steps):
        groups = [g.strip() for g in request.form.get("groups", "").split(",") if g.strip()]
        steps.append(mapping_step(chosen, email, groups, rules.role_names()))
    return _page(test=typed, steps=steps)
