"""The public face of itsm for plugin authors: everything a plugin needs, in one import.

    from itsm.plugin import Plugin, RecordType, Record, Workflow, State, Transition, hookimpl

A plugin (built-in, adapter or vendor) imports from the core only through this module,
and from :mod:`itsm.testing` in its tests; the core's inner modules may change between
versions, the names listed in ``__all__`` here may not without a versioned, documented
change (``docs/plugins.md`` says what each one is for). The hooks themselves are
specified in :mod:`itsm.core.hookspecs`.

The names are loaded on first use (PEP 562), so importing this module from a plugin's
declaration costs nothing: ``from itsm.plugin import render_page`` inside a view brings
the page kit only when a page is served, as a direct import of it would.
"""

# No ``from __future__ import annotations`` and only underscored helpers: every public
# name of this module is an export, listed in ``__all__`` (tests/test_public_face.py).
import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

# Public name -> (module, attribute). Grouped as docs/plugins.md documents them.
_EXPORTS: dict[str, tuple[str, str]] = {
    # -- declaring a plugin ------------------------------------------------------------
    "Plugin": ("itsm.core.plugins", "Plugin"),
    "hookimpl": ("itsm.core.hookspecs", "hookimpl"),
    "ITSM_VERSION": ("itsm", "__version__"),
    # -- record types, their tables and fields ---------------------------------------
    "RecordType": ("itsm.core.records", "RecordType"),
    "Record": ("itsm.core.models", "Record"),
    "Base": ("itsm.core.models", "Base"),
    "UTCDateTime": ("itsm.core.models", "UTCDateTime"),
    "utcnow": ("itsm.core.models", "utcnow"),
    "RecordChange": ("itsm.core.records", "RecordChange"),
    "RecordService": ("itsm.core.records", "RecordService"),
    "breaching_soon": ("itsm.core.queues", "breaching_soon"),
    "expectations": ("itsm.core.expectations", "expectations"),
    "priority_label": ("itsm.core.expectations", "priority_label"),
    "reader_zone": ("itsm.core.display", "reader_zone"),
    "zone_name": ("itsm.core.display", "zone_name"),
    "local_time": ("itsm.core.display", "local_time"),
    "local_input": ("itsm.core.display", "local_input"),
    "from_local_input": ("itsm.core.display", "from_local_input"),
    "view_total": ("itsm.core.queues", "view_total"),
    "LinkKind": ("itsm.core.records", "LinkKind"),
    "jsonable": ("itsm.core.records", "jsonable"),
    "Agency": ("itsm.core.models", "Agency"),
    "Group": ("itsm.core.models", "Group"),
    "GroupMember": ("itsm.core.models", "GroupMember"),
    "User": ("itsm.core.models", "User"),
    "Link": ("itsm.core.models", "Link"),
    "JournalEntry": ("itsm.core.models", "JournalEntry"),
    "Attachment": ("itsm.core.models", "Attachment"),
    "Event": ("itsm.core.models", "Event"),
    # -- approvals bound to what they approved ---------------------------------------------
    "ApprovalScope": ("itsm.core.approvals", "ApprovalScope"),
    "scope_digest": ("itsm.core.approvals", "scope_digest"),
    "scope_changes": ("itsm.core.approvals", "scope_changes"),
    # -- workflows -----------------------------------------------------------------------
    "Workflow": ("itsm.core.workflow", "Workflow"),
    "State": ("itsm.core.workflow", "State"),
    "Transition": ("itsm.core.workflow", "Transition"),
    # -- people and permissions ------------------------------------------------------------
    "Actor": ("itsm.core.auth", "Actor"),
    "Permission": ("itsm.core.auth", "Permission"),
    "known_roles": ("itsm.core.auth", "known_roles"),
    "visibility_scope": ("itsm.core.auth", "visibility_scope"),
    "user_by_email": ("itsm.core.auth", "user_by_email"),
    "agency_by_code": ("itsm.core.auth", "agency_by_code"),
    "create_user": ("itsm.core.auth", "create_user"),
    "Identity": ("itsm.core.auth", "Identity"),
    "SignInMethod": ("itsm.core.auth", "SignInMethod"),
    "provision_user": ("itsm.core.auth", "provision_user"),
    "deactivate_user": ("itsm.core.auth", "deactivate_user"),
    "password_reset_link": ("itsm.core.password_reset", "reset_link"),
    # -- notifications -------------------------------------------------------------------
    "EventMessage": ("itsm.core.notify", "EventMessage"),
    "Recipient": ("itsm.core.notify", "Recipient"),
    "Channel": ("itsm.core.notify", "Channel"),
    "reply_token": ("itsm.core.notify", "reply_token"),
    # -- SLA, services, search -------------------------------------------------------------
    "SlaTarget": ("itsm.core.sla", "SlaTarget"),
    "SlaClock": ("itsm.core.sla_models", "SlaClock"),
    "sweep_sla_clocks": ("itsm.core.sla", "sweep"),
    "render_pdf": ("itsm.core.pdf", "render_pdf"),
    "AgencySection": ("itsm.core.agency_view", "AgencySection"),
    "agency_sections": ("itsm.core.agency_view", "agency_sections"),
    "agency_contacts": ("itsm.core.agency_view", "agency_contacts"),
    "CONTACT_PURPOSES": ("itsm.core.agency_view", "CONTACT_PURPOSES"),
    "EscalationStep": ("itsm.core.escalation", "EscalationStep"),
    "escalation_path": ("itsm.core.escalation", "escalation_path"),
    "Rate": ("itsm.core.charges", "Rate"),
    "Charge": ("itsm.core.charges", "Charge"),
    "RATE_PERIODS": ("itsm.core.charges", "RATE_PERIODS"),
    "service_rates": ("itsm.core.charges", "service_rates"),
    "billable_charges": ("itsm.core.charges", "billable_charges"),
    "Rating": ("itsm.core.satisfaction", "Rating"),
    "satisfaction_follow_up": ("itsm.core.satisfaction", "follow_up"),
    # -- references: services, configuration items, agencies ... by stable id ------------
    "Ref": ("itsm.core.references", "Ref"),
    "ImpactHit": ("itsm.core.references", "ImpactHit"),
    "ReferenceKind": ("itsm.core.references", "ReferenceKind"),
    "reference_kind": ("itsm.core.references", "reference_kind"),
    "resolve_reference": ("itsm.core.references", "resolve_reference"),
    "reference_get": ("itsm.core.references", "reference_get"),
    "reference_ref": ("itsm.core.references", "reference_ref"),
    "reference_label": ("itsm.core.references", "reference_label"),
    "reference_choices": ("itsm.core.references", "reference_choices"),
    "reference_impact": ("itsm.core.references", "reference_impact"),
    "reference_depends": ("itsm.core.references", "reference_depends"),
    "reference_changed": ("itsm.core.references", "reference_changed"),
    "check_reference_status": ("itsm.core.references", "check_reference_status"),
    "convert_stored_references": ("itsm.core.references", "convert_stored_references"),
    "request_reference_status": ("itsm.core.references", "request_reference_status"),
    "Suggestion": ("itsm.core.search", "Suggestion"),
    "search_terms": ("itsm.core.search", "terms"),
    "search_matching": ("itsm.core.search", "matching"),
    "search_ranked": ("itsm.core.search", "ranked"),
    "ListQuery": ("itsm.core.query", "ListQuery"),
    # -- the current application and the unit of work ----------------------------------
    "current_itsm": ("itsm.core.context", "current_itsm"),
    "create_app": ("itsm.core.app", "create_app"),
    "unit_of_work": ("itsm.core.view_kit", "unit_of_work"),
    "with_service": ("itsm.core.view_kit", "with_service"),
    "run_cycle": ("itsm.core.jobs", "run_cycle"),
    # -- REST API routes -------------------------------------------------------------------
    "API_PREFIX": ("itsm.core.api", "PREFIX"),
    "current_actor": ("itsm.core.api", "current_actor"),
    "document": ("itsm.core.api", "document"),
    "json_body": ("itsm.core.api", "json_body"),
    "with_etag": ("itsm.core.api", "with_etag"),
    # -- schemas and input ---------------------------------------------------------------
    "load_input": ("itsm.core.inputs", "load_input"),
    "InputError": ("itsm.core.inputs", "InputError"),
    "check_text": ("itsm.core.inputs", "check_text"),
    "parse_int": ("itsm.core.inputs", "parse_int"),
    "parse_month": ("itsm.core.inputs", "parse_month"),
    "MAX_DB_INTEGER": ("itsm.core.inputs", "MAX_DB_INTEGER"),
    "InputSchema": ("itsm.core.schemas", "InputSchema"),
    "Boolean": ("itsm.core.schemas", "Boolean"),
    "messages_of": ("itsm.core.errors", "messages_of"),
    "type_schemas": ("itsm.core.schemas", "type_schemas"),
    "CoreRecordOut": ("itsm.core.schemas", "CoreRecordOut"),
    # -- navigation and pages ------------------------------------------------------------
    "NavItem": ("itsm.core.web", "NavItem"),
    "start_web_session": ("itsm.core.web", "start_web_session"),
    "page_blueprint": ("itsm.core.pagekit", "page_blueprint"),
    "page_actor": ("itsm.core.pagekit", "page_actor"),
    "render_page": ("itsm.core.pagekit", "render_page"),
    "continue_to": ("itsm.core.pagekit", "continue_to"),
    "error_text": ("itsm.core.pagekit", "error_text"),
    "field_messages": ("itsm.core.pagekit", "field_messages"),
    "row_field_messages": ("itsm.core.pagekit", "row_field_messages"),
    # -- administration pages --------------------------------------------------------------
    "AdminPage": ("itsm.core.admin.kit", "AdminPage"),
    "admin_view": ("itsm.core.admin.kit", "admin_view"),
    "record_admin_audit": ("itsm.core.admin.kit", "record_admin_audit"),
    # -- sign-in plugins: mapping rules stored in the database, their admin page -------------
    "DirectoryRules": ("itsm.core.directory_rules", "DirectoryRules"),
    "DirectoryRuleColumns": ("itsm.core.directory_rules", "DirectoryRuleColumns"),
    "DirectoryRulesPage": ("itsm.core.admin.directory_page", "DirectoryRulesPage"),
    "DirectoryConfiguration": ("itsm.core.admin.directory_page", "DirectoryConfiguration"),
    "DirectoryTest": ("itsm.core.admin.directory_page", "DirectoryTest"),
    "DirectoryTestField": ("itsm.core.admin.directory_page", "DirectoryTestField"),
    "SettingLabel": ("itsm.core.admin.directory_page", "SettingLabel"),
    # -- command line --------------------------------------------------------------------
    "pass_itsm": ("itsm.core.cli_kit", "pass_itsm"),
    "emit_json": ("itsm.core.cli_kit", "emit_json"),
    # -- migrations ------------------------------------------------------------------------
    "Migrations": ("itsm.core.migrate", "Migrations"),
    # -- demo data -------------------------------------------------------------------------
    "DemoContext": ("itsm.core.demo", "DemoContext"),
    "ensure_group": ("itsm.core.demo", "ensure_group"),
    # -- errors a plugin raises (each becomes its HTTP status and one CLI line) -------------
    "ItsmError": ("itsm.core.errors", "ItsmError"),
    "ValidationError": ("itsm.core.errors", "ValidationError"),
    "NotFound": ("itsm.core.errors", "NotFound"),
    "Unauthorized": ("itsm.core.errors", "Unauthorized"),
    "Forbidden": ("itsm.core.errors", "Forbidden"),
    "Conflict": ("itsm.core.errors", "Conflict"),
    "StaleRecord": ("itsm.core.errors", "StaleRecord"),
    "ConfigError": ("itsm.core.errors", "ConfigError"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'itsm.plugin' has no attribute {name!r}") from None
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value  # the next lookup is an ordinary module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if _TYPE_CHECKING:  # what type checkers and editors see: the same names, eagerly
    from itsm import __version__ as ITSM_VERSION  # noqa: F401
    from itsm.core.admin.directory_page import (  # noqa: F401
        DirectoryConfiguration,
        DirectoryRulesPage,
        DirectoryTest,
        DirectoryTestField,
        SettingLabel,
    )
    from itsm.core.admin.kit import AdminPage, admin_view, record_admin_audit  # noqa: F401
    from itsm.core.agency_view import (  # noqa: F401
        CONTACT_PURPOSES,
        AgencySection,
        agency_contacts,
        agency_sections,
    )
    from itsm.core.api import PREFIX as API_PREFIX  # noqa: F401
    from itsm.core.api import current_actor, document, json_body, with_etag  # noqa: F401
    from itsm.core.app import create_app  # noqa: F401
    from itsm.core.approvals import ApprovalScope, scope_changes, scope_digest  # noqa: F401
    from itsm.core.auth import (  # noqa: F401
        Actor,
        Identity,
        Permission,
        SignInMethod,
        agency_by_code,
        create_user,
        deactivate_user,
        known_roles,
        provision_user,
        user_by_email,
        visibility_scope,
    )
    from itsm.core.charges import (  # noqa: F401
        RATE_PERIODS,
        Charge,
        Rate,
        billable_charges,
        service_rates,
    )
    from itsm.core.cli_kit import emit_json, pass_itsm  # noqa: F401
    from itsm.core.context import current_itsm  # noqa: F401
    from itsm.core.demo import DemoContext, ensure_group  # noqa: F401
    from itsm.core.directory_rules import DirectoryRuleColumns, DirectoryRules  # noqa: F401
    from itsm.core.display import (  # noqa: F401
        from_local_input,
        local_input,
        local_time,
        reader_zone,
        zone_name,
    )
    from itsm.core.errors import (  # noqa: F401
        ConfigError,
        Conflict,
        Forbidden,
        ItsmError,
        NotFound,
        StaleRecord,
        Unauthorized,
        ValidationError,
        messages_of,
    )
    from itsm.core.escalation import EscalationStep, escalation_path  # noqa: F401
    from itsm.core.expectations import expectations, priority_label  # noqa: F401
    from itsm.core.hookspecs import hookimpl  # noqa: F401
    from itsm.core.inputs import (  # noqa: F401
        MAX_DB_INTEGER,
        InputError,
        check_text,
        load_input,
        parse_int,
        parse_month,
    )
    from itsm.core.jobs import run_cycle  # noqa: F401
    from itsm.core.migrate import Migrations  # noqa: F401
    from itsm.core.models import (  # noqa: F401
        Agency,
        Attachment,
        Base,
        Event,
        Group,
        GroupMember,
        JournalEntry,
        Link,
        Record,
        User,
        UTCDateTime,
        utcnow,
    )
    from itsm.core.notify import Channel, EventMessage, Recipient, reply_token  # noqa: F401
    from itsm.core.pagekit import (  # noqa: F401
        continue_to,
        error_text,
        field_messages,
        page_actor,
        page_blueprint,
        render_page,
        row_field_messages,
    )
    from itsm.core.password_reset import reset_link as password_reset_link  # noqa: F401
    from itsm.core.pdf import render_pdf  # noqa: F401
    from itsm.core.plugins import Plugin  # noqa: F401
    from itsm.core.query import ListQuery  # noqa: F401
    from itsm.core.queues import breaching_soon, view_total  # noqa: F401
    from itsm.core.records import (  # noqa: F401
        LinkKind,
        RecordChange,
        RecordService,
        RecordType,
        jsonable,
    )
    from itsm.core.references import (  # noqa: F401
        ImpactHit,
        Ref,
        ReferenceKind,
        check_reference_status,
        convert_stored_references,
        reference_changed,
        reference_choices,
        reference_depends,
        reference_get,
        reference_impact,
        reference_kind,
        reference_label,
        reference_ref,
        request_reference_status,
        resolve_reference,
    )
    from itsm.core.satisfaction import Rating  # noqa: F401
    from itsm.core.satisfaction import follow_up as satisfaction_follow_up  # noqa: F401
    from itsm.core.schemas import (  # noqa: F401
        Boolean,
        CoreRecordOut,
        InputSchema,
        type_schemas,
    )
    from itsm.core.search import Suggestion  # noqa: F401
    from itsm.core.search import matching as search_matching  # noqa: F401
    from itsm.core.search import ranked as search_ranked  # noqa: F401
    from itsm.core.search import terms as search_terms  # noqa: F401
    from itsm.core.sla import SlaTarget  # noqa: F401
    from itsm.core.sla import sweep as sweep_sla_clocks  # noqa: F401
    from itsm.core.sla_models import SlaClock  # noqa: F401
    from itsm.core.view_kit import unit_of_work, with_service  # noqa: F401
    from itsm.core.web import NavItem, start_web_session  # noqa: F401
    from itsm.core.workflow import State, Transition, Workflow  # noqa: F401
