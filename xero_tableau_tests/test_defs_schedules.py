"""The polling schedules and the sweep, evaluated as the daemon would."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from xero_tableau.asset_names import HISTORY_START, XERO_TENANTS
from xero_tableau.defs.partitions import tenant_days
from xero_tableau.defs.schedules import (
    POLLED,
    SWEEP_SLICE_DAYS,
    WEBHOOKED,
    sweep_slice,
    xero_poll,
    xero_sweep,
    xero_webhook_safety_poll,
)

TENANTS = ["0f6a1b2c-0000-4000-8000-000000000001", "0f6a1b2c-0000-4000-8000-000000000002"]


def _evaluate(
    schedule: dg.ScheduleDefinition, when: datetime, tenants: list[str]
) -> tuple[list[dg.RunRequest], str | None]:
    with dg.instance_for_test() as instance:
        if tenants:
            instance.add_dynamic_partitions(XERO_TENANTS, tenants)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or []), result.skip_message


def test_poll_requests_yesterday_and_today_per_tenant_for_unwebhooked_entities() -> None:
    when = datetime(2026, 3, 10, 0, 15, tzinfo=UTC)
    requests, _ = _evaluate(xero_poll, when, TENANTS)
    assert len(requests) == 2
    for request, tenant in zip(requests, TENANTS, strict=True):
        assert set(request.asset_selection or ()) == set(POLLED)
        assert request.tags["dagster/asset_partition_range_start"] == f"2026-03-09|{tenant}"
        assert request.tags["dagster/asset_partition_range_end"] == f"2026-03-10|{tenant}"
        assert request.tags["xero/tenant"] == tenant
        # both ends are real partitions of the raw assets
        for key in ("start", "end"):
            tenant_days.get_partition_key_from_str(
                request.tags[f"dagster/asset_partition_range_{key}"]
            )
    assert not set(POLLED) & set(WEBHOOKED)


def test_safety_poll_covers_webhook_entities_and_skips_without_tenants() -> None:
    when = datetime(2026, 3, 10, 5, 7, tzinfo=UTC)
    requests, _ = _evaluate(xero_webhook_safety_poll, when, TENANTS[:1])
    assert [set(r.asset_selection or ()) for r in requests] == [set(WEBHOOKED)]
    requests, skip = _evaluate(xero_webhook_safety_poll, when, [])
    assert requests == [] and skip and "connect" in skip


def test_sweep_reads_recent_days_and_a_rolling_slice_of_history() -> None:
    when = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)
    requests, _ = _evaluate(xero_sweep, when, TENANTS[:1])
    assert len(requests) == 2
    recent, older = requests
    assert recent.tags["dagster/asset_partition_range_start"].startswith("2026-03-03|")
    assert recent.tags["dagster/asset_partition_range_end"].startswith("2026-03-10|")
    first = date.fromisoformat(older.tags["dagster/asset_partition_range_start"].split("|")[0])
    last = date.fromisoformat(older.tags["dagster/asset_partition_range_end"].split("|")[0])
    assert (last - first).days == SWEEP_SLICE_DAYS - 1 and last < date(2026, 3, 3)


def test_sweep_slices_cover_all_history_over_a_cycle() -> None:
    start = date.fromisoformat(HISTORY_START)
    today = date(2026, 3, 10)
    covered: set[date] = set()
    for offset in range(400):
        first, last = sweep_slice(today + timedelta(days=offset), start, SWEEP_SLICE_DAYS)
        covered.update(first + timedelta(days=i) for i in range((last - first).days + 1))
    recent_start = today - timedelta(days=7)
    missing = [
        start + timedelta(days=i)
        for i in range((recent_start - start).days)
        if start + timedelta(days=i) not in covered
    ]
    assert missing == []
