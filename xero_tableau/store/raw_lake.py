"""The raw lake: Xero records as received, one folder per tenant x entity x UTC day.

Layout under ``XT_HOME/lake`` (the ``lake`` argument everywhere)::

    tenant=<tenant_id>/raw/<entity_snake>/day=<YYYY-MM-DD>/
        documents.parquet   one row per record (transform.raw.DOCUMENT_SCHEMAS)
        lines.parquet       one row per line, for entities with lines (LINE_SCHEMAS)
        records.json.gz     the raw JSON exactly as received, for audit and replay
        rejected.json       quarantined records with their reasons (only when there are some)
    tenant=<tenant_id>/reference/<entity_snake>.json   snapshot entities (accounts, ...)

Day D of an entity holds every record whose current UpdatedDateUTC falls on UTC day D, so a day
folder is a pure function of Xero's state for that window and is always replaced whole:
:func:`write_day_partition` builds the new folder beside the old one (dot-prefixed, so readers
never see it), fsyncs it, and swaps it in with one atomic directory exchange (Linux
``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, where a crash between them leaves the day
missing until the next write, never half-written). An empty window removes the day's folder.
One writer per partition at a time is assumed (Dagster runs a partition once at a time).

Money in JSON: records may carry ``Decimal`` (``json.loads(parse_float=Decimal)``); they are
written as JSON numbers when the shortest float repr is exactly the decimal (all 2-dp amounts
below 10^13), else as strings, and read back with ``parse_float=Decimal``.

This package must never import dagster.
"""

import ctypes
import errno
import gzip
import json
import os
import re
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xero_tableau.store.lake import atomic_write_bytes, tenant_dir
from xero_tableau.transform.raw import (
    DOCUMENT_SCHEMAS,
    LINE_SCHEMAS,
    TRANSACTIONAL_ENTITIES,
    FlatBatch,
)
from xero_tableau.xero.models import RejectedRecord

__all__ = [
    "REFERENCE_ENTITIES",
    "entity_dir",
    "entity_snake",
    "partition_days",
    "partition_dir",
    "quarantined",
    "read_entity",
    "read_reference",
    "reference_path",
    "write_day_partition",
    "write_reference",
]

REFERENCE_ENTITIES: tuple[str, ...] = (
    "Organisation",
    "Accounts",
    "TrackingCategories",
    "TaxRates",
    "Currencies",
)
"""Snapshot entities stored whole per tenant (no day partitions)."""

DOCUMENTS_FILE = "documents.parquet"
LINES_FILE = "lines.parquet"
RECORDS_FILE = "records.json.gz"
REJECTED_FILE = "rejected.json"

# zstd: ~3x smaller than snappy on UUID-heavy columns and still decodes at GB/s.
_COMPRESSION = "zstd"
_READ_THREADS = 8


def entity_snake(entity: str) -> str:
    """Folder name of an entity: ``BankTransactions`` -> ``bank_transactions``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", entity).lower()


def entity_dir(lake: Path, tenant_id: str, entity: str) -> Path:
    """``lake/tenant=<id>/raw/<entity_snake>``: the parent of an entity's day folders."""
    if entity not in DOCUMENT_SCHEMAS:
        raise ValueError(f"not a day-partitioned Xero entity: {entity!r}")
    return tenant_dir(lake, tenant_id) / "raw" / entity_snake(entity)


def partition_dir(lake: Path, tenant_id: str, entity: str, day: date) -> Path:
    """The folder of one raw partition: ``.../raw/<entity_snake>/day=<YYYY-MM-DD>``."""
    return entity_dir(lake, tenant_id, entity) / f"day={day.isoformat()}"


def partition_days(lake: Path, tenant_id: str, entity: str) -> list[date]:
    """The days that have a partition folder, ascending."""
    return [
        date.fromisoformat(name[4:]) for name in _day_names(entity_dir(lake, tenant_id, entity))
    ]


def _day_names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.startswith("day=") and e.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(names)


