"""Partitions shared by the asset graph.

Raw transactional assets are partitioned tenant x UTC day of ``UpdatedDateUTC``; everything
downstream, and the small reference snapshots, by tenant. Multi-partition keys read
``<day>|<tenant>`` (Dagster orders the dimensions by name).
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import dagster as dg

# One partition per connected Xero organisation, kept in step with Xero's /connections by the
# tenant sensor (defs/tenants.py) and by `xero-tableau connect`.
XERO_TENANTS = "xero_tenants"
xero_tenants = dg.DynamicPartitionsDefinition(name=XERO_TENANTS)

# Xero opened in 2006: every record's UpdatedDateUTC falls on or after this day. ``end_offset=1``
# includes today, so changes made today can be read today.
HISTORY_START = "2006-01-01"
updated_days = dg.DailyPartitionsDefinition(start_date=HISTORY_START, timezone="UTC", end_offset=1)

tenant_days = dg.MultiPartitionsDefinition({"day": updated_days, "tenant": xero_tenants})

# Downstream per-tenant assets read every day partition of their tenant.
ALL_DAYS_OF_TENANT = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="tenant")


def days_by_tenant(partition_keys: Iterable[str]) -> dict[str, list[date]]:
    """``["2024-01-02|t1", ...]`` -> {"t1": [date(2024, 1, 2), ...]}, days sorted."""
    grouped: dict[str, list[date]] = defaultdict(list)
    for key in partition_keys:
        by_dim = tenant_days.get_partition_key_from_str(key).keys_by_dimension
        grouped[by_dim["tenant"]].append(date.fromisoformat(by_dim["day"]))
    return {tenant: sorted(days) for tenant, days in grouped.items()}


def day_range_tags(tenant_id: str, first: date, last: date) -> dict[str, str]:
    """Run tags for a single run over days ``first..last`` of one tenant."""
    return {
        "dagster/asset_partition_range_start": f"{first.isoformat()}|{tenant_id}",
        "dagster/asset_partition_range_end": f"{last.isoformat()}|{tenant_id}",
        "xero/tenant": tenant_id,
    }
