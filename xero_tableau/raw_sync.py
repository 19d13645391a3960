"""Reading Xero's transactional entities into the raw lake (no dagster here).

:func:`sync_entity` is one raw run (what the raw assets execute). Both ways to read end in day
partitions (``xero_tableau.raw_lake``) keyed by each record's current ``UpdatedDateUTC``:
:func:`read_window_into_lake` replaces each day of a window whole, and
:func:`read_ids_into_lake` merges the changed records by id into their current day, leaving the
rest of that day as it was. A record whose ``UpdatedDateUTC`` names no day is quarantined in the
entity's ``undated.json`` while the rest of its page goes on; an amount read through float noise
is counted as a data-quality note (``ReadTotals.dq_notes``, kept beside the day in the lake).
Every record written carries how it was read, unless the read found it unchanged
(``transform.provenance``). :func:`write_reference_snapshot` does the same for the reference
snapshots.

A window read that reaches the present (its days end yesterday or today) starts no later than
the day of the entity's read watermark (``store.watermarks``: when the last such read started),
so what changed during a gap (the entity switched off, the daemon stopped) is read; an entity
never read starts at the organisation's creation. Reads of older days (the sweep's slice of
history, a backfill) read exactly their days, from their first day's start: their
If-Modified-Since is never a watermark, so they see the edits Xero does not date.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine

from xero_tableau import raw_lake
from xero_tableau.asset_names import sync_source
from xero_tableau.entities import XeroEntity, transactional
from xero_tableau.store import watermarks
from xero_tableau.store.audit import content_digest, record_versions
from xero_tableau.store.event_queue import Event, EventQueue
from xero_tableau.transform.provenance import carry_provenance, reference_reads
from xero_tableau.transform.raw import ReadProvenance, flatten
from xero_tableau.webhooks.planner import choose_read
from xero_tableau.xero.client import XeroClient, updated_ms
from xero_tableau.xero.models import RejectedRecord
from xero_tableau.xero_connection import XeroConnection

PREVIEW_ROWS = 5
NOTES_PREVIEW = 20  # data-quality notes shown in a run's metadata (all are counted)
# After a run that rewrote more day partitions than this (a backfill, the sweep), refresh the
# entity's compacted copy so normalize reads one file instead of every day folder.
COMPACT_AFTER = 8
#: Called with (tenant, endpoint, documents, their content digests) after each day is written:
#: the audit trail.
AuditHook = Callable[[str, str, pa.Table, list[str]], None]
#: A read after a gap starts on the day of (watermark - this): room for Xero's clock and this
#: machine's to disagree.
CLOCK_SLACK = timedelta(hours=1)


@dataclass
class ReadTotals:
    """What a read wrote, for run metadata and logs."""

    records: int = 0
    lines: int = 0
    rejected: int = 0
    undated: int = 0
    partitions: int = 0
    emptied: int = 0
    dq_notes: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)
    notes_preview: list[dict[str, Any]] = field(default_factory=list)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def record_day(record: dict[str, Any]) -> date | None:
    """The UTC day of a record's ``UpdatedDateUTC``: the partition it belongs to; None when it
    names no day (missing, unreadable, out of range): such a record is quarantined."""
    try:
        return (_EPOCH + timedelta(milliseconds=updated_ms(record))).date()
    except (ValueError, OverflowError):
        return None


def _quarantine_undated(
    lake: Path,
    tenant_id: str,
    endpoint: str,
    undated: list[Any],
    dated_ids: list[str],
    totals: ReadTotals,
    warn: Callable[[str], None],
) -> None:
    """Quarantine the records of a read that name no day, with the model's reason when it has
    one; release the ids that came back with a day."""
    spec = transactional(endpoint)
    parsed = spec.parse(undated)
    refused = {id(bad.raw) for bad in parsed.rejected}
    rejected = list(parsed.rejected)
    for record in undated:
        if isinstance(record, dict) and id(record) not in refused:
            value = record.get("UpdatedDateUTC")
            found = record.get(spec.id_field)
            record_id = None if found is None else str(found)
            reason = f"UpdatedDateUTC: {value!r} names no UTC day"
            rejected.append(RejectedRecord(record_id, reason, record))
    raw_lake.update_undated(lake, tenant_id, endpoint, rejected, dated_ids)
    totals.rejected += len(rejected)
    totals.undated += len(rejected)
    for bad in rejected:
        warn(f"quarantined {endpoint} {bad.record_id} (no day): {bad.reason}")


def _updated_or_zero(record: dict[str, Any]) -> int:
    try:
        return updated_ms(record)
    except ValueError:
        return 0


def _digests(spec: XeroEntity, records: list[dict[str, Any]], ids: list[str]) -> list[str]:
    """The content digest of the record behind each document id (as ``flatten`` keeps one
    record per id: the latest ``UpdatedDateUTC``, then the later one)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        key = str(record.get(spec.id_field))
        held = latest.get(key)
        if held is None or _updated_or_zero(record) >= _updated_or_zero(held):
            latest[key] = record
    return [content_digest(latest[i]) for i in ids]


