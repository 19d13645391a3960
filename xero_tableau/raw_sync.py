"""Reading Xero's transactional entities into the raw lake (no dagster here).

Two ways, both ending in day partitions (``store.raw_lake``) keyed by each record's current
``UpdatedDateUTC``:

- :func:`read_window_into_lake`: one paged If-Modified-Since read over a range of days, each day
  then replaced whole, so the partition mirrors Xero's state for that window (backfills, polls,
  the sweep, and webhook runs for which it is cheaper).
- :func:`read_ids_into_lake`: the changed records by id (50 a call), each merged into the
  partition of its current day, replacing its earlier copy there; the rest of the day stays as
  it was. A record that moved to a later day leaves its old copy behind in the earlier partition,
  which normalize ignores (the latest ``UpdatedDateUTC`` wins) and the next read of that day
  drops.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from xero_tableau.store import raw_lake
from xero_tableau.transform.raw import flatten
from xero_tableau.xero.client import ID_FIELDS, XeroClient, updated_ms

#: Extra query parameters per endpoint: archived contacts are soft deletes, so read them too.
EXTRA_PARAMS: dict[str, dict[str, str | int]] = {"Contacts": {"includeArchived": "true"}}
PREVIEW_ROWS = 5
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
) -> None:
    batch = flatten(endpoint, records, fetched_at)
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
) -> None:
    """Read ``days[0] .. days[-1]`` with one paged window query and replace each of ``days``."""
    start, end = day_start(days[0]), day_start(days[-1]) + timedelta(days=1)
    fetched_at = datetime.now(UTC)
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    params = EXTRA_PARAMS.get(endpoint, {})
    for page in client.read_window(endpoint, tenant_id, start, end, **params):
        for record in page:
            by_day[record_day(record)].append(record)
        log(f"{sum(map(len, by_day.values()))} {endpoint} read so far")
    for day in days:
        records = by_day.get(day, [])
        _write(lake, tenant_id, endpoint, day, records, fetched_at, totals, warn, audit)


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
) -> list[date]:
    """Read ``ids`` and merge each record into its current day; returns the days rewritten."""
    fetched_at = datetime.now(UTC)
    id_field = ID_FIELDS[endpoint]
    fresh: dict[date, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in client.read_ids(endpoint, tenant_id, ids, **EXTRA_PARAMS.get(endpoint, {})):
        fresh[record_day(record)][str(record[id_field]).lower()] = record
    for day, changed in sorted(fresh.items()):
        kept = [
            r
            for r in raw_lake.read_day_records(lake, tenant_id, endpoint, day)
            if str(r.get(id_field, "")).lower() not in changed
        ]
        records = kept + list(changed.values())
        _write(lake, tenant_id, endpoint, day, records, fetched_at, totals, warn, audit)
    return sorted(fresh)


def window_estimate(
    lake: Path, tenant_id: str, endpoint: str, days: Sequence[date], changed: int
) -> int:
    """Records a window read of ``days`` is expected to return: what the lake holds for them
    now plus the changed records (which may be new)."""
    held = sum(raw_lake.day_document_count(lake, tenant_id, endpoint, day) for day in days)
    return held + changed
