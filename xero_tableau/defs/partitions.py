"""Partitions shared by the asset graph: raw transactional assets by tenant x UTC day of
``UpdatedDateUTC``; everything downstream, and the small reference snapshots, by tenant."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import dagster as dg

from xero_tableau.asset_names import HISTORY_START, XERO_TENANTS

# One partition per connected Xero organisation, kept in step with Xero's /connections by the
# tenant sensor (defs/tenants.py) and by `xero-tableau connect`.
xero_tenants = dg.DynamicPartitionsDefinition(name=XERO_TENANTS)

# ``end_offset=1`` includes today, so changes made today can be read today.
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