def _write(
    lake: Path,
    tenant_id: str,
    endpoint: str,
    day: date,
    records: list[dict[str, Any]],
    fetched_at: datetime,
    totals: ReadTotals,
    warn: Callable[[str], None],
    audit: "AuditHook | None",
    read: ReadProvenance | None,
    just_read: list[dict[str, Any]] | None = None,
) -> None:
    """Replace one day partition with ``records`` (``read``: how they were read, stamped on
    what is new); note in the audit trail the versions of those ``just_read`` from Xero
    (default: all of them)."""
    batch = flatten(endpoint, records, fetched_at, read)
    # A record read again with the same content keeps the provenance of the read that produced
    # that content (transform/provenance.py), so re-reads never change published provenance.
    previous = raw_lake.read_day_tables(lake, tenant_id, endpoint, day)
    batch = carry_provenance(endpoint, batch, previous)
    raw_lake.write_day_partition(lake, tenant_id, endpoint, day, batch, records)
    if audit is not None:
        spec = transactional(endpoint)
        documents = batch.documents
        if just_read is not None:
            fresh = {str(r.get(spec.id_field)) for r in just_read}
            ids = documents.column("id").to_pylist()
            documents = documents.filter(pa.array([i in fresh for i in ids], pa.bool_()))
        ids = documents.column("id").to_pylist()
        audit(tenant_id, endpoint, documents, _digests(spec, just_read or records, ids))
    totals.partitions += 1
    totals.emptied += not records
    totals.records += batch.documents.num_rows
    totals.lines += batch.lines.num_rows if batch.lines is not None else 0
    totals.rejected += len(batch.rejected)
    totals.dq_notes += len(batch.notes)
    for bad in batch.rejected:
        warn(f"quarantined {endpoint} {bad.record_id} ({day}): {bad.reason}")
    for note in batch.notes[: max(0, NOTES_PREVIEW - len(totals.notes_preview))]:
        totals.notes_preview.append({"day": str(day), "id": note.record_id, "note": note.text})
    if len(totals.preview) < PREVIEW_ROWS and batch.documents.num_rows:
        totals.preview.extend(batch.documents.slice(0, PREVIEW_ROWS).to_pylist())
        del totals.preview[PREVIEW_ROWS:]


def read_window_into_lake(
    client: XeroClient,
    lake: Path,
    tenant_id: str,
    endpoint: str,
    days: Sequence[date],
    *,
    totals: ReadTotals,
    log: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
    audit: AuditHook | None = None,
    read: ReadProvenance | None = None,
) -> None:
    """Read ``days[0] .. days[-1]`` with one paged window query and replace each of ``days``
    (``read``: how, stamped on what is new)."""
    start, end = day_start(days[0]), day_start(days[-1]) + timedelta(days=1)
    fetched_at = datetime.now(UTC)
    spec = transactional(endpoint)
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    undated: list[Any] = []
    for page in client.read_window(spec, tenant_id, start, end):
        for record in page:
            day = record_day(record)
            if day is None:
                undated.append(record)
            else:
                by_day[day].append(record)
        log(f"{sum(map(len, by_day.values()))} {endpoint} read so far")
    for day in days:
        records = by_day.get(day, [])
        _write(lake, tenant_id, endpoint, day, records, fetched_at, totals, warn, audit, read)
    dated = [str(r.get(spec.id_field)) for records in by_day.values() for r in records]
    _quarantine_undated(lake, tenant_id, endpoint, undated, dated, totals, warn)


