"""Admin pages for the install itself: its health (the checks of ``itsm doctor``) with a
retry of dead deliveries, and the plugins (the operations of ``itsm plugins``).

Enabling and disabling first show the preflight of ``itsm plugins check`` and what the
change brings along, and act only on the confirming POST; an uninstall purges only once
the plugin's name is typed.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for

from itsm.core import health, migrate, plugin_admin
from itsm.core.admin.blueprint import bp
from itsm.core.admin.kit import Form, admin_view, record_admin_audit
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError, PluginError, ValidationError
from itsm.core.notify import retry_deliveries
from itsm.core.pagekit import error_text, page_actor, render_page

PLUGINS = "admin.plugins"


def _audit(action: str, target: str, before: dict | None, after: dict | None) -> None:
    itsm = current_itsm()
    with itsm.Session() as session:
        record_admin_audit(session, page_actor(), action, target, before, after)
        session.commit()


@bp.post("/outbox/retry")
@admin_view()
def outbox_retry():
    itsm = current_itsm()
    with itsm.Session() as session:
        count = retry_deliveries(session, dead=True)
        record_admin_audit(session, page_actor(), "outbox.retry", "outbox", None,
                           {"dead": True, "count": count})
        session.commit()
    flash(f"{count} dead deliver{'y is' if count == 1 else 'ies are'} due again; the worker "
          "sends them on its next cycle.", "success")
    return redirect(url_for("admin.home"))


def health_context() -> dict[str, Any]:
    """The checks of ``itsm doctor`` and the figures the home page shows."""
    itsm = current_itsm()
    checks = health.doctor(itsm)
    try:
        figures = health.figures(itsm)
    except Exception:  # noqa: BLE001 - the database check above says why
        figures = None
    return {"checks": checks, "figures": figures,
            "problems": sum(not c.ok for c in checks)}


# -- plugins ---------------------------------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    itsm = current_itsm()
    itsm.refresh_plugins(force=True)
    try:
        pending = migrate.pending(itsm)
    except Exception:  # noqa: BLE001 - a plugin's broken migrations: its error says it
        pending = {}
    rows = []
    for name, info in sorted(itsm.host.plugins.items()):
        declaration = info.declaration
        rows.append({"name": name, "version": info.version or "?",
                     "description": info.description, "builtin": info.builtin,
                     "enabled": itsm.host.is_enabled(name), "error": info.error,
                     "depends": dict(declaration.depends) if declaration else {},
                     "pending": pending.get(name, [])})
    return rows


def _plugin(name: str) -> dict[str, Any]:
    found = next((row for row in _rows() if row["name"] == name[:64]), None)
    if found is None:
        abort(404)
    return found


@bp.route("/plugins")
@admin_view(PLUGINS)
def plugins():
    return render_page("admin/plugins.html", plugins=_rows(),
                       report=plugin_admin.check(current_itsm()))


def _preflight(name: str, action: str) -> dict[str, Any]:
    """What ``action`` on plugin ``name`` would do, and whether it may: the plugins it
    brings along or that block it, and the report of ``itsm plugins check``."""
    itsm = current_itsm()
    out: dict[str, Any] = {"refused": "", "along": []}
    try:
        if action == "enable":
            order = itsm.host.resolve_enable(name, lambda info: itsm.settings.plugin_settings(
                info.name, info.declaration.settings))
            out["along"] = [n for n in order if n != name and not itsm.host.is_enabled(n)]
        elif action == "disable":
            itsm.host.refuse_disable(name, itsm.host.enabled)
        else:
            itsm.host.refuse_disable(name, itsm.host.enabled)
            out["types"] = plugin_admin.record_types_of(itsm, name) \
                if itsm.host.plugins[name].usable else []
    except ItsmError as exc:
        out["refused"] = error_text(exc)
    out["report"] = plugin_admin.check(itsm)
    return out


@bp.route("/plugins/<name>/enable", methods=["GET", "POST"], defaults={"action": "enable"})
@bp.route("/plugins/<name>/disable", methods=["GET", "POST"], defaults={"action": "disable"})
@admin_view(PLUGINS)
def plugin_toggle(name: str, action: str):
    row = _plugin(name)
    if request.method == "GET":
        return render_page("admin/plugin_confirm.html", plugin=row, action=action,
                           preflight=_preflight(row["name"], action), form=Form())
    itsm = current_itsm()
    try:
        if action == "enable":
            done = plugin_admin.enable(itsm, row["name"])
            message = (f"Enabled {', '.join(done)}." if done else
                       f"{row['name']} was enabled already.")
        else:
            plugin_admin.disable(itsm, row["name"])
            message = f"Disabled {row['name']}; its data is kept."
    except ItsmError as exc:
        form = Form(errors={}, general=[error_text(exc)])
        return render_page("admin/plugin_confirm.html", 409, plugin=row, action=action,
                           preflight=_preflight(row["name"], action), form=form)
    _audit(f"plugin.{action}", f"plugin {row['name']}", {"enabled": row["enabled"]},
           {"enabled": action == "enable"})
    flash(message, "success")
    return redirect(url_for("admin.plugins"))


@bp.route("/plugins/<name>/uninstall", methods=["GET", "POST"])
@admin_view(PLUGINS)
def plugin_uninstall(name: str):
    row = _plugin(name)
    form, status = Form(), 200
    if request.method == "POST":
        itsm = current_itsm()
        try:
            if request.form.get("confirm_name", "").strip() != row["name"]:
                raise ValidationError("type the plugin's name to confirm",
                                      fields={"confirm_name": [
                                          f"type {row['name']} to confirm"]})
            if row["enabled"]:
                raise PluginError(f"disable {row['name']} first")
            removed = plugin_admin.purge(itsm, row["name"])
        except ItsmError as exc:
            form = Form(errors={k: list(v) for k, v in (exc.fields or {}).items()})
            form.values.update(request.form)
            if not exc.fields:
                form.general.append(error_text(exc))
            status = 422 if exc.fields else 409
        else:
            _audit("plugin.uninstall", f"plugin {row['name']}", None, {"removed": removed})
            flash(f"{row['name']} purged: removed {'; '.join(removed)}. Remove its package "
                  "with pip to finish.", "success")
            return redirect(url_for("admin.plugins"))
    return render_page("admin/plugin_uninstall.html", status, plugin=row,
                       preflight=_preflight(row["name"], "uninstall"), form=form)
