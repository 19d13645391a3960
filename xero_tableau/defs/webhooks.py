"""The webhook sensor: queued Xero webhook events in, runs of the raw partitions they touch out.

Every tick (a few seconds apart):

1. Settles the runs it asked for earlier (events "requested", one ``run_key`` per run): a run
   that succeeded makes its events "done"; a failed or cancelled one puts them back to "pending"
   with one attempt more and a backoff (``XT_WEBHOOK_RETRY_SECONDS``, doubling, at most an hour);
   a run that was asked for but never started (the daemon stopped between the tick and the
   launch) is asked for again under the same run key, which Dagster starts at most once.
2. Reads new events after its cursor (the last event id it took in), in bounded batches, plus
   pending events at or below the cursor that are due (retries, and events held back while
   their tenant and entity had a run in flight).
3. Coalesces them per tenant and entity into one run over the days they touch
   (``webhooks.planner``), at most one run in flight per tenant and entity, and marks the events
   "requested" under the run's key before asking for it.

So no event is lost whether the sensor, the daemon or the run fails: an event is done only once a
run that covered it succeeded. Facts, dimensions and the Tableau publish follow the raw
partitions by declarative automation (``defs/automation.py``).
"""

import functools
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from sqlalchemy.engine import Engine

from xero_tableau.defs.partitions import HISTORY_START, XERO_TENANTS, day_range_tags
from xero_tableau.defs.raw_assets import WEBHOOK_BATCH_TAG, raw_asset_key
from xero_tableau.defs.resources import XeroResource
from xero_tableau.defs.schedules import WEBHOOKED
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.webhooks.planner import CATEGORY_ENDPOINTS, event_days, plan_runs

WEBHOOK_SENSOR = "xero_webhook_events"
#: Events read per tick, new and returned each: a tick stays quick however deep the queue is.
EVENTS_PER_TICK = 5000
MAX_BACKOFF = timedelta(hours=1)
_FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def webhook_run_request(
    tenant_id: str, endpoint: str, first: date, last: date, key: str, events: int, today: date
) -> dg.RunRequest:
    """The run of ``endpoint``'s raw partitions ``first..last`` (clamped to the partitions that
    exist) for the webhook batch ``key``."""
    first = min(max(first, date.fromisoformat(HISTORY_START)), today)
    last = min(max(last, first), today)
    return dg.RunRequest(
        run_key=key,
        asset_selection=[raw_asset_key(endpoint)],
        tags={
            **day_range_tags(tenant_id, first, last),
            "xero/purpose": "webhook",
            "xero/webhook_events": str(events),
            WEBHOOK_BATCH_TAG: key,
        },
    )


@functools.cache
def _engine(url: str) -> Engine:
    """One engine (and connection pool) per state DB for the life of the code server: the
    sensor ticks every few seconds and need not reconnect or re-check the schema each time."""
    return connect(url)


def backoff(retry_seconds: int, attempts: int) -> timedelta:
    """Wait before retrying events whose run failed ``attempts`` times before this failure."""
    return min(timedelta(seconds=retry_seconds * 2 ** min(attempts, 20)), MAX_BACKOFF)


@dg.sensor(
    name=WEBHOOK_SENSOR,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=dg.AssetSelection.assets(*WEBHOOKED),
    description="Turns Xero webhook events (queued by `xero-tableau webhooks serve`) into runs of "
    "the raw invoice, credit note and contact partitions they touch; at most one run in flight "
    "per tenant and entity; events stay pending until a run covering them succeeds.",
)
def xero_webhook_sensor(
    context: dg.SensorEvaluationContext, xero: XeroResource
) -> dg.SensorResult | dg.SkipReason:
    settings = xero.settings()
    now = datetime.now(UTC)
    cursor = int(context.cursor or 0)
    requests: list[dg.RunRequest] = []
    busy: set[tuple[str, str]] = set()
    settled = {"done": 0, "retried": 0, "asked_again": 0}
    engine = _engine(settings.database_url)
    queue = EventQueue(engine)
    for batch in queue.in_flight():
        endpoint = CATEGORY_ENDPOINTS[batch.category]
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={WEBHOOK_BATCH_TAG: batch.run_key}), limit=1
        )
        if not runs:
            days = event_days(batch.first_event_time) | event_days(batch.last_event_time)
            requests.append(
                webhook_run_request(
                    batch.tenant_id,
                    endpoint,
                    min(days),
                    max(days),
                    batch.run_key,
                    len(batch.event_ids),
                    now.date(),
                )
            )
            busy.add((batch.tenant_id, endpoint))
            settled["asked_again"] += 1
        elif runs[0].status == dg.DagsterRunStatus.SUCCESS:
            settled["done"] += queue.succeeded(batch.run_key, runs[0].run_id, now)
        elif runs[0].status in _FAILED:
            attempts = max(e.attempts for e in queue.of_run(batch.run_key))
            wait = backoff(settings.webhook_retry_seconds, attempts)
            settled["retried"] += queue.failed(batch.run_key, runs[0].run_id, now + wait)
            context.log.warning(
                f"run {runs[0].run_id} for {batch.run_key} ended {runs[0].status.value}: "
                f"its {len(batch.event_ids)} event(s) are retried after {wait}"
            )
        else:
            busy.add((batch.tenant_id, endpoint))

    new = queue.pending(after_id=cursor, limit=EVENTS_PER_TICK)
    returned = queue.returned(up_to_id=cursor, now=now, limit=EVENTS_PER_TICK)
    tenants = set(context.instance.get_dynamic_partitions(XERO_TENANTS))
    planned, held = plan_runs(returned + new, busy, tenants)
    for run in planned:
        queue.request(run.event_ids, run.run_key, now)
        requests.append(
            webhook_run_request(
                run.tenant_id,
                run.endpoint,
                run.first_day,
                run.last_day,
                run.run_key,
                len(run.event_ids),
                now.date(),
            )
        )
    next_cursor = max([cursor, *(e.id for e in new)])

    summary = (
        f"{len(new)} new event(s), {len(returned)} returned, {len(planned)} run(s) asked for, "
        f"{len(held)} held back (a run in flight or the tenant has no partition yet); settled: "
        f"{settled['done']} done, {settled['retried']} to retry, "
        f"{settled['asked_again']} run(s) asked for again"
    )
    if not requests and next_cursor == cursor and not any(settled.values()):
        return dg.SkipReason(summary)  # shown on the tick in the UI; nothing worth a log line
    context.log.info(summary)
    if not requests and next_cursor == cursor:
        return dg.SkipReason(summary)
    return dg.SensorResult(run_requests=requests, cursor=str(next_cursor))


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[xero_webhook_sensor])
