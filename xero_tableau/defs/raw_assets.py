"""Raw Xero transactional entities, partitioned tenant x UTC day of UpdatedDateUTC.

Partition (T, D) holds every record of tenant T whose current UpdatedDateUTC falls on day D, as
parquet plus the raw JSON, replaced atomically: re-materializing is a pure function of Xero's
current state for that window. A range (a backfill, the poll, the sweep) runs as one run and reads
the range with one paged If-Modified-Since query per entity and tenant.

A run asked for by the webhook sensor (tag ``xero/webhook_batch``) knows which records changed:
it reads them by id when that costs fewer calls than the window (``webhooks.planner``), merging
each into its day; the reading itself lives in ``xero_tableau.raw_sync``.
"""

import dagster as dg

from xero_tableau.defs.partitions import days_by_tenant, tenant_days
from xero_tableau.defs.resources import XeroResource
from xero_tableau.raw_sync import sync_entity

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
#: Run tag naming the webhook batch (the sensor's run key) a run reads for.
WEBHOOK_BATCH_TAG = "xero/webhook_batch"
PREVIEW_ROWS = 5


def raw_asset_key(endpoint: str) -> dg.AssetKey:
    return dg.AssetKey(["xero", "raw", RAW_ENTITIES[endpoint]])


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
        tenants = days_by_tenant(context.partition_keys)
        batch_key = context.run.tags.get(WEBHOOK_BATCH_TAG)
        with xero.connection() as conn:
            run = sync_entity(
                conn,
                settings.lake_dir,
                endpoint,
                tenants,
                run_id=context.run.run_id,
                purpose=context.run.tags.get("xero/purpose", "backfill"),
                webhook_batch=batch_key,
                page_size=settings.xero_page_size,
                log=context.log.info,
                debug=context.log.debug,
                warn=context.log.warning,
            )
            stats = conn.client.stats
            usage = {tid: conn.limiter.usage(tid) for tid in tenants}
        totals = run.totals
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": totals.records,
                "documents": totals.records,
                "lines": totals.lines,
                "quarantined": totals.rejected,
                "partitions_written": totals.partitions,
                "partitions_empty": totals.emptied,
                "window": "\n".join(run.windows),
                "read_mode": ", ".join(sorted(run.modes)) or "window",
                "webhook_batch": batch_key or "",
                "xero/calls": stats.calls,
                "xero/http_429": stats.http_429,
                "xero/day_budget_left": dg.MetadataValue.json(
                    {tid: u.get("day_remaining") for tid, u in usage.items()}
                ),
                "preview": dg.MetadataValue.md(_preview_markdown(totals.preview[:PREVIEW_ROWS])),
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
