"""Service levels: which target applies to a record, and the clocks that measure it.

The first plugin that answers ``itsm_sla_policy`` wins; the core's default (a ``trylast``
implementation) reads ``[sla]`` from the configuration.

A record's clocks (one per metric of setting ``sla.metrics``) are a pure function of its
journal: :func:`replay` walks the ``created``, ``transitioned`` and ``updated`` entries
(comments never touch a clock) and gives each clock's figures. The live update at every
change (:func:`on_record_changed`) and ``itsm sla recompute`` both call it, so they
cannot disagree. :func:`sweep` announces warnings and breaches as their due times pass.

Rules, for any record type:

- a clock starts when the record is created and pauses while the record is in a
  ``waiting`` state;
- it stops ("met") on entering a state whose ``stops`` names the metric; when no state of
  the workflow names it, ``response`` is met on leaving the initial state and any other
  metric on entering a final state;
- reopening (from a stop state to a state that does not stop it and is not final)
  resumes it with the time already used, except for metrics of ``sla.met_once``
  (default ``response``: a first response stays given);
- a priority change keeps the time used and re-targets from the policy for the new
  priority, which may then already be breached; a met clock keeps the target it was
  measured against (until it is reopened).

The engine is split by phase, each module importing only those before it:
:mod:`~itsm.core.sla.policy`, :mod:`~itsm.core.sla.stored` (the calendars and targets
admins saved), :mod:`~itsm.core.sla.replay`, :mod:`~itsm.core.sla.sweep`,
:mod:`~itsm.core.sla.views`. Their public names are importable from here.
"""

from itsm.core.sla.policy import (
    CLOCK_KINDS,
    METRICS,
    TICK,
    ZERO,
    PolicyMemo,
    SlaTarget,
    default_target,
    met_once_of,
    metrics_of,
    policy_for,
    targets_for,
)
from itsm.core.sla.replay import (
    ClockFigures,
    RecomputeStats,
    count_records,
    due_of,
    keep_due,
    recompute,
    replay,
    replay_record,
)
from itsm.core.sla.sweep import SweepStats, count_due, elapsed_at, on_record_changed, sweep
from itsm.core.sla.views import clocks_for
from itsm.core.sla_models import SlaClock

__all__ = ["SlaClock", "SlaTarget", "ClockFigures", "default_target", "policy_for", "PolicyMemo",
           "replay", "on_record_changed", "sweep", "count_due", "recompute", "clocks_for",
           "CLOCK_KINDS", "METRICS", "TICK", "ZERO", "met_once_of", "metrics_of",
           "targets_for", "RecomputeStats", "count_records", "replay_record", "SweepStats",
           "elapsed_at", "due_of", "keep_due"]
