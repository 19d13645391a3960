"""Reading Xero's transactional entities into the raw lake (no dagster here).

:func:`sync_entity` is one raw run (what the raw assets execute). Both ways to read end in day
partitions (``xero_tableau.raw_lake``) keyed by each record's current ``UpdatedDateUTC``:
:func:`read_window_into_lake` replaces each day of a window whole, and
:func:`read_ids_into_lake` merges the changed records by id into their current day, leaving the
rest of that day as it was. Every record written carries how it was read, unless the read found
it unchanged (``transform.provenance``). :func:`write_reference_snapshot` does the same for the
reference snapshots.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from xero_tableau import raw_lake
from xero_tableau.asset_names import sync_source
from xero_tableau.entities import transactional
from xero_tableau.store.audit import record_versions
from xero_tableau.store.event_queue import Event, EventQueue
from xero_tableau.transform.provenance import carry_provenance, reference_reads
from xero_tableau.transform.raw import ReadProvenance, flatten
from xero_tableau.webhooks.planner import choose_read
from xero_tableau.xero.client import XeroClient, updated_ms
from xero_tableau.xero_connection import XeroConnection

PREVIEW_ROWS = 5
# After a run that rewrote more day partitions than this (a backfill, the sweep), refresh the
# entity's compacted copy so normalize reads one file instead of every day folder.
COMPACT_AFTER = 8
#: Called with (tenant, endpoint, documents written) after each day is written: the audit trail.
AuditHook = Callable[[str, str, pa.Table], None]


@dataclass
class ReadTotals:
    """What a read wrote, for run metadata and logs."""

    records: int = 0
    lines: int = 0
    rejected: int = 0
    partitions: int = 0
    emptied: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def record_day(record: dict[str, Any]) -> date:
    """The UTC day of a record's ``UpdatedDateUTC``: the partition it belongs to."""
    return datetime.fromtimestamp(updated_ms(record) / 1000, UTC).date()


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
) -> None:
    batch = flatten(endpoint, records, fetched_at, read)
    # A record read again with the same content keeps the provenance of the read that produced
    # that content (transform/provenance.py), so re-reads never change published provenance.
    previous = raw_lake.read_day_tables(lake, tenant_id, endpoint, day)
    batch = carry_provenance(endpoint, batch, previous)
    raw_lake.write_day_partition(lake, tenant_id, endpoint, day, batch, records)
    if audit is not None:
        audit(tenant_id, endpoint, batch.documents)
    totals.partitions += 1
    totals.emptied += not records
    totals.records += batch.documents.num_rows
    totals.lines += batch.lines.num_rows if batch.lines is not None else 0
    totals.rejected += len(batch.rejected)
    for bad in batch.rejected:
        warn(f"quarantined {endpoint} {bad.record_id} ({day}): {bad.reason}")
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
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for page in client.read_window(transactional(endpoint), tenant_id, start, end):
        for record in page:
            by_day[record_day(record)].append(record)
        log(f"{sum(map(len, by_day.values()))} {endpoint} read so far")
    for day in days:
        records = by_day.get(day, [])
        _write(lake, tenant_id, endpoint, day, records, fetched_at, totals, warn, audit, read)


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
    for record in client.read_ids(spec, tenant_id, ids):
        fresh[record_day(record)][str(record[id_field]).lower()] = record
    for day, changed in sorted(fresh.items()):
        kept = [
            r
            for r in raw_lake.read_day_records(lake, tenant_id, endpoint, day)
            if str(r.get(id_field, "")).lower() not in changed
        ]
        records = kept + list(changed.values())
        _write(lake, tenant_id, endpoint, day, records, fetched_at, totals, warn, audit, read)
    return sorted(fresh)


def window_estimate(
    lake: Path, tenant_id: str, endpoint: str, days: Sequence[date], changed: int
) -> int:
    """Records a window read of ``days`` is expected to return: what the lake holds for them
    now plus the changed records (which may be new)."""
    held = sum(raw_lake.day_document_count(lake, tenant_id, endpoint, day) for day in days)
    return held + changed


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
        def note(tenant_id: str, entity: str, documents: pa.Table) -> None:
            record_versions(
                conn.engine,
                tenant_id,
                entity,
                documents,
                run_id=run_id,
                purpose=purpose,
                read_mode=mode,
            )

        return note

    changed: list[str] = []
    covered: list[Event] = []
    if webhook_batch:
        covered = EventQueue(conn.engine).of_run(webhook_batch)
        changed = sorted({e.resource_id for e in covered})
        log(f"webhook batch {webhook_batch}: {len(covered)} event(s), {len(changed)} changed")
    for tenant_id, days in days_by_tenant.items():
        read = ReadProvenance(sync_source(purpose), run_id, event_times(covered, tenant_id))
        result.windows.append(f"{tenant_id}: {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}")
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
            log(f"{endpoint} for {tenant_id}: {len(days)} day(s) from {days[0]}")
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