# --- JSON with exact money ---------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        as_float = float(value)
        if value.is_finite() and Decimal(repr(as_float)) == value:
            return as_float
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(payload: Any, indent: int | None = None) -> bytes:
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        payload, default=_json_default, indent=indent, separators=separators, ensure_ascii=False
    ).encode()


def _loads(data: bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


# --- atomic folder replacement -----------------------------------------------------------------


def _write_synced(path: Path, data: bytes | pa.Buffer) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _scratch(target: Path, kind: str) -> Path:
    """A hidden sibling of ``target`` (readers skip dot-names)."""
    return target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:12]}"


def _clear_leftovers(target: Path) -> None:
    """Remove scratch folders an interrupted write of this partition left behind."""
    prefix = f".{target.name}."
    try:
        with os.scandir(target.parent) as entries:
            stale = [Path(e.path) for e in entries if e.name.startswith(prefix)]
    except FileNotFoundError:
        return
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _replace_dir(built: Path, target: Path) -> None:
    """Swap the fully written, fsynced folder ``built`` in at ``target``; drop the old one."""
    if target.exists():
        if _exchange(built, target):
            _fsync_dir(target.parent)
            shutil.rmtree(built)  # now holds the old partition
            return
        old = _scratch(target, "old")
        os.rename(target, old)
        os.rename(built, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old)
        return
    os.rename(built, target)
    _fsync_dir(target.parent)


def _remove_dir(target: Path) -> None:
    """Remove a partition folder atomically from readers' point of view (rename, then delete)."""
    if not target.exists():
        return
    gone = _scratch(target, "old")
    os.rename(target, gone)
    _fsync_dir(target.parent)
    shutil.rmtree(gone)


def _parquet_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=_COMPRESSION)
    return sink.getvalue()


def _rejected_payload(rejected: list[RejectedRecord]) -> list[dict[str, Any]]:
    return [{"id": r.record_id, "reason": r.reason, "raw": r.raw} for r in rejected]


