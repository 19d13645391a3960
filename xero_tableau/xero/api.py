"""Calls to Xero's Accounting API and /connections, with Xero's errors mapped to clear exceptions.

This is the thin HTTP layer: one request, one response. Paging helpers build on ``get``.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from xero_tableau.xero.errors import (
    XeroAuthError,
    XeroError,
    XeroForbidden,
    XeroNotFound,
    XeroRateLimited,
    XeroUnavailable,
    XeroValidationError,
)

ACCOUNTING_PATH = "/api.xro/2.0"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    tenant_type: str
    connection_id: str


@dataclass(frozen=True)
class Page:
    items: list[dict]
    page: int
    page_count: int | None
    item_count: int | None
    headers: dict[str, str]


def check_tenant_id(tenant_id: str) -> str:
    if not GUID.match(tenant_id or ""):
        raise ValueError(f"xero-tenant-id must be a GUID, got {tenant_id!r}")
    return tenant_id.lower()


def format_if_modified_since(when: datetime) -> str:
    """Xero reads If-Modified-Since as UTC ``yyyy-mm-ddThh:mm:ss`` (accurate to the second)."""
    if when.tzinfo is None:
        raise ValueError("If-Modified-Since needs a timezone-aware datetime")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class XeroApi:
    """One HTTP client for one Xero app; ``access_token`` is asked for on every call."""

    def __init__(
        self,
        api_base: str,
        access_token: Callable[[], str],
        http: httpx.Client | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.access_token = access_token
        self.http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))

    def connections(self) -> list[Tenant]:
        response = self.http.get(f"{self.api_base}/connections", headers=self._headers())
        _raise_for(response, "GET /connections")
        return [
            Tenant(c["tenantId"], c.get("tenantName") or "", c.get("tenantType", ""), c["id"])
            for c in response.json()
        ]

    def get(
        self,
        endpoint: str,
        tenant_id: str,
        params: dict[str, str | int] | None = None,
        if_modified_since: datetime | None = None,
    ) -> httpx.Response:
        headers = self._headers()
        headers["xero-tenant-id"] = check_tenant_id(tenant_id)
        if if_modified_since is not None:
            headers["If-Modified-Since"] = format_if_modified_since(if_modified_since)
        response = self.http.get(
            f"{self.api_base}{ACCOUNTING_PATH}/{endpoint}", params=params, headers=headers
        )
        _raise_for(response, f"GET {endpoint}")
        return response

    def get_page(
        self,
        endpoint: str,
        tenant_id: str,
        *,
        page: int,
        page_size: int = 1000,
        params: dict[str, str | int] | None = None,
        if_modified_since: datetime | None = None,
    ) -> Page:
        query: dict[str, str | int] = {**(params or {}), "page": page, "pageSize": page_size}
        response = self.get(endpoint, tenant_id, query, if_modified_since)
        body = response.json()
        pagination = body.get("pagination") or {}
        return Page(
            items=body.get(endpoint, []),
            page=page,
            page_count=pagination.get("pageCount"),
            item_count=pagination.get("itemCount"),
            headers=dict(response.headers),
        )

    def iter_pages(
        self,
        endpoint: str,
        tenant_id: str,
        *,
        page_size: int = 1000,
        params: dict[str, str | int] | None = None,
        if_modified_since: datetime | None = None,
    ) -> Iterator[Page]:
        """Every page, stopping at ``pageCount`` or on a short page."""
        page = 1
        while True:
            result = self.get_page(
                endpoint,
                tenant_id,
                page=page,
                page_size=page_size,
                params=params,
                if_modified_since=if_modified_since,
            )
            yield result
            if len(result.items) < page_size or (
                result.page_count is not None and page >= result.page_count
            ):
                return
            page += 1

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", "Accept": "application/json"}


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status == 401:
        raise XeroAuthError(
            f"{what}: Xero refused the access token ({_detail(response)})", status=401
        )
    if status == 403:
        raise XeroForbidden(
            f"{what}: forbidden ({_detail(response)}): the tenant may be disconnected, the "
            "tenant id wrong, or the app may lack the scope for this endpoint",
            status=403,
        )
    if status == 404:
        raise XeroNotFound(f"{what}: not found", status=404)
    if status == 429:
        raise XeroRateLimited(
            f"{what}: rate limited ({response.headers.get('X-Rate-Limit-Problem', 'unknown')})",
            retry_after=float(response.headers.get("Retry-After", "60")),
            problem=response.headers.get("X-Rate-Limit-Problem"),
        )
    if status == 400:
        messages = _validation_messages(response)
        raise XeroValidationError(f"{what}: {'; '.join(messages) or 'bad request'}", messages)
    if status >= 500:
        raise XeroUnavailable(f"{what}: Xero answered HTTP {status}", status=status)
    raise XeroError(f"{what}: HTTP {status}", status=status)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("Detail") or body.get("Title") or "") if isinstance(body, dict) else ""


def _validation_messages(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return [response.text[:200]] if response.text else []
    if not isinstance(body, dict):
        return []
    messages = [
        error["Message"]
        for element in body.get("Elements", [])
        for error in element.get("ValidationErrors", [])
        if error.get("Message")
    ]
    if not messages and body.get("Message"):
        messages = [str(body["Message"])]
    return messages
