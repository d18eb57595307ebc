"""Export a whole install to one file and import it into a new, empty database.

The file is a zip archive:

- ``manifest.json``: format, itsm version, source back end, the applied migration
  revisions, and for every table its columns (name and kind) and row count;
- ``tables/<table>.jsonl``: one JSON array per row, values in the manifest's column order;
- ``files/<storage key>``: every attachment's content.

Export reads every table the database holds — the core's, every plugin's (enabled,
disabled or no longer installed) — so a new plugin is covered without any change here.
Only what the database derives by itself is left out (the full-text index of records,
``record_search`` on SQLite and PostgreSQL, rebuilt by its triggers on import).

Import builds the schema at exactly the exported revisions, loads the rows in foreign
key order, puts every attachment back and moves PostgreSQL's id sequences past the
imported ids. It refuses a database that holds any table: a restore never mixes with
existing data. Export from one back end and import into another (SQLite to PostgreSQL)
is the supported migration path between them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sqlite3
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import JSON, Connection, MetaData, Table, and_, func, inspect, select, text
from sqlalchemy.exc import SAWarning, SQLAlchemyError

from itsm import __version__
from itsm.core import inputs, migrate
from itsm.core.errors import ItsmError

if TYPE_CHECKING:
    from itsm.core.state import Itsm

log = logging.getLogger("itsm.exchange")

FORMAT = "itsm.export/1"
MANIFEST = "manifest.json"
VERSION_TABLE = "alembic_version"  # rebuilt by the migrations, listed in the manifest
ATTACHMENT_TABLE = "attachment"
BATCH = 500

Progress = Callable[[str, int], None]  # (table or "files", rows or files just done)


class ExchangeError(ItsmError):
    code = "exchange"


# -- values ----------------------------------------------------------------------------------


def column_kind(column) -> str:
    """How a column's values are written in JSON: as they are, or as text to convert back."""
    if isinstance(column.type, JSON):
        return "json"
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return "value"
    for kind, cls in (("datetime", datetime), ("date", date), ("time", time),
                      ("interval", timedelta), ("decimal", Decimal), ("bytes", bytes)):
        if issubclass(python_type, cls):
            return kind
    return "value"


def encode(value: Any, kind: str) -> Any:
    if value is None or kind in ("json", "value"):
        return value
    if kind in ("datetime", "date", "time"):
        return value.isoformat()
    if kind == "interval":
        return value.total_seconds()
    if kind == "decimal":
        return str(value)
    return base64.b64encode(bytes(value)).decode("ascii")


def decode(value: Any, kind: str) -> Any:
    if value is None or kind in ("json", "value"):
        return value
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "time":
        return time.fromisoformat(value)
    if kind == "interval":
        return timedelta(seconds=value)
    if kind == "decimal":
        return Decimal(value)
    return base64.b64decode(value)


# -- which tables --------------------------------------------------------------------------


# PostgreSQL's stored full-text documents (core_0006) and their words (core_0007), filled
# by triggers on ``record``.
PG_DERIVED = frozenset({"record_search", "record_search_word"})


