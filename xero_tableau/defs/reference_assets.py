"""Snapshots of Xero's small reference entities, one partition per tenant.

They are read in full every time (tracking categories, tax rates and currencies take no
If-Modified-Since; accounts are a few hundred records), which also catches renames and archives.
"""

import dagster as dg

from xero_tableau.defs.partitions import xero_tenants
from xero_tableau.defs.resources import XeroResource
from xero_tableau.store import raw_lake

# endpoint -> (asset name, extra query parameters)
REFERENCE_ENTITIES: dict[str, tuple[str, dict[str, str]]] = {
    "Organisation": ("organisation", {}),
    "Accounts": ("accounts", {}),
    # archived categories and options too: old lines still point at them
    "TrackingCategories": ("tracking_categories", {"includeArchived": "true"}),
    "TaxRates": ("tax_rates", {}),
    "Currencies": ("currencies", {}),
}


def build_reference_asset(endpoint: str, name: str, params: dict[str, str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["xero", "raw", name],
        group_name="xero_raw",
        kinds={"xero", "json"},
        partitions_def=xero_tenants,
        pool="xero_api",
        automation_condition=dg.AutomationCondition.on_cron("*/30 * * * *", "UTC"),
        description=f"Snapshot of the tenant's {endpoint} (read in full each time).",
    )
    def reference(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
        tenant_id = context.partition_key
        with xero.connection() as conn:
            records = [
                r for page in conn.client.read_all(endpoint, tenant_id, **params) for r in page
            ]
            stats = conn.client.stats
            usage = conn.limiter.usage(tenant_id)
        raw_lake.write_reference(xero.settings().lake_dir, tenant_id, endpoint, records)
        metadata: dict = {
            "dagster/row_count": len(records),
            "xero/calls": stats.calls,
            "xero/day_budget_left": usage.get("day_remaining"),
        }
        if endpoint == "Organisation" and records:
            org = records[0]
            metadata.update(
                name=org.get("Name", ""),
                base_currency=org.get("BaseCurrency", ""),
                timezone=org.get("Timezone", ""),
            )
        return dg.MaterializeResult(metadata=metadata)

    return reference


reference_assets = [
    build_reference_asset(endpoint, name, params)
    for endpoint, (name, params) in REFERENCE_ENTITIES.items()
]

organisation = reference_assets[0]  # name, base currency and timezone of the tenant


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=reference_assets)
