"""Xero's HTTP conventions: tenant ids, If-Modified-Since, and its errors mapped to exceptions."""

import re
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


def check_tenant_id(tenant_id: str) -> str:
    if not GUID.match(tenant_id or ""):
        raise ValueError(f"xero-tenant-id must be a GUID, got {tenant_id!r}")
    return tenant_id.lower()


def format_if_modified_since(when: datetime) -> str:
    """The If-Modified-Since header: an RFC 3339 date-time in UTC with its offset, to the second
    (Xero compares to the second), e.g. ``2026-12-01T10:00:00Z``.

    Xero's spec declares the header ``format: date-time``, which requires the offset; Xero's own
    SDKs send one too (xero-python ``isoformat()`` of an aware datetime, xero-node
    ``toISOString()``). The bare ``yyyy-mm-ddThh:mm:ss`` of Xero's prose docs is refused by a
    server that validates requests against the spec.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("If-Modified-Since needs a timezone-aware datetime")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raise_for_status(response: httpx.Response, what: str) -> None:
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
