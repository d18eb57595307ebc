"""Default categories at install, and a realistic demonstration catalog of 20 services
loaded through the same import as ``itsm catalog import``."""

from __future__ import annotations

from typing import Any

from itsm.plugin import DemoContext, ensure_group
from itsm.plugins.catalog.exchange import import_catalog
from itsm.plugins.catalog.service import ensure_category

DEFAULT_CATEGORIES = (
    ("Accounts and access", "Sign-in, passwords, permissions and badges."),
    ("Devices", "Laptops, phones, printers and accessories."),
    ("Software", "Applications and licences."),
    ("Communication", "E-mail, telephony, video meetings and collaboration."),
    ("Network and remote work", "Connections in the office and from home."),
    ("Data and hosting", "Storage, databases, servers and backups."),
    ("Advice and projects", "Consulting, training and new solutions."),
)
FULFILMENT_GROUPS = (("Service Desk", "First line: takes every call and ticket first."),
                     ("Service Management", "Owns the catalog and reviews its feedback."))


def install_defaults(ctx: DemoContext) -> None:
    """Categories and the groups fulfillment tasks go to (idempotent)."""
    for position, (name, description) in enumerate(DEFAULT_CATEGORIES):
        ensure_category(ctx.session, name, description, position)
    for name, description in FULFILMENT_GROUPS:
        ensure_group(ctx.session, name, description)


def _text(name: str, label: str, required: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "text", "required": required, **extra}


def _choice(name: str, label: str, choices: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "choice", "required": True,
            "choices": choices, **extra}


NEEDED_BY = {"name": "needed_by", "label": "Needed by", "type": "date", "required": False,
             "help": "Leave empty if it is not urgent."}
JUSTIFICATION = {"name": "justification", "label": "Why is it needed?", "type": "textarea",
                 "required": True, "help": "A sentence or two for the approver."}


def _service(slug: str, name: str, category: str, summary: str, *, price: str | None = None,
             unit: str = "", period: str = "", hours: str = "Mon-Fri 8:00-18:00",
             offerings: list[dict[str, Any]] | None = None, agencies: list[str] | None = None,
             status: str = "live", owner: str | None = None) -> dict[str, Any]:
    return {"slug": slug, "name": name, "category": category, "summary": summary,
            "description": f"{summary}\n\nThe service desk answers questions about {name} "
                           "by phone and through this portal.",
            "support_hours": hours, "price": price, "rate_unit": unit,
            "billing_period": period, "currency": "USD", "status": status,
            "faq_url": f"https://help.example.org/faq/{slug}",
            "help_url": f"https://help.example.org/guides/{slug}",
            "agencies": agencies or [], "owner": owner, "offerings": offerings or []}


def _offering(code: str, name: str, form: list[dict[str, Any]], tasks: list[tuple[str, str]],
              *, approval: str = "none", group: str | None = None, order: str = "sequential",
              response: int = 240, resolution: int = 2400) -> dict[str, Any]:
    return {"code": code, "name": name, "form": form, "approval": approval,
            "approval_group": group, "task_order": order,
            "tasks": [{"title": t, "group": g} for t, g in tasks],
            "response_minutes": response, "resolution_minutes": resolution}


