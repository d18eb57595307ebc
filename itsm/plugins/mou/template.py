"""The standard agreement template: ten sections and appendices A to G, versioned."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.plugin import ValidationError
from itsm.plugins.mou.models import MouTemplate

SECTION_KEYS = (*(str(n) for n in range(1, 11)), *"ABCDEFG")

STANDARD_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("1", "Purpose",
     "This Memorandum of Understanding sets out the IT services the provider delivers to "
     "the agency, the service levels both sides agree on, and how they work together."),
    ("2", "Agency Mission / Top IT initiatives",
     "The agency's mission and its most important IT initiatives for the period."),
    ("3", "Management of Agency's Application Systems",
     "Which application systems the provider hosts, maintains and supports for the "
     "agency, and the agency's responsibilities for them."),
    ("4", "Management of Agency \"End-User\" Based IT Services",
     "Desktop, e-mail, telephony and service desk services for the agency's staff."),
    ("5", "Lines of Communication",
     "The relationship manager is the agency's primary contact. Escalations go first to "
     "the project lead, then to the director of service management."),
    ("6", "Contract Management and Invoicing",
     "How third-party contracts for the agency are managed and invoiced."),
    ("7", "Internal Billing for IT Services",
     "Rates, billing periods and how the agency is charged for IT services."),
    ("8", "Provider's Service Capacity",
     "The capacity the provider commits to the agency, and how demand is planned."),
    ("9", "Confidentiality Statement",
     "Both sides keep confidential the information they learn about each other."),
    ("10", "Changes to this Agreement",
     "Either side may propose an amendment in writing. An amendment takes effect once "
     "approved by the provider; every amendment is recorded as a new version with the "
     "differences from the previous one, who proposed it and who approved it."),
    ("A", "Appendix A: Services and service level targets", ""),
    ("B", "Appendix B: Application systems", ""),
    ("C", "Appendix C: Contacts and escalation", ""),
    ("D", "Appendix D: Support hours and business calendars", ""),
    ("E", "Appendix E: Rates and billing", ""),
    ("F", "Appendix F: Security and confidentiality requirements", ""),
    ("G", "Appendix G: Agency-specific terms", ""),
)


def standard_sections() -> list[dict[str, str]]:
    """The built-in template's sections as dictionaries."""
    return [{"key": k, "title": t, "body": b} for k, t, b in STANDARD_SECTIONS]


def latest(session: Session) -> MouTemplate | None:
    """The newest template version, or None before ``itsm init`` installed one."""
    return session.scalar(select(MouTemplate).order_by(MouTemplate.version.desc()).limit(1))


def check_sections(sections: Any) -> list[dict[str, str]]:
    """Validate a template's (or an agreement's) sections: each standard key once."""
    if not isinstance(sections, list):
        raise ValidationError("sections: a list of {key, title, body}",
                              fields={"sections": ["a list"]})
    out, errors = {}, {}
    for index, item in enumerate(sections):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            errors[str(index)] = ["an object with key, title and body"]
            continue
        key = item["key"].strip().upper()
        title, body = item.get("title", ""), item.get("body", "")
        if key not in SECTION_KEYS:
            errors[str(index)] = [f"key must be one of {', '.join(SECTION_KEYS)}"]
        elif key in out:
            errors[str(index)] = [f"section {key} given twice"]
        elif not isinstance(title, str) or not title.strip() or len(title) > 200:
            errors[str(index)] = ["title: 1 to 200 characters"]
        elif not isinstance(body, str) or len(body) > 100_000:
            errors[str(index)] = ["body: text of at most 100000 characters"]
        else:
            out[key] = {"key": key, "title": title.strip(), "body": body}
    missing = [k for k in SECTION_KEYS if k not in out]
    if missing and not errors:
        errors["_"] = [f"missing sections: {', '.join(missing)}"]
    if errors:
        raise ValidationError("invalid sections: " + "; ".join(
            f"{k}: {v[0]}" for k, v in sorted(errors.items())), fields={"sections": errors})
    return [out[k] for k in SECTION_KEYS]


def publish(session: Session, sections: Any, *, author: str, note: str = "") -> MouTemplate:
    """Save a new template version (agreements made earlier keep theirs)."""
    checked = check_sections(sections)
    last = session.scalar(select(func.max(MouTemplate.version))) or 0
    template = MouTemplate(version=last + 1, sections=checked, note=note[:500],
                           created_by=author[:254])
    session.add(template)
    session.flush()
    return template


def ensure_default(session: Session) -> MouTemplate:
    """The first template version, from the standard sections (idempotent)."""
    return latest(session) or publish(session, standard_sections(), author="system",
                                      note="standard template")
