"""One tick of the webhook sensor, without dagster: settle the runs asked for earlier, then plan
runs for new and returned events. ``defs/webhooks.py`` turns the result into Dagster run requests.

Invariants: an event is "done" only once a run that covered it succeeded; a failed or cancelled
run puts its events back to "pending" with one attempt more and a backoff (doubling, at most an
hour); a run asked for but never started is asked for again under the same run key (Dagster
starts a run key at most once); at most one run is in flight per tenant and entity; events are
marked "requested" under a run key before the run is asked for. An event no run can be planned
for is marked "ignored" with the reason and the tick goes on: one bad event never stops the
sensor for every tenant.
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from xero_tableau.store.event_queue import EventQueue
from xero_tableau.webhooks.planner import (
    CATEGORY_ENDPOINTS,
    event_days,
    plan_runs,
    unplannable,
)

#: Events read per tick, new and returned each: a tick stays quick however deep the queue is.
EVENTS_PER_TICK = 5000
MAX_BACKOFF = timedelta(hours=1)


RunOutcome = Literal["succeeded", "failed", "running"]


@dataclass(frozen=True)
class RunState:
    """What Dagster knows of the newest run under a run key."""

    run_id: str
    outcome: RunOutcome
    status: str  # Dagster's own status name, for messages


@dataclass(frozen=True)
class RunAsk:
    """A run of ``endpoint``'s raw partitions ``first..last`` of one tenant for one batch."""

    tenant_id: str
    endpoint: str
    first_day: date
    last_day: date
    run_key: str
    events: int


@dataclass
class TickResult:
    asks: list[RunAsk] = field(default_factory=list)
    next_cursor: int = 0
    new: int = 0
    returned: int = 0
    planned: int = 0
    held: int = 0
    done: int = 0
    retried: int = 0
    asked_again: int = 0
    ignored: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (
            f"{self.new} new event(s), {self.returned} returned, {self.planned} run(s) asked "
            f"for, {self.held} held back (a run in flight or the tenant has no partition yet); "
            f"settled: {self.done} done, {self.retried} to retry, "
            f"{self.asked_again} run(s) asked for again"
            + (f"; {self.ignored} event(s) set aside as unplannable" if self.ignored else "")
        )

    @property
    def idle(self) -> bool:
        """Nothing was asked for and the cursor did not move."""
        return not self.asks and self.new == 0


def backoff(retry_seconds: int, attempts: int) -> timedelta:
    """Wait before retrying events whose run failed ``attempts`` times before this failure."""
    return min(timedelta(seconds=retry_seconds * 2 ** min(attempts, 20)), MAX_BACKOFF)


def run_tick(
    queue: EventQueue,
    *,
    cursor: int,
    tenants: Collection[str],
    run_of: Callable[[str], RunState | None],
    now: datetime,
    retry_seconds: int,
    limit: int = EVENTS_PER_TICK,
) -> TickResult:
    """Settle the runs in flight (``run_of(run_key)``), then plan runs for the events after
    ``cursor`` and the due returned ones, for the tenants that have partitions."""
    result = TickResult(next_cursor=cursor)
    busy: set[tuple[str, str]] = set()
    for batch in queue.in_flight():
        endpoint = CATEGORY_ENDPOINTS[batch.category]
        run = run_of(batch.run_key)
        if run is None:
            reason = unplannable(batch.first_event_time) or unplannable(batch.last_event_time)
            if reason is not None:  # asked for before dates were bounded: cannot be asked again
                _set_aside(queue, result, {i: reason for i in batch.event_ids})
                continue
            days = event_days(batch.first_event_time) | event_days(batch.last_event_time)
            result.asks.append(
                RunAsk(
                    batch.tenant_id,
                    endpoint,
                    min(days),
                    max(days),
                    batch.run_key,
                    len(batch.event_ids),
                )
            )
            busy.add((batch.tenant_id, endpoint))
            result.asked_again += 1
        elif run.outcome == "succeeded":
            result.done += queue.succeeded(batch.run_key, run.run_id, now)
        elif run.outcome == "failed":
            attempts = max(e.attempts for e in queue.of_run(batch.run_key))
            wait = backoff(retry_seconds, attempts)
            result.retried += queue.failed(batch.run_key, run.run_id, now + wait)
            result.warnings.append(
                f"run {run.run_id} for {batch.run_key} ended {run.status}: "
                f"its {len(batch.event_ids)} event(s) are retried after {wait}"
            )
        else:
            busy.add((batch.tenant_id, endpoint))

    new = queue.pending(after_id=cursor, limit=limit)
    returned = queue.returned(up_to_id=cursor, now=now, limit=limit)
    planned, held, refused = plan_runs(returned + new, busy, set(tenants))
    if refused:
        _set_aside(queue, result, refused)
    for run in planned:
        queue.request(run.event_ids, run.run_key, now)
        result.asks.append(
            RunAsk(
                run.tenant_id,
                run.endpoint,
                run.first_day,
                run.last_day,
                run.run_key,
                len(run.event_ids),
            )
        )
    result.next_cursor = max([cursor, *(e.id for e in new)])
    result.new, result.returned = len(new), len(returned)
    result.planned, result.held = len(planned), len(held)
    return result


def _set_aside(queue: EventQueue, result: TickResult, reasons: dict[int, str]) -> None:
    """Mark events no run can be planned for as ignored, with their reasons, and warn."""
    result.ignored += queue.ignore(reasons)
    for event_id, reason in sorted(reasons.items()):
        result.warnings.append(f"webhook event {event_id} set aside (ignored): {reason}")
