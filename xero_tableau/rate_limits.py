"""Client-side Xero rate limiting, shared by every process through the state DB.

Xero's limits per tenant connection (5 in flight, 60 a minute, 5,000 a day) and per app (10,000
a minute) hold across Dagster runs, sensors and the CLI together: every admission is decided in
one short transaction on the state DB, under a lock that serialises admissions across processes.
Where the limiter cannot know, it assumes the worse case (a call counts as late as it can).
"""

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from xero_tableau.store.db import xero_rate_blocks, xero_rate_calls, xero_rate_server_budget
from xero_tableau.xero.errors import XeroError

log = logging.getLogger(__name__)

MINUTE = 60.0
DAY = 86_400.0
APP_SCOPE = "__app__"  # the scope of app-wide blocks and budgets (no tenant id looks like this)
_PG_LOCK_KEY = 0x5845524F5F524C  # "XERO_RL": the advisory lock every admission takes
_LEASE_POLL = 0.02  # seconds between looks at a full set of concurrency slots
_CALLS = xero_rate_calls.c
_BLOCKS = xero_rate_blocks.c
_BUDGETS = xero_rate_server_budget.c

# Xero's remaining-budget headers -> (budget name, is it app-wide)
_BUDGET_HEADERS = {
    "x-daylimit-remaining": ("day", False),
    "x-minlimit-remaining": ("minute", False),
    "x-appminlimit-remaining": ("appminute", True),
}
# X-Rate-Limit-Problem values, including the legacy OAuth1 503's ``Daily``/``Minute``
_PROBLEMS = {"daily": "day", "day": "day", "minute": "minute", "appminute": "appminute"}


@dataclass(frozen=True)
class RateLimits:
    """Xero's limits for one app; ``per_day`` comes from ``XERO_DAILY_CALL_LIMIT`` (Starter: 1000).

    ``window_scale`` multiplies the minute and day windows, so tests against a sandbox whose clock
    runs 60x fast use ``window_scale=1/60``. It does not scale lease lifetimes or Retry-After, which
    are wall-clock durations on any sandbox.
    """

    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000
    app_per_minute: int = 10_000
    window_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("concurrent", "per_minute", "per_day", "app_per_minute"):
            if getattr(self, name) < 1:
                raise ValueError(f"RateLimits.{name} must be at least 1")
        if self.window_scale <= 0:
            raise ValueError("RateLimits.window_scale must be positive")

    @property
    def minute(self) -> float:
        """The length of the minute window, in clock seconds."""
        return MINUTE * self.window_scale

    @property
    def day(self) -> float:
        """The length of the day window, in clock seconds."""
        return DAY * self.window_scale


@dataclass(frozen=True)
class Lease:
    """One admitted call holding one of its tenant's concurrency slots until released."""

    id: int
    tenant_id: str
    acquired_at: float
    expires_at: float


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class DailyBudgetExhausted(XeroError):
    """The tenant's calls for the day are spent. Raised at once instead of waiting hours: the run
    stops cleanly, and the next one after ``resume_at`` continues from the saved cursors."""

    def __init__(self, tenant_id: str, resume_at: datetime, reason: str) -> None:
        super().__init__(
            f"Xero's daily call budget for tenant {tenant_id} is spent ({reason}). Calls can "
            f"resume at {resume_at:%Y-%m-%d %H:%M:%S} UTC; a run started then will pick up from "
            "where this one stopped."
        )
        self.tenant_id = tenant_id
        self.resume_at = resume_at
        self.reason = reason


class RateLimitTimeout(XeroError):
    """``acquire(timeout=...)`` could not start the call in time (the limits would be broken)."""

    def __init__(self, tenant_id: str, reason: str, ready_at: datetime) -> None:
        super().__init__(
            f"no Xero call slot for tenant {tenant_id} within the timeout ({reason}); "
            f"the next slot is expected at {ready_at:%H:%M:%S} UTC"
        )
        self.tenant_id = tenant_id
        self.reason = reason
        self.ready_at = ready_at


