"""The shared Xero rate limiter (``xero_tableau.rate_limits``) on a temporary SQLite state DB.

Windows are scaled down (``window_scale``) so a "minute" lasts a second or less. Tests that are
about arithmetic run on a fake clock (instant and exact); tests that are about several threads or
processes run on the real clock. The last test guards real HTTP calls to a sandbox whose clock runs
60x fast, which enforces Xero's limits on its side: not one call may be refused.
"""

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.rate_limits import (
    DailyBudgetExhausted,
    Lease,
    RateLimits,
    RateLimitTimeout,
    SharedRateLimiter,
)
from xero_tableau.sandbox.credentials import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    READ_SCOPES,
)
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.store.db import (
    connect,
    xero_rate_blocks,
    xero_rate_calls,
    xero_rate_server_budget,
)
from xero_tableau_tests.conftest import SandboxFactory, fresh_state_db

FAST = 1 / 60  # a minute lasts one second
TENANT = "8c5d4f0e-6f47-4c8e-9a43-1d2b3c4d5e6f"
OTHER = "1f0e2d3c-4b5a-4697-8877-665544332211"
RATE_TABLES = [table.name for table in (xero_rate_calls, xero_rate_blocks, xero_rate_server_budget)]


class FakeClock:
    """A clock that only moves when the limiter sleeps (or a test advances it)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# SQLite (the embedded default) and PostgreSQL (production; a private server the test session
# starts, or XT_TEST_POSTGRES_URL): its rate-limit tables are emptied before each test.
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state DB: a temporary SQLite file, or the test PostgreSQL database emptied."""
    return fresh_state_db(request, tmp_path, request.param, *RATE_TABLES)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = connect(url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fake_limiter(engine: Engine, clock: FakeClock, **limits: Any) -> SharedRateLimiter:
    return SharedRateLimiter(engine, RateLimits(**limits), clock=clock.time, sleep=clock.sleep)


def call(limiter: SharedRateLimiter, tenant_id: str = TENANT, **headers: str) -> Lease:
    """One instant call: acquire, then release with ``headers`` (underscores become dashes)."""
    lease = limiter.acquire(tenant_id)
    limiter.release(lease, {name.replace("_", "-"): value for name, value in headers.items()})
    return lease


def max_in_window(times: list[float], span: float) -> int:
    """The most of ``times`` that fall within any half-open window of length ``span``."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = level = 0
    for _, step in events:
        level += step
        best = max(best, level)
    return best


# --- windows ------------------------------------------------------------------------------------


def test_minute_limit_makes_the_61st_call_wait_for_the_window(engine: Engine) -> None:
    # a 3 s minute: 60 calls fit in it even on a busy disk (a commit can take 20 ms there)
    limiter = SharedRateLimiter(engine, RateLimits(window_scale=1 / 20))
    leases = [call(limiter) for _ in range(61)]
    starts = [lease.acquired_at for lease in leases]
    assert starts[59] < starts[0] + 3.0, "too slow a disk for this test"
    assert max_in_window(starts, 3.0) == 60
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(xero_rate_calls.c.called_at)).scalars().all()
    assert len(recorded) == 61
    assert max_in_window(list(recorded), 3.0) == 60
    first_released = min(recorded)
    # the 61st waited for the first call to leave the window, and not much longer
    assert first_released + 3.0 <= starts[60] < first_released + 3.3


def test_minute_limit_at_xero_scale_on_a_fake_clock(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock)
    leases = []
    for _ in range(130):
        leases.append(call(limiter))
        clock.now += 0.1
    starts = [lease.acquired_at for lease in leases]
    assert max_in_window(starts, 60.0) == 60
    assert starts[60] >= starts[0] + 60.0
    assert starts[60] < starts[0] + 60.3  # no needless wait either


def test_a_call_counts_from_its_release(engine: Engine, clock: FakeClock) -> None:
    # Xero may admit a call at any moment until its response arrives: the window starts there
    limiter = fake_limiter(engine, clock, per_minute=1, window_scale=FAST)
    slow = limiter.acquire(TENANT)
    clock.now += 0.5
    limiter.release(slow)
    released = clock.now
    assert limiter.acquire(TENANT).acquired_at >= released + 1.0


def test_a_call_in_flight_counts_however_old(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, per_minute=1, window_scale=FAST)
    limiter.acquire(TENANT)
    clock.now += 5.0  # five windows later, still no response
    with pytest.raises(RateLimitTimeout):
        limiter.acquire(TENANT, timeout=3.0)


def test_app_wide_limit_spans_tenants(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, app_per_minute=10, window_scale=FAST)
    leases = [call(limiter, f"tenant-{i % 3}") for i in range(10)]
    clock.now += 0.25
    late = call(limiter, "tenant-9")  # a fresh tenant, but the app's minute is full
    assert late.acquired_at >= leases[0].acquired_at + 1.0
    assert late.acquired_at < leases[0].acquired_at + 1.05
    assert limiter.usage("tenant-9")["last_minute"] == 1


def test_day_budget_raises_with_the_time_work_resumes(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, per_day=10, window_scale=1 / 600)  # a day: 144 s
    first = call(limiter)
    for _ in range(9):
        clock.now += 5.0
        call(limiter)
    clock.now += 5.0
    before = clock.now
    with pytest.raises(DailyBudgetExhausted) as raised:
        limiter.acquire(TENANT)
    assert clock.now == before, "the day budget must never be waited for"
    error = raised.value
    assert error.tenant_id == TENANT
    day = limiter.limits.day
    assert error.resume_at == datetime.fromtimestamp(first.acquired_at + day, UTC)
    assert "budget" in str(error) and "resume" in str(error) and "pick up" in str(error)
    assert limiter.usage(TENANT)["day_remaining"] == 0
    clock.now = first.acquired_at + day  # the oldest call leaves the day window
    call(limiter)


def test_old_calls_are_pruned(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, window_scale=1 / 600)
    for _ in range(5):
        call(limiter)
    clock.now += 145.0
    call(limiter)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(xero_rate_calls)).scalar() == 1


# --- concurrency --------------------------------------------------------------------------------


def test_sixth_concurrent_call_waits_for_a_release(engine: Engine) -> None:
    limiter = SharedRateLimiter(engine, RateLimits(window_scale=FAST))
    held = [limiter.acquire(TENANT) for _ in range(5)]
    assert limiter.usage(TENANT)["in_flight"] == 5
    got: list[Lease] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire(TENANT)))
    waiter.start()
    time.sleep(0.3)
    assert not got, "a sixth call started while five were in flight"
    limiter.acquire(OTHER)  # other tenants have slots of their own
    released_at = time.time()
    limiter.release(held[0])
    waiter.join(timeout=2.0)
    assert got and got[0].acquired_at >= released_at
    assert got[0].acquired_at < released_at + 0.2
    with pytest.raises(RateLimitTimeout):
        limiter.acquire(TENANT, timeout=0.1)


def test_expired_lease_frees_its_slot(engine: Engine) -> None:
    limiter = SharedRateLimiter(engine, RateLimits(window_scale=FAST), lease_ttl=0.3)
    held = [limiter.acquire(TENANT) for _ in range(5)]  # a crashed process never releases these
    sixth = limiter.acquire(TENANT, timeout=2.0)
    assert sixth.acquired_at >= min(lease.expires_at for lease in held)
    assert sixth.acquired_at < held[0].expires_at + 0.2


# --- what Xero says -----------------------------------------------------------------------------


def test_day_remaining_header_shrinks_the_budget(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, window_scale=1 / 600)
    slow = limiter.acquire(TENANT)  # still in flight when Xero's word arrives
    call(limiter, X_DayLimit_Remaining="3")  # Xero counts calls this DB never saw
    assert limiter.usage(TENANT)["day_remaining"] == 3
    for _ in range(3):
        clock.now += 1.0
        call(limiter)
    clock.now += 1.0
    with pytest.raises(DailyBudgetExhausted) as raised:
        limiter.acquire(TENANT)
    assert "only Xero saw" in raised.value.reason
    # a newer, higher answer is believed too: Xero is the authority either way
    limiter.release(slow, {"x-daylimit-remaining": "100"})
    assert limiter.usage(TENANT)["day_remaining"] == 100
    call(limiter)


def test_day_remaining_header_agreeing_with_us_changes_nothing(
    engine: Engine, clock: FakeClock
) -> None:
    limiter = fake_limiter(engine, clock, per_day=20, window_scale=1 / 600)
    for n in range(1, 6):
        call(limiter, X_DayLimit_Remaining=str(20 - n))
    assert limiter.usage(TENANT)["day_remaining"] == 15
    assert limiter.usage(TENANT)["day_unseen"] == 0


def test_minute_remaining_zero_waits_for_the_minute_to_roll(
    engine: Engine, clock: FakeClock
) -> None:
    limiter = fake_limiter(engine, clock, window_scale=FAST)
    told = call(limiter, X_MinLimit_Remaining="0")
    released = clock.now
    clock.now += 0.1
    nxt = call(limiter)
    assert nxt.acquired_at >= released + 1.0
    assert nxt.acquired_at < released + 1.05
    assert told.acquired_at == released


def test_penalize_blocks_every_limiter_on_the_db(url: str) -> None:
    # two engines and two limiters on one DB: as good as two processes
    first = SharedRateLimiter(connect(url), RateLimits(window_scale=FAST))
    second = SharedRateLimiter(connect(url), RateLimits(window_scale=FAST))
    first.penalize(TENANT, 0.5, "minute")
    penalized_at = time.time()
    blocked_until = second.usage(TENANT)["blocked_until"]
    assert blocked_until is not None
    assert penalized_at < blocked_until.timestamp() < penalized_at + 0.5
    second.release(second.acquire(OTHER))  # only the penalized tenant waits
    assert time.time() - penalized_at < 0.2
    lease = second.acquire(TENANT)
    assert lease.acquired_at >= blocked_until.timestamp()
    second.release(lease)
    assert first.usage(TENANT)["blocked_until"] is None


def test_penalize_day_and_appminute(engine: Engine, clock: FakeClock) -> None:
    limiter = fake_limiter(engine, clock, window_scale=FAST)
    other = fake_limiter(engine, clock, window_scale=FAST)
    limiter.penalize(TENANT, 3600.0, "day")
    with pytest.raises(DailyBudgetExhausted) as raised:
        other.acquire(TENANT)
    assert raised.value.resume_at == datetime.fromtimestamp(clock.now + 3600.0, UTC)
    assert other.usage(TENANT)["day_remaining"] == 0
    limiter.penalize(OTHER, 2.0, "appminute")  # the app's minute: every tenant waits
    start = clock.now
    lease = other.acquire("a-third-tenant")
    assert lease.acquired_at >= start + 2.0


# --- processes and real HTTP --------------------------------------------------------------------


def _child_calls(url: str, calls: int, threads: int) -> list[tuple[float, float]]:
    """Run in a spawned process: ``calls`` guarded calls from ``threads`` threads, each held for a
    few ms. Returns (acquired, about to release) per call: the time the limiter recorded, and a
    moment the slot was certainly still held."""
    engine = connect(url)
    limiter = SharedRateLimiter(engine, RateLimits(per_minute=60, window_scale=FAST))
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def work(count: int) -> None:
        for _ in range(count):
            lease = limiter.acquire(TENANT, timeout=20.0)
            time.sleep(0.01)
            done = time.time()
            limiter.release(lease)
            with lock:
                spans.append((lease.acquired_at, done))

    shares = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()
    return spans


def test_three_processes_share_the_limits(url: str) -> None:
    connect(url).dispose()  # the tables exist before the children race to create them
    # three threads per process: nine callers could break the five-slot limit if it leaked
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_child_calls, [(url, 40, 3)] * 3)
    spans = [span for result in results for span in result]
    assert len(spans) == 120
    starts = [start for start, _ in spans]
    assert max_in_window(starts, 1.0) <= 60
    assert max_overlap(spans) <= 5
    assert max_overlap(spans) >= 2  # the processes did run side by side
    assert max(starts) - min(starts) >= 1.0


def test_real_http_against_a_fast_sandbox_never_sees_429(
    make_sandbox: SandboxFactory, url: str
) -> None:
    running = make_sandbox(
        XeroSandboxConfig(clock_speed=60), GeneratorConfig(tenants=1, invoice_lines=500)
    )
    base = running.base_url
    limiter = SharedRateLimiter(connect(url), RateLimits(window_scale=FAST))
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        params = {
            "response_type": "code",
            "client_id": DEMO_CLIENT_ID,
            "redirect_uri": DEMO_REDIRECT_URI,
            "scope": READ_SCOPES,
            "state": "x",
        }
        consent = http.get(f"{base}/identity/connect/authorize", params=params)
        assert consent.status_code in (302, 303), consent.text
        code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEMO_REDIRECT_URI}
        token = http.post(
            f"{base}/connect/token", data=form, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        )
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        tenant_id = http.get(f"{base}/connections", headers=auth).json()[0]["tenantId"]
        headers = {**auth, "xero-tenant-id": tenant_id, "Accept": "application/json"}
        statuses: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(50):
                lease = limiter.acquire(tenant_id, timeout=20.0)
                response = http.get(f"{base}/api.xro/2.0/Accounts", headers=headers)
                limiter.release(lease, response.headers)
                with lock:
                    statuses.append(response.status_code)

        workers = [threading.Thread(target=work) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert statuses.count(429) == 0, running.sandbox.limiter.refused
    assert statuses == [200] * 150
    assert running.sandbox.limiter.refused == {}
    assert running.sandbox.total_calls() == 150
    usage = limiter.usage(tenant_id)
    assert usage["in_flight"] == 0 and usage["day_unseen"] == 0
