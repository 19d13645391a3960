"""The Xero client the connector reads with: rate-limited, retrying, and frugal with calls.

- every call passes the shared rate limiter (per tenant: 5 in flight, 60 a minute, the daily
  budget; 10,000 a minute app-wide), which defers work with ``DailyBudgetExhausted`` instead of
  hammering a spent budget;
- 429 honours ``Retry-After`` (and tells the limiter, so other processes hold back too), 503 and
  lost connections back off exponentially, 401 refreshes the token once;
- paged endpoints are read 1,000 at a time; a window of ``UpdatedDateUTC`` is read with
  If-Modified-Since in ``UpdatedDateUTC`` order, advancing the If-Modified-Since cursor to the last
  record's second (keyset paging: a record edited during the read cannot shift another out of
  view) and stopping as soon as a page passes the window's end;
- lookups by id go in batches of 50 (Xero answers 404 past about 50 GUIDs).
"""

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from xero_tableau.xero.api import (
    ACCOUNTING_PATH,
    Tenant,
    check_tenant_id,
    format_if_modified_since,
    raise_for_status,
)
from xero_tableau.xero.dates import parse_xero_datetime
from xero_tableau.xero.errors import (
    XeroAuthError,
    XeroError,
    XeroForbidden,
    XeroUnavailable,
)

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """The limiter every call passes (``xero_tableau.rate_limits.SharedRateLimiter`` keeps its
    state in the state DB so every process shares it). ``acquire`` may raise to defer work, e.g.
    when the tenant's daily budget is spent."""

    def acquire(self, tenant_id: str) -> Any: ...
    def release(self, lease: Any, headers: Mapping[str, str] | None = None) -> None: ...
    def penalize(self, tenant_id: str, retry_after: float, problem: str | None) -> None: ...


class Endpoint(Protocol):
    """What the client needs to know about an endpoint to read it (an entity of the registry,
    ``xero_tableau.entities``, is one)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def id_field(self) -> str: ...
    @property
    def paged(self) -> bool: ...
    @property
    def takes_ids(self) -> bool: ...
    @property
    def envelope(self) -> str: ...
    @property
    def params(self) -> Mapping[str, str]: ...


MAX_IDS_PER_CALL = 50
MAX_PAGE_SIZE = 1000
_MS = re.compile(r"\s*/Date\((-?\d{1,18})(?:[+-]\d{2,4})?\)/\s*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS


@dataclass
class CallStats:
    """What a read cost: reported in Dagster metadata and by the benchmarks."""

    calls: int = 0
    http_429: int = 0
    http_503: int = 0
    retries: int = 0
    token_refreshes: int = 0
    day_remaining: dict[str, int] = field(default_factory=dict)
    min_remaining: dict[str, int] = field(default_factory=dict)


def updated_ms(record: Mapping) -> int:
    """Epoch ms of a record's ``UpdatedDateUTC``: ``/Date(ms+0000)/`` read without a full parse,
    any other form the models accept through :func:`parse_xero_datetime`. ValueError when it is
    missing, unreadable or outside ``datetime``'s range: the record names no UTC day."""
    value = record.get("UpdatedDateUTC") if isinstance(record, Mapping) else None
    match = _MS.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        ms = int(match.group(1))
        if _MIN_MS <= ms <= _MAX_MS:
            return ms
        raise ValueError(f"UpdatedDateUTC out of range: {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"record without an UpdatedDateUTC: {value!r}")
    try:
        return (parse_xero_datetime(value) - _EPOCH) // _ONE_MS
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"unreadable UpdatedDateUTC: {exc}") from None


def _updated_or_none(record: Mapping) -> int | None:
    try:
        return updated_ms(record)
    except ValueError:
        return None


def _ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    return int(when.timestamp() * 1000)


