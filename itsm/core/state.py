"""The per-install state every request and command uses: settings, database, plugin host,
what the enabled plugins provide, and the unit of work."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from itsm.core.plugins import PluginHost, collector_paused, discover

with collector_paused():  # the bulk of the start-up's imports
    from flask import has_request_context, request
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
    from sqlalchemy.orm import Session, object_session, sessionmaker
    from sqlalchemy.orm.exc import StaleDataError

    from itsm.core.auth import Actor, Permission
    from itsm.core.database import make_engine
    from itsm.core.errors import ConfigError, Conflict, StaleRecord
    from itsm.core.jobs import run_cycle
    from itsm.core.models import AccessDenial
    from itsm.core.notify import CommittedEvents, Outbox
    from itsm.core.records import LinkKind, RecordService, RecordTypes
    from itsm.core.references import collect_kinds

if TYPE_CHECKING:
    from flask import Flask

    from itsm.core.attachments import AttachmentStore

log = logging.getLogger("itsm")

_REQUEST_SESSION = "itsm.session"  # request.environ key of Itsm.request_session()


def _close_request_session(_exc: BaseException | None = None) -> None:
    """End of a request: a session no unit of work took over is closed (rolled back)."""
    session = request.environ.pop(_REQUEST_SESSION, None)
    if session is not None:
        session.close()


class Itsm:
    """One install: settings, database, plugin host and what the enabled plugins provide."""

    def __init__(self, settings, extra_plugins=()) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.host = PluginHost(discover(extra_plugins), trace=settings["trace_plugins"],
                               refresh_seconds=settings["plugins.refresh_seconds"],
                               initial=settings["plugins.initial"])
        if settings["plugins.strict"]:
            broken = [i.error for i in self.host.plugins.values() if i.error]
            if broken:
                raise ConfigError("plugins failed to load (plugins.strict is on): "
                                  + "; ".join(broken))
        self.outbox = Outbox(self, cycle=lambda: run_cycle(self))
        self.attachments: AttachmentStore  # chosen by the hook, see rebuild
        self.app: Flask | None = None
        self.types = RecordTypes([])
        self._blueprint_owners: dict[str, str] = {}  # blueprint name -> plugin
        self.load_errors: list[str] = []  # plugins' start-up failures, kept across rebuilds
        self.link_kinds: dict[str, LinkKind] = {}
        self.permissions: dict[str, Permission] = {}
        self.channels: dict[str, Any] = {}
        self.reference_kinds: dict[str, Any] = {}  # name -> the winning ReferenceKind
        self._errors: list[str] = []
        self.host.on_change.append(self.rebuild)
        self.load_plugin_state()

    @property
    def hook(self):
        return self.host.hook

    # The routes are registered when the application is first used (see ItsmApp): what
    # registering them adds here is complete whenever it is read.

    @property
    def blueprint_owners(self) -> dict[str, str]:
        """Blueprint name -> the plugin that provides it."""
        self._register_blueprints()
        return self._blueprint_owners

    @blueprint_owners.setter
    def blueprint_owners(self, owners: dict[str, str]) -> None:
        self._blueprint_owners = owners

    @property
    def errors(self) -> list[str]:
        """What is wrong with the install's plugins: record type clashes, load failures."""
        self._register_blueprints()
        return self._errors

    @errors.setter
    def errors(self, errors: list[str]) -> None:
        self._errors = errors

    def _register_blueprints(self) -> None:
        register = getattr(self.app, "register_deferred", None)  # an itsm.core.app.ItsmApp
        if register is not None:
            register()

    def plugin_settings(self, name: str) -> dict[str, Any]:
        info = self.host.get(name)
        return self.settings.plugin_settings(name, info.declaration.settings)

    # -- plugin state ----------------------------------------------------------------

    def load_plugin_state(self) -> None:
        """Apply the enabled set stored in the database (defaults before ``itsm init``)."""
        try:
            with self.Session() as session:
                stored = self.host.stored_state(session)
        except (OperationalError, ProgrammingError):  # no schema yet
            stored = {}
        if not self.host.apply(self.host.wanted(stored)):
            self.rebuild()

    def refresh_plugins(self, force: bool = False) -> None:
        # Before `itsm init` there is no table yet; the request itself reports the database.
        with suppress(OperationalError, ProgrammingError):
            self.host.refresh(self.Session, force=force)

    def results(self, hook: str, **kwargs) -> list[tuple[str, Any]]:
        """Each enabled plugin's result of an all-results hook, with the plugin's name.

        Each plugin is called through pluggy on its own (so tracing and pluggy's checks
        see the calls), in registration order, the order in which a clash between two
        plugins' declarations is decided (the first one wins).
        """
        out = []
        for plugin, caller in reversed(self.host.by_plugin(hook)):
            for result in caller(**kwargs):
                for item in result or ():
                    out.append((plugin, item))
        return out

    @property
    def strict_hooks(self) -> bool:
        """Whether a plugin breaking a hook's contract is refused with an error (debug and
        testing) rather than logged (production); see ``RecordService._react``."""
        app = self.app
        return app is not None and (app.debug or app.testing)

    def rebuild(self) -> None:
        """Recompute record types, link kinds, permissions, channels and the attachment
        store from the hooks."""
        self.types = RecordTypes(self.results("itsm_record_types"))
        self.link_kinds = {k.name: k for _, k in self.results("itsm_link_kinds")}
        declared = {p.name: p for _, p in self.results("itsm_permissions")}
        for rt in self.types:
            for permission in rt.permissions():
                declared.setdefault(permission.name, permission)
        self.permissions = declared
        self.channels = {c.name: c for _, c in self.results("itsm_notification_channels")}
        self.reference_kinds = collect_kinds(self.results("itsm_reference_kinds"))
        self.attachments = self.hook.itsm_attachment_store(settings=self.settings)
        self._errors = [*self.types.errors, *self.load_errors]
        for error in self._errors:
            log.warning("%s", error)

    # -- units of work ---------------------------------------------------------------

    def request_session(self) -> Session:
        """The current request's session, opened by its first use and closed when the
        request ends; the request's unit of work takes it over (see :meth:`unit_of_work`).
        """
        session = request.environ.get(_REQUEST_SESSION)
        if session is None:
            session = request.environ[_REQUEST_SESSION] = self.Session()
        return session

    @contextmanager
    def read_session(self, near: Any = None) -> Iterator[Session]:
        """A session to read with. Inside a request it is the request's session (see
        :meth:`request_session`), left open at the end of the block: the sign-in check,
        the menu's entries and the bell of one page then read on one connection, not on
        one pool checkout (a ping, a transaction) each. Outside a request, a new session
        closed at the end of the block. A failure inside the block rolls it back, so
        the next reader of the request finds it usable.

        ``near``: an object loaded by the caller (the record a hook is given); its
        session is used as it is, left to its owner (a unit of work) to end.
        """
        owner = object_session(near) if near is not None else None
        if owner is not None:
            yield owner
            return
        if not has_request_context():
            with self.Session() as session:
                yield session
            return
        session = self.request_session()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise

    @contextmanager
    def unit_of_work(self, actor: Actor) -> Iterator[RecordService]:
        """One command, one transaction: the change, its journal, its outbox events.

        Inside a request it continues the request's session where authentication opened
        one (the same connection and transaction); the session is closed at the end.
        """
        session = (request.environ.pop(_REQUEST_SESSION, None) if has_request_context()
                   else None) or self.Session()
        service = RecordService(self, session, actor)
        committed = CommittedEvents(session, service.events)
        try:
            yield service
            session.commit()
        except StaleDataError:
            session.rollback()
            raise StaleRecord("the record was changed by someone else meanwhile: reload "
                              "and retry") from None
        except IntegrityError as exc:
            session.rollback()
            log.info("integrity error: %s", exc.orig)
            raise Conflict("the change conflicts with existing data (a duplicate?)") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            self.record_denials(service)
            # Also when something failed after a commit: what was committed is announced.
            self.outbox.committed(committed.take(self))

    def record_denials(self, service: RecordService) -> None:
        """Write the actor's refused actions in their own transaction: the request's own
        transaction has usually been rolled back by the refusal."""
        if not service.denials:
            return
        actor = service.actor
        with self.Session() as session:
            for permission, record_id in service.denials:
                session.add(AccessDenial(actor_id=actor.id, actor_email=actor.email[:254],
                                         permission=permission[:100], record_id=record_id))
            session.commit()
        log.info("access denied to %s: %s", actor.email,
                 ", ".join(p for p, _ in service.denials))
        service.denials.clear()
