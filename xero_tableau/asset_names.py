"""Names the Dagster wiring shares with the code that drives runs: asset key paths, the tenant
partitions, the first day of history and the run tags. No dagster here, so ``sync.py``, the
benchmarks and the webhook planning can name assets and tag runs without importing ``defs/``.

Raw transactional assets are partitioned tenant x UTC day of ``UpdatedDateUTC``; multi-partition
keys read ``<day>|<tenant>`` (Dagster orders the dimensions by name).
"""

from datetime import date

from xero_tableau.entities import XeroEntity
from xero_tableau.transform.schema import TABLES

#: The dynamic partitions of connected Xero organisations (one per tenant id).
XERO_TENANTS = "xero_tenants"
#: Xero opened in 2006: every record's UpdatedDateUTC falls on or after this day.
HISTORY_START = "2006-01-01"

RAW_PREFIX = ("xero", "raw")
TABLE_PREFIX = ("xero", "tables")
EXTRACTS_PATH = ("tableau", "extracts")

#: Run tag naming the webhook batch (the sensor's run key) a run reads for.
WEBHOOK_BATCH_TAG = "xero/webhook_batch"
#: Run tag saying why a run reads Xero: webhook, poll, safety-poll, sweep-recent, sweep-history,
#: sync or backfill (the default). The audit trail keeps it with every version.
PURPOSE_TAG = "xero/purpose"
#: Run tag naming the tenant: the queued run coordinator limits runs per tenant on it.
TENANT_TAG = "xero/tenant"
#: Run tag with the number of webhook events a webhook run covers.
WEBHOOK_EVENTS_TAG = "xero/webhook_events"

#: ``sync_source`` of the published rows (transform/schema.py) for each ``PURPOSE_TAG`` value:
#: the five ways a record is read. Any other value, and a run without the tag, is a backfill.
SYNC_SOURCES: dict[str, str] = {
    "webhook": "webhook",
    "poll": "poll",
    "safety-poll": "poll",
    "sweep-recent": "sweep",
    "sweep-history": "sweep",
    "sync": "sync",
    "backfill": "backfill",
}


def sync_source(purpose: str | None) -> str:
    """The published ``sync_source`` of a run's ``xero/purpose`` tag (``SYNC_SOURCES``)."""
    return SYNC_SOURCES.get(purpose or "backfill", "backfill")


def raw_path(entity: XeroEntity) -> tuple[str, ...]:
    """``xero/raw/<asset name>``: the raw asset of an entity (transactional or reference)."""
    return (*RAW_PREFIX, entity.asset_name)


def table_path(name: str) -> tuple[str, ...]:
    """``xero/tables/<name>``: a normalized table of ``transform.schema.TABLES``."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}")
    return (*TABLE_PREFIX, name)


def day_range_tags(tenant_id: str, first: date, last: date) -> dict[str, str]:
    """Run tags for a single run over days ``first..last`` of one tenant."""
    return {
        "dagster/asset_partition_range_start": f"{first.isoformat()}|{tenant_id}",
        "dagster/asset_partition_range_end": f"{last.isoformat()}|{tenant_id}",
        TENANT_TAG: tenant_id,
    }
