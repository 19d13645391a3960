"""Xero's rate limits, emulated: per tenant 5 in flight, 60 a minute, 5,000 a day; 10,000 a minute
for the whole app, as Xero documents them.

Windows are rolling (a call counts for the 60 s, or 24 h, of sandbox time after it was admitted).
Calls refused with 429 do not count. Every response carries the remaining budgets as Xero's
``X-DayLimit-Remaining``, ``X-MinLimit-Remaining`` and ``X-AppMinLimit-Remaining`` headers; a
refusal adds ``Retry-After`` (whole seconds of *wall-clock* time, so a client on a sped-up sandbox
clock waits the right real time) and ``X-Rate-Limit-Problem`` (``minute``, ``day``, ``appminute`` or
``concurrent``).
"""

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from xero_tableau.sandbox.clock import SandboxClock

MINUTE = 60.0
DAY = 86400.0


@dataclass
class LimitSettings:
    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000  # 1,000 on Xero's Starter tier
    app_per_minute: int = 10_000


@dataclass
class _TenantWindow:
    in_flight: int = 0
    minute: deque[float] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)


@dataclass
class Admission:
    """The outcome of asking to make one call."""

    allowed: bool
    headers: dict[str, str]
    problem: str | None = None


class RateLimiter:
    def __init__(self, clock: SandboxClock, settings: LimitSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or LimitSettings()
        self._lock = threading.Lock()
        self._tenants: dict[str, _TenantWindow] = {}
        self._app_minute: deque[float] = deque()
        self.refused: dict[str, int] = {}  # problem -> count, for tests and the admin API

    def _window(self, tenant_id: str) -> _TenantWindow:
        window = self._tenants.get(tenant_id)
        if window is None:
            window = self._tenants[tenant_id] = _TenantWindow()
        return window

    @staticmethod
    def _expire(calls: deque[float], now: float, span: float) -> None:
        while calls and calls[0] <= now - span:
            calls.popleft()

    def _headers(self, window: _TenantWindow | None) -> dict[str, str]:
        s = self.settings
        headers = {"X-AppMinLimit-Remaining": str(max(0, s.app_per_minute - len(self._app_minute)))}
        if window is not None:
            headers["X-DayLimit-Remaining"] = str(max(0, s.per_day - len(window.day)))
            headers["X-MinLimit-Remaining"] = str(max(0, s.per_minute - len(window.minute)))
        return headers

    def _retry_after(self, calls: deque[float], now: float, span: float) -> str:
        wait_virtual = calls[0] + span - now if calls else 1.0
        return str(max(1, math.ceil(self.clock.real_seconds(wait_virtual))))

    def acquire(self, tenant_id: str | None) -> Admission:
        """Admit one call for ``tenant_id`` (None: a call with no tenant, e.g. /connections)."""
        s = self.settings
        with self._lock:
            now = self.clock.time()
            self._expire(self._app_minute, now, MINUTE)
            window = None
            if tenant_id is not None:
                window = self._window(tenant_id)
                self._expire(window.minute, now, MINUTE)
                self._expire(window.day, now, DAY)
            problem = None
            retry_after = "1"
            if window is not None and len(window.day) >= s.per_day:
                problem, retry_after = "day", self._retry_after(window.day, now, DAY)
            elif len(self._app_minute) >= s.app_per_minute:
                problem = "appminute"
                retry_after = self._retry_after(self._app_minute, now, MINUTE)
            elif window is not None and len(window.minute) >= s.per_minute:
                problem, retry_after = "minute", self._retry_after(window.minute, now, MINUTE)
            elif window is not None and window.in_flight >= s.concurrent:
                problem = "concurrent"
            if problem is not None:
                self.refused[problem] = self.refused.get(problem, 0) + 1
                headers = self._headers(window)
                headers["Retry-After"] = retry_after
                headers["X-Rate-Limit-Problem"] = problem
                return Admission(False, headers, problem)
            self._app_minute.append(now)
            if window is not None:
                window.minute.append(now)
                window.day.append(now)
                window.in_flight += 1
            return Admission(True, self._headers(window))

    def release(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            return
        with self._lock:
            window = self._window(tenant_id)
            window.in_flight = max(0, window.in_flight - 1)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            now = self.clock.time()
            out = {}
            for tid, window in self._tenants.items():
                self._expire(window.minute, now, MINUTE)
                self._expire(window.day, now, DAY)
                out[tid] = {
                    "in_flight": window.in_flight,
                    "last_minute": len(window.minute),
                    "last_day": len(window.day),
                }
            return out
