"""The webhook sensor: queued Xero webhook events in, runs of the raw partitions they touch out.

Each tick (``xero_tableau.webhooks.tick.run_tick``) settles the runs asked for earlier by their
Dagster status and plans runs for new and returned events, at most one in flight per tenant and
entity; this module only maps those to Dagster run requests. Facts, dimensions and the Tableau
publish follow the raw partitions by declarative automation (``defs/automation.py``).
"""

import functools
from datetime import UTC, date, datetime

import dagster as dg
from sqlalchemy.engine import Engine

from xero_tableau.asset_names import (
    HISTORY_START,
    PURPOSE_TAG,
    WEBHOOK_BATCH_TAG,
    WEBHOOK_EVENTS_TAG,
    XERO_TENANTS,
    day_range_tags,
    raw_path,
)
from xero_tableau.defs.resources import XeroResource
from xero_tableau.entities import WEBHOOK_CATEGORIES, entity
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.webhooks.tick import RunAsk, RunOutcome, RunState, run_tick

WEBHOOK_SENSOR = "xero_webhook_events"
_OUTCOMES: dict[dg.DagsterRunStatus, RunOutcome] = {
    dg.DagsterRunStatus.SUCCESS: "succeeded",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}


def webhook_run_request(ask: RunAsk, today: date) -> dg.RunRequest:
    """The run of an entity's raw partitions for one webhook batch, clamped to the day
    partitions that exist."""
    first = min(max(ask.first_day, date.fromisoformat(HISTORY_START)), today)
    last = min(max(ask.last_day, first), today)
    return dg.RunRequest(
        run_key=ask.run_key,
        asset_selection=[dg.AssetKey(raw_path(entity(ask.endpoint)))],
        tags={
            **day_range_tags(ask.tenant_id, first, last),
            PURPOSE_TAG: "webhook",
            WEBHOOK_EVENTS_TAG: str(ask.events),
            WEBHOOK_BATCH_TAG: ask.run_key,
        },
    )


@functools.cache
def _engine(url: str) -> Engine:
    """One engine (and connection pool) per state DB for the life of the code server: the
    sensor ticks every few seconds and need not reconnect or re-check the schema each time."""
    return connect(url)


@dg.sensor(
    name=WEBHOOK_SENSOR,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=dg.AssetSelection.assets(*(raw_path(e) for e in WEBHOOK_CATEGORIES.values())),
    description="Turns Xero webhook events (queued by `xero-tableau webhooks serve`) into runs of "
    "the raw invoice, credit note and contact partitions they touch; at most one run in flight "
    "per tenant and entity; events stay pending until a run covering them succeeds.",
)
def xero_webhook_sensor(
    context: dg.SensorEvaluationContext, xero: XeroResource
) -> dg.SensorResult | dg.SkipReason:
    def run_of(run_key: str) -> RunState | None:
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={WEBHOOK_BATCH_TAG: run_key}), limit=1
        )
        if not runs:
            return None
        run = runs[0]
        return RunState(run.run_id, _OUTCOMES.get(run.status, "running"), run.status.value)

    now = datetime.now(UTC)
    cursor = int(context.cursor or 0)
    tick = run_tick(
        EventQueue(_engine(xero.state.settings().database_url)),
        cursor=cursor,
        tenants=context.instance.get_dynamic_partitions(XERO_TENANTS),
        run_of=run_of,
        now=now,
        retry_seconds=xero.webhook_retry_seconds,
    )
    for warning in tick.warnings:
        context.log.warning(warning)
    if tick.idle and not (tick.done or tick.retried):
        return dg.SkipReason(tick.summary)  # shown on the tick in the UI; nothing worth a log line
    context.log.info(tick.summary)
    if tick.idle:
        return dg.SkipReason(tick.summary)
    return dg.SensorResult(
        run_requests=[webhook_run_request(ask, now.date()) for ask in tick.asks],
        cursor=str(tick.next_cursor),
    )
