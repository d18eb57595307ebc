"""Import and reconcile CIs by a stable external key, from CSV, JSON and Ansible's
inventory (``ansible-inventory --list``): created, updated, unchanged and retired counts,
a dry run, and progress for the command line.

A CI of the import's ``source`` that the import no longer names is retired, never
deleted: its history, relations and the references other records hold stay valid.
New CIs and their history rows are written in batches of one statement each, which is
what makes 100,000 CIs an affair of seconds (bench/cmdb_graph.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import marshmallow
from sqlalchemy import bindparam, delete, insert, select, update

from itsm.plugin import Event, ItsmError, RecordService, ValidationError, messages_of, utcnow
from itsm.plugins.cmdb import graph, kinds
from itsm.plugins.cmdb import service as cmdb
from itsm.plugins.cmdb.models import (
    LIFECYCLE,
    RELATION_KINDS,
    CiAgency,
    CiHistory,
    ConfigItem,
    Relation,
)

BATCH = 2000
STANDARD = ("key", "external_key", "name", "type", "lifecycle", "owner", "support_group",
            "location", "agency", "used_by", "service")
# Host variables that hold credentials are never copied into the CMDB.
SECRET_WORDS = ("pass", "secret", "token", "private_key", "vault")
FORMATS = ("csv", "json", "ansible")


@dataclass
class Report:
    """What an import did (or, in a dry run, would do)."""

    source: str
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    failed: int = 0
    relations_added: int = 0
    relations_removed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "source", "dry_run", "created", "updated", "unchanged", "retired", "failed",
            "relations_added", "relations_removed")} | {"errors": self.errors[:100]}


# -- parsing -------------------------------------------------------------------------------


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").replace(";", ",").split(",") if v.strip()]


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    """A CSV or JSON item as :class:`~itsm.plugins.cmdb.service.CiIn` data: the standard
    columns by name, the others (or ``attributes``) as the type's attributes."""
    out: dict[str, Any] = {}
    attributes = dict(raw.get("attributes") or {}) if isinstance(raw.get("attributes"),
                                                                  dict) else {}
    for key, value in raw.items():
        if key in ("attributes",) or key is None:
            continue
        if key in STANDARD:
            out[key] = value
        elif value not in ("", None):
            attributes[key.removeprefix("attr.")] = value
    out["external_key"] = str(out.pop("key", None) or out.get("external_key") or "").strip()
    out["used_by"] = _split(out.get("used_by"))
    for name in ("owner", "support_group", "agency", "service"):
        if out.get(name) in ("", None):
            out[name] = None
    if out.get("lifecycle") in ("", None):
        out.pop("lifecycle", None)
    out["attributes"] = attributes
    return out


def read_csv(text: str) -> tuple[list[dict[str, Any]], None]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise ValidationError("not a CMDB CSV", fields={"file": [
                "the first line names the columns: key,type,name,... (see docs)"]})
        return [_row(r) for r in reader], None
    except csv.Error as exc:
        raise ValidationError(f"not a readable CSV (line {reader.line_num}): {exc}",
                              fields={"file": [str(exc)]}) from None


