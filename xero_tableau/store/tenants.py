"""Tenants known from Xero's /connections."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import xero_tenants


@dataclass(frozen=True)
class KnownTenant:
    tenant_id: str
    name: str
    active: bool


def record_connections(
    engine: Engine, connections: Iterable[tuple[str, str, str, str]]
) -> list[KnownTenant]:
    """Upsert (tenant_id, name, tenant_type, connection_id) rows; tenants missing from the list are
    marked inactive (disconnected) but kept, so their history stays explainable."""
    now = datetime.now(UTC)
    seen: set[str] = set()
    with engine.begin() as conn:
        for tenant_id, name, tenant_type, connection_id in connections:
            tenant_id = tenant_id.lower()
            seen.add(tenant_id)
            values = dict(
                name=name,
                tenant_type=tenant_type,
                connection_id=connection_id,
                active=True,
                last_seen_at=now,
            )
            updated = conn.execute(
                xero_tenants.update().where(xero_tenants.c.tenant_id == tenant_id).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(
                    xero_tenants.insert().values(tenant_id=tenant_id, first_seen_at=now, **values)
                )
        conn.execute(
            xero_tenants.update()
            .where(xero_tenants.c.tenant_id.not_in(seen) if seen else sa.true())
            .values(active=False)
        )
    return list_tenants(engine)


def list_tenants(engine: Engine, *, active_only: bool = False) -> list[KnownTenant]:
    query = sa.select(xero_tenants.c.tenant_id, xero_tenants.c.name, xero_tenants.c.active)
    if active_only:
        query = query.where(xero_tenants.c.active.is_(True))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(xero_tenants.c.name)).all()
    return [KnownTenant(r.tenant_id, r.name, bool(r.active)) for r in rows]
