"""The nightly sweep's plan: which days a night re-reads, so that every day since the
organisation's creation is read again within ``XT_SWEEP_PERIOD_DAYS`` nights, inside the daily
call budget (no dagster here; ``defs/schedules.py`` turns a plan into runs).

Xero does not bump ``UpdatedDateUTC`` for every change (a line's account code, for one), so
neither the polls nor the webhooks see such an edit; a window read of the record's day does, as
it returns the record as it is now. Each night reads:

- the recent window: the last :data:`RECENT_DAYS` days and today;
- one slice of the older history, from the organisation's creation to the day before the recent
  window. Nights are grouped in cycles of ``period`` consecutive nights (by the day's ordinal);
  night ``i`` of a cycle reads slice ``i`` of the older history as it stood when the cycle
  began, and the cycle's last night reads to the present end of it. Any ``period`` consecutive
  nights therefore read every day from the creation to the last night
  (``test_sweep_plan.py`` checks it for any creation, night and period).

A slice costs about ``documents // page size + 1`` calls per entity (the window read pages in
``UpdatedDateUTC`` order and stops past the slice's end), estimated from the documents the lake
holds for its days. When a night would spend more than :data:`BUDGET_SHARE` of the tenant's
daily budget, the period is stretched until every slice fits, and the plan says so.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from math import ceil
from pathlib import Path

from xero_tableau import raw_lake

#: Days before today that every night re-reads (with today).
RECENT_DAYS = 7
#: The share of ``XERO_DAILY_CALL_LIMIT`` (per tenant) the nightly sweep may spend; the polls,
#: the snapshots and the webhook runs need the rest.
BUDGET_SHARE = 0.25

Days = tuple[date, date]


def recent_window(today: date, created: date) -> Days:
    """The days every night re-reads: the last :data:`RECENT_DAYS` and today (none before the
    organisation's creation)."""
    return min(today, max(created, today - timedelta(days=RECENT_DAYS))), today


def older_slice(today: date, created: date, period: int) -> Days | None:
    """The slice of older history (``created`` to the day before the recent window) read on the
    night of ``today``, or None when there is none."""
    if period < 1:
        raise ValueError(f"the sweep period must be at least one night, got {period}")
    end = today - timedelta(days=RECENT_DAYS + 1)
    if end < created:
        return None
    night = today.toordinal()
    index = night % period
    cycle_end = date.fromordinal(night - index) - timedelta(days=RECENT_DAYS + 1)
    span = max(0, (cycle_end - created).days + 1)  # older days when the cycle began
    size = max(1, -(-span // period))
    first = created + timedelta(days=index * size)
    last = end if index == period - 1 else min(end, first + timedelta(days=size - 1))
    return (first, last) if first <= last else None


def cycle_slices(today: date, created: date, period: int) -> list[Days]:
    """Every slice of the cycle ``today`` belongs to, as planned tonight (the budget check)."""
    night = today.toordinal()
    start = night - night % period
    slices = []
    for n in range(start, start + period):
        planned = older_slice(date.fromordinal(n), created, period)
        if planned is not None:
            slices.append(planned)
    return slices


class CallEstimate:
    """Calls a window read of a range of days costs, from the documents per entity and day."""

    def __init__(self, counts: Mapping[str, Mapping[date, int]], page_size: int) -> None:
        if page_size < 1:
            raise ValueError("page size must be positive")
        self.page_size = page_size
        self._days: dict[str, list[int]] = {}
        self._sums: dict[str, list[int]] = {}
        for entity, per_day in counts.items():
            days = sorted(per_day)
            self._days[entity] = [d.toordinal() for d in days]
            self._sums[entity] = [0, *accumulate(per_day[d] for d in days)]

    def documents(self, entity: str, days: Days) -> int:
        ordinals = self._days[entity]
        sums = self._sums[entity]
        lo = bisect_left(ordinals, days[0].toordinal())
        hi = bisect_right(ordinals, days[1].toordinal())
        return sums[hi] - sums[lo]

    def calls(self, days: Days) -> int:
        """One paged read per entity: a page per ``page_size`` documents, plus the last one."""
        return sum(self.documents(e, days) // self.page_size + 1 for e in self._days)


@dataclass(frozen=True)
class SweepPlan:
    """One tenant's sweep tonight."""

    tenant_id: str
    created: date
    recent: Days
    older: Days | None
    period: int  # nights in which all history is read again (the setting, or stretched)
    recent_calls: int
    older_calls: int
    budget: int  # calls the sweep may spend tonight
    note: str  # what the plan had to give up, if anything ("" when nothing)

    @property
    def calls(self) -> int:
        return self.recent_calls + self.older_calls


def plan_sweep(
    tenant_id: str,
    today: date,
    created: date,
    period: int,
    estimate: CallEstimate,
    daily_call_limit: int,
) -> SweepPlan:
    """Tonight's reads for one tenant, the period stretched if a slice would not fit the
    budget (:data:`BUDGET_SHARE` of ``daily_call_limit``)."""
    budget = max(1, int(daily_call_limit * BUDGET_SHARE))
    recent = recent_window(today, created)
    recent_calls = estimate.calls(recent)
    left = budget - recent_calls
    chosen = period
    note = ""

    def heaviest(p: int) -> int:
        return max((estimate.calls(s) for s in cycle_slices(today, created, p)), default=0)

    if heaviest(chosen) > left:
        end = today - timedelta(days=RECENT_DAYS + 1)
        older_days = max(1, (end - created).days + 1)
        total = estimate.calls((created, end))
        chosen = max(period + 1, ceil(total / max(1, left)))
        while heaviest(chosen) > left and chosen < older_days:
            chosen = min(older_days, max(chosen + 1, ceil(chosen * 1.2)))
        if heaviest(chosen) > left:
            note = (
                f"over budget: the recent days and one older day a night need more than "
                f"{budget} calls ({BUDGET_SHARE:.0%} of XERO_DAILY_CALL_LIMIT="
                f"{daily_call_limit}); reading one older day a night"
            )
        else:
            note = (
                f"period stretched from {period} to {chosen} nights to keep each night within "
                f"{budget} calls ({BUDGET_SHARE:.0%} of XERO_DAILY_CALL_LIMIT={daily_call_limit})"
            )
    older = older_slice(today, created, chosen)
    return SweepPlan(
        tenant_id=tenant_id,
        created=created,
        recent=recent,
        older=older,
        period=chosen,
        recent_calls=recent_calls,
        older_calls=estimate.calls(older) if older is not None else 0,
        budget=budget,
        note=note,
    )


def lake_estimate(
    lake: Path, tenant_id: str, entities: Iterable[str], page_size: int
) -> CallEstimate:
    """A call estimate from the documents the lake holds per day for ``entities``."""
    return CallEstimate(
        {entity: raw_lake.day_counts(lake, tenant_id, entity) for entity in entities}, page_size
    )


def plan_tenant(
    lake: Path,
    tenant_id: str,
    today: date,
    *,
    entities: Iterable[str],
    period: int,
    page_size: int,
    daily_call_limit: int,
) -> SweepPlan:
    """Tonight's sweep of one tenant from what its lake holds: history from the organisation's
    creation, costs from the documents per day of ``entities`` (the ones switched on)."""
    return plan_sweep(
        tenant_id,
        today,
        raw_lake.history_start(lake, tenant_id),
        period,
        lake_estimate(lake, tenant_id, entities, page_size),
        daily_call_limit,
    )
