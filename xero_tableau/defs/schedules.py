"""Polling and sweeping: how changes Xero sends no webhook for still arrive.

- ``xero_poll``: every 15 minutes, the entities Xero has no webhooks for, for yesterday and
  today, one run per tenant.
- ``xero_webhook_safety_poll``: hourly, the same for invoices, credit notes and contacts.
- ``xero_sweep``: nightly, re-reads the last 7 days and a rolling 90-day slice of older history.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from xero_tableau.asset_names import (
    HISTORY_START,
    PURPOSE_TAG,
    XERO_TENANTS,
    day_range_tags,
    raw_path,
)
from xero_tableau.entities import TRANSACTIONAL

POLLED = [dg.AssetKey(raw_path(e)) for e in TRANSACTIONAL if not e.webhook_category]
WEBHOOKED = [dg.AssetKey(raw_path(e)) for e in TRANSACTIONAL if e.webhook_category]
ALL_RAW = POLLED + WEBHOOKED
SWEEP_RECENT_DAYS = 7
SWEEP_SLICE_DAYS = 90


def range_requests(
    tenants: Sequence[str],
    assets: list[dg.AssetKey],
    first: date,
    last: date,
    *,
    purpose: str,
    stamp: str,
) -> list[dg.RunRequest]:
    """One single-run request per tenant over days ``first..last`` of ``assets``."""
    return [
        dg.RunRequest(
            run_key=f"{purpose}-{tenant}-{first}-{last}-{stamp}",
            asset_selection=assets,
            tags={**day_range_tags(tenant, first, last), PURPOSE_TAG: purpose},
        )
        for tenant in tenants
    ]


def _scheduled_day(context: dg.ScheduleEvaluationContext) -> date:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return when.astimezone(UTC).date()


def sweep_slice(today: date, history_start: date, slice_days: int) -> tuple[date, date]:
    """The older slice swept on ``today``: slices of ``slice_days`` from ``history_start`` up to
    the recent window, taken in turn, one per day."""
    recent_start = today - timedelta(days=SWEEP_RECENT_DAYS)
    span = max(1, (recent_start - history_start).days)
    slices = max(1, -(-span // slice_days))
    index = today.toordinal() % slices
    first = history_start + timedelta(days=index * slice_days)
    last = min(first + timedelta(days=slice_days - 1), recent_start - timedelta(days=1))
    return first, max(first, last)


def _poll(context: dg.ScheduleEvaluationContext, assets: list[dg.AssetKey], purpose: str):
    tenants = context.instance.get_dynamic_partitions(XERO_TENANTS)
    if not tenants:
        return dg.SkipReason("no Xero tenant connected yet: run `xero-tableau connect`")
    today = _scheduled_day(context)
    stamp = (context.scheduled_execution_time or datetime.now(UTC)).strftime("%Y%m%dT%H%M")
    return range_requests(
        tenants, assets, today - timedelta(days=1), today, purpose=purpose, stamp=stamp
    )


@dg.schedule(
    name="xero_poll",
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    target=dg.AssetSelection.assets(*POLLED),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Reads the entities Xero sends no webhooks for (payments, bank transactions, "
    "manual journals, purchase orders, overpayments, prepayments) changed yesterday or today.",
)
def xero_poll(context: dg.ScheduleEvaluationContext):
    return _poll(context, POLLED, "poll")


@dg.schedule(
    name="xero_webhook_safety_poll",
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    target=dg.AssetSelection.assets(*WEBHOOKED),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly re-read of invoices, credit notes and contacts changed yesterday or today, "
    "in case a webhook was missed or the subscription disabled.",
)
def xero_webhook_safety_poll(context: dg.ScheduleEvaluationContext):
    return _poll(context, WEBHOOKED, "safety-poll")


@dg.schedule(
    name="xero_sweep",
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    target=dg.AssetSelection.assets(*ALL_RAW),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly re-read of the last 7 days and a rolling 90-day slice of older history, "
    "for changes that do not bump UpdatedDateUTC.",
)
def xero_sweep(context: dg.ScheduleEvaluationContext):
    tenants = context.instance.get_dynamic_partitions(XERO_TENANTS)
    if not tenants:
        return dg.SkipReason("no Xero tenant connected yet: run `xero-tableau connect`")
    today = _scheduled_day(context)
    stamp = today.isoformat()
    old_first, old_last = sweep_slice(today, date.fromisoformat(HISTORY_START), SWEEP_SLICE_DAYS)
    recent = range_requests(
        tenants,
        ALL_RAW,
        today - timedelta(days=SWEEP_RECENT_DAYS),
        today,
        purpose="sweep-recent",
        stamp=stamp,
    )
    older = range_requests(
        tenants, ALL_RAW, old_first, old_last, purpose="sweep-history", stamp=stamp
    )
    return recent + older
