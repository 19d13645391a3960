"""Raw Xero transactional entities, partitioned tenant x UTC day of UpdatedDateUTC.

Partition (T, D) holds every record of tenant T whose current UpdatedDateUTC falls on day D, as
parquet plus the raw JSON, replaced atomically: re-materializing is a pure function of Xero's
current state for that window. A range (a backfill, the poll, the sweep) runs as one run and reads
the range with one paged If-Modified-Since query per entity and tenant.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from xero_tableau.defs.partitions import days_by_tenant, tenant_days
from xero_tableau.defs.resources import XeroResource
from xero_tableau.store import raw_lake
from xero_tableau.transform.raw import flatten
from xero_tableau.xero.client import updated_ms

# endpoint -> asset name; the order is the order the sync reads them in.
RAW_ENTITIES = {
    "Contacts": "contacts",
    "Invoices": "invoices",
    "CreditNotes": "credit_notes",
    "Payments": "payments",
    "BankTransactions": "bank_transactions",
    "ManualJournals": "manual_journals",
    "PurchaseOrders": "purchase_orders",
}
WEBHOOK_ENTITIES = ("Invoices", "CreditNotes", "Contacts")  # the rest must be polled
_EXTRA_PARAMS = {"Contacts": {"includeArchived": "true"}}  # archived contacts are soft deletes
PREVIEW_ROWS = 5
# After a run that rewrote more day partitions than this (a backfill, the sweep), refresh the
# entity's compacted copy so normalize reads one file instead of every day folder.
COMPACT_AFTER = 8


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def build_raw_asset(endpoint: str, name: str) -> dg.AssetsDefinition:
    webhooks = "webhooks and polling" if endpoint in WEBHOOK_ENTITIES else "polling only"

    @dg.asset(
        key=["xero", "raw", name],
        group_name="xero_raw",
        kinds={"xero", "parquet"},
        partitions_def=tenant_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="xero_api",
        description=f"Xero {endpoint} by tenant and UTC day of UpdatedDateUTC ({webhooks}).",
    )
    def raw_entity(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
        settings = xero.settings()
        if name in settings.disabled_entities:
            context.log.info(f"{endpoint} is switched off (XT_DISABLED_ENTITIES): nothing read")
            return dg.MaterializeResult(metadata={"disabled": True, "dagster/row_count": 0})
        lake = settings.lake_dir
        totals = {"records": 0, "lines": 0, "rejected": 0, "partitions": 0, "emptied": 0}
        windows: list[str] = []
        preview: list[dict] = []
        with xero.connection() as conn:
            for tenant_id, days in days_by_tenant(context.partition_keys).items():
                start, end = _day_start(days[0]), _day_start(days[-1]) + timedelta(days=1)
                windows.append(f"{tenant_id}: {start:%Y-%m-%d} .. {end:%Y-%m-%d}")
                context.log.info(f"{endpoint} for {tenant_id}: {len(days)} day(s) from {start:%F}")
                fetched_at = datetime.now(UTC)
                by_day: dict[date, list[dict]] = defaultdict(list)
                params = _EXTRA_PARAMS.get(endpoint, {})
                for page in conn.client.read_window(endpoint, tenant_id, start, end, **params):
                    for record in page:
                        day = datetime.fromtimestamp(updated_ms(record) / 1000, UTC).date()
                        by_day[day].append(record)
                    context.log.debug(f"{sum(map(len, by_day.values()))} {endpoint} read so far")
                for day in days:
                    records = by_day.get(day, [])
                    batch = flatten(endpoint, records, fetched_at)
                    raw_lake.write_day_partition(lake, tenant_id, endpoint, day, batch, records)
                    totals["partitions"] += 1
                    totals["emptied"] += not records
                    totals["records"] += batch.documents.num_rows
                    totals["lines"] += batch.lines.num_rows if batch.lines is not None else 0
                    totals["rejected"] += len(batch.rejected)
                    for bad in batch.rejected:
                        context.log.warning(
                            f"quarantined {endpoint} {bad.record_id} ({day}): {bad.reason}"
                        )
                    if len(preview) < PREVIEW_ROWS and batch.documents.num_rows:
                        preview.extend(batch.documents.slice(0, PREVIEW_ROWS).to_pylist())
            if totals["partitions"] > COMPACT_AFTER:
                for tenant_id in days_by_tenant(context.partition_keys):
                    raw_lake.compact_entity(lake, tenant_id, endpoint)
            stats = conn.client.stats
            usage = {tid: conn.limiter.usage(tid) for tid in days_by_tenant(context.partition_keys)}
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": totals["records"],
                "documents": totals["records"],
                "lines": totals["lines"],
                "quarantined": totals["rejected"],
                "partitions_written": totals["partitions"],
                "partitions_empty": totals["emptied"],
                "window": "\n".join(windows),
                "xero/calls": stats.calls,
                "xero/http_429": stats.http_429,
                "xero/day_budget_left": dg.MetadataValue.json(
                    {tid: u.get("day_remaining") for tid, u in usage.items()}
                ),
                "preview": dg.MetadataValue.md(_preview_markdown(preview[:PREVIEW_ROWS])),
            }
        )

    return raw_entity


def _preview_markdown(rows: list[dict]) -> str:
    if not rows:
        return "_no records_"
    columns = [c for c in rows[0] if c not in ("raw_json",)][:8]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, ""))[:40] for c in columns) + " |")
    return "\n".join(lines)


raw_assets = [build_raw_asset(endpoint, name) for endpoint, name in RAW_ENTITIES.items()]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=raw_assets)
