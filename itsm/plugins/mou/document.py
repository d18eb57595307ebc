"""An agreement as a document: Markdown text, or the rows of the printable HTML page."""

from __future__ import annotations

from typing import Any


def _minutes(value: int | None) -> str:
    if value is None:
        return "—"
    hours, minutes = divmod(int(value), 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def target_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """The targets as the document prints them."""
    return [{"service": t["service"] or "Any service",
             "priority": f"P{t['priority']}" if t["priority"] else "Any",
             "response": _minutes(t["response_minutes"]),
             "resolution": _minutes(t["resolution_minutes"]),
             "availability": "—" if t["availability"] is None else f"{t['availability']}%",
             "hours": t["support_hours"], "compliance": f"{t['compliance_percent']}%"}
            for t in data["targets"]]


def contact_lines(data: dict[str, Any]) -> list[str]:
    """The relationship manager, then the escalation path in order."""
    manager = data["relationship_manager"]
    lines = []
    if manager:
        lines.append(f"Relationship manager: {manager['name']} ({manager['role']})"
                     + (f", {manager['email']}" if manager["email"] else "")
                     + (f", {manager['phone']}" if manager["phone"] else ""))
    for step, contact in enumerate(data["escalation"], start=1):
        lines.append(f"Escalation {step}: {contact['name']} ({contact['role']})"
                     + (f", {contact['email']}" if contact["email"] else "")
                     + (f": {contact['when']}" if contact["when"] else ""))
    return lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(data: dict[str, Any]) -> str:
    """The whole agreement, every section and appendix, as Markdown."""
    parties = (f"Between the IT provider and agency {data['agency']}" if data["kind"] == "mou"
               else f"Between {data['provider_group']} (provider) and "
                    f"{data['customer_group']} (customer)")
    out = [f"# {data['number']} {data['title']}", "",
           f"{parties}. Version {data['current_version']}, state {data['state_label']}"
           f", from template version {data['template_version']}.", ""]
    if data.get("effective_from"):
        out += [f"Effective from {data['effective_from']}"
                + (f" to {data['effective_to']}." if data.get("effective_to") else "."), ""]
    for section in data["sections"]:
        heading = section["title"] if section["key"].isalpha() else \
            f"{section['key']}. {section['title']}"
        # Appendix A carries the targets and C the contacts: an empty body there is not
        # "nothing agreed" when the table or the list below says what was agreed.
        attached: list[str] = []
        if section["key"] == "A" and data["targets"]:
            attached += ["| Service | Priority | Response | Resolution | Availability | "
                         "Support hours | Compliance |", "|---|---|---|---|---|---|---|"]
            attached += ["| " + " | ".join(_cell(row[k]) for k in (
                "service", "priority", "response", "resolution", "availability", "hours",
                "compliance")) + " |" for row in target_rows(data)]
            attached.append("")
        if section["key"] == "C" and contact_lines(data):
            attached += [f"- {line}" for line in contact_lines(data)] + [""]
        out += [f"## {heading}", ""]
        if section["body"]:
            out += [section["body"], ""]
        elif not attached:
            out += ["_(nothing agreed)_", ""]
        out += attached
    out += ["## Signatures", ""]
    out += [f"- Version {s['version']}, {s['side']}: {s['name']}"
            + (f", {s['title']}" if s["title"] else "") + f", signed {s['signed_on']}"
            for s in data["signatories"]] or ["_(not signed yet)_"]
    out += ["", "## Versions", ""]
    out += [f"- Version {v['number']} ({v['status']}): {v['summary']}; proposed by "
            f"{v['proposed_by']}" + (f", decided by {v['approved_by']}"
                                     if v["approved_by"] else "") for v in data["versions"]]
    return "\n".join(out).rstrip() + "\n"
