"""Alert groups to records: open, update (a work note), resolve; deduplicated by group.

Concurrent deliveries of one group are serialised by the database: the group's row is
claimed with a unique insert or a conditional update, and the loser retries from a fresh
read, so one group never opens two records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from itsm.adapters.alertmanager.models import AlertIncident
from itsm.plugin import Record, RecordService, StaleRecord, utcnow

log = logging.getLogger("itsm.alertmanager")

ATTEMPTS = 8
KEY_MAX = 500
TITLE_MAX = 300
DESCRIPTION_MAX = 50_000


class _Retry(Exception):
    """Another delivery of the same group won the race: start again from a fresh read."""


def settings(itsm) -> dict[str, Any]:

    return itsm.plugin_settings("alertmanager")


def storage_key(group_key: str) -> str:
    """The group key as stored: itself, or a prefix and its digest when very long."""
    if len(group_key) <= KEY_MAX:
        return group_key
    digest = hashlib.sha256(group_key.encode()).hexdigest()
    return f"{group_key[:KEY_MAX - 65]}#{digest}"


def digest(payload: Mapping[str, Any]) -> str:
    """What makes two notifications the same: status and each alert's identity and times."""
    alerts = sorted((a["fingerprint"], a["status"], a["startsAt"], a["endsAt"],
                     sorted(a["labels"].items())) for a in payload["alerts"])
    text = json.dumps([payload["status"], alerts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- labels to fields --------------------------------------------------------------------


def _matches(labels: Mapping[str, str], match: Mapping[str, Any]) -> bool:
    for label, wanted in (match or {}).items():
        values = wanted if isinstance(wanted, list | tuple) else [wanted]
        if labels.get(label) not in [str(v) for v in values]:
            return False
    return True


def mapped_fields(labels: Mapping[str, str], conf: Mapping[str, Any]) -> dict[str, Any]:
    """Fields from labels: severity -> impact/urgency, service label, then the rules."""
    out: dict[str, Any] = {"channel": "monitoring"}
    severity = conf.get("severity") or {}
    level = str(labels.get(conf.get("severity_label") or "severity", "")).lower()
    pair = severity.get(level, severity.get("default"))
    if isinstance(pair, list | tuple) and len(pair) == 2:
        out["impact"], out["urgency"] = int(pair[0]), int(pair[1])
    service_label = conf.get("service_label") or ""
    if service_label and labels.get(service_label):
        out["affected_service"] = labels[service_label]
    for rule in conf.get("rules") or []:
        if isinstance(rule, Mapping) and _matches(labels, rule.get("match") or {}):
            out.update(rule.get("set") or {})
    return out


def _labels_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """The group's labels: common labels, else those of the first alert."""
    labels = dict(payload["alerts"][0]["labels"])
    labels.update(payload["commonLabels"])
    return labels


def _title(payload: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    name = labels.get("alertname") or payload["groupLabels"].get("alertname") or "alert"
    annotations = payload["commonAnnotations"] or payload["alerts"][0]["annotations"]
    summary = annotations.get("summary") or annotations.get("description") or ""
    where = labels.get("service") or labels.get("instance") or labels.get("job") or ""
    title = name + (f" on {where}" if where else "") + (f": {summary}" if summary else "")
    return title[:TITLE_MAX]


def _alert_lines(payload: Mapping[str, Any], status: str) -> list[str]:
    lines = []
    for alert in payload["alerts"]:
        if alert["status"] != status:
            continue
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        summary = alert["annotations"].get("summary") or alert["annotations"].get(
            "description") or ""
        since = alert["endsAt"] if status == "resolved" else alert["startsAt"]
        line = f"- {labels}" + (f": {summary}" if summary else "")
        line += f" ({'ended' if status == 'resolved' else 'since'} {since})" if since else ""
        if alert["generatorURL"]:
            line += f" {alert['generatorURL']}"
        lines.append(line)
    return lines


def _description(payload: Mapping[str, Any]) -> str:
    parts = [f"Opened by Alertmanager (receiver {payload['receiver'] or '?'}).",
             f"Group: {payload['groupKey']}", "", "Firing alerts:",
             *_alert_lines(payload, "firing")]
    if payload["externalURL"]:
        parts += ["", f"Alertmanager: {payload['externalURL']}"]
    return "\n".join(parts)[:DESCRIPTION_MAX]


def _firing_note(payload: Mapping[str, Any]) -> str:
    firing = _alert_lines(payload, "firing")
    resolved = _alert_lines(payload, "resolved")
    parts = [f"Alertmanager: {len(firing)} alert(s) firing in this group."]
    if firing:
        parts += ["", *firing]
    if resolved:
        parts += ["", "Resolved meanwhile:", *resolved]
    if payload["truncatedAlerts"]:
        parts.append(f"(and {payload['truncatedAlerts']} more not sent by Alertmanager)")
    return "\n".join(parts)[:DESCRIPTION_MAX]


def _resolved_note(payload: Mapping[str, Any]) -> str:
    return "\n".join(["Alertmanager: every alert of this group is resolved.", "",
                      *_alert_lines(payload, "resolved")])[:DESCRIPTION_MAX]


# -- the unit of work ------------------------------------------------------------------


def handle(itsm, actor, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Apply one notification as ``actor``; retried when a concurrent delivery won."""
    for attempt in range(ATTEMPTS):
        try:
            with itsm.unit_of_work(actor) as service:
                return _apply(service, payload, settings(itsm))
        except (_Retry, StaleRecord):
            log.info("alert group %s changed concurrently (attempt %d); retrying",
                     payload["groupKey"][:200], attempt + 1)
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))  # let the winner commit
    raise StaleRecord("the alert group kept changing concurrently; Alertmanager will retry")


def _result(action: str, record: Record | None) -> dict[str, Any]:
    return {"action": action, "number": record.number if record is not None else None,
            "state": record.state if record is not None else None}


def _claim(service: RecordService, row: AlertIncident, **values: Any) -> None:
    """Change the row only if nobody changed it since it was read, else retry."""
    stmt = (update(AlertIncident)
            .where(AlertIncident.id == row.id, AlertIncident.status == row.status,
                   AlertIncident.payload_hash == row.payload_hash)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False))
    if row.record_id is None:
        stmt = stmt.where(AlertIncident.record_id.is_(None))
    else:
        stmt = stmt.where(AlertIncident.record_id == row.record_id)
    if service.session.execute(stmt).rowcount != 1:
        raise _Retry()
    for key, value in values.items():
        setattr(row, key, value)


def _create(service: RecordService, payload: Mapping[str, Any], conf: Mapping[str, Any]) \
        -> Record:
    type_name = conf["record_type"]
    known = service.itsm.types.schemas[type_name]["in"]().fields
    labels = _labels_of(payload)
    data = {k: v for k, v in mapped_fields(labels, conf).items() if k in known}
    data.update(title=_title(payload, labels), description=_description(payload))
    return service.create(type_name, data)


def _is_open(service: RecordService, record: Record | None) -> bool:
    if record is None:
        return False
    rt = service.itsm.types.get(record.type)
    return not rt.workflow.state(record.state).final


def _apply(service: RecordService, payload: Mapping[str, Any],
           conf: Mapping[str, Any]) -> dict[str, Any]:
    session = service.session
    key = storage_key(payload["groupKey"])
    fingerprint = digest(payload)
    row = session.scalar(select(AlertIncident).where(AlertIncident.group_key == key))
    record = session.get(Record, row.record_id) if row and row.record_id else None
    if payload["status"] == "firing":
        if row is None:
            row = AlertIncident(group_key=key, status="firing", payload_hash=fingerprint,
                                created_at=utcnow(), updated_at=utcnow())
            # Claimed first, before the record: a concurrent delivery of the group fails
            # here on the unique key, its transaction is rolled back and it retries. (No
            # savepoint: on SQLite a savepoint opening the transaction commits on release.)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise _Retry() from None
            record = _create(service, payload, conf)
            row.record_id = record.id
            return _result("created", record)
        if row.status == "firing" and _is_open(service, record):
            if row.payload_hash == fingerprint:
                return _result("unchanged", record)
            _claim(service, row, payload_hash=fingerprint)
            service.comment(record, _firing_note(payload), public=False)
            return _result("updated", record)
        # Resolved before, or its record closed: the group firing again is a new record.
        _claim(service, row, status="firing", payload_hash=fingerprint)
        record = _create(service, payload, conf)
        session.execute(update(AlertIncident).where(AlertIncident.id == row.id)
                        .values(record_id=record.id)
                        .execution_options(synchronize_session=False))
        return _result("created", record)
    # resolved
    if row is None or record is None:
        return _result("ignored", None)
    if row.status == "resolved":
        return _result("unchanged", record)
    _claim(service, row, status="resolved", payload_hash=fingerprint)
    if not _is_open(service, record):
        return _result("unchanged", record)
    note = _resolved_note(payload)
    service.comment(record, note, public=False)
    if conf.get("resolve_on_resolved"):
        rt = service.itsm.types.get(record.type)
        name = conf.get("resolve_transition") or "resolve"
        transition = next((t for t in rt.workflow.from_state(record.state)
                           if t.name == name), None)
        if transition is not None:
            wanted = {"resolution_code": conf.get("resolution_code") or "solved",
                      "resolution_notes": note[:20_000]}
            data = {k: v for k, v in wanted.items() if k in transition.settable}
            service.transition(record, name, data)
            return _result("resolved", record)
    return _result("updated", record)
