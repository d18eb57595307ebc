"""Agencies in their agreement: the people an agency designates read its agreements'
drafts, comment on sections, propose amendments, read the standard template and see the
agency's compliance.

A delegate proposes; IT staff decide. Adopting a proposal on an agreement in force (or
approved) makes it a proposed amendment version, which someone other than its proposer
approves as every amendment; on a draft or an agreement in review it becomes the draft's
new text. Delegates never see another agency's agreements: the permission check answers
for their own agency only.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    Conflict,
    Event,
    Forbidden,
    NotFound,
    RecordService,
    User,
    ValidationError,
    agency_by_code,
    check_text,
    user_by_email,
    utcnow,
)
from itsm.plugins.mou import service
from itsm.plugins.mou import template as templates
from itsm.plugins.mou.models import (
    EDITABLE_STATES,
    MOU,
    Mou,
    MouContact,
    MouDelegate,
    MouProposal,
)

PROPOSED_EVENT = "mou.amendment_requested"
MAX_PROPOSALS = 200


class AgencyProposalIn(Schema):
    """An amendment an agency's delegate proposes."""

    summary = fields.String(required=True, validate=validate.Length(min=1, max=500))
    sections = fields.Dict(keys=fields.String(validate=validate.OneOf(
        templates.SECTION_KEYS)), values=fields.String(validate=validate.Length(
            min=1, max=100_000)), required=True, validate=validate.Length(min=1))


def is_delegate(session: Session, actor: Actor, agency_id: int | None = None) -> bool:
    """Whether the actor is designated by their agency (``agency_id``, if given)."""
    if actor.id is None or actor.agency_id is None:
        return False
    if agency_id is not None and agency_id != actor.agency_id:
        return False
    return session.get(MouDelegate, (actor.agency_id, actor.id)) is not None


def designate(svc: RecordService, agency_code: str, email: str) -> None:
    """Staff designate a person of the agency to take part in its agreements."""
    svc.require(f"{MOU.name}.update")
    agency = agency_by_code(svc.session, agency_code)
    user = user_by_email(svc.session, email)
    if user.agency_id != agency.id:
        raise ValidationError(f"{user.email} is not a person of {agency.code}",
                              fields={"email": ["a user of that agency"]})
    if svc.session.get(MouDelegate, (agency.id, user.id)) is None:
        svc.session.add(MouDelegate(agency_id=agency.id, user_id=user.id))
        svc.session.flush()


def delegates(svc: RecordService, agency_code: str) -> list[str]:
    """The e-mail addresses of the agency's delegates."""
    svc.require(f"{MOU.name}.update")
    agency = agency_by_code(svc.session, agency_code)
    return list(svc.session.scalars(select(User.email).join(
        MouDelegate, MouDelegate.user_id == User.id).where(
        MouDelegate.agency_id == agency.id).order_by(User.email)))


def _own(svc: RecordService, mou: Mou) -> None:
    """Only the agreement's agency's delegates (and staff) take part in it."""
    if svc.is_staff:
        return
    if not is_delegate(svc.session, svc.actor, mou.agency_id) or mou.kind != "mou":
        raise NotFound(f"no agreement {mou.number}")


def may_see_compliance(svc: RecordService, agency_code: str) -> bool:
    """A delegate sees the compliance of their own agency (staff: by permission)."""
    if not is_delegate(svc.session, svc.actor):
        return False
    code = svc.session.scalar(select(Agency.code).where(Agency.id == svc.actor.agency_id))
    return code == agency_code


def agency_agreements(svc: RecordService) -> list[Mou]:
    """A delegate's agency's agreements in any state, newest first."""
    if not is_delegate(svc.session, svc.actor):
        raise Forbidden(f"{svc.actor.email} is not designated by an agency to take part "
                        "in its agreements")
    return list(svc.session.scalars(select(Mou).where(
        Mou.agency_id == svc.actor.agency_id, Mou.kind == "mou").order_by(Mou.id.desc())))


def comment_on_section(svc: RecordService, mou: Mou, key: str, body: str) -> None:
    """A comment on one section, in the agreement's conversation (staff see it there)."""
    _own(svc, mou)
    titles = {s.key: s.title for s in service.sections(svc.session, mou)}
    if key not in titles:
        raise ValidationError(f"section: {mou.number} has no section {key!r}",
                              fields={"section": ["one of the agreement's sections"]})
    body = check_text(body or "", "body").strip()
    if not body or len(body) > 20_000:
        raise ValidationError("body: a comment needs text (at most 20,000 characters)",
                              fields={"body": ["required, at most 20,000 characters"]})
    svc.comment(mou, f"On {titles[key]}:\n\n{body}", public=True)


