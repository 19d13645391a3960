"""A tenant's tracking slots in the state DB: read them, and give slots to new categories.

The slots themselves are decided by the caller (``transform.normalize.tracking_slots``, a pure
function); this module only keeps them, so they survive a restart, a rebuilt lake and every sync
path, and so two processes building the same tenant at once agree (the first writer wins; the
other reads the winner's slots and decides again).
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import insert_or_ignore, xero_tracking_slots

_ATTEMPTS = 5


def load_slots(engine: Engine, tenant_id: str) -> dict[str, int]:
    """Category id -> slot of every category the tenant was ever given a slot for."""
    table = xero_tracking_slots
    query = sa.select(table.c.category_id, table.c.slot).where(table.c.tenant_id == tenant_id)
    with engine.connect() as conn:
        return {row.category_id: int(row.slot) for row in conn.execute(query)}


def assign_slots(
    engine: Engine,
    tenant_id: str,
    decide: Callable[[Mapping[str, int]], Mapping[str, int]],
    names: Mapping[str, str | None] | None = None,
) -> dict[str, int]:
    """The tenant's slots after ``decide`` (persisted slots -> persisted plus new ones) gave the
    new categories theirs. Existing rows are never changed; an insert that loses a race (the
    category or the slot number taken meanwhile) is dropped and the decision made again on what
    the winner wrote."""
    names = names or {}
    for _ in range(_ATTEMPTS):
        known = load_slots(engine, tenant_id)
        wanted = decide(known)
        moved = {cid for cid, slot in known.items() if wanted.get(cid) != slot}
        if moved:
            raise ValueError(f"tracking slots of {sorted(moved)} would change: they never may")
        new = {cid: slot for cid, slot in wanted.items() if cid not in known}
        if not new:
            return known
        now = datetime.now(UTC)
        with engine.begin() as conn:
            for category_id, slot in sorted(new.items(), key=lambda item: item[1]):
                conn.execute(
                    insert_or_ignore(engine, xero_tracking_slots)
                    .values(
                        tenant_id=tenant_id,
                        category_id=category_id,
                        slot=slot,
                        category_name=names.get(category_id),
                        assigned_at=now,
                    )
                    .on_conflict_do_nothing()
                )
        stored = load_slots(engine, tenant_id)
        if all(stored.get(cid) == slot for cid, slot in new.items()):
            return stored
    raise RuntimeError(
        f"tracking slots of tenant {tenant_id}: no agreement after {_ATTEMPTS} tries"
    )
