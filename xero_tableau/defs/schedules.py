"""Polling and sweeping: how changes Xero sends no webhook for still arrive.

- ``xero_poll``: every 15 minutes, the entities Xero has no webhooks for, for yesterday and
  today, one run per tenant.
- ``xero_webhook_safety_poll``: hourly, the same for invoices, credit notes and contacts.
- ``xero_sweep``: nightly, per tenant, re-reads the last 7 days and a slice of older history
  (``xero_tableau.sweep``: all of it since the organisation's creation within
  ``XT_SWEEP_PERIOD_DAYS`` nights, inside the daily call budget).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from xero_tableau.asset_names import (
    PURPOSE_TAG,
    XERO_TENANTS,
    day_range_tags,
    raw_path,
)
from xero_tableau.defs.resources import XeroResource
from xero_tableau.entities import TRANSACTIONAL
from xero_tableau.sweep import RECENT_DAYS, plan_tenant

POLLED = [dg.AssetKey(raw_path(e)) for e in TRANSACTIONAL if not e.webhook_category]
WEBHOOKED = [dg.AssetKey(raw_path(e)) for e in TRANSACTIONAL if e.webhook_category]
ALL_RAW = POLLED + WEBHOOKED
#: Run tags of the sweep's runs: the calls the run is estimated to cost, the nights in which the
#: sweep reads all history (the setting, or stretched to fit the budget), the calls the night
#: may spend, and what the plan had to give up to stay within them.
SWEEP_CALLS_TAG = "xero/sweep_calls_estimate"
SWEEP_PERIOD_TAG = "xero/sweep_period_days"
SWEEP_BUDGET_TAG = "xero/sweep_call_budget"
SWEEP_NOTE_TAG = "xero/sweep_note"


def range_requests(
    tenants: Sequence[str],
    assets: list[dg.AssetKey],
    first: date,
    last: date,
    *,
    purpose: str,
    stamp: str,
    tags: Mapping[str, str] | None = None,
) -> list[dg.RunRequest]:
    """One single-run request per tenant over days ``first..last`` of ``assets``."""
    return [
        dg.RunRequest(
            run_key=f"{purpose}-{tenant}-{first}-{last}-{stamp}",
            asset_selection=assets,
            tags={**day_range_tags(tenant, first, last), PURPOSE_TAG: purpose, **(tags or {})},
        )
        for tenant in tenants
    ]


def _scheduled_day(context: dg.ScheduleEvaluationContext) -> date:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return when.astimezone(UTC).date()


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
    description=f"Nightly re-read of the last {RECENT_DAYS} days and a slice of older history, "
    "so that all history since the organisation's creation is read again within "
    "XT_SWEEP_PERIOD_DAYS nights (within the daily call budget): catches the changes that do "
    "not bump UpdatedDateUTC.",
)
def xero_sweep(context: dg.ScheduleEvaluationContext, xero: XeroResource):
    tenants = context.instance.get_dynamic_partitions(XERO_TENANTS)
    if not tenants:
        return dg.SkipReason("no Xero tenant connected yet: run `xero-tableau connect`")
    today = _scheduled_day(context)
    stamp = today.isoformat()
    lake = xero.state.lake_dir
    switched_on = [e.endpoint for e in TRANSACTIONAL if e.asset_name not in xero.disabled_entities]
    requests: list[dg.RunRequest] = []
    for tenant in tenants:
        plan = plan_tenant(
            lake,
            tenant,
            today,
            entities=switched_on,
            period=xero.sweep_period_days,
            page_size=xero.page_size,
            daily_call_limit=xero.daily_call_limit,
        )
        tags = {SWEEP_PERIOD_TAG: str(plan.period), SWEEP_BUDGET_TAG: str(plan.budget)}
        if plan.note:
            tags[SWEEP_NOTE_TAG] = plan.note
            context.log.warning(f"sweep of {tenant}: {plan.note}")
        older = f"{plan.older[0]} .. {plan.older[1]}" if plan.older else "none"
        context.log.info(
            f"sweep of {tenant}: recent {plan.recent[0]} .. {plan.recent[1]}, older {older} "
            f"(~{plan.calls} of {plan.budget} calls; all history since {plan.created} "
            f"every {plan.period} nights)"
        )
        requests += range_requests(
            [tenant],
            ALL_RAW,
            *plan.recent,
            purpose="sweep-recent",
            stamp=stamp,
            tags={**tags, SWEEP_CALLS_TAG: str(plan.recent_calls)},
        )
        if plan.older is not None:
            requests += range_requests(
                [tenant],
                ALL_RAW,
                *plan.older,
                purpose="sweep-history",
                stamp=stamp,
                tags={**tags, SWEEP_CALLS_TAG: str(plan.older_calls)},
            )
    return requests
