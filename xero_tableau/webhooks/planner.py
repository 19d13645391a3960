"""From queued webhook events to runs, and from a run to the cheapest read (no dagster here).

Pending events are grouped per tenant and entity into one run over the UTC days they touch, with
at most one run in flight per tenant and entity. The run key is derived from the events (their ids
and the attempt), so the same events never start two runs. An event no run can be planned for
(its date names no day) is returned apart with the reason, never raised. A run re-reads its
window with whichever costs fewer calls, a window read or a read by id; a tie goes to the window
read.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from xero_tableau.entities import WEBHOOK_CATEGORIES, entity
from xero_tableau.store.event_queue import Event
from xero_tableau.xero.client import MAX_IDS_PER_CALL

#: Webhook category -> the Accounting API endpoint its records are read from.
CATEGORY_ENDPOINTS: dict[str, str] = {
    category: spec.endpoint for category, spec in WEBHOOK_CATEGORIES.items()
}
#: An event this close to midnight (UTC) touches the day on the other side too.
DAY_EDGE = timedelta(minutes=2)


@dataclass(frozen=True)
class PlannedRun:
    """One run to ask for: the raw partitions of ``endpoint`` for ``first_day..last_day``."""

    tenant_id: str
    endpoint: str
    first_day: date
    last_day: date
    event_ids: tuple[int, ...]
    resource_ids: tuple[str, ...]
    attempt: int
    run_key: str


def event_days(moment: datetime) -> set[date]:
    """The raw day partitions an event at ``moment`` can have changed (OverflowError within two
    minutes of ``datetime``'s range)."""
    return {(moment - DAY_EDGE).date(), moment.date(), (moment + DAY_EDGE).date()}


def unplannable(moment: datetime) -> str | None:
    """Why no run can be planned for an event at ``moment``; None when one can."""
    try:
        event_days(moment)
    except (OverflowError, ValueError) as exc:
        return f"no day partition for eventDateUtc {moment.isoformat()}: {exc}"
    return None


def run_key(tenant_id: str, endpoint: str, event_ids: Iterable[int], attempt: int) -> str:
    """``webhook-<tenant>-<endpoint>-<digest of the event ids>-<attempt>``: the same events and
    attempt always give the same key."""
    digest = hashlib.sha256(",".join(map(str, sorted(event_ids))).encode()).hexdigest()[:16]
    return f"webhook-{tenant_id}-{endpoint.lower()}-{digest}-a{attempt}"


def plan_runs(
    events: Sequence[Event], busy: set[tuple[str, str]], tenants: set[str]
) -> tuple[list[PlannedRun], list[Event], dict[int, str]]:
    """Coalesce pending events into runs; returns (runs, events held back, unplannable events'
    ids with the reason).

    ``busy`` holds (tenant, endpoint) pairs with a run in flight; ``tenants`` the tenants that
    have Dagster partitions. Events of a busy pair or of a tenant without partitions yet are held
    back (they stay pending and come round again). An event whose date names no day
    (:func:`unplannable`) joins no run: the caller sets it aside with the reason."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    held: list[Event] = []
    refused: dict[int, str] = {}
    for event in events:
        endpoint = CATEGORY_ENDPOINTS.get(event.category)
        if endpoint is None:
            continue  # SUBSCRIPTION and unknown categories are never pending
        reason = unplannable(event.event_time)
        if reason is not None:
            refused[event.id] = reason
        elif (event.tenant_id, endpoint) in busy or event.tenant_id not in tenants:
            held.append(event)
        else:
            groups[(event.tenant_id, endpoint)].append(event)
    runs = []
    for (tenant_id, endpoint), members in sorted(groups.items()):
        days = set().union(*(event_days(e.event_time) for e in members))
        ids = tuple(e.id for e in members)
        attempt = max(e.attempts for e in members)
        runs.append(
            PlannedRun(
                tenant_id=tenant_id,
                endpoint=endpoint,
                first_day=min(days),
                last_day=max(days),
                event_ids=ids,
                resource_ids=tuple(sorted({e.resource_id for e in members})),
                attempt=attempt,
                run_key=run_key(tenant_id, endpoint, ids, attempt),
            )
        )
    return runs, held, refused


@dataclass(frozen=True)
class ReadPlan:
    """How a webhook run reads: ``mode`` and what each way was estimated to cost."""

    mode: Literal["ids", "window"]
    window_calls: int
    ids_calls: int | None  # None: the endpoint takes no IDs


def choose_read(endpoint: str, ids: int, window_records: int, page_size: int) -> ReadPlan:
    """The cheaper read for ``ids`` changed records of ``endpoint`` over a window estimated to
    hold ``window_records`` records (what the lake holds for those days plus the changed ones)."""
    window_calls = max(1, -(-window_records // page_size))
    ids_calls = -(-ids // MAX_IDS_PER_CALL) if entity(endpoint).takes_ids and ids else None
    mode: Literal["ids", "window"] = (
        "ids" if ids_calls is not None and ids_calls < window_calls else "window"
    )
    return ReadPlan(mode=mode, window_calls=window_calls, ids_calls=ids_calls)