def demo_catalog() -> dict[str, Any]:
    """Twenty services an IT provider for several agencies really offers."""
    desk, net, apps = "Service Desk", "Network", "Applications"
    return {"services": [
        _service("new-starter", "New starter pack", "Accounts and access",
                 "Everything a new colleague needs on day one: account, e-mail, laptop.",
                 price="450.00", unit="per person", period="one_time", offerings=[
                     _offering("onboard", "Set up a new colleague", [
                         _text("full_name", "Full name"),
                         {"name": "start_date", "label": "First working day", "type": "date",
                          "required": True},
                         _choice("device", "Laptop", ["Standard", "Power user"]),
                         {"name": "phone", "label": "Needs a mobile phone",
                          "type": "checkbox"}],
                         [("Create the account", desk), ("Prepare the laptop", desk),
                          ("Grant application access", apps)], approval="manager",
                         response=480, resolution=4800)]),
        _service("password-reset", "Password reset", "Accounts and access",
                 "A new password when you forgot yours or it expired.", hours="24/7",
                 offerings=[_offering("reset", "Reset my password", [
                     _text("account", "Account name", help="Usually your e-mail address")],
                     [("Reset the password", desk)], response=30, resolution=120)]),
        _service("application-access", "Access to an application", "Accounts and access",
                 "Permission to use a business application, approved by its owner.",
                 offerings=[_offering("grant", "Request access", [
                     _text("application", "Application"),
                     _choice("level", "Access level", ["Read", "Write", "Administer"]),
                     JUSTIFICATION], [("Grant the access", apps)],
                     approval="service_owner")]),
        _service("building-badge", "Building badge", "Accounts and access",
                 "A badge for the doors of the offices you work in.", price="15.00",
                 unit="per badge", period="one_time", offerings=[_offering(
                     "badge", "Order a badge", [_text("full_name", "Name on the badge"),
                                                 _text("building", "Building")],
                     [("Print the badge", desk)])]),
        _service("laptop", "Laptop", "Devices",
                 "A managed laptop with the standard software, replaced every four years.",
                 price="38.00", unit="per laptop", period="monthly", offerings=[
                     _offering("new", "Order a laptop", [
                         _choice("model", "Model", ["Standard 14\"", "Power user 16\""]),
                         {"name": "quantity", "label": "How many", "type": "integer",
                          "required": True}, NEEDED_BY, JUSTIFICATION],
                         [("Order the hardware", desk), ("Install and deliver", desk)],
                         approval="manager", response=480, resolution=7200),
                     _offering("repair", "Repair or replace my laptop", [
                         _text("asset_tag", "Asset tag"),
                         {"name": "problem", "label": "What is wrong", "type": "textarea",
                          "required": True}], [("Swap or repair", desk)])]),
        _service("mobile-phone", "Mobile phone", "Devices",
                 "A smartphone with a business plan and e-mail set up.", price="25.00",
                 unit="per line", period="monthly", offerings=[_offering(
                     "new", "Order a phone", [_choice("plan", "Plan", ["Standard", "Travel"]),
                                              JUSTIFICATION],
                     [("Order the line", net), ("Set up the phone", desk)],
                     approval="manager", order="parallel")]),
        _service("printing", "Printing and scanning", "Devices",
                 "Shared printers on every floor, with secure release by badge.",
                 price="0.05", unit="per page", period="per_use", offerings=[_offering(
                     "printer", "Connect me to a printer", [_text("floor", "Floor")],
                     [("Add the printer queue", desk)])]),
        _service("monitor", "Extra monitor", "Devices", "A second screen for your desk.",
                 price="180.00", unit="per monitor", period="one_time", offerings=[_offering(
                     "order", "Order a monitor", [_text("desk", "Desk or room")],
                     [("Deliver the monitor", desk)])]),
        _service("software-install", "Software installation", "Software",
                 "Standard software from the company portal, or a licence for another one.",
                 offerings=[_offering("install", "Install software", [
                     _text("product", "Product and version"),
                     {"name": "licence", "label": "I have a licence already",
                      "type": "checkbox"}, JUSTIFICATION],
                     [("Check the licence", apps), ("Install the software", desk)],
                     approval="group", group=apps)]),
        _service("office-suite", "Office suite", "Software",
                 "Word processing, spreadsheets and presentations on all your devices.",
                 price="12.00", unit="per user", period="monthly"),
        _service("gis", "Geographic information system", "Software",
                 "Maps and spatial analysis for road and transit planning.",
                 price="90.00", unit="per user", period="monthly", agencies=["DOT"],
                 offerings=[_offering("seat", "Request a GIS seat", [JUSTIFICATION],
                                      [("Assign the licence", apps)],
                                      approval="manager")]),
        _service("case-management", "Patient case management", "Software",
                 "The case management application for health programmes.",
                 agencies=["DOH"], offerings=[_offering("access", "Request access", [
                     _choice("role", "Role", ["Case worker", "Supervisor"])],
                     [("Grant the role", apps)], approval="manager")]),
        _service("email", "E-mail and calendar", "Communication",
                 "Mailboxes, shared mailboxes and calendars.", price="6.00",
                 unit="per mailbox", period="monthly", hours="24/7", offerings=[
                     _offering("shared-mailbox", "Create a shared mailbox", [
                         _text("address", "Address wanted"),
                         {"name": "members", "label": "Members (e-mail addresses)",
                          "type": "textarea", "required": True}],
                         [("Create the mailbox", desk)]),
                     _offering("distribution-list", "Create a distribution list", [
                         _text("name", "List name")], [("Create the list", desk)])]),
        _service("video-meetings", "Video meetings", "Communication",
                 "Meeting rooms with video and a web meeting tool for everyone.",
                 offerings=[_offering("room-setup", "Equip a meeting room", [
                     _text("room", "Room"), NEEDED_BY],
                     [("Install the equipment", net), ("Test with the user", desk)])]),
        _service("telephony", "Desk telephony", "Communication",
                 "A phone number that rings on your desk phone and laptop.", price="9.00",
                 unit="per number", period="monthly", offerings=[_offering(
                     "number", "Get a phone number", [_text("location", "Office")],
                     [("Assign the number", net)])]),
        _service("vpn", "Remote access (VPN)", "Network and remote work",
                 "Work from home or on the road as if you were in the office.",
                 hours="24/7", offerings=[_offering("access", "Request remote access", [
                     JUSTIFICATION], [("Enable the VPN profile", net)],
                     approval="manager", response=120, resolution=960)]),
        _service("guest-wifi", "Guest Wi-Fi", "Network and remote work",
                 "Wireless access for visitors, valid for one day to one week.",
                 offerings=[_offering("voucher", "Get a guest voucher", [
                     _text("visitor", "Visitor's name"),
                     {"name": "days", "label": "Days", "type": "integer", "required": True}],
                     [("Issue the voucher", desk)], response=60, resolution=240)]),
        _service("file-storage", "File storage", "Data and hosting",
                 "Shared folders for teams, backed up every night.", price="0.10",
                 unit="per GB", period="monthly", offerings=[_offering(
                     "share", "Create a team folder", [
                         _text("team", "Team"),
                         {"name": "size_gb", "label": "Size in GB", "type": "integer",
                          "required": True}],
                     [("Create the folder", apps)], approval="service_owner")]),
        _service("database-hosting", "Database hosting", "Data and hosting",
                 "Managed PostgreSQL databases with backups and monitoring.",
                 price="150.00", unit="per database", period="monthly",
                 status="in_transition"),
        _service("it-consulting", "IT advice and projects", "Advice and projects",
                 "Help from a technology business consultant to plan a new solution.",
                 price="95.00", unit="per hour", period="hourly", offerings=[_offering(
                     "advice", "Ask for advice", [
                         {"name": "topic", "label": "What is it about?", "type": "textarea",
                          "required": True}], [("Call back the requester", desk)])]),
    ]}


def load(ctx: DemoContext) -> None:
    """The demo catalog, owners and approvers (idempotent: import updates by slug)."""
    install_defaults(ctx)
    data = demo_catalog()
    for entry in data["services"]:
        if entry["slug"] in ("application-access", "file-storage"):
            entry["owner"] = "resolver@demo.invalid"
    data["approvers"] = [{"agency": "DOT", "user": "agent@demo.invalid"},
                         {"agency": "DOH", "user": "agent@demo.invalid"}]
    import_catalog(ctx.service(), data)
    pat = ctx.service("pat@dot.demo.invalid")
    from itsm.plugins.catalog import service as catalog

    reset = catalog.get_service(pat, "password-reset")
    offering = catalog.offerings_of(pat, reset)[0]
    catalog.submit_request(pat, offering, {"account": "pat@dot.demo.invalid"})
    catalog.give_feedback(pat, catalog.get_service(pat, "laptop"), {
        "kind": "suggestion", "body": "Please say how long delivery takes."})
