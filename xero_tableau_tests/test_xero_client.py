"""Rate limits never hit, the fewest calls possible: the project's Xero client against the sandbox.

Every test reads over real HTTP; the sandbox counts what it served and what it refused.
"""

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xero_tableau.entities import ENTITIES
from xero_tableau.rate_limits import DailyBudgetExhausted
from xero_tableau.sandbox.credentials import DEMO_CUSTOM_CLIENT_ID, DEMO_CUSTOM_CLIENT_SECRET
from xero_tableau.sandbox.dataset import parse_ms_date
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.limits import LimitSettings
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.xero.errors import XeroForbidden, XeroNotFound, XeroValidationError
from xero_tableau.xero_connection import open_xero
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    sandbox_with_callback,
    settings_env,
)

INVOICES = ENTITIES["Invoices"]


@pytest.fixture
def sandboxes() -> Iterator[list[CallbackSandbox]]:
    started: list[CallbackSandbox] = []
    yield started
    for sandbox in started:
        sandbox.stop()


def _start(
    started: list[CallbackSandbox],
    config: XeroSandboxConfig | None = None,
    data: GeneratorConfig | None = None,
) -> CallbackSandbox:
    sandbox = sandbox_with_callback(config, data)
    started.append(sandbox)
    return sandbox


def _ids(sandbox: CallbackSandbox, tenant: str, endpoint: str = "Invoices") -> set[str]:
    return set(sandbox.sandbox.dataset.tenants[tenant].collections[endpoint])


