"""Snapshots of Xero's small reference entities (organisation, accounts, tracking categories, tax
rates, currencies), one partition per tenant, read in full each time: the registry's reference
entities (``xero_tableau.entities``)."""

import dagster as dg

from xero_tableau.asset_names import PURPOSE_TAG, raw_path
from xero_tableau.defs.partitions import xero_tenants
from xero_tableau.defs.resources import XeroResource
from xero_tableau.entities import REFERENCE, XeroEntity
from xero_tableau.raw_sync import write_reference_snapshot

# Tag Dagster puts on the runs its declarative automation launches (the 30-minute refresh).
_AUTOMATION_TAG = "dagster/from_automation_condition"


def _purpose(tags: dict[str, str]) -> str:
    """The run's ``xero/purpose``; the automated refresh is a poll, anything else untagged a
    backfill."""
    if PURPOSE_TAG in tags:
        return tags[PURPOSE_TAG]
    return "poll" if tags.get(_AUTOMATION_TAG) == "true" else "backfill"


def build_reference_asset(spec: XeroEntity) -> dg.AssetsDefinition:
    @dg.asset(
        key=list(raw_path(spec)),
        group_name="xero_raw",
        kinds={"xero", "json"},
        partitions_def=xero_tenants,
        pool="xero_api",
        automation_condition=dg.AutomationCondition.on_cron("*/30 * * * *", "UTC"),
        description=f"Snapshot of the tenant's {spec.endpoint} (read in full each time).",
    )
    def reference(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
        tenant_id = context.partition_key
        with xero.connection() as conn:
            records = [r for page in conn.client.read_all(spec, tenant_id) for r in page]
            stats = conn.client.stats
            usage = conn.limiter.usage(tenant_id)
        write_reference_snapshot(
            xero.state.lake_dir,
            tenant_id,
            spec.endpoint,
            records,
            run_id=context.run.run_id,
            purpose=_purpose(dict(context.run.tags)),
        )
        metadata: dict = {
            "dagster/row_count": len(records),
            "xero/calls": stats.calls,
            "xero/day_budget_left": usage.get("day_remaining"),
        }
        if spec.endpoint == "Organisation" and records:
            org = records[0]
            metadata.update(
                name=org.get("Name", ""),
                base_currency=org.get("BaseCurrency", ""),
                timezone=org.get("Timezone", ""),
            )
        return dg.MaterializeResult(metadata=metadata)

    return reference


reference_assets = [build_reference_asset(spec) for spec in REFERENCE]
