"""The admin page of a sign-in plugin: its settings by their labels (secrets masked), the
mapping rules of itsm.toml, the rules stored in its table (add, change, remove; audited)
and a test form whose view the plugin writes.

:class:`DirectoryRulesPage` adds the views to the plugin's own blueprint, at the URLs
and endpoint names every sign-in plugin's page has (``settings``, ``rule_add``,
``rule_edit``, ``rule_remove``), and renders ``admin/directory_rules.html``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from itsm.core.admin.kit import Form, admin_view, refused
from itsm.core.context import current_itsm
from itsm.core.directory_rules import (
    KINDS,
    DirectoryRules,
    file_rules,
    role_label,
    role_names,
)
from itsm.core.errors import ItsmError, ValidationError
from itsm.core.models import Agency, Group
from itsm.core.pagekit import error_text, page_actor, render_page

__all__ = ["DirectoryConfiguration", "DirectoryRulesPage", "DirectoryTest", "DirectoryTestField",
           "SettingLabel", "shown_settings"]

TEMPLATE = "admin/directory_rules.html"
# Masked whatever a plugin says: a key naming one of these never shows its value.
SECRET_WORDS = ("password", "secret", "token")


@dataclass(frozen=True)
class SettingLabel:
    """How the page shows one setting: its ``label``, what an empty value means
    (``empty``: "not set", or "anyone found" for an empty list of allowed groups),
    whether it is a ``secret`` (shown as "set (hidden)" or "not set"), for a setting
    taking one of a few codes, what each code means (``values``), and whether its value
    is a ``role`` (shown by the role's label, "Service manager")."""

    label: str
    empty: str = "not set"
    secret: bool = False
    values: Mapping[str, str] = field(default_factory=dict)  # a code -> what it means
    role: bool = False


@dataclass(frozen=True)
class DirectoryConfiguration:
    """One configuration the page shows (the plugin's settings, or one provider's):
    a ``heading``, and ``settings`` holding both the values to show and the itsm.toml
    rule tables ``roles``, ``groups`` and ``agencies``."""

    heading: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class DirectoryTestField:
    """An input of the test form. ``kind`` "choice" is a list of the rule scopes (the
    providers); otherwise it is the input's ``type`` (text, email, url)."""

    name: str
    label: str
    kind: str = "text"
    hint: str = ""
    required: bool = False


@dataclass(frozen=True)
class DirectoryTest:
    """The page's test section: it posts ``fields`` to the plugin's view ``endpoint``,
    which runs the same steps as the ``command`` and answers with
    :meth:`DirectoryRulesPage.render_test`."""

    heading: str
    command: str
    steps: str  # what the test does, after "The same steps as <command>:"
    endpoint: str
    fields: tuple[DirectoryTestField, ...]


def _text(value: Any, label: SettingLabel, secret: bool) -> str:
    if secret:
        return "set (hidden)" if value else "not set"
    if isinstance(value, list | tuple):
        return "; ".join(map(str, value)) or label.empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value in ("", None):
        return label.empty
    if label.role:
        return role_label(str(value))
    return label.values.get(str(value), str(value))


def shown_settings(settings: Mapping[str, Any],
                   labels: Mapping[str, str | SettingLabel]) -> list[dict[str, str]]:
    """The settings named in ``labels``, in its order: ``label``, ``key`` (as itsm.toml
    spells it) and the value as ``text``, a secret's masked."""
    out = []
    for key, how in labels.items():
        if key not in settings:
            continue
        label = how if isinstance(how, SettingLabel) else SettingLabel(how)
        secret = label.secret or any(word in key.lower() for word in SECRET_WORDS)
        out.append({"label": label.label, "key": key,
                    "text": _text(settings[key], label, secret)})
    return out


@dataclass
class DirectoryRulesPage:
    """A sign-in plugin's admin page, its views added to ``blueprint``.

    :param rules: the plugin's stored rules.
    :param title: the page's heading, as its :class:`~itsm.core.admin.kit.AdminPage`.
    :param settings_from: where the settings come from ("[plugins.ldap]").
    :param configurations: what the page shows: called on each view, an ItsmError it
        raises (an incomplete configuration) is shown on the page.
    :param labels: the settings shown, key -> label, in order (rule tables apart).
    :param match_label: the label of a rule's match ("Directory group (DN)").
    :param match_hint: an example of a match.
    :param applies_from: when a stored rule takes effect ("the next sign-in and sync").
    :param test: the test section, or None.
    :param none_configured: the page's text when ``configurations`` is empty (the rules
        and the test are left out then: they would have nothing to apply to).
    """

    blueprint: Blueprint
    rules: DirectoryRules
    title: str
    settings_from: str
    configurations: Callable[[], list[DirectoryConfiguration]]
    labels: Mapping[str, str | SettingLabel]
    match_label: str
    match_hint: str = ""
    applies_from: str = "the next sign-in"
    test: DirectoryTest | None = None
    none_configured: str = "Nothing is configured."

    def __post_init__(self) -> None:
        add = self.blueprint.add_url_rule
        add("/", "settings", admin_view()(self._settings), methods=["GET"])
        add("/rules", "rule_add", admin_view()(self._rule_add), methods=["POST"])
        add("/rules/<int:rule_id>", "rule_edit", admin_view()(self._rule_edit),
            methods=["GET", "POST"])
        add("/rules/<int:rule_id>/remove", "rule_remove", admin_view()(self._rule_remove),
            methods=["POST"])

    # -- rendering ------------------------------------------------------------------------

    def render(self, status: int = 200, form: Form | None = None, test: Form | None = None,
               steps: list[Any] | None = None) -> tuple[str, int]:
        """The page, with the add form ``form`` and the test form ``test`` (values and
        messages) and the test's ``steps`` when one ran."""
        try:
            found, problem = self.configurations(), ""
        except ItsmError as exc:  # an incomplete configuration: say so, keep the page
            found, problem = [], error_text(exc)
        shown = [{"heading": c.heading, "settings": shown_settings(c.settings, self.labels),
                  "rules": file_rules(c.settings)} for c in found]
        with current_itsm().Session() as session:
            stored = [{"id": r.id, "scope": getattr(r, self.rules.scope, ""),
                       "kind": KINDS.get(r.kind, r.kind), "match": r.match,
                       "value": role_label(r.value) if r.kind == "role" else r.value}
                      for r in self.rules.stored(session)]
        return render_page(TEMPLATE, status, directory=self, rule_id=None, configurations=shown,
                           problem=problem, stored=stored, form=form or Form(),
                           test_form=test or Form(), steps=steps,
                           choices=self._choices() if found else {})

    def render_test(self, steps: list[Any] | None = None,
                    errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
        """The page answering the test form: what was typed, the ``steps`` that ran, or
        the ``errors`` (422) that kept it from running."""
        typed = Form(MultiDict(request.form), dict(errors or {}))
        return self.render(422 if errors else 200, test=typed, steps=steps)

    def _render_rule(self, status: int, rule_id: int, form: Form,
                     remove: Form) -> tuple[str, int]:
        return render_page(TEMPLATE, status, directory=self, rule_id=rule_id, form=form,
                           remove=remove, choices=self._choices())

    def _choices(self) -> dict[str, list[tuple[str, str]]]:
        with current_itsm().Session() as session:
            agencies = session.execute(select(Agency.code, Agency.name).order_by(Agency.name))
            groups = session.scalars(select(Group.name).order_by(Group.name))
            return {"scopes": list((self.rules.scopes() if self.rules.scopes else {}).items()),
                    "kinds": list(KINDS.items()),
                    "roles": [(r, role_label(r)) for r in role_names()],
                    "groups": [(g, g) for g in groups],
                    "agencies": [(code, f"{name} ({code})") for code, name in agencies]}

    # -- views ----------------------------------------------------------------------------

    def _home(self) -> Any:
        return redirect(url_for(f"{self.blueprint.name}.settings"))

    def _settings(self) -> Any:
        return self.render()

    def _rule_add(self) -> Any:
        actor = page_actor()
        try:
            with current_itsm().unit_of_work(actor) as work:
                self.rules.add(work.session, actor, request.form)
        except ItsmError as exc:
            return self.render(422, form=refused(exc))
        flash(f"Rule added: it applies from {self.applies_from}.", "success")
        return self._home()

    def _stored_form(self, rule_id: int) -> Form:
        with current_itsm().Session() as session:
            rule = self.rules.get(session, rule_id)  # NotFound: 404
            return Form(MultiDict(self.rules.facts(rule)))

    def _rule_edit(self, rule_id: int) -> Any:
        form, status = self._stored_form(rule_id), 200
        if request.method == "POST":
            actor = page_actor()
            try:
                with current_itsm().unit_of_work(actor) as work:
                    self.rules.change(work.session, actor, rule_id, request.form)
                flash("Rule saved.", "success")
                return self._home()
            except ItsmError as exc:
                form, status = refused(exc), 422
        return self._render_rule(status, rule_id, form, Form())

    def _rule_remove(self, rule_id: int) -> Any:
        actor = page_actor()
        try:
            if request.form.get("confirm") != "y":
                raise ValidationError("tick the box to confirm",
                                      fields={"confirm": ["not confirmed"]})
            with current_itsm().unit_of_work(actor) as work:
                self.rules.remove(work.session, actor, rule_id)
        except ValidationError as exc:
            return self._render_rule(422, rule_id, self._stored_form(rule_id), refused(exc))
        flash("Rule removed.", "success")
        return self._home()