def read_ids_into_lake(
    client: XeroClient,
    lake: Path,
    tenant_id: str,
    endpoint: str,
    ids: Sequence[str],
    *,
    totals: ReadTotals,
    warn: Callable[[str], None] = lambda _m: None,
    audit: AuditHook | None = None,
    read: ReadProvenance | None = None,
) -> list[date]:
    """Read ``ids`` and merge each record into its current day; returns the days rewritten
    (``read``: how, stamped on what is new)."""
    fetched_at = datetime.now(UTC)
    spec = transactional(endpoint)
    id_field = spec.id_field
    fresh: dict[date, dict[str, dict[str, Any]]] = defaultdict(dict)
    undated: list[Any] = []
    for record in client.read_ids(spec, tenant_id, ids):
        day = record_day(record)
        if day is None:
            undated.append(record)
        else:
            fresh[day][str(record.get(id_field)).lower()] = record
    for day, changed in sorted(fresh.items()):
        kept = [
            r
            for r in raw_lake.read_day_records(lake, tenant_id, endpoint, day)
            if str(r.get(id_field, "")).lower() not in changed
        ]
        records = kept + list(changed.values())
        _write(
            lake,
            tenant_id,
            endpoint,
            day,
            records,
            fetched_at,
            totals,
            warn,
            audit,
            read,
            just_read=list(changed.values()),
        )
    dated = [record_id for changed in fresh.values() for record_id in changed]
    _quarantine_undated(lake, tenant_id, endpoint, undated, dated, totals, warn)
    return sorted(fresh)


def window_estimate(
    lake: Path, tenant_id: str, endpoint: str, days: Sequence[date], changed: int
) -> int:
    """Records a window read of ``days`` is expected to return: what the lake holds for them
    now plus the changed records (which may be new)."""
    held = sum(raw_lake.day_document_count(lake, tenant_id, endpoint, day) for day in days)
    return held + changed


def catch_up_day(engine: Engine, lake: Path, tenant_id: str, endpoint: str) -> tuple[date, str]:
    """The first day a read reaching the present must start on so that nothing changed since
    the last such read is missed, and why: the watermark's day; without a watermark (connector
    upgraded from before watermarks) the newest day the lake holds; never read: the
    organisation's creation."""
    mark = watermarks.read_through(engine, tenant_id, endpoint)
    if mark is not None:
        return (mark - CLOCK_SLACK).date(), f"last read up to {mark:%Y-%m-%d %H:%M:%S}Z"
    held = raw_lake.partition_days(lake, tenant_id, endpoint)
    if held:
        return held[-1], "no watermark yet: from the newest day the lake holds"
    return raw_lake.history_start(lake, tenant_id), "never read: from the organisation's creation"


def _span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def event_times(events: Sequence[Event], tenant_id: str) -> dict[str, datetime]:
    """Record id (lower case) -> time of the latest of ``events`` about it in ``tenant_id``: the
    webhook event that makes a run read the record."""
    latest: dict[str, datetime] = {}
    for event in events:
        if event.tenant_id.lower() != tenant_id.lower():
            continue
        key = event.resource_id.lower()
        if key not in latest or event.event_time > latest[key]:
            latest[key] = event.event_time
    return latest


@dataclass
class RawRun:
    """What one raw run read and wrote, for its Dagster metadata."""

    totals: ReadTotals = field(default_factory=ReadTotals)
    windows: list[str] = field(default_factory=list)
    modes: set[str] = field(default_factory=set)