def test_full_read_costs_one_call_per_thousand_records(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    sandbox = _start(sandboxes, data=GeneratorConfig(tenants=1, invoice_lines=9000))
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    expected = _ids(sandbox, tenant)
    with open_xero(settings) as xero:
        seen = [r["InvoiceID"] for page in xero.client.read_all(INVOICES, tenant) for r in page]
        calls = xero.client.stats.calls
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert calls <= -(-len(expected) // 1000) + 2


def test_window_read_returns_exactly_the_window_in_one_call(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    sandbox = _start(sandboxes, data=GeneratorConfig(tenants=1, invoice_lines=6000))
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    data = sandbox.sandbox.dataset.tenants[tenant]
    day = max(
        datetime.fromtimestamp(parse_ms_date(r["UpdatedDateUTC"]) / 1000, UTC).date()
        for r in data.collections["Invoices"].values()
    ) - timedelta(days=30)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    expected = {
        rid
        for rid, r in data.collections["Invoices"].items()
        if start.timestamp() * 1000 <= parse_ms_date(r["UpdatedDateUTC"]) < end.timestamp() * 1000
    }
    assert expected, "the generator should put invoices on most days"
    with open_xero(settings) as xero:
        got = [
            r["InvoiceID"]
            for page in xero.client.read_window(INVOICES, tenant, start, end)
            for r in page
        ]
        assert xero.client.stats.calls == 1
    assert sorted(got) == sorted(expected)


def test_ids_go_in_batches_of_fifty(sandboxes: list[CallbackSandbox], tmp_path: Path) -> None:
    sandbox = _start(sandboxes)
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    wanted = sorted(_ids(sandbox, tenant))[:120]
    with open_xero(settings) as xero:
        found = xero.client.read_ids(INVOICES, tenant, wanted)
        assert xero.client.stats.calls == 3
    assert sorted(r["InvoiceID"] for r in found) == wanted


def test_429_with_retry_after_and_503s_lose_and_double_nothing(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    # A minute lasts a real second; 8 calls a minute; one call in five fails with 503.
    sandbox = _start(
        sandboxes,
        XeroSandboxConfig(clock_speed=60, limits=LimitSettings(per_minute=8)),
        GeneratorConfig(tenants=1, invoice_lines=3000),
    )
    settings, tenants = connected_settings(sandbox, tmp_path, XERO_PAGE_SIZE="100")
    tenant = tenants[0].tenant_id
    expected = _ids(sandbox, tenant)
    sandbox.sandbox.faults.error_rate = 0.2
    with open_xero(settings) as xero:
        xero.client.limiter = None  # let Xero's 429s through: the client must obey Retry-After
        xero.client.sleep = _fast_sleep
        seen = [r["InvoiceID"] for page in xero.client.read_all(INVOICES, tenant) for r in page]
        stats = xero.client.stats
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert stats.http_429 > 0 and stats.http_503 > 0
    assert sandbox.sandbox.limiter.refused.get("minute", 0) == stats.http_429


def _fast_sleep(seconds: float) -> None:
    import time

    time.sleep(min(seconds, 1.5))


def test_a_spent_daily_budget_defers_instead_of_calling(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    sandbox = _start(sandboxes)
    settings, tenants = connected_settings(sandbox, tmp_path, XERO_DAILY_CALL_LIMIT="3")
    tenant = tenants[0].tenant_id
    with open_xero(settings) as xero:
        for _ in range(3):
            xero.client.get("Organisation", tenant)
        served = sandbox.sandbox.total_calls()
        with pytest.raises(DailyBudgetExhausted) as info:
            xero.client.get("Organisation", tenant)
    assert sandbox.sandbox.total_calls() == served
    assert info.value.resume_at > datetime.now(UTC)
    assert "budget" in str(info.value)


def test_xero_errors_are_clear(sandboxes: list[CallbackSandbox], tmp_path: Path) -> None:
    sandbox = _start(sandboxes)
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    with open_xero(settings) as xero:
        with pytest.raises(XeroValidationError) as bad:
            xero.client.get("Invoices", tenant, {"where": "Status=="})
        assert bad.value.messages
        with pytest.raises(XeroNotFound):
            xero.client.get("Invoices/00000000-0000-0000-0000-000000000000", tenant)
        with pytest.raises(ValueError, match="GUID"):
            xero.client.get("Invoices", "not-a-tenant")
        sandbox.sandbox.identity.disconnect_tenant_everywhere(tenant)
        with pytest.raises(XeroForbidden, match="not connected to this app"):
            xero.client.get("Invoices", tenant)


def test_a_missing_scope_is_named(sandboxes: list[CallbackSandbox], tmp_path: Path) -> None:
    sandbox = _start(sandboxes)
    scopes = "openid offline_access accounting.transactions.read accounting.contacts.read"
    settings, tenants = connected_settings(sandbox, tmp_path, XERO_SCOPES=scopes)
    with open_xero(settings) as xero:
        assert xero.client.get("Invoices", tenants[0].tenant_id)["Invoices"]
        with pytest.raises(XeroForbidden, match=r"lacks the scope \(accounting.settings.read\)"):
            xero.client.get("Accounts", tenants[0].tenant_id)


def _read_in_process(env: dict[str, str], tenant: str, out: "multiprocessing.Queue") -> None:
    settings = Settings.from_env(env)
    with open_xero(settings, window_scale=1 / 60) as xero:
        ids = [r["InvoiceID"] for page in xero.client.read_all(INVOICES, tenant) for r in page]
        out.put((len(ids), len(set(ids)), xero.client.stats.http_429, xero.client.stats.calls))


def test_three_processes_share_the_limits_and_meet_no_429(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    # 30,000 invoices per read; the sandbox's minute lasts one real second.
    sandbox = _start(
        sandboxes,
        XeroSandboxConfig(clock_speed=60),
        GeneratorConfig(tenants=1, invoice_lines=80_000),
    )
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    total = len(_ids(sandbox, tenant))
    assert total >= 30_000
    env = settings_env(settings)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_read_in_process, args=(env, tenant, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=240) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    for count, unique, http_429, _calls in results:
        assert count == unique == total
        assert http_429 == 0
    assert sandbox.sandbox.limiter.refused == {}


def test_a_day_limit_429_from_xero_defers_too(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    # Xero knows of calls this state DB never saw (another app on the same connection): its day
    # budget runs out first, and the client defers instead of retrying for hours.
    sandbox = _start(sandboxes, XeroSandboxConfig(limits=LimitSettings(per_day=4)))
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    with open_xero(settings) as xero:
        with pytest.raises(DailyBudgetExhausted) as info:
            for _ in range(10):
                xero.client.get("Organisation", tenant)
        assert xero.client.stats.http_429 <= 1
    assert sandbox.sandbox.limiter.refused.get("day", 0) <= 1
    assert info.value.resume_at > datetime.now(UTC)


def test_a_custom_connection_reads_with_client_credentials(
    sandboxes: list[CallbackSandbox], tmp_path: Path
) -> None:
    sandbox = _start(sandboxes)
    settings, tenants = connected_settings(
        sandbox,
        tmp_path,
        XERO_AUTH_MODE="client_credentials",
        XERO_CLIENT_ID=DEMO_CUSTOM_CLIENT_ID,
        XERO_CLIENT_SECRET=DEMO_CUSTOM_CLIENT_SECRET,
    )
    assert len(tenants) == 1  # a custom connection is bound to one organisation
    with open_xero(settings) as xero:
        body = xero.client.get("Invoices", tenants[0].tenant_id, {"page": 1})
        assert body["Invoices"]
        stored = xero.session.store.load()
    assert stored is not None and stored.tokens.refresh_token is None