def read_json(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError("not JSON", fields={"file": [f"not valid JSON: {exc}"]}) from None
    if isinstance(data, list):
        data = {"items": data}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValidationError("not a CMDB JSON document", fields={"file": [
            'give {"items": [...], "relations": [...]} or a list of items']})
    relations = data.get("relations")
    if relations is not None and not isinstance(relations, list):
        raise ValidationError("bad relations", fields={"relations": ["a list"]})
    return [_row(i) if isinstance(i, dict) else {"bad": i} for i in data["items"]], relations


def ansible_inventory_command() -> str:
    """The ``ansible-inventory`` of this Python's environment, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("ansible-inventory")
    if found is None:
        raise ItsmError("ansible-inventory not found: install ansible-core, or pass the "
                        "output of `ansible-inventory -i FILE --list` instead")
    return found


def run_ansible_inventory(path: str) -> str:
    """``ansible-inventory -i path --list``: the inventory as JSON."""
    result = subprocess.run([ansible_inventory_command(), "-i", path, "--list"],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ItsmError(f"ansible-inventory failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(values.items())
            if not any(word in k.lower() for word in SECRET_WORDS)}


def read_ansible(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The output of ``ansible-inventory --list``: a server per host (its facts as
    attributes, the other host variables kept, credentials dropped), a host group per
    group, and "part of" relations from hosts and child groups to their groups."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValidationError("not ansible-inventory output", fields={"file": [
            "give the JSON of `ansible-inventory -i FILE --list`"]}) from None
    if not isinstance(data, dict) or not isinstance(data.get("_meta", {}), dict):
        raise ValidationError("not ansible-inventory output", fields={"file": ["no _meta"]})
    hostvars = data.get("_meta", {}).get("hostvars", {}) or {}
    groups: dict[str, list[str]] = {}
    items, relations = [], []
    for name, group in data.items():
        if name == "_meta" or not isinstance(group, dict):
            continue
        for host in group.get("hosts", []) or []:
            groups.setdefault(str(host), []).append(name)
        if name in ("all", "ungrouped"):
            continue
        items.append({"external_key": f"ansible:group:{name}", "name": name,
                      "type": "host_group", "used_by": [], "owner": None,
                      "support_group": None, "agency": None, "service": None,
                      "attributes": {"groupvars": _clean(group.get("vars") or {})}
                      if group.get("vars") else {}})
        for child in group.get("children", []) or []:
            if child not in ("all", "ungrouped"):
                relations.append({"source": f"ansible:group:{child}", "kind": "part_of",
                                  "target": f"ansible:group:{name}"})
    for host in sorted(set(hostvars) | set(groups)):
        variables = dict(hostvars.get(host) or {})
        member_of = sorted(g for g in groups.get(host, []) if g not in ("all", "ungrouped"))
        items.append({"external_key": f"ansible:host:{host}", "name": host, "type": "server",
                      "used_by": [], "owner": None, "support_group": None, "agency": None,
                      "service": None, "attributes": _host_attributes(host, variables,
                                                                      member_of)})
        relations.extend({"source": f"ansible:host:{host}", "kind": "part_of",
                          "target": f"ansible:group:{g}"} for g in member_of)
    return items, relations


def _host_attributes(host: str, variables: dict[str, Any], groups: list[str]) -> dict:
    facts = variables.pop("ansible_facts", None) or {}
    get = lambda name: variables.get(f"ansible_{name}", facts.get(name))  # noqa: E731
    out: dict[str, Any] = {"hostname": str(get("hostname") or get("host") or host)}
    if get("host"):
        out["ip_address"] = str(get("host"))
    if get("default_ipv4") and isinstance(get("default_ipv4"), dict):
        out["ip_address"] = str(get("default_ipv4").get("address", out.get("ip_address")))
    if get("distribution"):
        out["os"] = " ".join(str(x) for x in (get("distribution"),
                                              get("distribution_version")) if x)
    if isinstance(get("processor_vcpus"), int):
        out["cpu_count"] = get("processor_vcpus")
    if isinstance(get("memtotal_mb"), int | float):
        out["memory_gb"] = round(get("memtotal_mb") / 1024, 1)
    if get("virtualization_role"):
        out["virtual"] = get("virtualization_role") == "guest"
    if groups:
        out["groups"] = groups
    rest = _clean({k: v for k, v in variables.items() if not k.startswith("ansible_")})
    if rest:
        out["hostvars"] = rest
    return out


def parse(fmt: str, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    if fmt == "csv":
        return read_csv(text)
    if fmt == "json":
        return read_json(text)
    if fmt == "ansible":
        return read_ansible(text)
    raise ValidationError("unknown format", fields={"format": [f"one of {', '.join(FORMATS)}"]})


# -- reconciling ---------------------------------------------------------------------------


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, datetime):  # stored as naive UTC, as UTCDateTime does
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def insert_rows(session: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` into ``table``: PostgreSQL's COPY through psycopg when that is the
    driver (an import's rows arrive in one stream, several times faster than a pipelined
    executemany), else an executemany. Column names come from our own table, never from
    input, and are quoted by psycopg's ``sql`` composition."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "psycopg":
        session.execute(insert(table), rows)
        return
    from psycopg import sql

    columns = [c.name for c in table.columns if c.name in rows[0]]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_copy_value(row[c]) for c in columns])


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    for start in range(0, len(rows), BATCH):
        yield list(enumerate(rows[start:start + BATCH], start=start + 1))


def reconcile(service: RecordService, rows: list[dict[str, Any]], source: str, *,
              relations: Iterable[dict[str, Any]] | None = None, dry_run: bool = False,
              retire_missing: bool = True,
              progress: Callable[[int], None] | None = None) -> Report:
    """Bring the CIs of ``source`` in line with ``rows`` (and ``relations`` by external
    key, when given); in a dry run everything is done and then rolled back."""
    service.require(cmdb.ADMIN)
    session = service.session
    report = Report(source=source, dry_run=dry_run)
    nested = session.begin_nested()
    resolver = cmdb.Resolver(session)
    schema = cmdb.CiIn()
    service_types = set(cmdb.service_type_keys(session))
    seen: dict[str, int] = {}
    for batch in _batches(rows):
        _reconcile_batch(service, resolver, schema, batch, source, report, seen,
                         service_types)
        if progress:
            progress(len(batch))
    retired = _retire_missing(service, source, seen, report, service_types) \
        if retire_missing else []
    if relations is not None:
        _reconcile_relations(service, list(relations), seen, report, retired)
    session.flush()
    if dry_run:
        nested.rollback()
    else:
        _announce_import(service, report)
        nested.commit()
    # The bulk writes went past the session: the CIs it holds must be read again, and
    # impacts it remembers computed again (other objects, such as the events written,
    # are left as they are).
    for held in list(session.identity_map.values()):
        if isinstance(held, ConfigItem | CiAgency | CiHistory):
            session.expire(held)
    kinds.forget_impacts(session)
    return report


def _announce_import(service: RecordService, report: Report) -> None:
    """One outbox event for the whole import (its counts), in its transaction: a
    subscriber learns of 100,000 CIs from one event, not 100,000."""
    event = Event(name="cmdb.imported", record_id=None, actor_id=service.actor.id,
                  payload={"actor": service.actor.email, "public": False,
                           **{k: v for k, v in report.to_dict().items() if k != "errors"}})
    service.session.add(event)
    service.session.info.setdefault("itsm_events", []).append(event)


_TEXT_LIMITS = {"name": (1, 200), "type": (1, 64), "owner": (0, 254),
                "support_group": (0, 100), "agency": (0, 32), "external_key": (1, 200),
                "service": (0, 200), "location": (0, 200)}
_OPTIONAL = ("owner", "support_group", "agency", "external_key", "service")


def _plain(raw: Any) -> dict[str, Any] | None:
    """A row that plainly satisfies :class:`~itsm.plugins.cmdb.service.CiIn`, loaded
    without marshmallow; None for anything else, which the schema then loads (and words
    the messages). A schema load is most of an import's time on a busy machine: most
    rows are plain, and the check is the schema's own limits."""
    if not isinstance(raw, dict) or set(raw) - set(_TEXT_LIMITS) - {
            "lifecycle", "used_by", "attributes"}:
        return None
    out: dict[str, Any] = {}
    for name, (low, high) in _TEXT_LIMITS.items():
        value = raw.get(name)
        if value is None and (name in _OPTIONAL or name == "location"):
            out[name] = "" if name == "location" else None
            continue
        if not isinstance(value, str) or not low <= len(value) <= high:
            return None
        out[name] = value
    lifecycle = raw.get("lifecycle", "in_use")
    used = raw.get("used_by", [])
    attributes = raw.get("attributes", {})
    if lifecycle not in LIFECYCLE or not isinstance(used, list) or len(used) > 200 \
            or not all(isinstance(u, str) and 1 <= len(u) <= 32 for u in used) \
            or not isinstance(attributes, dict) \
            or not all(isinstance(k, str) and len(k) <= 64 for k in attributes):
        return None
    out.update(lifecycle=lifecycle, used_by=list(used), attributes=dict(attributes))
    return out


def _fail(report: Report, line: int, key: str, fields: dict[str, Any]) -> None:
    report.failed += 1
    if len(report.errors) < 100:
        report.errors.append({"row": line, "key": key, "fields": fields})


_CURRENT = (ConfigItem.id, ConfigItem.source, ConfigItem.version, ConfigItem.merged_into_id,
            *(getattr(ConfigItem, name) for name in cmdb.SNAPSHOT_FIELDS))


def _used_by(session: Any, ci_ids: list[int]) -> dict[int, list[int]]:
    """The agencies using each of ``ci_ids``, one query per 5,000."""
    out: dict[int, list[int]] = {}
    for start in range(0, len(ci_ids), graph.CHUNK):
        for ci_id, agency_id in session.connection().execute(
                select(CiAgency.ci_id, CiAgency.agency_id).where(graph.among(
                    session, CiAgency.ci_id, ci_ids[start:start + graph.CHUNK]))):
            out.setdefault(ci_id, []).append(agency_id)
    return {k: sorted(v) for k, v in out.items()}


@dataclass
class _Writes:
    """A batch's writes, sent as one statement each: updated CIs, their history, and
    the agencies that start or stop using them."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    links_added: list[dict[str, Any]] = field(default_factory=list)
    links_removed: list[dict[str, Any]] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)

    def flush(self, session: Any, source: str) -> None:
        table = ConfigItem.__table__
        connection = session.connection()
        if self.updates:
            columns = [c for c in self.updates[0] if c != "ci_id"]
            connection.execute(update(table).where(table.c.id == bindparam("ci_id")).values(
                {c: bindparam(c) for c in columns}), self.updates)
        if self.sources:  # the same CI, now named by this import's source
            for start in range(0, len(self.sources), graph.CHUNK):
                connection.execute(update(table).where(graph.among(
                    session, table.c.id, self.sources[start:start + graph.CHUNK])).values(
                    source=source))
        if self.links_removed:
            links = CiAgency.__table__
            connection.execute(delete(links).where(
                links.c.ci_id == bindparam("ci"), links.c.agency_id == bindparam("agency")),
                self.links_removed)
        insert_rows(session, CiAgency.__table__, self.links_added)
        insert_rows(session, CiHistory.__table__, self.history)


def _history(service: RecordService, ci_id: int, action: str, changes: dict[str, Any],
             whole: dict[str, Any], note: str, at: datetime) -> dict[str, Any]:
    return {"ci_id": ci_id, "at": at, "actor_id": service.actor.id,
            "actor": service.actor.email, "action": action, "changes": changes,
            "snapshot": whole, "note": note}


def _update_plainly(service: RecordService, writes: _Writes, row: Any,
                    before: dict[str, Any], after: dict[str, Any], note: str,
                    at: datetime) -> None:
    """Queue the writes of an updated CI that is neither a service, renamed nor retired
    (those go one by one through the service layer, which tells the other plugins)."""
    changes = {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}
    writes.updates.append({"ci_id": row.id, **{name: after[name] for name in (
        "type_key", "name", "lifecycle", "owner_id", "support_group_id", "location",
        "agency_id", "attributes", "external_key")}, "version": row.version + 1,
        "updated_at": at, "source": before["_source"]})
    writes.history.append(_history(service, row.id, "updated", changes,
                                   {k: v for k, v in after.items() if k != "_source"},
                                   note, at))
    old, new = set(before["used_by"]), set(after["used_by"])
    writes.links_removed.extend({"ci": row.id, "agency": a} for a in sorted(old - new))
    writes.links_added.extend({"ci_id": row.id, "agency_id": a} for a in sorted(new - old))


def _reconcile_batch(service: RecordService, resolver: cmdb.Resolver, schema: Any,
                     batch: list[tuple[int, dict[str, Any]]], source: str, report: Report,
                     seen: dict[str, int], service_types: set[str]) -> None:
    """Validate a batch's rows (a message per bad row, by its number), then compare
    them with the CIs of the same keys, read in one query: new CIs are inserted in bulk,
    changed ones updated in bulk, unchanged ones left alone."""
    session = service.session
    wanted: dict[str, tuple[dict[str, Any], list[int], str | None]] = {}
    for line, raw in batch:
        key = str(raw.get("external_key") or "")[:200] if isinstance(raw, dict) else ""
        try:
            if not key:
                raise ValidationError("no key", fields={"key": ["every row needs a key"]})
            if key in seen or key in wanted:
                raise ValidationError("key twice", fields={"key": ["given twice"]})
            loaded = _plain(raw) or schema.load(raw)
            values, agencies = resolver.values(loaded)
        except marshmallow.ValidationError as exc:
            _fail(report, line, key, messages_of(exc))
            continue
        except ValidationError as exc:
            _fail(report, line, key, exc.fields or {"_schema": [exc.message]})
            continue
        wanted[key] = (values, agencies, loaded.get("service"))
    if not wanted:
        return
    existing = {row.external_key: row for row in session.connection().execute(
        select(*_CURRENT).where(graph.among(session, ConfigItem.external_key, list(wanted))))}
    agencies_of = _used_by(session, [row.id for row in existing.values()])
    new, one_by_one = [], []
    writes = _Writes()
    now = utcnow()
    note = f"import {source}"
    for key, (values, agencies, given_service) in wanted.items():
        row = existing.get(key)
        if row is None:
            new.append((key, values, agencies, given_service))
            continue
        seen[key] = row.id
        before = cmdb.snapshot(row, agencies_of.get(row.id, []))
        after = {**before, **values, "used_by": agencies}
        if after == before and not given_service:
            report.unchanged += 1
            if row.source != source:
                writes.sources.append(row.id)
            continue
        report.updated += 1
        if given_service or {before["type_key"], after["type_key"]} & service_types \
                or after["name"] != before["name"] or after["lifecycle"] == "retired":
            one_by_one.append((row.id, values, agencies, given_service))
        else:
            _update_plainly(service, writes, row, {**before, "_source": source},
                            {**after, "_source": source}, note, now)
    writes.flush(session, source)
    for ci in session.scalars(select(ConfigItem).where(
            ConfigItem.id.in_([ci_id for ci_id, *_rest in one_by_one]))):
        _ci_id, values, agencies, given_service = next(
            entry for entry in one_by_one if entry[0] == ci.id)
        ci.source = source
        cmdb.apply_values(service, ci, values, agencies, service_value=given_service,
                          note=note)
    if new:
        _create(service, new, source, report, seen, service_types)


def _create(service: RecordService,
            new: list[tuple[str, dict[str, Any], list[int], str | None]], source: str,
            report: Report, seen: dict[str, int], service_types: set[str]) -> None:
    """One COPY (or INSERT) for the CIs, one for their agencies, one for their history
    rows; a business service gets its stable service id before its history is taken."""
    session = service.session
    connection = session.connection()
    now = utcnow()
    rows = [{**values, "source": source, "version": 1, "created_at": now, "updated_at": now,
             "attributes": values.get("attributes", {})} for _key, values, _a, _s in new]
    # A plain COPY, then the ids by key in one SELECT: an INSERT ... RETURNING of 2,000
    # rows is one huge statement the driver parses slowly.
    insert_rows(session, ConfigItem.__table__, rows)
    by_key = dict(connection.execute(select(ConfigItem.external_key, ConfigItem.id).where(
        graph.among(session, ConfigItem.external_key, [key for key, *_rest in new]))).all())
    links, history = [], []
    table = ConfigItem.__table__
    for key, values, agencies, given_service in new:
        ci_id = by_key[key]
        seen[key] = ci_id
        links.extend({"ci_id": ci_id, "agency_id": a} for a in agencies)
        whole = {name: values.get(name) for name in cmdb.SNAPSHOT_FIELDS}
        whole.update(attributes=values.get("attributes", {}), used_by=agencies,
                     service_id=None)
        if values["type_key"] in service_types:
            # One at a time: the next service's check that an id is free sees this one.
            whole["service_id"] = kinds.service_id_for(session, ConfigItem(
                id=ci_id, name=values["name"], service_id=None), given_service)
            connection.execute(update(table).where(table.c.id == ci_id).values(
                service_id=whole["service_id"]))
        elif given_service:
            raise ValidationError("not a service", fields={
                "service": ["only CIs of a service type are a service"]})
        history.append(_history(service, ci_id, "created", {}, whole, f"import {source}",
                                now))
    insert_rows(session, CiAgency.__table__, links)
    insert_rows(session, CiHistory.__table__, history)
    report.created += len(new)


def _retire_missing(service: RecordService, source: str, seen: dict[str, int],
                    report: Report, service_types: set[str]) -> list[int]:
    """Retire the CIs of ``source`` the import no longer names: in bulk, each with its
    history row, and every plugin told (references to it show it retired)."""
    session = service.session
    connection = session.connection()
    stale_ids = [ci_id for ci_id, key in connection.execute(select(
        ConfigItem.id, ConfigItem.external_key).where(
        ConfigItem.source == source, ConfigItem.lifecycle != "retired")) if key not in seen]
    now = utcnow()
    note = f"not in import {source}"
    for start in range(0, len(stale_ids), graph.CHUNK):
        chunk = list(connection.execute(select(*_CURRENT).where(graph.among(
            session, ConfigItem.id, stale_ids[start:start + graph.CHUNK]))))
        agencies_of = _used_by(session, [row.id for row in chunk])
        writes = _Writes()
        services = []
        for row in chunk:
            if row.type_key in service_types:
                services.append(row.id)
                continue
            before = cmdb.snapshot(row, agencies_of.get(row.id, []))
            after = {**before, "lifecycle": "retired"}
            writes.updates.append({"ci_id": row.id, "lifecycle": "retired",
                                   "version": row.version + 1, "updated_at": now})
            writes.history.append(_history(service, row.id, "retired", {
                "lifecycle": [before["lifecycle"], "retired"]}, after, note, now))
        writes.flush(session, source)
        for row in chunk:
            if row.id not in services:
                kinds.announce(session, ConfigItem(
                    id=row.id, name=row.name, lifecycle="retired",
                    merged_into_id=row.merged_into_id, service_id=row.service_id),
                    "retired")
        for ci in session.scalars(select(ConfigItem).where(ConfigItem.id.in_(services))):
            cmdb.apply_values(service, ci, {"lifecycle": "retired"},
                              agencies_of.get(ci.id, []), note=note)
        report.retired += len(chunk)
    return stale_ids


def _reconcile_relations(service: RecordService, relations: list[dict[str, Any]],
                         seen: dict[str, int], report: Report,
                         retired: list[int]) -> None:
    """Add the relations named (by external key) that are missing, and end those that
    start at a CI of the import (or one it retired) and are no longer named."""
    session = service.session
    wanted: set[tuple[int, str, int]] = set()
    missing_keys = {str(r.get(end)) for r in relations if isinstance(r, dict)
                    for end in ("source", "target") if str(r.get(end)) not in seen}
    known = dict(session.execute(select(ConfigItem.external_key, ConfigItem.id).where(
        ConfigItem.external_key.in_(sorted(missing_keys)))).all()) if missing_keys else {}
    for number, r in enumerate(relations, start=1):
        if not isinstance(r, dict):
            _fail(report, number, "", {"relations": ["not an object"]})
            continue
        ids = [seen.get(str(r.get(e))) or known.get(str(r.get(e))) for e in ("source", "target")]
        if r.get("kind") not in RELATION_KINDS or None in ids or ids[0] == ids[1]:
            _fail(report, number, f"{r.get('source')}->{r.get('target')}",
                  {"relations": ["unknown kind or CI, or a CI related to itself"]})
            continue
        wanted.add((ids[0], r["kind"], ids[1]))
    sources = sorted(set(seen.values()) | set(retired))
    current: dict[tuple[int, str, int], Relation] = {}
    for start in range(0, len(sources), 5000):
        for relation in session.scalars(select(Relation).where(
                Relation.source_id.in_(sources[start:start + 5000]),
                Relation.removed_at.is_(None))):
            current[(relation.source_id, relation.kind, relation.target_id)] = relation
    now = utcnow()
    added, history = [], []
    for source_id, kind, target_id in sorted(wanted - set(current)):
        spec = RELATION_KINDS[kind]
        dep, prov = (source_id, target_id) if spec.dependent == "source" else (target_id,
                                                                               source_id)
        added.append({"kind": kind, "source_id": source_id, "target_id": target_id,
                      "dependent_id": dep, "provider_id": prov, "created_at": now})
    for key in sorted(set(current) - wanted):
        current[key].removed_at = now
        history.extend(_relation_history(service, key, "unrelated", now))
    if added:
        insert_rows(session, Relation.__table__, added)
        for row in added:
            history.extend(_relation_history(
                service, (row["source_id"], row["kind"], row["target_id"]), "related", now))
    insert_rows(session, CiHistory.__table__, history)
    report.relations_added += len(added)
    report.relations_removed += len(current) - len(set(current) & wanted)


def _relation_history(service: RecordService, key: tuple[int, str, int], action: str,
                      now: Any) -> list[dict[str, Any]]:
    source_id, kind, target_id = key
    described = {"kind": kind, "source": source_id, "target": target_id}
    change = {"relation": [None, described] if action == "related" else [described, None]}
    spec = RELATION_KINDS[kind]
    return [{"ci_id": ci_id, "at": now, "actor_id": service.actor.id,
             "actor": service.actor.email, "action": action, "changes": change,
             "snapshot": {}, "note": f"{label} #{other}"}
            for ci_id, label, other in ((source_id, spec.label, target_id),
                                        (target_id, spec.inverse, source_id))]


def export(service: RecordService, fmt: str = "json") -> str:
    """Every CI the actor may see, with its relations, as import takes it back."""
    service.require(cmdb.READ)
    session = service.session
    names = cmdb.Names(session)
    query = select(ConfigItem).order_by(ConfigItem.id)
    condition = cmdb.scope(service)
    if condition is not None:
        query = query.where(condition)
    cis = list(session.scalars(query))
    agencies = cmdb.used_by(session, [c.id for c in cis])
    items = []
    for ci in cis:
        d = cmdb.ci_dict(names, cmdb.snapshot(ci, agencies.get(ci.id, [])), ci.id)
        items.append({"key": ci.external_key or f"ci-{ci.id}", "type": d["type"],
                      "name": d["name"], "lifecycle": d["lifecycle"], "owner": d["owner"],
                      "support_group": d["support_group"], "location": d["location"],
                      "agency": (d["agency"] or {}).get("code"),
                      "used_by": [a["code"] for a in d["used_by"]],
                      "attributes": d["attributes"]})
    if fmt == "csv":
        return _csv(items)
    keys = {ci.id: ci.external_key or f"ci-{ci.id}" for ci in cis}
    relations = [{"source": keys[r.source_id], "kind": r.kind, "target": keys[r.target_id]}
                 for r in session.scalars(select(Relation).where(
                     Relation.removed_at.is_(None)).order_by(Relation.id))
                 if r.source_id in keys and r.target_id in keys]
    return json.dumps({"items": items, "relations": relations}, indent=2, default=str)


def _csv(items: list[dict[str, Any]]) -> str:
    attributes = sorted({k for i in items for k in i["attributes"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*STANDARD[:1], *STANDARD[2:10], *attributes])
    for i in items:
        attrs = [json.dumps(v) if isinstance(v, dict | list) else v
                 for v in (i["attributes"].get(a, "") for a in attributes)]
        writer.writerow([i["key"], i["name"], i["type"], i["lifecycle"], i["owner"] or "",
                         i["support_group"] or "", i["location"], i["agency"] or "",
                         ",".join(i["used_by"]), *attrs])
    return out.getvalue()