class XeroClient:
    """Reads one Xero app's tenants. ``access_token`` and ``refresh`` come from ``XeroSession``."""

    def __init__(
        self,
        api_base: str,
        *,
        access_token: Callable[[], str],
        refresh: Callable[[str], str],
        limiter: RateLimiter | None = None,
        scopes: Mapping[str, Sequence[str]] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_retries: int = 6,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        self.api_base = api_base.rstrip("/")
        self.access_token = access_token
        self.refresh = refresh
        self.limiter = limiter
        self.scopes = dict(scopes or {})
        self.page_size = page_size
        self.max_retries = max_retries
        self.http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
        self.sleep = sleep
        self.stats = CallStats()

    def close(self) -> None:
        self.http.close()

    # --- one call ----------------------------------------------------------------------------

    def connections(self) -> list[Tenant]:
        response = self._send("GET", f"{self.api_base}/connections", tenant_id=None)
        return [
            Tenant(
                c["tenantId"].lower(), c.get("tenantName") or "", c.get("tenantType", ""), c["id"]
            )
            for c in response.json()
        ]

    def get(
        self,
        endpoint: str,
        tenant_id: str,
        params: Mapping[str, str | int] | None = None,
        if_modified_since: datetime | None = None,
    ) -> dict:
        headers = {}
        if if_modified_since is not None:
            headers["If-Modified-Since"] = format_if_modified_since(if_modified_since)
        response = self._send(
            "GET",
            f"{self.api_base}{ACCOUNTING_PATH}/{endpoint}",
            tenant_id=check_tenant_id(tenant_id),
            params=dict(params or {}),
            headers=headers,
        )
        return response.json()

    def _send(
        self,
        method: str,
        url: str,
        *,
        tenant_id: str | None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            token = self.access_token()
            request_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                **(headers or {}),
            }
            if tenant_id is not None:
                request_headers["xero-tenant-id"] = tenant_id
            lease = self.limiter.acquire(tenant_id) if self.limiter and tenant_id else None
            response: httpx.Response | None = None
            try:
                self.stats.calls += 1
                response = self.http.request(method, url, params=params, headers=request_headers)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise XeroUnavailable(f"{url}: no answer from Xero ({exc})") from exc
                attempt += 1
                self.stats.retries += 1
                self._backoff(attempt, f"connection failed ({type(exc).__name__})")
                continue
            finally:
                if lease is not None and self.limiter is not None:
                    self.limiter.release(lease, response.headers if response is not None else None)
            assert response is not None  # a transport error either retried or raised above
            self._note_budget(tenant_id, response.headers)
            status = response.status_code
            if status == 401 and not refreshed:
                refreshed = True
                self.stats.token_refreshes += 1
                self.refresh(token)
                continue
            if status == 429:
                self.stats.http_429 += 1
                retry_after = _retry_after(response)
                problem = response.headers.get("X-Rate-Limit-Problem")
                if self.limiter is not None and tenant_id is not None:
                    self.limiter.penalize(tenant_id, retry_after, problem)
                if attempt >= self.max_retries or (problem == "day" and self.limiter is None):
                    raise_for_status(response, f"{method} {url}")
                # With a limiter, a day breach makes the next acquire raise DailyBudgetExhausted:
                # the work is deferred until Xero's budget is back, never hammered.
                attempt += 1
                self.stats.retries += 1
                log.warning("429 (%s limit): waiting %.1fs as Xero asks", problem, retry_after)
                if self.limiter is None:
                    self.sleep(retry_after)
                continue
            if status in (500, 502, 503, 504) and attempt < self.max_retries:
                self.stats.http_503 += status == 503
                attempt += 1
                self.stats.retries += 1
                self._backoff(attempt, f"HTTP {status}")
                continue
            try:
                raise_for_status(response, f"{method} {url.removeprefix(self.api_base)}")
            except XeroAuthError as exc:
                raise XeroAuthError(
                    f"{exc} even after a token refresh: the connection may have been revoked in "
                    "Xero; run `xero-tableau connect` to consent again",
                    status=401,
                ) from exc
            except XeroForbidden as exc:
                if tenant_id is None:
                    raise
                raise XeroForbidden(self._explain_403(tenant_id, url), status=403) from exc
            return response

    def _explain_403(self, tenant_id: str, url: str) -> str:
        """Name the cause of a 403: a disconnected (or unknown) tenant, or a missing scope."""
        endpoint = url.split(ACCOUNTING_PATH + "/", 1)[-1].split("/", 1)[0]
        try:
            connected = {t.tenant_id for t in self.connections()}
        except XeroError:
            connected = None
        if connected is not None and tenant_id not in connected:
            return (
                f"Xero refused tenant {tenant_id}: it is not connected to this app (disconnected "
                "in Xero, or a demo company that was reset). Run `xero-tableau connect` to "
                "reconnect it, or remove it from the tenant list."
            )
        scopes = " or ".join(f"{s}.read" for s in self.scopes.get(endpoint, ()))
        return (
            f"Xero refused {endpoint} for tenant {tenant_id}: the app lacks the scope "
            f"({scopes or 'unknown'}). Add it to XERO_SCOPES and run `xero-tableau connect`."
        )

    def _backoff(self, attempt: int, why: str) -> None:
        delay = min(60.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        log.warning("%s; retry %d in %.1fs", why, attempt, delay)
        self.sleep(delay)

    def _note_budget(self, tenant_id: str | None, headers: Mapping[str, str]) -> None:
        if tenant_id is None:
            return
        for header, target in (
            ("X-DayLimit-Remaining", self.stats.day_remaining),
            ("X-MinLimit-Remaining", self.stats.min_remaining),
        ):
            value = headers.get(header)
            if value is not None and value.lstrip("-").isdigit():
                target[tenant_id] = int(value)

    # --- reads -------------------------------------------------------------------------------

    def read_all(
        self, entity: Endpoint, tenant_id: str, **params: str | int
    ) -> Iterator[list[dict]]:
        """Every record of an endpoint, page by page (one call for the unpaged ones)."""
        if not entity.paged:
            body = self.get(entity.endpoint, tenant_id, {**entity.params, **params})
            yield body.get(entity.envelope, [])
            return
        yield from self.read_window(entity, tenant_id, None, None, **params)

    def read_window(
        self,
        entity: Endpoint,
        tenant_id: str,
        start: datetime | None,
        end: datetime | None,
        **params: str | int,
    ) -> Iterator[list[dict]]:
        """Records with ``start <= UpdatedDateUTC < end`` (None: open), in UpdatedDateUTC order,
        each exactly once, a page at a time.

        A record whose UpdatedDateUTC cannot be read (:func:`updated_ms`) cannot be placed in or
        out of the window: it is passed on with its page, for the caller to quarantine, and the
        keyset cursor moves on the readable ones."""
        endpoint = entity.endpoint
        if not entity.paged:
            raise ValueError(f"{endpoint} is not paged; use read_all")
        start_ms = _ms(start) if start is not None else None
        end_ms = _ms(end) if end is not None else None
        cursor_s = start_ms // 1000 if start_ms is not None else None
        page = 1
        seen_at_cursor: set[object] = set()  # ids already yielded from the cursor's second
        id_field = entity.id_field
        query = {
            **entity.params,
            **params,
            "order": "UpdatedDateUTC ASC",
            "pageSize": self.page_size,
        }
        while True:
            since = datetime.fromtimestamp(cursor_s, UTC) if cursor_s is not None else None
            body = self.get(endpoint, tenant_id, {**query, "page": page}, since)
            items: list[dict] = body.get(entity.envelope, [])
            stamps = [_updated_or_none(record) for record in items]
            fresh = []
            for record, ms in zip(items, stamps, strict=True):
                if ms is None:
                    fresh.append(record)  # undatable: the caller quarantines it
                    continue
                if ms // 1000 == cursor_s and record.get(id_field) in seen_at_cursor:
                    continue
                if (start_ms is None or ms >= start_ms) and (end_ms is None or ms < end_ms):
                    fresh.append(record)
            if fresh:
                yield fresh
            if len(items) < self.page_size:
                return
            last_ms = next((ms for ms in reversed(stamps) if ms is not None), None)
            if last_ms is None:
                page += 1  # nothing on the page to key on: page on at the same cursor
                continue
            if end_ms is not None and last_ms >= end_ms:
                return  # the rest of the window's records came before this page's end
            last_s = last_ms // 1000
            if last_s == cursor_s:
                page += 1  # a whole page within one second: page on at the same cursor
                seen_at_cursor.update(r.get(id_field) for r in items if isinstance(r, dict))
            else:
                cursor_s, page = last_s, 1
                seen_at_cursor = {
                    r.get(id_field)
                    for r, ms in zip(items, stamps, strict=True)
                    if ms is not None and ms // 1000 == last_s  # a stamp means a dict
                }

    def read_ids(
        self, entity: Endpoint, tenant_id: str, ids: Iterable[str], **params: str | int
    ) -> list[dict]:
        """Records by id, 50 per call (the entity's parameters and ``params`` go on each)."""
        if not entity.takes_ids:
            raise ValueError(f"{entity.endpoint} does not take IDs; read a window instead")
        unique = list(dict.fromkeys(i.lower() for i in ids))
        found: list[dict] = []
        query = {**entity.params, **params}
        for i in range(0, len(unique), MAX_IDS_PER_CALL):
            batch = unique[i : i + MAX_IDS_PER_CALL]
            body = self.get(
                entity.endpoint, tenant_id, {**query, "IDs": ",".join(batch), "page": 1}
            )
            found.extend(body.get(entity.envelope, []))
        return found


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 60.0
