"""The sandbox's rate limits and injected faults, over real HTTP.

Each test runs its own sandbox with small limits (and a sped-up clock where a window must pass),
so a minute- or day-long rule is proved in about a second.
"""

import threading
import time

import httpx
import pytest

from xero_tableau.sandbox.limits import LimitSettings
from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau_tests.conftest import (
    API,
    SandboxFactory,
    XeroConnection,
    bearer,
    connect_sandbox,
    refresh,
)

LIMIT_HEADERS = ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining")


def _remaining(response: httpx.Response) -> tuple[int, int, int]:
    day, minute, app = (int(response.headers[name]) for name in LIMIT_HEADERS)
    return day, minute, app


def _start(
    make_sandbox: SandboxFactory, http: httpx.Client, limits: LimitSettings, speed: float = 1.0
) -> tuple[RunningXeroSandbox, XeroConnection]:
    running = make_sandbox(XeroSandboxConfig(clock_speed=speed, limits=limits))
    return running, connect_sandbox(http, running)


def test_limit_headers_on_every_response_and_decreasing(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    running, xero = _start(
        make_sandbox, http, LimitSettings(per_minute=50, per_day=100, app_per_minute=200)
    )
    seen = []
    for endpoint, params in (
        ("Invoices", {"page": 1}),
        ("Accounts", {}),
        ("Invoices/00000000-0000-0000-0000-000000000000", {}),  # 404
        ("Invoices", {"page": 1, "where": "nonsense"}),  # 400
        ("Organisation", {}),
    ):
        response = xero.get(endpoint, params=params)
        assert all(name in response.headers for name in LIMIT_HEADERS), endpoint
        seen.append(_remaining(response))
    assert [day for day, _, _ in seen] == [99, 98, 97, 96, 95]
    assert [minute for _, minute, _ in seen] == [49, 48, 47, 46, 45]
    apps = [app for _, _, app in seen]
    assert apps == list(range(apps[0], apps[0] - 5, -1)) and apps[0] < 200
    # limits count per tenant: the other organisation starts afresh
    other = xero.get("Organisation", xero.tenant_ids[1])
    assert _remaining(other)[:2] == (99, 49)
    assert _remaining(other)[2] == apps[-1] - 1  # ... but the app-wide budget is shared
    state = http.get(f"{running.base_url}/sandbox/admin/state").json()
    assert state["rate_limits"][xero.tenant_ids[0]]["last_minute"] == 5


def test_minute_limit_then_recovery_after_retry_after(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    _, xero = _start(make_sandbox, http, LimitSettings(per_minute=3), speed=60)
    for expected_left in (2, 1, 0):
        response = xero.get("Organisation")
        assert response.status_code == 200
        assert _remaining(response)[1] == expected_left
    day_left = _remaining(response)[0]
    refused = xero.get("Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2  # a virtual minute lasts one real second at speed 60
    assert _remaining(refused)[:2] == (day_left, 0)  # a refused call is not counted
    assert xero.get("Organisation").status_code == 429
    # another tenant has its own minute
    assert xero.get("Organisation", xero.tenant_ids[1]).status_code == 200
    time.sleep(retry_after)
    again = xero.get("Organisation")
    assert again.status_code == 200, again.text
    assert _remaining(again)[0] == day_left - 1


def test_day_limit(make_sandbox: SandboxFactory, http: httpx.Client) -> None:
    running, xero = _start(make_sandbox, http, LimitSettings(per_day=5))
    for _ in range(5):
        assert xero.get("Organisation").status_code == 200
    refused = xero.get("Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert int(refused.headers["X-DayLimit-Remaining"]) == 0
    assert 86_000 <= int(refused.headers["Retry-After"]) <= 86_400  # the rolling day, in seconds
    assert xero.get("Organisation", xero.tenant_ids[1]).status_code == 200
    running.sandbox.clock.advance(86_400)
    xero.token = refresh(http, running.base_url, xero.token["refresh_token"]).json()
    assert xero.get("Organisation").status_code == 200


def test_starter_tier_day_limit_is_configurable(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    _, starter = _start(make_sandbox, http, LimitSettings(per_day=1000))
    assert _remaining(starter.get("Organisation"))[0] == 999
    _, standard = _start(make_sandbox, http, LimitSettings())
    first = standard.get("Organisation")
    assert _remaining(first)[:2] == (4999, 59)
    assert _remaining(first)[2] < 10_000


def test_concurrency_limit_is_per_tenant(make_sandbox: SandboxFactory, http: httpx.Client) -> None:
    running, xero = _start(make_sandbox, http, LimitSettings(concurrent=5))
    sandbox = running.sandbox
    sandbox.faults.slow_rate = 1.0
    sandbox.faults.slow_seconds = 0.5
    tenant_a, tenant_b = xero.tenant_ids
    url = f"{running.base_url}{API}/Organisation"
    jobs = [tenant_a] * 8 + [tenant_b]
    results: list[tuple[str, httpx.Response]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs) + 1)
    peak = 0
    done = threading.Event()

    def call(tenant: str) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            barrier.wait()
            response = client.get(url, headers=bearer(xero.access_token, tenant))
        with lock:
            results.append((tenant, response))

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            in_flight = sandbox.limiter.snapshot().get(tenant_a, {}).get("in_flight", 0)
            peak = max(peak, in_flight)
            time.sleep(0.005)

    threads = [threading.Thread(target=call, args=(tenant,)) for tenant in jobs]
    watcher = threading.Thread(target=watch)
    for thread in threads:
        thread.start()
    watcher.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()

    a_results = [response for tenant, response in results if tenant == tenant_a]
    succeeded = [r for r in a_results if r.status_code == 200]
    refused = [r for r in a_results if r.status_code == 429]
    assert len(succeeded) == 5 and len(refused) == 3
    assert peak == 5
    for response in refused:
        assert response.headers["X-Rate-Limit-Problem"] == "concurrent"
        assert int(response.headers["Retry-After"]) >= 1
    (b_response,) = [response for tenant, response in results if tenant == tenant_b]
    assert b_response.status_code == 200  # the other organisation is unaffected
    sandbox.faults.slow_rate = 0.0
    assert xero.get("Organisation").status_code == 200  # slots are released afterwards
    assert sandbox.limiter.snapshot()[tenant_a]["in_flight"] == 0


def test_app_wide_minute_limit_spans_tenants(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    _, xero = _start(make_sandbox, http, LimitSettings(per_minute=100, app_per_minute=8))
    tenant_a, tenant_b = xero.tenant_ids
    left = _remaining(xero.get("Organisation", tenant_a))[2]
    assert 0 < left < 8
    calls = 0
    while left > 0:
        tenant = (tenant_b, tenant_a)[calls % 2]
        response = xero.get("Organisation", tenant)
        assert response.status_code == 200
        left = _remaining(response)[2]
        calls += 1
    for tenant in (tenant_a, tenant_b):
        refused = xero.get("Organisation", tenant)
        assert refused.status_code == 429
        assert refused.headers["X-Rate-Limit-Problem"] == "appminute"
        assert int(refused.headers["X-MinLimit-Remaining"]) > 90  # the tenant had room


# --- faults -------------------------------------------------------------------------------------


def test_fail_next_then_success(make_sandbox: SandboxFactory, http: httpx.Client) -> None:
    running, xero = _start(make_sandbox, http, LimitSettings())
    running.sandbox.faults.fail_next = [503, 500]
    first = xero.get("Invoices", params={"page": 1})
    assert first.status_code == 503
    assert all(name in first.headers for name in LIMIT_HEADERS)
    assert xero.get("Invoices", params={"page": 1}).status_code == 500
    assert xero.get("Invoices", params={"page": 1}).status_code == 200
    assert running.sandbox.faults.fail_next == []


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_error_rate(make_sandbox: SandboxFactory, http: httpx.Client, rate: float) -> None:
    running, xero = _start(make_sandbox, http, LimitSettings())
    running.sandbox.faults.error_rate = rate
    codes = [xero.get("Organisation").status_code for _ in range(30)]
    assert set(codes) <= {200, 503}
    if rate == 1.0:
        assert codes == [503] * 30
    else:
        assert 5 <= codes.count(503) <= 25
    running.sandbox.faults.error_rate = 0.0
    assert xero.get("Organisation").status_code == 200
