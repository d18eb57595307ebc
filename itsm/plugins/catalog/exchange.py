"""Catalog import and export: one document (JSON or YAML) holding categories, services
with their offerings, and the agencies' approvers. Import is all or nothing: it runs in
the caller's unit of work, so a bad entry leaves the catalog as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from itsm.plugin import Agency, ItsmError, RecordService, User, ValidationError
from itsm.plugins.catalog import service as catalog
from itsm.plugins.catalog.models import Approver, Category, Offering, Service

FORMAT_VERSION = 1
SERVICE_KEYS = ("slug", "name", "summary", "description", "support_hours", "rate_unit",
                "currency", "billing_period", "cost_notes", "faq_url", "help_url", "status")


def parse(text: str, fmt: str) -> Any:
    """The document in ``text`` (``json`` or ``yaml``); one clear error when unreadable."""
    try:
        if fmt == "yaml":
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # every parser error becomes one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError(f"the file is not valid {fmt.upper()}: {first}") from None


def dump(data: dict[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _where(prefix: str, exc: ItsmError) -> ValidationError:
    details = "; ".join(f"{k}: {v}" for k, v in (exc.fields or {}).items())
    return ValidationError(f"{prefix}: {exc.message}" + (f" ({details})" if details else ""),
                           fields={prefix: exc.fields or [exc.message]})


def import_catalog(svc: RecordService, data: Any,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Create or update what ``data`` describes (services by slug, offerings by code).

    Raises ValidationError naming the entry at fault; the caller's transaction then rolls
    back everything. ``progress(done, total)`` is called after each service.
    """
    svc.require("catalog.manage")
    if not isinstance(data, dict):
        raise ValidationError("the catalog file holds an object with categories, services "
                              "and approvers")
    unknown = set(data) - {"version", "categories", "services", "approvers"}
    if unknown:
        raise ValidationError("unknown keys at the top: " + ", ".join(sorted(unknown)))
    counts = {"categories": 0, "services": 0, "offerings": 0, "approvers": 0}
    for i, category in enumerate(data.get("categories") or []):
        try:
            catalog.save_category(svc, category)
        except ItsmError as exc:
            raise _where(f"categories[{i}]", exc) from None
        counts["categories"] += 1
    services = data.get("services") or []
    if not isinstance(services, list):
        raise ValidationError("services: a list of services")
    for i, entry in enumerate(services):
        where = f"services[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError(f"{where}: a service is an object")
        entry = dict(entry)
        offerings = entry.pop("offerings", []) or []
        try:
            existing = svc.session.scalar(select(Service).where(
                Service.slug == entry.get("slug")))
            service = catalog.save_service(svc, entry, existing)
        except ItsmError as exc:
            raise _where(f"{where} ({entry.get('slug', '?')})", exc) from None
        counts["services"] += 1
        for j, offering in enumerate(offerings if isinstance(offerings, list) else [None]):
            try:
                if not isinstance(offering, dict):
                    raise ValidationError("an offering is an object")
                found = svc.session.scalar(select(Offering).where(
                    Offering.service_id == service.id, Offering.code == offering.get("code")))
                catalog.save_offering(svc, service, offering, found)
            except ItsmError as exc:
                raise _where(f"{where}.offerings[{j}]", exc) from None
            counts["offerings"] += 1
        if progress:
            progress(i + 1, len(services))
    for i, row in enumerate(data.get("approvers") or []):
        try:
            if not isinstance(row, dict) or set(row) != {"agency", "user"}:
                raise ValidationError("an approver is {agency: CODE, user: e-mail}")
            catalog.set_approver(svc, str(row["agency"]), str(row["user"]))
        except ItsmError as exc:
            raise _where(f"approvers[{i}]", exc) from None
        counts["approvers"] += 1
    return counts


def export_catalog(svc: RecordService) -> dict[str, Any]:
    """The whole catalog in the import format."""
    svc.require("catalog.manage")
    session = svc.session
    out: dict[str, Any] = {"version": FORMAT_VERSION, "categories": [
        {"name": c.name, "description": c.description, "position": c.position}
        for c in session.scalars(select(Category).order_by(Category.position, Category.name))]}
    services = []
    for s in session.scalars(select(Service).order_by(Service.slug)):
        full = catalog.service_dict(svc, s, full=True)
        entry = {k: getattr(s, k) for k in SERVICE_KEYS}
        entry.update({"category": full["category"], "owner": full["owner"],
                      "agencies": full["agencies"], "price": full["price"]})
        entry["offerings"] = [
            {k: v for k, v in catalog.offering_dict(svc, o).items() if k != "id"}
            for o in session.scalars(select(Offering).where(Offering.service_id == s.id)
                                     .order_by(Offering.code))]
        services.append(entry)
    out["services"] = services
    out["approvers"] = [
        {"agency": code, "user": email} for code, email in session.execute(
            select(Agency.code, User.email).join(Approver, Approver.agency_id == Agency.id)
            .join(User, User.id == Approver.user_id).order_by(Agency.code, User.email))]
    return out