def propose(svc: RecordService, mou: Mou, data: Any) -> MouProposal:
    """A delegate proposes new texts for some sections; the relationship manager hears."""
    _own(svc, mou)
    if mou.state not in (*EDITABLE_STATES, *service.AMENDABLE_STATES):
        raise Conflict(f"{mou.number} is {mou.state}: there is nothing left to amend")
    values = service.load(AgencyProposalIn(), data, "proposal")
    current = {s.key: s.body for s in service.sections(svc.session, mou)}
    changed = {key: check_text(text, f"sections.{key}")
               for key, text in values["sections"].items() if text != current.get(key)}
    if not changed:
        raise ValidationError("the proposal changes nothing",
                              fields={"sections": ["no change to the text"]})
    open_count = svc.session.scalar(select(MouProposal.id).where(
        MouProposal.mou_id == mou.id, MouProposal.state == "open").offset(MAX_PROPOSALS))
    if open_count is not None:
        raise Conflict(f"{mou.number} has {MAX_PROPOSALS} open proposals: wait for them")
    proposal = MouProposal(mou_id=mou.id, author_email=svc.actor.email,
                           summary=check_text(values["summary"], "summary"),
                           sections=changed, state="open", reason="", decided_by="")
    svc.session.add(proposal)
    svc.session.flush()
    # In the agreement's conversation, where the agency and IT staff both read it.
    svc.comment(mou, f"Amendment proposed (proposal {proposal.id}): {proposal.summary}",
                public=True)
    manager = svc.session.scalar(select(MouContact.email).where(
        MouContact.mou_id == mou.id, MouContact.position == 0))
    event = Event(name=PROPOSED_EVENT, record_id=mou.id, payload={
        "record": {"number": mou.number, "type": mou.type, "title": mou.title,
                   "state": mou.state, "priority": mou.priority},
        "proposal": proposal.id, "summary": proposal.summary, "by": svc.actor.email,
        "relationship_manager": manager or None})
    svc.session.add(event)
    svc.events.append(event)
    return proposal


def proposals(svc: RecordService, mou: Mou) -> list[MouProposal]:
    _own(svc, mou)
    return list(svc.session.scalars(select(MouProposal).where(
        MouProposal.mou_id == mou.id).order_by(MouProposal.id.desc())))


def _open_proposal(svc: RecordService, mou: Mou, proposal_id: int) -> MouProposal:
    svc.require(f"{MOU.name}.update", mou)
    proposal = svc.session.get(MouProposal, proposal_id)
    if proposal is None or proposal.mou_id != mou.id:
        raise NotFound(f"{mou.number} has no proposal {proposal_id}")
    if proposal.state != "open":
        raise Conflict(f"proposal {proposal_id} is {proposal.state} already")
    return proposal


def adopt(svc: RecordService, mou: Mou, proposal_id: int) -> MouProposal:
    """IT staff take the proposal up: an amendment version to approve, or a draft's text."""
    proposal = _open_proposal(svc, mou, proposal_id)
    if mou.state in service.AMENDABLE_STATES:
        version = service.propose(svc, mou, {
            "summary": f"{proposal.summary} (proposed by {proposal.author_email})",
            "sections": proposal.sections})
        proposal.version = version.number
    else:
        service.set_sections(svc, mou, dict(proposal.sections))
        proposal.version = mou.current_version
    proposal.state, proposal.decided_by, proposal.decided_at = \
        "adopted", svc.actor.email, utcnow()
    svc.session.flush()
    return proposal


def decline(svc: RecordService, mou: Mou, proposal_id: int, reason: str) -> MouProposal:
    """IT staff decline the proposal, saying why (the agency's delegates read it)."""
    proposal = _open_proposal(svc, mou, proposal_id)
    reason = check_text(reason or "", "reason").strip()
    if not reason or len(reason) > 5000:
        raise ValidationError("reason: say why, in at most 5,000 characters",
                              fields={"reason": ["required, at most 5,000 characters"]})
    proposal.state, proposal.reason = "declined", reason
    proposal.decided_by, proposal.decided_at = svc.actor.email, utcnow()
    service.note(svc, mou, f"Proposal {proposal.id} declined by {svc.actor.email}: {reason}")
    svc.session.flush()
    return proposal


def proposal_dict(p: MouProposal) -> dict[str, Any]:
    return {"id": p.id, "summary": p.summary, "sections": p.sections, "state": p.state,
            "author": p.author_email, "reason": p.reason or None, "version": p.version,
            "decided_by": p.decided_by or None,
            "decided_at": p.decided_at.isoformat() if p.decided_at else None,
            "created_at": p.created_at.isoformat()}
