"""Raw Xero transactional entities, partitioned tenant x UTC day of UpdatedDateUTC: one asset per
transactional entity of the registry (``xero_tableau.entities``).

Partition (T, D) holds every record of tenant T whose current UpdatedDateUTC falls on day D. A
range (a backfill, the poll, the sweep) runs as one run; the reading is
``xero_tableau.raw_sync.sync_entity``.
"""

import dagster as dg

from xero_tableau.asset_names import PURPOSE_TAG, WEBHOOK_BATCH_TAG, raw_path
from xero_tableau.defs.partitions import days_by_tenant, tenant_days
from xero_tableau.defs.resources import XeroResource
from xero_tableau.entities import TRANSACTIONAL, XeroEntity
from xero_tableau.previews import markdown_preview
from xero_tableau.raw_layouts import PROVENANCE
from xero_tableau.raw_sync import sync_entity

PREVIEW_ROWS = 5


def build_raw_asset(spec: XeroEntity) -> dg.AssetsDefinition:
    webhooks = "webhooks and polling" if spec.webhook_category else "polling only"

    @dg.asset(
        key=list(raw_path(spec)),
        group_name="xero_raw",
        kinds={"xero", "parquet"},
        partitions_def=tenant_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="xero_api",
        description=f"Xero {spec.endpoint} by tenant and UTC day of UpdatedDateUTC ({webhooks}).",
    )
    def raw_entity(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
        if spec.asset_name in xero.disabled_entities:
            context.log.info(
                f"{spec.endpoint} is switched off (XT_DISABLED_ENTITIES): nothing read, its "
                "tables are empty; switched on again, its next run reads from its watermark"
            )
            return dg.MaterializeResult(metadata={"disabled": True, "dagster/row_count": 0})
        tenants = days_by_tenant(context.partition_keys)
        batch_key = context.run.tags.get(WEBHOOK_BATCH_TAG)
        with xero.connection() as conn:
            run = sync_entity(
                conn,
                xero.state.lake_dir,
                spec.endpoint,
                tenants,
                run_id=context.run.run_id,
                purpose=context.run.tags.get(PURPOSE_TAG, "backfill"),
                webhook_batch=batch_key,
                page_size=xero.page_size,
                log=context.log.info,
                debug=context.log.debug,
                warn=context.log.warning,
            )
            stats = conn.client.stats
            usage = {tid: conn.limiter.usage(tid) for tid in tenants}
        totals = run.totals
        # the provenance columns say what the run's own tags say: the preview shows content
        hidden = {"raw_json", *PROVENANCE}
        preview = [
            {k: v for k, v in row.items() if k not in hidden}
            for row in totals.preview[:PREVIEW_ROWS]
        ]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": totals.records,
                "documents": totals.records,
                "lines": totals.lines,
                "quarantined": totals.rejected,
                "dq_notes": totals.dq_notes,
                "dq_notes_preview": dg.MetadataValue.json(totals.notes_preview),
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
                "preview": dg.MetadataValue.md(
                    markdown_preview(preview, max_columns=8, width=40, empty="_no records_")
                ),
            }
        )

    return raw_entity


raw_assets = [build_raw_asset(spec) for spec in TRANSACTIONAL]
