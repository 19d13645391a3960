"""Read watermarks: per tenant and entity, the moment up to which Xero's changes are in the lake.

A raw read that reaches the present and starts at or before the previous watermark (so that it
covers every change since) moves the watermark to when it started; the next read that reaches
the present starts no later than the watermark's day, so a gap (an entity switched off, a stopped
daemon) is read in full. The mark only moves forward: two overlapping runs leave the later one.

No dagster here.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import as_utc, insert_or_ignore, xero_read_watermarks


def read_through(engine: Engine, tenant_id: str, entity: str) -> datetime | None:
    """Every change of ``entity`` before this moment has been read (None: never read)."""
    w = xero_read_watermarks
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(w.c.read_through).where(
                w.c.tenant_id == tenant_id.lower(), w.c.entity == entity
            )
        ).scalar()
    return as_utc(found) if found is not None else None


def advance(
    engine: Engine, tenant_id: str, entity: str, moment: datetime, run_id: str | None = None
) -> None:
    """Record that every change before ``moment`` has been read, unless a later mark is there."""
    if moment.tzinfo is None:
        raise ValueError("a watermark must be timezone-aware")
    w = xero_read_watermarks
    tenant = tenant_id.lower()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert_or_ignore(engine, w).on_conflict_do_nothing(
                index_elements=["tenant_id", "entity"]
            ),
            {
                "tenant_id": tenant,
                "entity": entity,
                "read_through": moment,
                "run_id": run_id,
                "updated_at": now,
            },
        )
        conn.execute(
            sa.update(w)
            .where(w.c.tenant_id == tenant, w.c.entity == entity, w.c.read_through < moment)
            .values(read_through=moment, run_id=run_id, updated_at=now)
        )