def write_day_partition(
    lake: Path,
    tenant_id: str,
    entity: str,
    day: date,
    batch: FlatBatch,
    raw_records: list[dict[str, Any]],
) -> None:
    """Replace the whole (tenant, entity, day) partition with ``batch`` and its raw records.

    Atomic: readers see the old folder or the new one, never a mix. When the window is empty (no
    records at all, none rejected) the day's folder is removed, so re-materializing a partition
    always mirrors Xero's current state. ``batch`` must be :func:`flatten` output of ``entity``.
    """
    target = partition_dir(lake, tenant_id, entity, day)
    _check_batch(entity, batch)
    _clear_leftovers(target)
    if batch.documents.num_rows == 0 and not batch.rejected and not raw_records:
        _remove_dir(target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    built = _scratch(target, "tmp")
    built.mkdir()
    try:
        _write_synced(built / DOCUMENTS_FILE, _parquet_bytes(batch.documents))
        if batch.lines is not None:
            _write_synced(built / LINES_FILE, _parquet_bytes(batch.lines))
        _write_synced(built / RECORDS_FILE, gzip.compress(_dumps(raw_records), 6, mtime=0))
        if batch.rejected:
            _write_synced(built / REJECTED_FILE, _dumps(_rejected_payload(batch.rejected), 1))
        _fsync_dir(built)
        _replace_dir(built, target)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise


def _check_batch(entity: str, batch: FlatBatch) -> None:
    """Refuse a batch whose tables do not have the entity's schema (it would poison reads)."""
    if not batch.documents.schema.equals(DOCUMENT_SCHEMAS[entity]):
        raise ValueError(f"{entity} documents do not match DOCUMENT_SCHEMAS[{entity!r}]")
    line_schema = LINE_SCHEMAS.get(entity)
    if (batch.lines is None) != (line_schema is None) or (
        batch.lines is not None
        and line_schema is not None
        and not batch.lines.schema.equals(line_schema)
    ):
        raise ValueError(f"{entity} lines do not match LINE_SCHEMAS[{entity!r}]")


# --- reading ----------------------------------------------------------------------------------


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table read from disk in the current schema: files written by an older version of the
    connector may lack new columns (filled with nulls) or order them differently."""
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _read_parquet(path: Path, schema: pa.Schema) -> pa.Table:
    return _conform(pq.read_table(path, use_threads=False), schema)


def _read_day(folder: Path, entity: str) -> tuple[pa.Table, pa.Table | None]:
    documents = _read_parquet(folder / DOCUMENTS_FILE, DOCUMENT_SCHEMAS[entity])
    line_schema = LINE_SCHEMAS.get(entity)
    if line_schema is None:
        return documents, None
    return documents, _read_parquet(folder / LINES_FILE, line_schema)


def read_entity(lake: Path, tenant_id: str, entity: str) -> tuple[pa.Table, pa.Table | None]:
    """Every day partition of one entity, concatenated: (documents, lines or None).

    Documents keep every stored version (an id may occur in several days; normalize keeps the
    latest). ``lines.document_row`` is rewritten to index the returned documents table, so a
    line finds its own version's header by position. Days are read in parallel threads
    (parquet decoding releases the GIL).
    """
    folder = entity_dir(lake, tenant_id, entity)
    names = _day_names(folder)
    line_schema = LINE_SCHEMAS.get(entity)
    if not names:
        empty_lines = None if line_schema is None else line_schema.empty_table()
        return DOCUMENT_SCHEMAS[entity].empty_table(), empty_lines
    with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(names))) as pool:
        days = list(pool.map(lambda name: _read_day(folder / name, entity), names))
    documents = pa.concat_tables([d for d, _ in days])
    if line_schema is None:
        return documents, None
    parts = []
    offset = 0
    for docs, lines in days:
        if lines is not None and lines.num_rows:
            if offset:
                index = lines.schema.get_field_index("document_row")
                shifted = pc.add(lines.column(index), pa.scalar(offset, pa.int32()))
                lines = lines.set_column(index, lines.schema.field(index), shifted)
            parts.append(lines)
        offset += docs.num_rows
    lines_table = pa.concat_tables(parts) if parts else line_schema.empty_table()
    return documents, lines_table


# --- quarantine ---------------------------------------------------------------------------------


def quarantined(lake: Path, tenant_id: str) -> list[dict[str, Any]]:
    """Every quarantined record of a tenant: dicts with entity, day, id, reason and raw."""
    out: list[dict[str, Any]] = []
    raw_root = tenant_dir(lake, tenant_id) / "raw"
    for entity in TRANSACTIONAL_ENTITIES:
        folder = raw_root / entity_snake(entity)
        for name in _day_names(folder):
            path = folder / name / REJECTED_FILE
            try:
                records = _loads(path.read_bytes())
            except FileNotFoundError:
                continue
            for record in records:
                out.append(
                    {
                        "entity": entity,
                        "day": name[4:],
                        "id": record.get("id"),
                        "reason": record.get("reason"),
                        "raw": record.get("raw"),
                    }
                )
    return out


# --- reference snapshots ----------------------------------------------------------------------


def reference_path(lake: Path, tenant_id: str, entity: str) -> Path:
    """``lake/tenant=<id>/reference/<entity_snake>.json``."""
    if entity not in REFERENCE_ENTITIES:
        raise ValueError(f"not a reference entity: {entity!r} (expected {REFERENCE_ENTITIES})")
    return tenant_dir(lake, tenant_id) / "reference" / f"{entity_snake(entity)}.json"


def write_reference(lake: Path, tenant_id: str, entity: str, records: list[dict[str, Any]]) -> None:
    """Replace a tenant's snapshot of a reference entity (atomic write of the raw JSON list;
    for Organisation, a one-element list)."""
    atomic_write_bytes(reference_path(lake, tenant_id, entity), _dumps(records, 1))


def read_reference(lake: Path, tenant_id: str, entity: str) -> list[dict[str, Any]]:
    """A tenant's snapshot of a reference entity, numbers as Decimal; [] if never written."""
    try:
        return _loads(reference_path(lake, tenant_id, entity).read_bytes())
    except FileNotFoundError:
        return []
