"""Snapshot assets of Xero's small reference entities, one partition per tenant."""

import dagster as dg

from xero_tableau.defs.partitions import xero_tenants
from xero_tableau.defs.resources import XeroResource
from xero_tableau.store.lake import tenant_dir, write_json


@dg.asset(
    key=["xero", "raw", "organisation"],
    group_name="xero_raw",
    kinds={"xero", "json"},
    partitions_def=xero_tenants,
    description="The organisation record (name, base currency, timezone) of each tenant.",
)
def organisation(context: dg.AssetExecutionContext, xero: XeroResource) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    with xero.connection() as conn:
        body = conn.client.get("Organisation", tenant_id)
        stats = conn.client.stats
    record = body["Organisations"][0]
    path = tenant_dir(xero.lake_dir(), tenant_id) / "organisation" / "organisation.json"
    write_json(path, record)
    return dg.MaterializeResult(
        metadata={
            "name": record.get("Name", ""),
            "base_currency": record.get("BaseCurrency", ""),
            "timezone": record.get("Timezone", ""),
            "path": dg.MetadataValue.path(str(path)),
            "xero/calls": stats.calls,
            "xero/day_limit_remaining": stats.day_remaining.get(tenant_id, -1),
            "dagster/row_count": 1,
        }
    )
