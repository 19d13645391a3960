"""The polling schedules and the sweep, evaluated as the daemon would."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from xero_tableau import raw_lake
from xero_tableau.asset_names import XERO_TENANTS
from xero_tableau.defs.partitions import tenant_days
from xero_tableau.defs.resources import StateResource, XeroResource
from xero_tableau.defs.schedules import (
    ALL_RAW,
    POLLED,
    SWEEP_BUDGET_TAG,
    SWEEP_CALLS_TAG,
    SWEEP_NOTE_TAG,
    SWEEP_PERIOD_TAG,
    WEBHOOKED,
    xero_poll,
    xero_sweep,
    xero_webhook_safety_poll,
)
from xero_tableau.entities import TRANSACTIONAL
from xero_tableau.sandbox.dataset import ms_date
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau_tests.test_transform import write_entity, write_reference

TENANTS = ["0f6a1b2c-0000-4000-8000-000000000001", "0f6a1b2c-0000-4000-8000-000000000002"]


def _xero(home: Path, **fields: object) -> XeroResource:
    return XeroResource(
        state=StateResource(home=str(home)),
        client_id="id",
        client_secret="secret",
        **fields,  # type: ignore[arg-type]
    )


def _evaluate_nights(
    schedule: dg.ScheduleDefinition,
    nights: list[datetime],
    tenants: list[str],
    xero: XeroResource | None = None,
) -> list[tuple[list[dg.RunRequest], str | None]]:
    """The schedule's ticks at ``nights``, on one instance."""
    ticks = []
    with dg.instance_for_test() as instance:
        if tenants:
            instance.add_dynamic_partitions(XERO_TENANTS, tenants)
        for when in nights:
            with dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=when,
                resources={"xero": xero} if xero is not None else None,
            ) as context:
                result = schedule.evaluate_tick(context)
            ticks.append((list(result.run_requests or []), result.skip_message))
    return ticks


def _evaluate(
    schedule: dg.ScheduleDefinition,
    when: datetime,
    tenants: list[str],
    xero: XeroResource | None = None,
) -> tuple[list[dg.RunRequest], str | None]:
    return _evaluate_nights(schedule, [when], tenants, xero)[0]


def _range(request: dg.RunRequest) -> tuple[date, date]:
    return (
        date.fromisoformat(request.tags["dagster/asset_partition_range_start"][:10]),
        date.fromisoformat(request.tags["dagster/asset_partition_range_end"][:10]),
    )


def _organisation(home: Path, tenant: str, created: date) -> None:
    moment = datetime(created.year, created.month, created.day, 3, tzinfo=UTC)
    organisation = {
        "OrganisationID": tenant,
        "CreatedDateUTC": ms_date(int(moment.timestamp() * 1000)),
    }
    raw_lake.write_reference(home / "lake", tenant, "Organisation", [organisation])


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


def test_sweep_reads_recent_days_and_a_slice_of_history_since_the_creation(
    tmp_path: Path,
) -> None:
    _organisation(tmp_path, TENANTS[0], date(2024, 5, 20))
    when = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)
    requests, _ = _evaluate(xero_sweep, when, TENANTS[:1], _xero(tmp_path))
    assert len(requests) == 2
    recent, older = requests
    assert [r.tags["xero/purpose"] for r in requests] == ["sweep-recent", "sweep-history"]
    assert _range(recent) == (date(2026, 3, 3), date(2026, 3, 10))
    first, last = _range(older)
    assert date(2024, 5, 20) <= first <= last < date(2026, 3, 3)
    for request in requests:
        assert set(request.asset_selection or ()) == set(ALL_RAW)
        assert request.tags[SWEEP_PERIOD_TAG] == "7"
        assert request.tags[SWEEP_BUDGET_TAG] == "1250"  # a quarter of 5,000
        assert int(request.tags[SWEEP_CALLS_TAG]) == len(ALL_RAW)  # an empty lake: a call each
        assert SWEEP_NOTE_TAG not in request.tags
        for key in ("start", "end"):
            tenant_days.get_partition_key_from_str(
                request.tags[f"dagster/asset_partition_range_{key}"]
            )


@pytest.mark.parametrize("period", [7, 3])
def test_sweeps_of_one_period_read_every_day_since_the_organisation_was_created(
    tmp_path: Path, period: int
) -> None:
    """An account recoded on a two-month-old bill is read again within the period (it was
    about every 82 days, slices of 90 days from 2006)."""
    created = date(2023, 9, 14)
    _organisation(tmp_path, TENANTS[0], created)
    xero = _xero(tmp_path, sweep_period_days=period)
    night = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)
    read: set[date] = set()
    nights = [night - timedelta(days=back) for back in range(period)]
    for requests, _ in _evaluate_nights(xero_sweep, nights, TENANTS[:1], xero):
        for request in requests:
            first, last = _range(request)
            read |= {first + timedelta(days=i) for i in range((last - first).days + 1)}
    every = {created + timedelta(days=i) for i in range((night.date() - created).days + 1)}
    assert sorted(every - read) == []
    assert min(read) == created  # and nothing from before the organisation existed


def test_a_sweep_over_the_call_budget_is_stretched_and_says_so(tmp_path: Path) -> None:
    """A generated organisation in the lake, read two documents a page: its history does not
    fit a quarter of a 300-call day in 7 nights."""
    dataset = generate(
        GeneratorConfig(tenants=1, invoice_lines=300, as_of=date(2026, 3, 9), history_days=200)
    )
    tenant_id, tenant = next(iter(dataset.tenants.items()))
    lake = tmp_path / "lake"
    write_reference(lake, tenant)
    for entity in TRANSACTIONAL:
        write_entity(
            lake, tenant_id, entity.endpoint, list(tenant.collections[entity.endpoint].values())
        )
    xero = _xero(tmp_path, page_size=2, daily_call_limit=300)
    requests, _ = _evaluate(xero_sweep, datetime(2026, 3, 10, 2, 30, tzinfo=UTC), [tenant_id], xero)
    assert [r.tags["xero/purpose"] for r in requests] == ["sweep-recent", "sweep-history"]
    for request in requests:
        assert request.tags[SWEEP_BUDGET_TAG] == "75"
        assert int(request.tags[SWEEP_PERIOD_TAG]) > 7
        assert "stretched from 7" in request.tags[SWEEP_NOTE_TAG]
    assert sum(int(r.tags[SWEEP_CALLS_TAG]) for r in requests) <= 50