def derived_tables(connection: Connection) -> set[str]:
    """Tables the database maintains by itself: SQLite virtual tables and their shadows,
    PostgreSQL's full-text documents."""
    if connection.dialect.name == "postgresql":
        return set(PG_DERIVED)
    if connection.dialect.name != "sqlite":
        return set()
    virtual = [name for (name,) in connection.execute(text(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%'"))]
    names = set(inspect(connection).get_table_names())
    return set(virtual) | {n for n in names for v in virtual if n.startswith(f"{v}_")}


def reflect(connection: Connection) -> tuple[MetaData, list[Table]]:
    """Every data table of the database, parents before the tables that refer to them."""
    skip = derived_tables(connection)
    names = [n for n in inspect(connection).get_table_names() if n not in skip]
    meta = MetaData()
    with warnings.catch_warnings():  # expression indexes: not needed to copy rows
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        meta.reflect(connection, only=names)
    return meta, [t for t in meta.sorted_tables if t.name not in skip]


def _pk_or_all(table: Table) -> list:
    return list(table.primary_key.columns) or list(table.columns)


def rows_of(connection: Connection, table: Table) -> Iterator[tuple]:
    """The rows of ``table`` in primary key order, streamed."""
    result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(
        select(table).order_by(*_pk_or_all(table)))
    yield from result


# -- export --------------------------------------------------------------------------------


def export(itsm: Itsm, target: Path | IO[bytes], progress: Progress | None = None) -> dict:
    """Write the whole install to ``target``; return the manifest.

    The rows come from one consistent snapshot while the install keeps running: a
    repeatable-read transaction on a server, SQLite's online backup of the file.
    """
    database = itsm.engine.url.database
    if itsm.engine.dialect.name == "sqlite" and database and database != ":memory:":
        return _export_sqlite_copy(itsm, Path(database), target, progress)
    with itsm.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            return _export(itsm, connection, target, progress)


def _export_sqlite_copy(itsm: Itsm, database: Path, target, progress) -> dict:
    from itsm.core.database import make_engine

    with tempfile.TemporaryDirectory(prefix=".itsm-export-", dir=database.parent) as folder:
        copy = Path(folder) / "snapshot.db"
        with closing(sqlite3.connect(database)) as live, closing(sqlite3.connect(copy)) as dst:
            live.backup(dst)
        engine = make_engine(f"sqlite:///{copy}")
        try:
            with engine.connect() as connection:
                return _export(itsm, connection, target, progress)
        finally:
            engine.dispose()


def _export(itsm: Itsm, connection: Connection, target, progress: Progress | None) -> dict:
    meta, tables = reflect(connection)
    if VERSION_TABLE not in meta.tables:
        raise ExchangeError("the database has no itsm schema: nothing to export "
                            "(is ITSM_DATABASE_URL right?)")
    revisions = sorted(connection.scalars(select(meta.tables[VERSION_TABLE].c.version_num)))
    manifest: dict[str, Any] = {
        "format": FORMAT, "itsm": __version__, "backend": connection.dialect.name,
        "created_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "revisions": revisions, "tables": [], "files": 0, "missing_files": []}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED,
                         allowZip64=True) as archive:
        for table in tables:
            if table.name == VERSION_TABLE:
                continue
            kinds = [column_kind(c) for c in table.columns]
            count = 0
            with archive.open(f"tables/{table.name}.jsonl", "w", force_zip64=True) as raw:
                out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
                for row in rows_of(connection, table):
                    values = [encode(v, k) for v, k in zip(row, kinds, strict=True)]
                    out.write(json.dumps(values, ensure_ascii=False, separators=(",", ":")))
                    out.write("\n")
                    count += 1
                    if progress and count % BATCH == 0:
                        progress(table.name, BATCH)
                out.flush()
                out.detach()
            if progress and count % BATCH:
                progress(table.name, count % BATCH)
            manifest["tables"].append({
                "name": table.name, "rows": count,
                "columns": [{"name": c.name, "kind": k} for c, k in zip(table.columns, kinds,
                                                                         strict=True)]})
        if ATTACHMENT_TABLE in meta.tables:
            _export_files(itsm, connection, meta.tables[ATTACHMENT_TABLE], archive, manifest,
                          progress)
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _export_files(itsm: Itsm, connection: Connection, table: Table, archive, manifest,
                  progress: Progress | None) -> None:
    keys = connection.scalars(select(table.c.storage_key).distinct()
                              .order_by(table.c.storage_key)).all()
    for key in keys:
        try:
            source = itsm.attachments.open(key)
        except ItsmError:
            log.warning("attachment file %s is missing from the store; exported without it",
                        key)
            manifest["missing_files"].append(key)
            continue
        with source, archive.open(f"files/{key}", "w", force_zip64=True) as out:
            while chunk := source.read(1 << 16):
                out.write(chunk)
        manifest["files"] += 1
        if progress:
            progress("files", 1)


# -- import --------------------------------------------------------------------------------


def read_manifest(archive: zipfile.ZipFile) -> dict:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError):
        raise ExchangeError("the file is not an itsm export (no manifest.json)") from None
    if manifest.get("format") != FORMAT:
        raise ExchangeError(f"the file's format {manifest.get('format')!r} is not "
                            f"{FORMAT!r}: export it again with this version of itsm")
    return manifest


def open_export(source: Path | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExchangeError(f"the file cannot be read as an itsm export: {exc}") from None


def refuse_non_empty(itsm: Itsm) -> None:
    """A restore goes into a new, empty database only: never mixed with existing data."""
    names = sorted(inspect(itsm.engine).get_table_names())
    if names:
        url = itsm.engine.url.render_as_string(hide_password=True)
        raise ExchangeError(f"the database {url} is not empty ({len(names)} tables, e.g. "
                            f"{names[0]!r}): import only into a new, empty database")


def import_(itsm: Itsm, source: Path | IO[bytes], progress: Progress | None = None) -> dict:
    """Load an export into this install's empty database; return its manifest."""
    with open_export(source) as archive:
        manifest = read_manifest(archive)
        refuse_non_empty(itsm)
        _import_files(itsm, archive, manifest, progress)
        try:
            with itsm.engine.begin() as connection:
                _build_schema(itsm, connection, manifest)
                _load_rows(connection, archive, manifest, progress)
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ExchangeError(f"the import failed and was rolled back: {first}") from None
    itsm.refresh_plugins(force=True)
    return manifest


def _import_files(itsm: Itsm, archive: zipfile.ZipFile, manifest: dict,
                  progress: Progress | None) -> None:
    """Put every attachment back; a content-addressed store gives each its old key."""
    limit = 1 << 62
    for name in archive.namelist():
        if not name.startswith("files/") or name.endswith("/"):
            continue
        key = name.removeprefix("files/")
        with archive.open(name) as stream:
            stored, _, _ = itsm.attachments.put(stream, limit=limit)
        if stored != key:
            raise ExchangeError(f"the attachment store gave {stored!r} for file {key!r}: "
                                "import needs a store that keys files by content")
        if progress:
            progress("files", 1)


def _build_schema(itsm: Itsm, connection: Connection, manifest: dict) -> None:
    """The schema at exactly the exported revisions, plus plugins' revision-less tables."""
    try:
        migrate.upgrade_to(itsm, connection, manifest["revisions"])
    except ItsmError:
        raise
    except Exception as exc:  # alembic raises several types for an unknown revision
        raise ExchangeError(f"the export's schema ({', '.join(manifest['revisions'])}) "
                            f"cannot be built here: {exc} (install the plugins it holds "
                            "data of, at least at the exported version)") from None
    wanted = {t["name"] for t in manifest["tables"]}
    existing = set(inspect(connection).get_table_names())
    for info in itsm.host.plugins.values():
        found = migrate.plugin_migrations(info) if info.usable else None
        for table in (found.tables if found else ()):
            if table.name in wanted and table.name not in existing:
                table.create(connection)
    missing = sorted(wanted - set(inspect(connection).get_table_names()))
    if missing:
        raise ExchangeError(f"the export holds tables no installed plugin creates "
                            f"({', '.join(missing)}): install the plugins they belong to")


def _load_rows(connection: Connection, archive: zipfile.ZipFile, manifest: dict,
               progress: Progress | None) -> None:
    described = {t["name"]: t for t in manifest["tables"]}
    meta, tables = reflect(connection)
    tables = [t for t in tables if t.name in described]
    # What the migrations wrote themselves (seed rows) is replaced by the exported state.
    for table in reversed(tables):
        connection.execute(table.delete())
    loaded: set[str] = set()
    later: list[tuple[Table, list[str], list[dict]]] = []
    for table in tables:
        columns = [c["name"] for c in described[table.name]["columns"]]
        unknown = [c for c in columns if c not in table.c]
        if unknown:
            raise ExchangeError(f"table {table.name!r} of the export has columns the schema "
                                f"lacks: {', '.join(unknown)}")
        # References to rows not loaded yet (the table itself, or a cycle) are set after.
        deferred = sorted({fk.parent.name for fk in table.foreign_keys
                           if fk.column.table.name not in loaded and fk.parent.name in columns
                           and fk.parent.nullable})
        fixes = _load_table(connection, archive, table, described[table.name], deferred,
                            progress)
        if fixes:
            later.append((table, deferred, fixes))
        loaded.add(table.name)
    for table, deferred, fixes in later:
        keys = _pk_or_all(table)
        for fix in fixes:
            where = and_(*(c == fix[c.name] for c in keys))
            connection.execute(table.update().where(where).values(
                {name: fix[name] for name in deferred}))
    fix_sequences(connection, tables)


def _load_table(connection: Connection, archive: zipfile.ZipFile, table: Table,
                described: dict, deferred: list[str], progress: Progress | None) -> list[dict]:
    columns = [c["name"] for c in described["columns"]]
    kinds = [c["kind"] for c in described["columns"]]
    keys = [c.name for c in _pk_or_all(table)]
    fixes: list[dict] = []
    batch: list[dict] = []

    def flush() -> None:
        if batch:
            connection.execute(table.insert(), batch)
            if progress:
                progress(table.name, len(batch))
            batch.clear()

    with archive.open(f"tables/{table.name}.jsonl") as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
            values = _gated(table.name, number, columns, line)
            row = {c: decode(v, k) for c, v, k in zip(columns, values, kinds, strict=True)}
            if deferred and any(row[name] is not None for name in deferred):
                fixes.append({name: row[name] for name in [*keys, *deferred]})
                row.update(dict.fromkeys(deferred))
            batch.append(row)
            if len(batch) >= BATCH:
                flush()
    flush()
    return fixes


def _gated(table: str, number: int, columns: list[str], line: str) -> list:
    """One row of a table's file, refused when the input gate would refuse it
    (:mod:`itsm.core.inputs`): a NUL character that SQLite stored, say, would fail the
    whole restore on PostgreSQL with SQL in the message. The text is not normalised: a
    restore gives back what was exported, byte for byte."""
    where = f"tables/{table}.jsonl line {number}"
    try:
        inputs.check_json_depth(line, "row")
        values = json.loads(line)
        for column, value in zip(columns, values, strict=False):
            if isinstance(value, str | list | dict):
                inputs.check_tree(value, column)
    except inputs.InputError as exc:
        raise ExchangeError(f"{where}: {exc.message}: correct it in the source database and "
                            "export again") from None
    except ValueError:
        raise ExchangeError(f"{where}: not valid JSON; the export is damaged") from None
    return values


def fix_sequences(connection: Connection, tables: list[Table]) -> None:
    """Move each PostgreSQL id sequence past the largest imported id.

    Rows were inserted with their ids, which leaves the sequences at their start; the
    next new record would collide. SQLite and MariaDB follow explicit ids by themselves.
    """
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        columns = list(table.primary_key.columns)
        if len(columns) != 1 or column_kind(columns[0]) != "value":
            continue
        for column in columns:
            try:
                if column.type.python_type is not int:
                    continue
            except NotImplementedError:
                continue
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            top = select(func.max(column)).scalar_subquery()
            connection.execute(select(func.setval(sequence, func.coalesce(top, 0) + 1, False)))


def count_rows(manifest: dict) -> int:
    return sum(t["rows"] for t in manifest["tables"])