def sync_entity(
    conn: XeroConnection,
    lake: Path,
    endpoint: str,
    days_by_tenant: Mapping[str, Sequence[date]],
    *,
    run_id: str | None,
    purpose: str,
    webhook_batch: str | None,
    page_size: int,
    log: Callable[[str], None] = lambda _m: None,
    debug: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> RawRun:
    """One raw run of ``endpoint`` over each tenant's days: what the raw assets execute.

    A run for a webhook batch (``webhook_batch``, the sensor's run key) reads the changed records
    by id or the days' window, whichever costs fewer calls (``webhooks.planner.choose_read``);
    every other run reads the window. Each version written is noted in the audit trail."""
    result = RawRun()

    def audit(mode: str) -> AuditHook:
        def note(tenant_id: str, entity: str, documents: pa.Table, digests: list[str]) -> None:
            record_versions(
                conn.engine,
                tenant_id,
                entity,
                documents,
                run_id=run_id,
                purpose=purpose,
                read_mode=mode,
                digests=digests,
            )

        return note

    changed: list[str] = []
    covered: list[Event] = []
    if webhook_batch:
        covered = EventQueue(conn.engine).of_run(webhook_batch)
        changed = sorted({e.resource_id for e in covered})
        log(f"webhook batch {webhook_batch}: {len(covered)} event(s), {len(changed)} changed")
    today = datetime.now(UTC).date()
    for tenant_id, days in days_by_tenant.items():
        read = ReadProvenance(sync_source(purpose), run_id, event_times(covered, tenant_id))
        mode = "window"
        if webhook_batch:
            estimate = window_estimate(lake, tenant_id, endpoint, days, len(changed))
            plan = choose_read(endpoint, len(changed), estimate, page_size)
            mode = plan.mode
            ids_calls = plan.ids_calls if plan.ids_calls is not None else "-"
            log(
                f"{endpoint} for {tenant_id}: by {plan.mode} "
                f"(window ~{plan.window_calls} call(s), ids {ids_calls})"
            )
        result.modes.add(mode)
        if mode == "ids":
            result.windows.append(f"{tenant_id}: {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}")
            written = read_ids_into_lake(
                conn.client,
                lake,
                tenant_id,
                endpoint,
                changed,
                totals=result.totals,
                warn=warn,
                audit=audit("ids"),
                read=read,
            )
            log(f"merged into {', '.join(map(str, written)) or 'no day'}")
        else:
            since: date | None = None
            if days[-1] >= today - timedelta(days=1):  # reaches the present
                since, why = catch_up_day(conn.engine, lake, tenant_id, endpoint)
                if since < days[0]:
                    log(f"{endpoint} for {tenant_id}: reading from {since}, not {days[0]} ({why})")
                    days = _span(since, days[-1])
            result.windows.append(f"{tenant_id}: {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}")
            log(f"{endpoint} for {tenant_id}: {len(days)} day(s) from {days[0]}")
            started = datetime.now(UTC)
            read_window_into_lake(
                conn.client,
                lake,
                tenant_id,
                endpoint,
                days,
                totals=result.totals,
                log=debug,
                warn=warn,
                audit=audit("window"),
                read=read,
            )
            if since is not None and days[0] <= since:
                through = min(started, day_start(days[-1] + timedelta(days=1)))
                watermarks.advance(conn.engine, tenant_id, endpoint, through, run_id)
    if result.totals.partitions > COMPACT_AFTER:
        for tenant_id in days_by_tenant:
            raw_lake.compact_entity(lake, tenant_id, endpoint)
    return result


def write_reference_snapshot(
    lake: Path,
    tenant_id: str,
    endpoint: str,
    records: list[dict[str, Any]],
    *,
    run_id: str | None,
    purpose: str | None,
    read_at: datetime | None = None,
) -> None:
    """Replace a tenant's snapshot of a reference entity with ``records``, just read, and keep
    with it the provenance of the dimension rows it gives (``transform.provenance``): a row
    the read found unchanged keeps the read that last changed it."""
    read_at = read_at or datetime.now(UTC)
    before, kept = raw_lake.read_reference_snapshot(lake, tenant_id, endpoint)
    reads = reference_reads(
        endpoint,
        tenant_id,
        before,
        kept,
        records,
        ReadProvenance(sync_source(purpose), run_id),
        read_at,
    )
    raw_lake.write_reference(lake, tenant_id, endpoint, records, reads=reads)