@dataclass(frozen=True)
class _Observation:
    """Xero's word on a budget: ``unseen`` calls it counted that this DB does not know of."""

    remaining: int
    unseen: int
    observed_at: float


@dataclass(frozen=True)
class _Wait:
    """Why a call may not start yet, and the earliest moment it might."""

    until: float
    reason: str
    day: bool = False


class SharedRateLimiter:
    """Admits Xero calls so that every process sharing ``engine`` stays inside ``limits`` together.

    ``acquire`` before each call, ``release`` (with the response headers) after it, ``penalize``
    when Xero answers 429. Thread-safe; one instance per process is enough, but any number of
    instances on one DB behave as one limiter.
    """

    def __init__(
        self,
        engine: Engine,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_ttl: float = 120.0,
        safety_margin: int = 0,
    ) -> None:
        """``clock`` must be wall-clock POSIX seconds (processes compare each other's stamps);
        ``lease_ttl`` bounds how long a crashed caller can hold a slot (and so how long one call
        may take); ``safety_margin`` calls of each minute and day budget are left unused, for
        other tools on the same connection."""
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"the shared rate limiter supports SQLite and PostgreSQL, not {dialect}"
            )
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        if safety_margin < 0:
            raise ValueError("safety_margin must not be negative")
        self.engine = engine
        self.limits = limits
        self.lease_ttl = lease_ttl
        self.safety_margin = safety_margin
        self._clock = clock
        self._sleep = sleep
        self._dialect = dialect
        self._next_prune = 0.0

    # --- the lock -------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A transaction holding the admission lock; commits on leaving, rolls back on error."""
        with self.engine.connect() as conn:
            if self._dialect == "sqlite":
                # The pysqlite driver never emits BEGIN before a SELECT; an explicit BEGIN
                # IMMEDIATE takes the write lock now (waiting up to the busy timeout), so the
                # reads below cannot go stale before the INSERT.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # --- the public API -------------------------------------------------------------------------

    def acquire(self, tenant_id: str, *, timeout: float | None = None) -> Lease:
        """Wait until a call for ``tenant_id`` may start without breaking any limit, record it and
        return its lease. Raises ``DailyBudgetExhausted`` at once when the day's budget is spent,
        and ``RateLimitTimeout`` when ``timeout`` seconds will not be enough."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._locked() as conn:
                now = self._clock()
                self._prune(conn, now)
                wait = self._check(conn, tenant_id, now)
                if wait is None:
                    expires_at = now + self.lease_ttl
                    result = conn.execute(
                        xero_rate_calls.insert().values(
                            tenant_id=tenant_id, called_at=now, lease_expires_at=expires_at
                        )
                    )
                    key = result.inserted_primary_key
                    assert key is not None
                    return Lease(int(key[0]), tenant_id, now, expires_at)
            if wait.day:
                raise DailyBudgetExhausted(tenant_id, _utc(wait.until), wait.reason)
            if deadline is not None and wait.until > deadline:
                raise RateLimitTimeout(tenant_id, wait.reason, _utc(wait.until))
            delay = max(0.0, wait.until - now)
            delay += random.uniform(0.0, min(0.25, 0.002 + 0.01 * delay))  # spread waiters out
            if delay > 1.0:
                log.info("Xero tenant %s: waiting %.1fs (%s)", tenant_id, delay, wait.reason)
            self._sleep(delay)

    def release(self, lease: Lease, headers: Mapping[str, str] | None = None) -> None:
        """End ``lease`` and learn from the response's remaining-budget headers, if any.

        Xero is the authority: when it reports fewer calls left than this DB's count implies
        (another app on the connection, calls made before this DB existed, a smaller tier), the
        difference is stored and counted until those calls must have left the window.
        """
        observed = _remaining_headers(headers)
        with self._locked() as conn:
            now = self._clock()
            conn.execute(
                xero_rate_calls.update()
                .where(_CALLS.id == lease.id, _CALLS.lease_expires_at.is_not(None))
                .values(lease_expires_at=None, called_at=max(lease.acquired_at, now))
            )
            for budget, remaining in observed.items():
                self._observe(conn, lease.tenant_id, budget, remaining, now)

    def penalize(self, tenant_id: str, retry_after: float, problem: str | None) -> None:
        """Xero answered 429: no process calls the tenant (the whole app, for ``appminute``)
        until ``retry_after`` seconds from now; ``day`` makes ``acquire`` raise
        ``DailyBudgetExhausted`` until then."""
        name = _PROBLEMS.get((problem or "").strip().lower(), (problem or "").strip() or None)
        scope = APP_SCOPE if name == "appminute" else tenant_id
        with self._locked() as conn:
            until = self._clock() + max(0.0, retry_after)
            current = conn.execute(
                sa.select(_BLOCKS.blocked_until).where(_BLOCKS.scope == scope)
            ).scalar()
            if current is None:
                conn.execute(
                    xero_rate_blocks.insert().values(scope=scope, blocked_until=until, problem=name)
                )
            elif until >= current or name == "day":
                conn.execute(
                    xero_rate_blocks.update()
                    .where(_BLOCKS.scope == scope)
                    .values(blocked_until=max(until, current), problem=name)
                )
        log.warning(
            "Xero rate limit hit for %s (%s): no calls for %.0fs",
            "the app" if scope == APP_SCOPE else f"tenant {tenant_id}",
            name or "unspecified",
            retry_after,
        )

    def usage(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's budgets as this limiter sees them, for run metadata and ``doctor``."""
        limits = self.limits
        with self.engine.connect() as conn:
            now = self._clock()
            tenant = _CALLS.tenant_id == tenant_id
            in_flight = self._in_flight(conn, tenant_id, now)
            last_minute = self._count(conn, tenant, now, limits.minute)
            last_day = self._count(conn, tenant, now, limits.day)
            day_obs = self._observation(conn, tenant_id, "day", now)
            minute_obs = self._observation(conn, tenant_id, "minute", now)
            blocks = self._blocks(conn, tenant_id, now)
        day_unseen = day_obs.unseen if day_obs else 0
        minute_unseen = minute_obs.unseen if minute_obs else 0
        day_remaining = limits.per_day - self.safety_margin - last_day - day_unseen
        minute_remaining = limits.per_minute - self.safety_margin - last_minute - minute_unseen
        blocked_until, blocked_reason = None, None
        if blocks:
            scope, until, problem = max(blocks, key=lambda row: row[1])
            blocked_until = _utc(until)
            blocked_reason = f"{'app' if scope == APP_SCOPE else 'tenant'} {problem or '429'}"
        if any(problem == "day" and scope != APP_SCOPE for scope, _, problem in blocks):
            day_remaining = 0
        return {
            "in_flight": in_flight,
            "last_minute": last_minute,
            "last_day": last_day,
            "minute_remaining": max(0, minute_remaining),
            "day_remaining": max(0, day_remaining),
            "day_unseen": day_unseen,
            "blocked_until": blocked_until,
            "blocked_reason": blocked_reason,
        }

    # --- admission ------------------------------------------------------------------------------

    def _check(self, conn: Connection, tenant_id: str, now: float) -> _Wait | None:
        """None when a call may start now; otherwise the wait that lasts longest."""
        limits = self.limits
        margin = self.safety_margin
        tenant = _CALLS.tenant_id == tenant_id
        waits: list[_Wait] = []

        # the day first: when it is spent, nothing else matters until tomorrow
        day_limit = max(1, limits.per_day - margin)
        day_obs = self._observation(conn, tenant_id, "day", now)
        day_at = self._window_wait(conn, tenant, now, limits.day, day_limit, day_obs)
        blocks = self._blocks(conn, tenant_id, now)
        for scope, until, problem in blocks:
            if problem == "day" and scope != APP_SCOPE:
                return _Wait(until, "Xero answered 429 with X-Rate-Limit-Problem: day", day=True)
        if day_at is not None:
            told = " including calls only Xero saw" if day_obs and day_obs.unseen else ""
            reason = f"{day_limit} calls in the last {_span(limits.day)}{told}"
            return _Wait(day_at, reason, day=True)

        for scope, until, problem in blocks:
            who = "the app" if scope == APP_SCOPE else "the tenant"
            waits.append(_Wait(until, f"Xero's Retry-After for {who} ({problem or '429'})"))

        in_flight, next_expiry = self._leases(conn, tenant_id, now)
        if in_flight >= limits.concurrent:
            until = min(now + _LEASE_POLL, next_expiry)
            waits.append(_Wait(until, f"{in_flight} calls in flight"))

        minute_limit = max(1, limits.per_minute - margin)
        minute_obs = self._observation(conn, tenant_id, "minute", now)
        minute_at = self._window_wait(conn, tenant, now, limits.minute, minute_limit, minute_obs)
        if minute_at is not None:
            waits.append(
                _Wait(minute_at, f"{minute_limit} calls in the last {_span(limits.minute)}")
            )

        app_limit = max(1, limits.app_per_minute - margin)
        app_obs = self._observation(conn, APP_SCOPE, "appminute", now)
        app_at = self._window_wait(conn, sa.true(), now, limits.minute, app_limit, app_obs)
        if app_at is not None:
            waits.append(_Wait(app_at, f"app-wide {app_limit} calls in {_span(limits.minute)}"))

        return max(waits, key=lambda wait: wait.until) if waits else None

    def _window_wait(
        self,
        conn: Connection,
        where: sa.ColumnElement[bool],
        now: float,
        span: float,
        limit: int,
        observation: _Observation | None,
    ) -> float | None:
        """None when one more call fits in the window; otherwise the earliest time it may."""
        counted = self._count(conn, where, now, span)
        unseen = observation.unseen if observation else 0
        if counted + unseen < limit:
            return None
        # our own calls leaving the window, oldest first, until one more fits ...
        by_ours = self._leaves_at(conn, where, now, span, counted + unseen - limit + 1)
        if not unseen or observation is None:
            return by_ours
        # ... or the unseen calls leaving (Xero saw them at the latest when it said so)
        ours_only = counted - limit + 1
        after_unseen = observation.observed_at + span
        if ours_only > 0:
            after_unseen = max(after_unseen, self._leaves_at(conn, where, now, span, ours_only))
        return min(by_ours, after_unseen)

    @staticmethod
    def _in_window(now: float, span: float) -> sa.ColumnElement[bool]:
        """Calls Xero may still count: made in the window, or still in flight."""
        return sa.or_(_CALLS.called_at > now - span, _CALLS.lease_expires_at > now)

    def _count(
        self, conn: Connection, where: sa.ColumnElement[bool], now: float, span: float
    ) -> int:
        query = sa.select(sa.func.count()).where(where, self._in_window(now, span))
        return int(conn.execute(query).scalar_one())

    def _leaves_at(
        self, conn: Connection, where: sa.ColumnElement[bool], now: float, span: float, k: int
    ) -> float:
        """When the ``k``-th of the counted calls leaves the window (a call in flight is taken as
        released now, the soonest it can be); infinity if fewer than ``k`` are counted."""
        live = sa.and_(_CALLS.lease_expires_at > now, _CALLS.called_at < now)
        effective = sa.case((live, sa.literal(now, sa.Double)), else_=_CALLS.called_at)
        query = (
            sa.select(effective)
            .where(where, self._in_window(now, span))
            .order_by(effective)
            .offset(k - 1)
            .limit(1)
        )
        value = conn.execute(query).scalar()
        return float("inf") if value is None else float(value) + span

    def _leases(self, conn: Connection, tenant_id: str, now: float) -> tuple[int, float]:
        """How many calls of the tenant hold a slot, and when the first slot lapses."""
        query = sa.select(sa.func.count(), sa.func.min(_CALLS.lease_expires_at)).where(
            _CALLS.tenant_id == tenant_id, _CALLS.lease_expires_at > now
        )
        count, first = conn.execute(query).one()
        return int(count), float("inf") if first is None else float(first)

    def _in_flight(self, conn: Connection, tenant_id: str, now: float) -> int:
        return self._leases(conn, tenant_id, now)[0]

    def _blocks(self, conn: Connection, tenant_id: str, now: float) -> list[tuple[str, float, Any]]:
        query = sa.select(_BLOCKS.scope, _BLOCKS.blocked_until, _BLOCKS.problem).where(
            _BLOCKS.scope.in_((tenant_id, APP_SCOPE)), _BLOCKS.blocked_until > now
        )
        return [(row[0], float(row[1]), row[2]) for row in conn.execute(query)]

    def _span_of(self, budget: str) -> float:
        return self.limits.day if budget == "day" else self.limits.minute

    def _observation(
        self, conn: Connection, scope: str, budget: str, now: float
    ) -> _Observation | None:
        """Xero's latest word on a budget, if it still matters (less than a window old)."""
        query = sa.select(_BUDGETS.remaining, _BUDGETS.unseen, _BUDGETS.observed_at).where(
            _BUDGETS.scope == scope,
            _BUDGETS.budget == budget,
            _BUDGETS.observed_at > now - self._span_of(budget),
        )
        row = conn.execute(query).first()
        return None if row is None else _Observation(int(row[0]), int(row[1]), float(row[2]))

    # --- learning from Xero ---------------------------------------------------------------------

    def _observe(
        self, conn: Connection, tenant_id: str, budget: str, remaining: int, now: float
    ) -> None:
        """Store Xero's ``remaining`` for ``budget`` as the calls it counted beyond ours."""
        limits = self.limits
        if budget == "appminute":
            scope, where, limit = APP_SCOPE, sa.true(), limits.app_per_minute
        else:
            scope, where = tenant_id, _CALLS.tenant_id == tenant_id
            limit = limits.per_day if budget == "day" else limits.per_minute
        counted = self._count(conn, where, now, self._span_of(budget))
        # Xero's limit may differ from ours (a tier we were not told of): the calls to add to
        # our count are whatever makes our remaining equal to Xero's.
        unseen = max(0, limit - remaining - counted)
        key = (_BUDGETS.scope == scope, _BUDGETS.budget == budget)
        previous = conn.execute(
            sa.select(_BUDGETS.observed_at, _BUDGETS.unseen).where(*key)
        ).first()
        values = {"remaining": remaining, "unseen": unseen, "observed_at": now}
        if previous is None:
            conn.execute(
                xero_rate_server_budget.insert().values(scope=scope, budget=budget, **values)
            )
        elif previous[0] <= now:  # the newest word wins
            conn.execute(xero_rate_server_budget.update().where(*key).values(**values))
        if unseen > (previous[1] if previous is not None else 0):  # news, not every response
            log.info(
                "Xero says %s %s calls remain for %s; counting %s calls made elsewhere",
                remaining,
                budget,
                "the app" if scope == APP_SCOPE else f"tenant {tenant_id}",
                unseen,
            )

    def _prune(self, conn: Connection, now: float) -> None:
        """Drop what no window can count any more; at most once a (scaled) minute per limiter."""
        if now < self._next_prune:
            return
        self._next_prune = now + self.limits.minute
        day_ago = now - self.limits.day
        conn.execute(
            xero_rate_calls.delete().where(
                _CALLS.called_at <= day_ago,
                sa.or_(_CALLS.lease_expires_at.is_(None), _CALLS.lease_expires_at <= now),
            )
        )
        conn.execute(xero_rate_blocks.delete().where(_BLOCKS.blocked_until <= now))
        conn.execute(xero_rate_server_budget.delete().where(_BUDGETS.observed_at <= day_ago))


def _remaining_headers(headers: Mapping[str, str] | None) -> dict[str, int]:
    """The X-*Limit-Remaining headers present (any case), by budget name."""
    if not headers:
        return {}
    found: dict[str, int] = {}
    for name, value in headers.items():
        entry = _BUDGET_HEADERS.get(name.lower())
        if entry is None:
            continue
        try:
            found[entry[0]] = max(0, int(str(value).strip()))
        except ValueError:
            log.debug("ignoring malformed %s header %r", name, value)
    return found


def _span(seconds: float) -> str:
    """A window's length for messages: "minute"/"day" when unscaled, else seconds."""
    if seconds == MINUTE:
        return "minute"
    if seconds == DAY:
        return "day"
    return f"{seconds:g}s"
