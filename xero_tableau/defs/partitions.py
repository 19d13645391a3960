"""Partitions shared by the asset graph."""

import dagster as dg

# One partition per connected Xero organisation, kept in step with Xero's /connections by the
# tenant sensor (defs/tenants.py) and by `xero-tableau connect`.
XERO_TENANTS = "xero_tenants"
xero_tenants = dg.DynamicPartitionsDefinition(name=XERO_TENANTS)
