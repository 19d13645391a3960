"""The declarative-automation sensor that moves facts, dimensions and extracts along.

Dagster's default automation sensor evaluates every 30 seconds; a webhook-driven change takes two
of its ticks to reach Tableau (raw partition -> tables and extracts in one run), so ours runs
every 10 seconds, which keeps webhook-to-dashboard latency well under a minute. An evaluation of
this graph costs well under a second of the daemon's time.
"""

import dagster as dg

xero_automation = dg.AutomationConditionSensorDefinition(
    "xero_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Requests the tables of a tenant once its raw partitions change (also when they "
    "change during a rebuild), its extracts once the tables are rebuilt and their blocking checks "
    "passed (defs/table_assets.py FOLLOW_RAW, FOLLOW_TABLES), and the reference snapshots on "
    "their cron.",
)
