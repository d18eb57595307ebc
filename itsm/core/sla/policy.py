"""Which target applies to a record: the policy hook, its default and the memo a bulk
import asks it through."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from itsm.core.errors import ConfigError
from itsm.core.models import Record

if TYPE_CHECKING:
    from itsm.core.state import Itsm


METRICS = ("response", "resolution")
CLOCK_KINDS = ("created", "transitioned", "updated")
ZERO = timedelta(0)
# Clocks count whole microseconds; a clock is breached once it is *past* its target.
TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class SlaTarget:
    """A target for one metric of one record.

    :param metric: ``response``, ``resolution`` or a plugin's own metric.
    :param minutes: the time allowed, in working minutes of ``calendar``.
    :param calendar: the business calendar the clock runs on.
    :param warn_at: fraction of the target after which the record is "breaching soon".
    :param source: who set it (``default policy``, ``MOU AG-1``), shown to users.
    """

    metric: str
    minutes: int
    calendar: str = "default"
    warn_at: float = 0.75
    source: str = "default policy"


def default_target(settings, record: Record, metric: str) -> SlaTarget | None:
    """The configured default: ``sla.<metric>.p<priority>`` minutes (``p3`` if unset)."""
    priority = record.priority or 3
    minutes = settings.get(f"sla.{metric}.p{priority}")
    if minutes is None:
        return None
    return SlaTarget(metric=metric, minutes=int(minutes),
                     calendar=settings.get("sla.calendar", "default"),
                     warn_at=float(settings.get("sla.warn_at", 0.75)))


def policy_for(itsm: Itsm, record: Record, metric: str,
               session: Session | None = None) -> SlaTarget | None:
    """The target of ``metric`` for ``record``: first answer of the SLA-policy hook."""
    return itsm.hook.itsm_sla_policy(record=record, metric=metric, session=session)


def _names(settings: Mapping[str, Any], name: str, default: str) -> tuple[str, ...]:
    value = settings.get(name, default)
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))


def metrics_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The metrics clocked on every record: setting ``sla.metrics``."""
    return _names(settings, "sla.metrics", ",".join(METRICS))


def met_once_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Metrics that never resume once met: setting ``sla.met_once``."""
    return _names(settings, "sla.met_once", "response")


class _AtPriority:
    """The record as the policy sees it at an earlier priority (for replaying history)."""

    def __init__(self, record: Record, priority: int | None) -> None:
        self._record = record
        self.priority = priority

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def _checked(target: SlaTarget | None, metric: str) -> SlaTarget | None:
    if target is not None and (not isinstance(target.minutes, int) or target.minutes < 0):
        raise ConfigError(f"SLA target of {metric} ({target.source}) is "
                          f"{target.minutes!r} minutes: use a whole number >= 0")
    return target


def targets_for(itsm: Itsm, record: Record, session: Session | None = None, *,
                memo: PolicyMemo | None = None) \
        -> Callable[[int | None, str], SlaTarget | None]:
    """``(priority, metric) -> target`` for ``record``, asking the policy hook once each
    (or ``memo``, which shares answers between records)."""
    cache: dict[tuple[int | None, str], SlaTarget | None] = {}

    def lookup(priority: int | None, metric: str) -> SlaTarget | None:
        key = (priority, metric)
        if key not in cache:
            seen = record if priority == record.priority else _AtPriority(record, priority)
            cache[key] = memo.target(seen, metric) if memo is not None \
                else _checked(policy_for(itsm, seen, metric, session), metric)
        return cache[key]

    return lookup


_MISSING = object()  # an attribute the record does not have


class _Reading:
    """A record as the policy sees it, noting each attribute the policy reads first."""

    __slots__ = ("_itsm_record", "_itsm_reads")

    def __init__(self, record: Any) -> None:
        self._itsm_record = record
        self._itsm_reads: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._itsm_record, name, _MISSING)
        self._itsm_reads.setdefault(name, value)
        if value is _MISSING:
            raise AttributeError(name)
        return value


@dataclass(slots=True)
class _Ask:
    """A step of the memo: the answer depends on this attribute's value next."""

    name: str
    then: dict[Any, _Ask | _Answer] = field(default_factory=dict)


@dataclass(slots=True)
class _Answer:
    target: SlaTarget | None


class PolicyMemo:
    """The SLA policy's answers for many records (a bulk import), asking the hook once
    for each different set of values it read.

    An answer is kept with the attributes the policy implementations read to give it,
    in the order they read them, and their values: a later record with the same values
    for those attributes gets the same answer without a call. This holds because a
    policy answers from the record it is shown, the settings and stored rows (agreements,
    groups) that do not change while the memo lives; a policy that reads a record's id
    (its journal, say) is asked again for every record, the id being new each time.
    """

    def __init__(self, itsm: Itsm, session: Session | None = None) -> None:
        self.itsm = itsm
        self.session = session
        self._start: dict[str, _Ask | _Answer] = {}  # by metric
        self.asked = 0  # how many times the hook was called (for tests and profiles)

    def target(self, record: Any, metric: str) -> SlaTarget | None:
        """The policy's target of ``metric`` for ``record``."""
        step = self._start.get(metric)
        try:
            while isinstance(step, _Ask):
                step = step.then.get(getattr(record, step.name, _MISSING))
        except TypeError:  # a value that cannot be a key: ask, keep nothing
            return _checked(self._ask(_Reading(record), metric), metric)
        if step is not None:
            return step.target
        reading = _Reading(record)
        target = _checked(self._ask(reading, metric), metric)
        self._keep(metric, reading._itsm_reads, target)
        return target

    def _ask(self, reading: _Reading, metric: str) -> SlaTarget | None:
        self.asked += 1
        return policy_for(self.itsm, reading, metric, self.session)  # type: ignore[arg-type]

    def _keep(self, metric: str, reads: dict[str, Any], target: SlaTarget | None) -> None:
        into, key = self._start, metric
        try:
            for name, value in reads.items():
                step = into.get(key)
                if step is None:
                    step = into[key] = _Ask(name)
                elif not isinstance(step, _Ask) or step.name != name:
                    return  # read in another order than before: not a pure answer, keep none
                into, key = step.then, value
            if key not in into:
                into[key] = _Answer(target)
        except TypeError:  # a value that cannot be a key
            return
