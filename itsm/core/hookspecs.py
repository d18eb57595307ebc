"""The hook specifications: itsm's public API for plugins.

Every process in itsm, built-in or a vendor's, is a plugin that implements some of these
hooks with ``@itsm.hookimpl``. A plugin module is registered only while it is enabled in
the install, so an implementation never has to ask whether its own plugin is on.

Contract shared by all hooks:

- An implementation may accept any subset of a hook's arguments, by name. Hooks evolve
  only by gaining arguments, so an implementation written today keeps working.
- "All results" hooks return a list of the non-None results of every implementation
  (pluggy's default); "first result" hooks stop at the first implementation returning
  something other than None. The core's own defaults are ``trylast`` implementations, so
  any plugin can override them.
- A misspelled hook name (a function named ``itsm_*`` with ``@hookimpl`` that matches no
  specification here) refuses the plugin at start-up with the plugin's name.
- Set ``ITSM_TRACE_PLUGINS=1`` to log every hook call with its arguments and results.

The hooks are grouped by the phase in which they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    import click
    from flask import Blueprint, Flask
    from sqlalchemy.orm import Session

    from itsm.core.admin.kit import AdminPage
    from itsm.core.agency_view import AgencySection
    from itsm.core.attachments import AttachmentStore
    from itsm.core.auth import Actor, Identity, Permission, SignInMethod
    from itsm.core.charges import Charge, Rate
    from itsm.core.config import Settings
    from itsm.core.demo import DemoContext
    from itsm.core.escalation import EscalationStep
    from itsm.core.migrate import Migrations
    from itsm.core.models import Record, User
    from itsm.core.notify import Channel, EventMessage, Recipient
    from itsm.core.records import LinkKind, RecordChange, RecordType
    from itsm.core.references import Ref, ReferenceKind
    from itsm.core.satisfaction import Rating
    from itsm.core.search import Suggestion
    from itsm.core.sla import SlaTarget
    from itsm.core.web import NavItem
    from itsm.core.workflow import Transition

PROJECT = "itsm"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------
# Start-up: schema, application, command line
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_migrations() -> Migrations | None:
    """Declare the database schema this plugin owns.

    Called by ``itsm db upgrade``, ``itsm plugins check``, ``itsm plugins uninstall
    --purge`` and the test fixtures, for every enabled plugin.

    Return a :class:`itsm.core.migrate.Migrations` naming the plugin's Alembic branch
    label and either ``path``, the folder holding its Alembic revision files (the first
    one with ``branch_labels = ("<label>",)`` and ``depends_on = "core_0001"``), or
    ``tables``, SQLAlchemy tables that itsm creates when missing (fine for a small plugin
    whose schema never changes). A plugin with a ``migrations/versions`` folder beside
    its module needs no implementation: the folder is found by convention; and a plugin
    with neither owns its record types' tables, created when missing.

    All results are used; return None when the plugin owns no tables.
    """


@hookspec
def itsm_app_ready(app: Flask) -> None:
    """Called once at the end of :func:`itsm.core.app.create_app`.

    :param app: the configured Flask application; ``app.extensions["itsm"]`` holds the
        :class:`itsm.core.app.Itsm` state (settings, engine, plugin host, record types).

    Use it to add template filters, context processors or request hooks. Routes belong in
    :func:`itsm_blueprints`, so that disabling the plugin hides them. The return value is
    ignored; an exception stops the application from starting.
    """


@hookspec
def itsm_blueprints() -> list[Blueprint] | None:
    """Return the Flask blueprints with this plugin's web pages and API routes.

    Called once while the application is created, for every installed plugin, enabled or
    not: a blueprint is then answered only while its plugin is enabled, so enabling and
    disabling a plugin takes effect without a restart. API routes should live under
    ``/api/v1/`` and may be documented for the OpenAPI document with
    :func:`itsm.core.api.document`.

    All results are used (a list of blueprints per plugin).
    """


@hookspec
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """Return entries for the web console's navigation, for the signed-in ``actor``.

    Called on every page the console renders. Return only what the actor may use: a
    requester's menu differs from an agent's.

    :param actor: the :class:`itsm.core.auth.Actor` of the signed-in user.
    :return: a list of :class:`itsm.core.web.NavItem` (``label``, ``url``, ``order``:
        lower comes first within its group; ``group``: ``work``, ``process``,
        ``reports``, ``admin`` or ``portal``, see NavItem; ``record_type``: the entry
        stands for that record type and replaces the core's list of it;
        ``shown_when``: a one-value ``select`` the entry is shown only when it finds
        something; ``note_when`` and ``note``: a one-value ``select`` that, when it finds
        something, adds `` (<note>)`` to the label). Declare database facts through
        these instead of reading them here: the core reads them for every entry, with
        the bell's count, in one statement per page. All results are used; the core
        adds Home, Notifications, an entry for each record type the
        actor may read and, for admins, Administration, and shows no URL or label twice.
        A requester's menu is one list of every entry given to them.
    """


@hookspec
def itsm_admin_pages() -> list[AdminPage] | None:
    """List this plugin's pages in the administration area (``/admin``).

    Called whenever an admin page is rendered (for its sidebar) and on the admin home
    page, for every enabled plugin; a disabled plugin's pages leave the sidebar with it.

    The views are the plugin's own, on a blueprint it returns from
    :func:`itsm_blueprints`; each is protected with
    :func:`itsm.core.admin.kit.admin_view` (403 for whoever lacks the page's permission)
    and renders a template extending ``admin/base.html`` (block ``admin_content``), which
    draws the sidebar. A change made there is written with
    :func:`itsm.core.admin.kit.record_admin_audit`.

    :return: a list of :class:`itsm.core.admin.kit.AdminPage` (``title``, ``endpoint``,
        ``section``, ``permission``, ``description``). The sidebar lists a page under its
        section to the users holding its ``permission`` ("admin" by default); an endpoint
        that does not exist is logged and left out. All results are used, the core's own
        pages first, then the plugins' in registration order. An exception is logged and
        that plugin's pages are left out, never the whole admin area.
    """


@hookspec
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """Return links this plugin adds to the detail page of ``record`` for ``actor``.

    The console shows them under "More" on any record's page, e.g. the knowledge plugin's
    "Propose an article" on a resolved incident it knows nothing else about. Each
    :class:`itsm.core.web.NavItem` points at a page of this plugin (usually a form that
    is prefilled from the record and posts to the plugin's own route). Return None or an
    empty list when nothing applies.
    """


@hookspec
def itsm_cli_commands() -> list[click.Command] | None:
    """Return click commands (or groups) to add to the ``itsm`` command line.

    Called when the ``itsm`` command starts, for every enabled plugin. A command runs
    inside the application context, so :func:`itsm.core.app.current_itsm` is available.
    A command whose name is already taken is refused with a warning naming both plugins.

    All results are used (a list of commands per plugin).
    """


@hookspec(firstresult=True)
def itsm_attachment_store(settings: Settings) -> AttachmentStore | None:
    """Provide the store that keeps the files of attachments.

    Called when the application starts and again whenever the enabled plugins change, so
    an enabled plugin's store takes over from then on (files already kept in another
    store stay there: move them before switching stores).

    :param settings: the install's settings; a store reads its own (a bucket, a share)
        from ``[plugins.<name>]`` or its own table of ``itsm.toml``.
    :return: an object with the three methods of
        :class:`itsm.core.attachments.AttachmentStore` (``put``, ``open``, ``delete``),
        or None to let the next implementation decide. First result wins; the core's
        ``trylast`` default keeps the files in the local folder ``attachments.path``.
    """


# ---------------------------------------------------------------------------------------
# Records, links and workflows
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_record_types() -> list[RecordType] | None:
    """Return the record types this plugin provides.

    Called when the application is created and whenever the enabled plugins change. Each
    :class:`itsm.core.records.RecordType` names its model (a subclass of
    :class:`itsm.core.models.Record`), its marshmallow schema for its own fields, its
    number prefix (``INC`` gives INC0000001), its API collection (``incidents`` gives
    ``/api/v1/incidents``) and its :class:`itsm.core.workflow.Workflow`.

    All results are used. A type name or prefix claimed twice refuses the later plugin.
    """


@hookspec
def itsm_link_kinds() -> list[LinkKind] | None:
    """Return extra kinds of links between records (the core ships ``relates_to``,
    ``caused_by``, ``resolved_by``, ``duplicate_of`` and ``implements``).

    Called with the record types. All results are used.
    """


@hookspec
def itsm_transition_guard(
    record: Record, transition: Transition, actor: Actor, data: dict[str, Any]
) -> str | list[str] | None:
    """Veto a workflow transition of any record type, including other plugins' types.

    Called inside the transaction, after the workflow's own checks (state, roles,
    required fields) and before the record changes.

    :param record: the record about to move (still in its old state).
    :param transition: the :class:`itsm.core.workflow.Transition` requested.
    :param actor: who asks for it.
    :param data: the field values sent with the transition, already validated.
    :return: None to allow; a reason (or a list of reasons) to refuse. Every reason of
        every plugin is collected and shown to the user (HTTP 409 with ``reasons``), and
        the transition buttons of the web pages show them too.

    All results are used.
    """


@hookspec
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """Derive and rewrite the record's own fields before the change is journaled.

    Called by the record service inside the transaction on every ``created``,
    ``updated`` and ``transitioned`` change (and by the bulk import for each ``created``
    record), after the sent values and the type's ``derive`` rule are applied and before
    the journal entry is taken. What an implementation sets on ``record`` here is what
    the journal entry, the SLA clocks and the outbox event see, so replaying the journal
    gives the stored record. This is the place for routing to a group, stamping a
    resolution time, filling defaults from a template, normalising a value, or refusing
    values only this plugin can judge; :func:`itsm_record_changed` only reacts.

    :param session: the open SQLAlchemy session, for look-ups. A new record has no
        ``id`` yet and is not in the session: add no rows that point at it here (do that
        in :func:`itsm_record_changed`). In a bulk import, ``record`` is a plain object
        with the model's attributes and ``session`` only reads: an implementation must
        not write rows, and may keep look-ups in ``session.info`` for the import's
        thousands of records.
    :param record: the record with the change applied (for a transition: already in the
        target state, with ``updated_at`` and ``closed_at`` set). Check ``record.type``,
        not ``isinstance``, to recognise your type (a bulk import's record is no model).
    :param change: a :class:`itsm.core.records.RecordChange`: ``kind`` (``created``,
        ``updated`` or ``transitioned``), the ``actor``, the ``transition`` name, and for
        updates and transitions the ``changes`` the command makes, ``{field: [old,
        new]}`` by public field name, before any implementation of this hook ran.

    Raise :class:`itsm.core.errors.ItsmError` (such as ``ValidationError``) to refuse
    the change: nothing is written. The return value is ignored.
    """


@hookspec
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """React to a change of a record, inside its transaction, after it was journaled.

    Called by the record service after every change to a record (its journal entry is
    written, the outbox event not yet). Create other records, links, rows of your own
    tables, comments and notifications here; move other records through the record
    service. Do not change ``record``'s own fields: derive them in
    :func:`itsm_record_prepare`, so that the journal tells what the record holds. A
    change made here is refused with an error naming the fields while the application
    runs in debug or testing mode, and logged as a warning otherwise. Changing the record
    through the record service (a transition, an update, ``set_fields`` for the fields
    only the plugin sets) is allowed: it is journaled.

    :param session: the open SQLAlchemy session; rows added here commit (or roll back)
        together with the change itself, its journal entry and its outbox event.
    :param record: the record after the change.
    :param change: a :class:`itsm.core.records.RecordChange` with ``kind`` (``created``,
        ``updated``, ``transitioned``, ``commented``, ``work_noted``, ``linked``,
        ``attached``), the field ``changes`` as ``{field: [old, new]}`` (for ``created``:
        ``data``, every field as journaled), the ``transition`` name and the ``actor``.

    Raise :class:`itsm.core.errors.ItsmError` to refuse the whole change (nothing is
    written). The return value is ignored.
    """


# ---------------------------------------------------------------------------------------
# References: services, configuration items and other things records refer to
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_reference_kinds() -> list[ReferenceKind] | None:
    """Return the kinds of things this plugin provides for records to refer to.

    Called when the application is created and whenever the enabled plugins change. A
    :class:`itsm.core.references.ReferenceKind` names the kind (``service``,
    ``configuration_item`` ...) and gives the functions that get a thing by its stable
    id, resolve what a user typed (the id, ``#<id>``, a name or an alias), list choices
    for a picker (scoped to what the actor may see), and optionally walk the dependency
    graph (``impact``: what depends on these things; ``depends``: what they depend on),
    and, with ``set_status``, lets other plugins move a thing through its lifecycle
    (:func:`itsm.core.references.request_reference_status`). A record type's fields
    declared in ``RecordType.references`` then store the stable
    id; with no enabled provider of a kind, those fields are validated free text.

    All results are used. When several plugins provide one kind, the highest
    ``priority`` wins (the first declared on a tie); the core provides ``user``,
    ``group`` and ``agency`` at priority -100, so any plugin may provide them instead.
    """


@hookspec
def itsm_reference_changed(session: Session, ref: Ref, change: str,
                           into: Ref | None) -> None:
    """React to a provider's thing being renamed, retired or merged.

    Called by :func:`itsm.core.references.reference_changed`, which a provider calls
    inside its own transaction after it changed the thing (so a look-up of ``ref.id``
    already answers with the new label or status).

    :param session: the provider's open session; rows written here commit with its
        change.
    :param ref: the :class:`itsm.core.references.Ref` after the change (for a merge:
        the thing merged away, with ``merged_into`` set).
    :param change: ``renamed``, ``retired`` or ``merged``.
    :param into: for ``merged``, the :class:`~itsm.core.references.Ref` that stays;
        otherwise None.

    A plugin storing ids re-points them on ``merged`` (stored ids already keep working
    on ``renamed``). Raise :class:`itsm.core.errors.ItsmError` to refuse the provider's
    change. All implementations are called; the return value is ignored.
    """


@hookspec
def itsm_reference_status_guard(session: Session, ref: Ref, status: str,
                                actor: Actor) -> str | list[str] | None:
    """Veto a change of lifecycle status of a provider's thing (a catalog service going
    ``live``).

    Called by the provider, inside its transaction, before the thing changes status
    (also when a new thing is created with a status), through
    :func:`itsm.core.references.check_reference_status`; also when another plugin asked
    for the change with :func:`itsm.core.references.request_reference_status`.

    :param session: the open SQLAlchemy session of the change.
    :param ref: the :class:`itsm.core.references.Ref` of the thing (``kind``, stable
        ``id``, ``label``, its current ``lifecycle``, empty for a thing being created).
        Match on ``ref.kind`` and ``ref.id``: a rename keeps both.
    :param status: the provider's status asked for (``live`` publishes a service).
    :param actor: who asks for it.
    :return: None to allow; a reason (or a list of reasons) to refuse. Every reason of
        every plugin is collected and shown to the user (HTTP 409 with ``reasons``, the
        same shape as :func:`itsm_transition_guard` refusals).

    All results are used.
    """


# ---------------------------------------------------------------------------------------
# An agency's situation (between the processes and a plugin that shows it whole)
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_agency_sections(session: Session, agency_id: int, start: datetime,
                         end: datetime) -> list[AgencySection] | None:
    """Say what a process knows of one agency over a period.

    Called by a plugin that shows an agency's whole situation (a relationship manager's
    agency page, the monthly service review), through
    :func:`itsm.core.agency_view.agency_sections`, inside its transaction. The caller has
    checked that its user may see the agency; an implementation reports that agency only.

    :param session: a session to read with.
    :param agency_id: the agency.
    :param start: the period's first instant (UTC, included).
    :param end: the period's end (UTC, excluded); for "now", the current instant.
    :return: :class:`itsm.core.agency_view.AgencySection` objects, or None. All results
        are used, in the sections' ``order``.
    """


@hookspec
def itsm_agency_contacts(session: Session, agency_id: int, purpose: str) -> list[User] | None:
    """Name the people of an agency who hear from the IT office for ``purpose``.

    Called through :func:`itsm.core.agency_view.agency_contacts` by a plugin that writes
    to an agency as a whole (the relationship plugin mails the monthly service review to
    the agency's contacts as well as to its relationship managers), inside its
    transaction. The core keeps ``Agency.contacts`` as free text for people; the users a
    process knows as the agency's contacts (the agreement's designated contacts, the
    billing contacts) are that process's own, and this hook lets another plugin reach
    them without importing it.

    :param session: a session to read with.
    :param agency_id: the agency.
    :param purpose: why the agency is written to; one of
        :data:`itsm.core.agency_view.CONTACT_PURPOSES`: ``"review"`` (the monthly service
        review: everyone who takes part in the agency's relationship), ``"agreement"``
        (its MOU), ``"billing"`` (its statements). An implementation returns None for a
        purpose it has no contacts for, and for one it does not know.
    :return: :class:`itsm.core.models.User` rows, or None. All results are used: the
        caller keeps each person once, and only active users of that agency, so an
        implementation cannot make one agency's mail reach another agency's people.
    """


# ---------------------------------------------------------------------------------------
# Escalation (between a process that escalates records and one that agrees the paths)
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def itsm_escalation_path(session: Session, record: Record) -> list[EscalationStep] | None:
    """Say whom ``record`` escalates to: the path agreed with its agency.

    Called by a plugin that escalates its records automatically (the incident plugin, on
    an SLA warning, at a breach and as time passes after it), through
    :func:`itsm.core.escalation.escalation_path`, inside its transaction.

    :param session: a session to read with.
    :param record: the record being escalated (its ``agency_id`` says whose agreement).
    :return: the :class:`itsm.core.escalation.EscalationStep` objects of the path, or None
        when no path is agreed for it, in which case the escalating plugin uses its own
        contacts. First result wins.
    """


# ---------------------------------------------------------------------------------------
# What work costs (between plugins that keep rates or do billable work and one that bills)
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_service_rates(session: Session) -> list[Rate] | None:
    """State the prices of the services a plugin keeps.

    Called by a plugin that bills (through :func:`itsm.core.charges.service_rates`) when
    it prices subscriptions and recorded time, inside its transaction.

    :param session: a session to read with.
    :return: :class:`itsm.core.charges.Rate` objects, one per priced service, or None.
        All results are used; when two plugins price the same service id, the first
        answer wins.
    """


@hookspec
def itsm_billable_charges(session: Session, start: datetime, end: datetime,
                          agency_id: int | None) -> list[Charge] | None:
    """List the billable work a plugin's records did for agencies in a period.

    Called by a plugin that bills (through :func:`itsm.core.charges.billable_charges`)
    when it computes a statement, inside its transaction.

    :param session: a session to read with.
    :param start: the period's first instant (UTC, included).
    :param end: the period's end (UTC, excluded).
    :param agency_id: only this agency's work, or every agency's when None.
    :return: :class:`itsm.core.charges.Charge` objects (each with a stable ``key`` so
        that it is billed once), or None. All results are used.
    """


# ---------------------------------------------------------------------------------------
# How satisfied requesters are (between plugins whose work is rated and the core's report)
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_satisfaction_ratings(session: Session, start: datetime,
                              end: datetime) -> list[Rating] | None:
    """List the ratings requesters gave to a plugin's records finished in a period.

    Called by the core's satisfaction report (:func:`itsm.core.satisfaction.ratings`)
    for the page, the API and ``itsm satisfaction report``, inside a read transaction.
    Agency separation is the caller's: return every agency's ratings.

    :param session: a session to read with.
    :param start: the period's first instant (UTC, included), compared with when the
        work was finished (resolved, fulfilled).
    :param end: the period's end (UTC, excluded).
    :return: :class:`itsm.core.satisfaction.Rating` objects (record number, type,
        agency, group, service, score 1-5, comment, rated_at), or None. All results
        are used.
    """


# ---------------------------------------------------------------------------------------
# Events and notifications (after commit)
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_event_committed(event: EventMessage) -> None:
    """Called after the transaction that wrote ``event`` to the outbox has committed.

    :param event: an :class:`itsm.core.notify.EventMessage` (``id``, ``name`` such as
        ``record.created`` or ``record.transitioned``, ``record`` summary, ``actor``,
        ``payload``).

    Runs in the process that made the change, after the user's request succeeded; an
    exception is logged and never reaches the user. For delivery that must not be lost,
    provide a channel with :func:`itsm_notification_channels` instead: deliveries are
    retried from the outbox. The return value is ignored.
    """


@hookspec
def itsm_notification_channels() -> list[Channel] | None:
    """Return notification channels (e-mail, webhook, chat ...) this plugin provides.

    A :class:`itsm.core.notify.Channel` has a unique ``name`` and a ``deliver(message,
    recipient)`` method. ``deliver`` raising means "not delivered": the delivery is
    retried with exponential backoff and marked dead after ``outbox.max_attempts``.
    Deliveries carry the event id, so a receiver can recognise a repeated delivery.

    All results are used.
    """


@hookspec
def itsm_notification_recipients(
    event: EventMessage, session: Session
) -> list[Recipient] | None:
    """Return who should hear of ``event``, and over which channel.

    Called once per event by the outbox dispatcher.

    :param event: the :class:`itsm.core.notify.EventMessage`.
    :param session: a session for looking up watchers, groups, preferences.
    :return: a list of :class:`itsm.core.notify.Recipient` (``channel``, ``address``).
        Duplicates across plugins are delivered once.

    An exception is logged and holds up only this event: it is looked at again on the
    next cycle (nothing is lost), and the events after it go on. Look up, do not write.

    All results are used.
    """


# ---------------------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_permissions() -> list[Permission] | None:
    """Declare the permissions this plugin checks (``change.approve``) with the roles that
    hold them by default.

    Called when the enabled plugins change. The default permission check grants a
    permission to the roles named here, and ``itsm users set-role`` accepts every role
    named here. Record types get ``<type>.read``, ``.create``, ``.update``, ``.comment``
    and ``.transition`` declared automatically.

    :return: a list of :class:`itsm.core.auth.Permission`. All results are used.
    """


@hookspec(firstresult=True)
def itsm_permission_check(
    actor: Actor, permission: str, record: Record | None
) -> bool | None:
    """Decide whether ``actor`` holds ``permission``, optionally on one ``record``.

    Called by the service layer before every read and write, whatever the entry point
    (API, pages, CLI, e-mail).

    :return: True to allow, False to deny, None to let the next implementation decide.
        First result wins; the core's ``trylast`` default applies the declared roles and
        keeps requesters inside their own agency.
    """


# ---------------------------------------------------------------------------------------
# Sign-in: directories and identity providers
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def itsm_authenticate(session: Session, email: str, password: str,
                      client: str) -> Identity | None:
    """Check a sign-in's e-mail address and password against a directory (LDAP, Active
    Directory, a vendor's SAML bridge ...).

    Called by the console's sign-in page and ``POST /api/v1/tokens`` (with ``email`` and
    ``password``) for every attempt that the sign-in limit lets through, before the local
    password is looked at. Attempts this hook refuses are counted by the limit like
    wrong local passwords.

    :param session: the sign-in's database session (read only; the core writes the user).
    :param email: the e-mail address as typed (not yet verified).
    :param password: the password as typed.
    :param client: the client's address, for the method's own logs.

    :return: an :class:`itsm.core.auth.Identity` when the method vouches for the person:
        the core creates the user on first sign-in and updates e-mail, name, phone, role,
        agency and resolver groups from it at every sign-in. None when the method does
        not know the person or the password is wrong: the next implementation decides,
        and after all of them the local password (unless ``auth.local_passwords`` is off
        for a user made by a method). First result wins.

    Catch your own network errors and return None (log them): an unreachable directory
    must never lock out the install's local admins. An exception is logged by the core
    and counted as None.
    """


@hookspec
def itsm_sign_in_methods() -> list[SignInMethod] | None:
    """List the sign-in methods the sign-in page offers besides the e-mail and password
    form: redirect-based ones (OpenID Connect, SAML), one button each.

    Called each time the sign-in page is shown.

    :return: a list of :class:`itsm.core.auth.SignInMethod` (name, button label, URL of
        the method's own start page). All results are used, in plugin order; a
        password-based method (``itsm_authenticate``) needs none.
    """


@hookspec(firstresult=True)
def itsm_sign_out(actor: Actor | None, values: Mapping[str, Any]) -> str | None:
    """Say where the browser goes after signing out of itsm: a redirect-based method's
    single sign-out (an OpenID provider's end-session endpoint) ends the person's session
    at the provider too.

    Called by the console's sign-out (``POST /logout``) before the local session ends, so
    that what the method kept in the browser's session at sign-in is still readable; the
    local session then ends whatever this hook answers, and the browser is sent on to the
    URL returned by a page that continues there at once (a meta refresh with a link:
    browsers refuse a form's redirect to another site under ``form-action 'self'``).

    :param actor: who signs out, or None when the local session had already ended or
        expired (a method may still end its own session at the provider).
    :param values: a read-only copy of the browser's session values, including those the
        method stored there after :func:`itsm.plugin.start_web_session` at sign-in (e.g.
        an ID token to send as ``id_token_hint``).

    :return: an absolute URL to send the browser to (the provider brings it back to the
        sign-in page, where "You have signed out" is shown), or None when this method did
        not sign the person in: the next implementation decides, and after all of them
        the browser goes to the sign-in page. First result wins. An exception is logged
        and counts as None: signing out of itsm never fails.
    """


@hookspec
def itsm_auth_commands() -> list[click.Command] | None:
    """Add diagnostics of a sign-in method to the core's ``itsm auth`` command group
    (the ldap plugin's ``itsm auth test-ldap EMAIL``, the oidc plugin's ``itsm auth
    test-oidc [PROVIDER]``).

    Called when ``itsm auth`` is run, for every enabled plugin. A command runs inside the
    application context, like those of ``itsm_cli_commands``. Print one line per step
    (``connect: ok ...``), and end with a non-zero exit status (``click.ClickException``)
    at the first step that fails, naming the setting to fix.

    :return: a list of click commands. All results are used; a name already taken is
        refused with a warning naming both plugins.
    """


# ---------------------------------------------------------------------------------------
# Service levels
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def itsm_sla_policy(record: Record, metric: str, session: Session | None) -> SlaTarget | None:
    """Return the service level target for ``metric`` (``response``, ``resolution`` or a
    plugin's own) of ``record``.

    Called whenever a record's clocks are brought up to date (every change, ``itsm sla
    recompute``), once per metric and priority the record had.

    :param record: the record (when its history is replayed, it shows the priority it
        had then).
    :param metric: the metric asked for.
    :param session: the session of the change being made, so that rows written earlier
        in the same transaction count; None when asked outside one (then open your own).

    Answer from the record's attributes, the settings and stored rows only: a bulk
    import (:class:`itsm.core.sla.PolicyMemo`) asks once for each different set of values
    of the attributes read, and gives that answer to every record alike in them.
    :return: an :class:`itsm.core.sla.SlaTarget`, or None to let the next implementation
        decide. First result wins, so an agreements plugin can override the default
        policy; the core's ``trylast`` default gives the targets admins saved that were
        in force when the record was created, else ``[sla.<metric>] p<priority>``
        (minutes) from the config.
    """


# ---------------------------------------------------------------------------------------
# Search and answers
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_suggestions(session: Session, actor: Actor, text: str, record: Record | None,
                     limit: int) -> list[Suggestion] | None:
    """Offer answers for ``text`` (a new record's title and description): published
    knowledge articles, known errors with their workarounds, anything that may help.

    Called when a record of a type declared with ``suggest=True`` is created and by
    ``GET /api/v1/<collection>/<number>/suggestions``. ``record`` is that record (None
    when someone searches before creating one). Return at most ``limit``
    :class:`itsm.core.search.Suggestion` objects that ``actor`` may read; the core merges
    every plugin's by score, so use :func:`itsm.core.search.ranked` for comparable scores.

    On a create they are looked up after the record is committed and are best-effort: an
    exception (a plugin's bug, a dropped database connection) is logged and the create is
    answered 201 with no suggestions and ``suggestions_skipped`` saying so.
    """


# ---------------------------------------------------------------------------------------
# Background work
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_periodic(now: datetime) -> None:
    """Do this plugin's time-driven work: auto-close quiet records, escalations ...

    Called by the background worker (``itsm worker`` and the server's own outbox thread)
    on every cycle, inside an application context, after the SLA sweep. Open your own
    ``current_itsm().unit_of_work(Actor.system())`` for changes; make the work idempotent
    and safe to run from several workers at once (claim rows with a conditional
    UPDATE). Each plugin's implementation runs on its own: one that raises is logged and
    the others still run. The return value is ignored.
    """


# ---------------------------------------------------------------------------------------
# Data: defaults at install, demo data
# ---------------------------------------------------------------------------------------


@hookspec
def itsm_install_defaults(ctx: DemoContext) -> None:
    """Create this plugin's sensible defaults (categories, templates ...).

    Called by ``itsm init`` and when the plugin is enabled. Must be idempotent: it runs
    again on every ``itsm init`` and every enable. ``ctx`` (a
    :class:`itsm.core.demo.DemoContext`) gives the session and the record service acting
    as the system. The return value is ignored.
    """


@hookspec
def itsm_demo_data(ctx: DemoContext) -> None:
    """Load demonstration data for this plugin (``itsm demo``).

    Called after the core's own demo agencies, groups and users exist; ``ctx.users``
    maps their e-mail addresses to users and ``ctx.service(user)`` gives a record service
    acting as that user, so demo records go through the same validation and journal as
    real ones. The return value is ignored.
    """
