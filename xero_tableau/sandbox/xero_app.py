"""The emulated Xero as an ASGI app: identity, /connections, the Accounting API and the admin API.

One app answers for all three of Xero's hosts (api, identity, login), so the client's three base
URLs (``XERO_API_BASE``, ``XERO_IDENTITY_BASE``, ``XERO_LOGIN_BASE``) all point at the sandbox:

- ``GET  /identity/connect/authorize``  consent page (auto-consents and redirects with a code)
- ``POST /connect/token``               authorization_code, refresh_token, client_credentials
- ``POST /connect/revocation``
- ``GET  /connections``, ``DELETE /connections/{id}``
- ``GET  /api.xro/2.0/{Endpoint}[/{id}]`` and ``GET /api.xro/2.0/Organisation``
- ``GET  /api.xro/2.0/Reports/{Report}``  computed reports (see ``reports``)
- ``/sandbox/admin/...``                writes, webhooks, faults, clock (see ``admin``)
"""

import asyncio
import base64
import json
import random
import re
import threading
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from xero_tableau.sandbox.admin import admin_routes
from xero_tableau.sandbox.clock import SandboxClock
from xero_tableau.sandbox.credentials import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOM_CLIENT_ID,
    DEMO_CUSTOM_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    READ_SCOPES,
)
from xero_tableau.sandbox.dataset import (
    ENTITIES,
    EntitySpec,
    SandboxDataset,
    TenantData,
    day_ms,
    endpoint_scopes,
    ms_date,
)
from xero_tableau.sandbox.identity import (
    AccessDenied,
    ClientApp,
    Grant,
    IdentityService,
    OAuthError,
)
from xero_tableau.sandbox.ledger import journal as ledger_journal
from xero_tableau.sandbox.ledger import journals as ledger_journals
from xero_tableau.sandbox.ledger import ledger_of
from xero_tableau.sandbox.ledger import page as ledger_page
from xero_tableau.sandbox.limits import LimitSettings, RateLimiter
from xero_tableau.sandbox.query import (
    QueryError,
    parse_if_modified_since,
    parse_order,
    parse_where,
    sort_key,
)
from xero_tableau.sandbox.reports import (
    NOT_EMULATED,
    REPORT_SCOPES,
    ReportRequestError,
    build_report,
)
from xero_tableau.sandbox.webhooks import WebhookSender

API_PREFIX = "/api.xro/2.0"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_IDS = 50  # Xero answers 404 once an IDs list passes about 50 GUIDs (URL length)
MAX_URL_LENGTH = 2048
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Fields Xero leaves out of summaryOnly responses (the computation-heavy and nested ones).
_SUMMARY_DROP = {
    "Invoices": ("LineItems", "Payments", "CreditNotes", "Prepayments", "Overpayments"),
    "Contacts": ("Addresses", "Phones", "ContactPersons", "ContactGroups", "Balances"),
}


@dataclass
class Faults:
    """Failures the sandbox injects on purpose (set through ``/sandbox/admin/faults``)."""

    error_rate: float = 0.0  # share of Accounting calls answered 503
    fail_next: list[int] = field(default_factory=list)  # statuses forced on the next calls
    slow_rate: float = 0.0  # share of calls delayed by slow_seconds (wall clock)
    slow_seconds: float = 0.0
    drop_token_responses: int = 0  # next N token responses: processed, then the connection dies
    float_money: bool = False  # document totals summed in binary floating point (float noise)


@dataclass
class XeroSandboxConfig:
    clock_speed: float = 1.0
    access_token_ttl: float = 1800.0
    refresh_token_idle_ttl: float = 60 * 86400.0
    refresh_grace: float = 1800.0
    limits: LimitSettings = field(default_factory=LimitSettings)
    seed: int = 7
    redirect_uris: tuple[str, ...] = (DEMO_REDIRECT_URI,)
    webhook_batch_seconds: float = 1.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    provider_name: str = "xero-tableau sandbox"


class XeroSandbox:
    """The whole emulated Xero: data, clock, identity, limits, webhooks and injected faults."""

    def __init__(self, dataset: SandboxDataset, config: XeroSandboxConfig | None = None) -> None:
        self.config = config = config or XeroSandboxConfig()
        self.dataset = dataset
        self.clock = SandboxClock(speed=config.clock_speed)
        self.identity = IdentityService(
            self.clock,
            access_token_ttl=config.access_token_ttl,
            refresh_token_idle_ttl=config.refresh_token_idle_ttl,
            refresh_grace=config.refresh_grace,
        )
        self.limiter = RateLimiter(self.clock, config.limits)
        self.webhooks = WebhookSender(
            self.clock,
            seed=config.seed,
            batch_seconds=config.webhook_batch_seconds,
            duplicate_rate=config.webhook_duplicate_rate,
            reorder_rate=config.webhook_reorder_rate,
        )
        self.faults = Faults()
        self.rng = random.Random(config.seed)
        self.calls: dict[str, int] = {}  # "tenant endpoint" -> accounting calls served
        self._calls_lock = threading.Lock()
        dataset.clock = self.clock.now_ms  # journals are posted at the sandbox's now
        for tenant in dataset.tenants.values():
            ledger_of(tenant).clock = self.clock.now_ms
        tenant_ids = tuple(dataset.tenants)
        self.identity.register_client(
            ClientApp(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, redirect_uris=config.redirect_uris)
        )
        if tenant_ids:
            self.identity.register_client(
                ClientApp(
                    DEMO_CUSTOM_CLIENT_ID,
                    DEMO_CUSTOM_CLIENT_SECRET,
                    custom_connection_tenant=tenant_ids[0],
                    custom_connection_scopes=tuple(READ_SCOPES.split()[4:]),
                )
            )
        self.app = build_app(self)

    def set_base_url(self, base_url: str) -> None:
        self.webhooks.resource_base = base_url

    def count_call(self, tenant_id: str, endpoint: str) -> None:
        key = f"{tenant_id} {endpoint}"
        with self._calls_lock:
            self.calls[key] = self.calls.get(key, 0) + 1

    def total_calls(self) -> int:
        with self._calls_lock:
            return sum(self.calls.values())


# --- responses ---------------------------------------------------------------------------------


def _problem(status: int, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    body = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized(detail: str) -> JSONResponse:
    return _problem(
        401, "Unauthorized", detail, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def _forbidden(detail: str = "AuthenticationUnsuccessful") -> JSONResponse:
    return _problem(403, "Forbidden", detail)


def _query_error(message: str, headers: dict) -> JSONResponse:
    body = {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}
    return JSONResponse(body, status_code=400, headers=headers)


def _validation_error(message: str, headers: dict | None = None) -> JSONResponse:
    body = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": message}]}],
    }
    return JSONResponse(body, status_code=400, headers=headers)


def _not_found(headers: dict | None = None) -> Response:
    return Response(NOT_FOUND_TEXT, status_code=404, headers=headers, media_type="text/plain")


class _DroppedResponse(Response):
    """Starts a response and then dies: the client never receives the body (a lost response)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2048")],
            }
        )
        raise ConnectionAbortedError("sandbox fault: token response dropped on purpose")


def envelope(sandbox: XeroSandbox, key: str, items: list, pagination: dict | None = None) -> dict:
    body: dict[str, Any] = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": sandbox.config.provider_name,
        "DateTimeUTC": ms_date(sandbox.clock.now_ms(), offset=False),
    }
    if pagination is not None:
        body["pagination"] = pagination
    body[key] = items
    return body


def _json(body: dict, headers: dict) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        media_type="application/json; charset=utf-8",
        headers=headers,
    )


# --- identity ----------------------------------------------------------------------------------


def _client_from_request(sandbox: XeroSandbox, request: Request, form: dict) -> ClientApp:
    auth = request.headers.get("authorization", "")
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if auth.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client") from exc
    return sandbox.identity.authenticate_client(client_id, client_secret)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (what OAuth2 token requests send)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def build_app(sandbox: XeroSandbox) -> Starlette:
    identity = sandbox.identity

    async def authorize(request: Request) -> Response:
        q = request.query_params
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        app = identity.client(client_id)
        if app is None or redirect_uri not in app.redirect_uris:
            # Never redirect to an unregistered URI: show the error, as Xero's login page does.
            return HTMLResponse(
                "<h1>Error</h1><p>unauthorized_client: unknown client or invalid redirect_uri</p>",
                status_code=400,
            )
        state = q.get("state", "")
        if q.get("response_type") != "code":
            query = urlencode({"error": "unsupported_response_type", "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)
        try:
            code = identity.authorize(
                client_id=client_id,
                redirect_uri=redirect_uri,
                scope=q.get("scope", ""),
                tenant_ids=tuple(sandbox.dataset.tenants),
            )
        except OAuthError as exc:
            query = urlencode({"error": exc.code, "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)
        query = urlencode({"code": code, "scope": q.get("scope", ""), "state": state})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def token(request: Request) -> Response:
        form = await _form(request)
        try:
            app = _client_from_request(sandbox, request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                body = identity.exchange_code(
                    app, form.get("code", ""), form.get("redirect_uri", "")
                )
            elif grant_type == "refresh_token":
                body = identity.refresh(app, form.get("refresh_token", ""))
            elif grant_type == "client_credentials":
                body = identity.client_credentials(app, form.get("scope"))
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        if sandbox.faults.drop_token_responses > 0:
            sandbox.faults.drop_token_responses -= 1
            return _DroppedResponse()
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revocation(request: Request) -> Response:
        form = await _form(request)
        try:
            app = _client_from_request(sandbox, request, form)
        except OAuthError as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        identity.revoke(app, form.get("token", ""))
        return Response(status_code=200)

    def _grant(request: Request) -> Grant | Response:
        token = _bearer(request)
        if token is None:
            return _unauthorized("AuthenticationUnsuccessful: no bearer token")
        try:
            return identity.grant_for_access_token(token)
        except AccessDenied as exc:
            return _unauthorized(exc.detail)

    async def connections(request: Request) -> Response:
        grant = _grant(request)
        if isinstance(grant, Response):
            return grant
        admission = sandbox.limiter.acquire(None)
        if not admission.allowed:
            return Response(status_code=429, headers=admission.headers)
        wanted = request.query_params.get("authEventId")
        rows = []
        if wanted is None or wanted == grant.auth_event_id:
            for conn in grant.connections.values():
                tenant = sandbox.dataset.tenant(conn.tenant_id)
                rows.append(
                    {
                        "id": conn.id,
                        "authEventId": grant.auth_event_id,
                        "tenantId": conn.tenant_id,
                        "tenantType": "ORGANISATION",
                        "tenantName": tenant.name if tenant else "",
                        "createdDateUtc": _connection_time(conn.created_ms),
                        "updatedDateUtc": _connection_time(conn.updated_ms),
                    }
                )
        return JSONResponse(rows, headers=admission.headers)

    async def delete_connection(request: Request) -> Response:
        grant = _grant(request)
        if isinstance(grant, Response):
            return grant
        if identity.disconnect(grant, request.path_params["connection_id"]):
            return Response(status_code=204)
        return _not_found()

    async def accounting(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        record_id = request.path_params.get("record_id")
        if endpoint not in ENTITIES and endpoint != "Organisation":
            return _not_found()
        grant = _grant(request)
        if isinstance(grant, Response):
            return grant
        tenant_or_error = _tenant_for(sandbox, request, grant)
        if isinstance(tenant_or_error, Response):
            return tenant_or_error
        tenant = tenant_or_error
        if not _has_scope(grant, endpoint):
            return _forbidden("AuthorizationUnsuccessful: the app lacks the scope for " + endpoint)
        admission = sandbox.limiter.acquire(tenant.tenant_id)
        if not admission.allowed:
            body = {"Title": "Too Many Requests", "Status": 429, "Detail": admission.problem}
            return JSONResponse(body, status_code=429, headers=admission.headers)
        try:
            sandbox.count_call(tenant.tenant_id, endpoint)
            fault = await _inject_faults(sandbox)
            if fault is not None:
                fault.headers.update(admission.headers)
                return fault
            if len(str(request.url)) > MAX_URL_LENGTH:
                return _not_found(admission.headers)
            with sandbox.dataset.lock:
                return _serve(sandbox, tenant, endpoint, record_id, request, admission.headers)
        finally:
            sandbox.limiter.release(tenant.tenant_id)

    async def report(request: Request) -> Response:
        """``GET Reports/{Report}``: authorised, limited and counted as every Accounting call."""
        name = request.path_params["report"]
        if name in NOT_EMULATED:
            return Response(
                "The sandbox does not emulate this report",
                status_code=501,
                media_type="text/plain",
            )
        if name not in REPORT_SCOPES:
            return _not_found()
        grant = _grant(request)
        if isinstance(grant, Response):
            return grant
        tenant_or_error = _tenant_for(sandbox, request, grant)
        if isinstance(tenant_or_error, Response):
            return tenant_or_error
        tenant = tenant_or_error
        if not any(scope in grant.scopes for scope in REPORT_SCOPES[name]):
            return _forbidden("AuthorizationUnsuccessful: the app lacks the scope for " + name)
        admission = sandbox.limiter.acquire(tenant.tenant_id)
        if not admission.allowed:
            body = {"Title": "Too Many Requests", "Status": 429, "Detail": admission.problem}
            return JSONResponse(body, status_code=429, headers=admission.headers)
        try:
            sandbox.count_call(tenant.tenant_id, f"Reports/{name}")
            fault = await _inject_faults(sandbox)
            if fault is not None:
                fault.headers.update(admission.headers)
                return fault
            with sandbox.dataset.lock:
                try:
                    built = build_report(
                        name,
                        request.query_params,
                        tenant,
                        lambda: ledger_journals(tenant),
                        sandbox.clock.now_ms(),
                    )
                except ReportRequestError as exc:
                    body = {
                        "ErrorNumber": 10,
                        "Type": "ValidationException",
                        "Message": exc.message,
                        "Elements": [],
                    }
                    return JSONResponse(body, status_code=exc.status, headers=admission.headers)
            return _json(envelope(sandbox, "Reports", [built]), admission.headers)
        finally:
            sandbox.limiter.release(tenant.tenant_id)

    routes = [
        Route("/identity/connect/authorize", authorize, methods=["GET"]),
        Route("/connect/token", token, methods=["POST"]),
        Route("/connect/revocation", revocation, methods=["POST"]),
        Route("/connections", connections, methods=["GET"]),
        Route("/connections/{connection_id}", delete_connection, methods=["DELETE"]),
        Route(API_PREFIX + "/Reports/{report}", report, methods=["GET"]),
        Route(API_PREFIX + "/{endpoint}", accounting, methods=["GET"]),
        Route(API_PREFIX + "/{endpoint}/{record_id}", accounting, methods=["GET"]),
        *admin_routes(sandbox),
    ]
    return Starlette(routes=routes)


def _connection_time(ms: int) -> str:
    """Xero's /connections timestamps: 7 fractional digits and no zone.

    For example ``2019-12-07T18:46:19.5165400``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0")


def _tenant_for(sandbox: XeroSandbox, request: Request, grant: Grant) -> TenantData | Response:
    header = request.headers.get("xero-tenant-id")
    if not header:
        if grant.custom_connection and len(grant.connections) == 1:
            header = next(iter(grant.connections))
        else:
            return _forbidden()
    if not _GUID.match(header) or header.lower() not in grant.connections:
        return _forbidden()
    tenant = sandbox.dataset.tenant(header.lower())
    return tenant if tenant is not None else _forbidden()


def _has_scope(grant: Grant, endpoint: str) -> bool:
    scopes = endpoint_scopes(endpoint)
    return any(base in grant.scopes or f"{base}.read" in grant.scopes for base in scopes)


async def _inject_faults(sandbox: XeroSandbox) -> Response | None:
    faults = sandbox.faults
    if faults.slow_seconds > 0 and sandbox.rng.random() < faults.slow_rate:
        await asyncio.sleep(faults.slow_seconds)
    status = None
    if faults.fail_next:
        status = faults.fail_next.pop(0)
    elif faults.error_rate > 0 and sandbox.rng.random() < faults.error_rate:
        status = 503
    if status is None:
        return None
    if status == 429:  # as the limiter would answer it
        headers = {"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}
        body = {"Title": "Too Many Requests", "Status": 429, "Detail": "minute"}
        return JSONResponse(body, status_code=429, headers=headers)
    text = "Service Unavailable" if status == 503 else "Internal Server Error"
    return Response(text, status_code=status, media_type="text/plain", headers={})


def _bool(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _serve(
    sandbox: XeroSandbox,
    tenant: TenantData,
    endpoint: str,
    record_id: str | None,
    request: Request,
    headers: dict[str, str],
) -> Response:
    if endpoint == "Organisation":
        return _json(envelope(sandbox, "Organisations", [tenant.organisation]), headers)
    if endpoint == "Journals":
        return _serve_journals(sandbox, tenant, record_id, request, headers)
    spec = ENTITIES[endpoint]
    params = request.query_params
    if record_id is not None:
        record = tenant.get(endpoint, record_id.lower()) or tenant.get(endpoint, record_id)
        if record is None:
            return _not_found(headers)
        single = _as_asked(sandbox, spec, params, [record])
        return _json(envelope(sandbox, endpoint, single), headers)
    try:
        rows = _select(tenant, spec, params, request.headers.get("if-modified-since"))
    except QueryError as exc:
        return _query_error(str(exc), headers)
    except _TooManyIds:
        return _not_found(headers)
    pagination = None
    drop: tuple[str, ...] = ()
    if spec.paged:
        page_raw = params.get("page")
        try:
            page = int(page_raw) if page_raw is not None else 1
            size = int(params.get("pageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            return _validation_error("page and pageSize must be integers", headers)
        if page < 1:
            return _validation_error("page must be 1 or more", headers)
        size = max(1, min(size, MAX_PAGE_SIZE))
        total = len(rows)
        pagination = {
            "page": page,
            "pageSize": size,
            "pageCount": (total + size - 1) // size,
            "itemCount": total,
        }
        rows = rows[(page - 1) * size : page * size]
        if page_raw is None and endpoint == "Invoices":
            drop = ("LineItems",)  # unpaged invoice reads come without line items, as in Xero
    if spec.summary_only and _bool(params.get("summaryOnly")):
        drop = _SUMMARY_DROP[endpoint]
    items = [row[0] for row in rows]
    if drop:
        items = [{k: v for k, v in item.items() if k not in drop} for item in items]
    if endpoint == "TrackingCategories" and not _bool(params.get("includeArchived")):
        items = [
            {**c, "Options": [o for o in c.get("Options", []) if o.get("Status") == "ACTIVE"]}
            for c in items
        ]
    items = _as_asked(sandbox, spec, params, items)
    return _json(envelope(sandbox, endpoint, items, pagination), headers)


def _serve_journals(
    sandbox: XeroSandbox,
    tenant: TenantData,
    record_id: str | None,
    request: Request,
    headers: dict[str, str],
) -> Response:
    """``GET /Journals``: JournalNumber > ``offset``, at most 100, oldest first; If-Modified-Since
    on CreatedDateUTC; ``paymentsOnly=true`` keeps the journals of payments. ``/Journals/{id}``
    takes a JournalID or a JournalNumber."""
    if record_id is not None:
        found = ledger_journal(tenant, record_id)
        if found is None:
            return _not_found(headers)
        return _json(envelope(sandbox, "Journals", [found]), headers)
    params = request.query_params
    try:
        offset = int(params.get("offset") or 0)
    except ValueError:
        return _validation_error("offset must be an integer", headers)
    since = request.headers.get("if-modified-since")
    try:
        since_ms = parse_if_modified_since(since) if since else None
    except QueryError as exc:
        return _query_error(str(exc), headers)
    rows = ledger_page(tenant, offset, since_ms, _bool(params.get("paymentsOnly")))
    return _json(envelope(sandbox, "Journals", rows), headers)


def _as_asked(sandbox: XeroSandbox, spec: EntitySpec, params: Any, items: list) -> list:
    """The records as this request gets them: unit amounts at 2 dp unless ``unitdp=4`` (on an
    endpoint that takes it), and float-noise money when that fault is on."""
    if spec.has_lines == "LineItems" and not (spec.unit_dp and params.get("unitdp") == "4"):
        items = _units_to_cents(items)
    if sandbox.faults.float_money:
        items = [_float_money(item) for item in items]
    return items


def _cent_exact(value: object) -> bool:
    return not isinstance(value, float) or round(value, 2) == value


def _units_to_cents(items: list) -> list:
    """Xero stores unit amounts to 4 dp but answers with 2 ("By default UnitAmount is rounded
    to two decimal places", half away from zero) unless the request says ``unitdp=4``; only the
    records that hold a finer unit amount are copied."""
    out = items
    for row, item in enumerate(items):
        lines = item.get("LineItems")
        if not lines or all(_cent_exact(line.get("UnitAmount")) for line in lines):
            continue
        if out is items:
            out = list(items)
        out[row] = {
            **item,
            "LineItems": [
                line
                if _cent_exact(line.get("UnitAmount"))
                else {**line, "UnitAmount": float(_money(line["UnitAmount"]))}
                for line in lines
            ],
        }
    return out


def _money(value: float | int) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _float_money(item: dict) -> dict:
    """A document as a server that sums money in binary floating point answers it: SubTotal,
    TotalTax, Total and AmountDue recomputed as float sums of the lines, so e.g. 11062.12 can
    come out as 11062.119999999999 (the ``float_money`` fault; real Xero sums exactly). A sum
    is used only where it is the stored amount give or take float noise."""
    lines = item.get("LineItems")
    if not lines or "SubTotal" not in item:
        return item
    sub_total = 0.0
    total_tax = 0.0
    for line in lines:
        sub_total += float(line.get("LineAmount") or 0)
        total_tax += float(line.get("TaxAmount") or 0)
    if item.get("LineAmountTypes") == "Inclusive":
        sub_total -= total_tax
    total = sub_total + total_tax
    sums = {"SubTotal": sub_total, "TotalTax": total_tax, "Total": total}
    if "AmountDue" in item:
        paid = float(item.get("AmountPaid") or 0) + float(item.get("AmountCredited") or 0)
        sums["AmountDue"] = total - paid
    noisy = {
        key: value
        for key, value in sums.items()
        if isinstance(item.get(key), int | float) and abs(value - item[key]) < 1e-6
    }
    return {**item, **noisy} if noisy else item


class _TooManyIds(Exception):
    pass


def _csv(value: str) -> list[str]:
    return [part.strip().strip('"') for part in value.split(",") if part.strip()]


class _UpdatedOrderRows:
    """The records from position ``start`` of the UpdatedDateUTC index, built only when sliced."""

    def __init__(self, tenant: TenantData, endpoint: str, start: int) -> None:
        self.tenant, self.endpoint, self.start = tenant, endpoint, start
        self.updated, self.ids = tenant.by_updated(endpoint)

    def __len__(self) -> int:
        return len(self.ids) - self.start

    def __iter__(self) -> Iterator[tuple[dict, int, int]]:
        return iter(self[0 : len(self)])

    def __getitem__(self, window: slice) -> list[tuple[dict, int, int]]:
        lo, hi, _ = window.indices(len(self))
        records = self.tenant.collections[self.endpoint]
        instants = self.tenant.instants[self.endpoint]
        chosen = self.ids[self.start + lo : self.start + hi]
        return [(records[rid], *instants[rid]) for rid in chosen]


_FILTER_PARAMS = (
    "IDs",
    "InvoiceNumbers",
    "ContactIDs",
    "Statuses",
    "where",
    "Status",
    "References",
)
# the spec's list filters of the two advance endpoints: parameter -> field it matches
_ADVANCE_FILTERS = {
    "Overpayments": ("References", "Reference"),
    "Prepayments": ("InvoiceNumbers", "InvoiceNumber"),
}


def _select(
    tenant: TenantData, spec: EntitySpec, params: Any, if_modified_since: str | None
) -> "list[tuple[dict, int, int]] | _UpdatedOrderRows":
    """Filter and sort one endpoint's records as the query asks."""
    order_text = " ".join((params.get("order") or spec.default_order).split()).lower()
    if (
        order_text in ("updateddateutc", "updateddateutc asc")
        and not any(params.get(name) for name in _FILTER_PARAMS)
        and not params.get("DateFrom")
        and not params.get("DateTo")
        and not spec.include_archived
    ):
        # The incremental reader's query: a slice of the UpdatedDateUTC index.
        start = 0
        if if_modified_since and spec.modified_since:
            since_ms = parse_if_modified_since(if_modified_since) // 1000 * 1000
            start = bisect_left(tenant.by_updated(spec.endpoint)[0], since_ms)
        return _UpdatedOrderRows(tenant, spec.endpoint, start)
    rows = list(tenant.records(spec.endpoint))
    if spec.takes_ids and params.get("IDs"):
        ids = [i.lower() for i in _csv(params["IDs"])]
        if len(ids) > MAX_IDS:
            raise _TooManyIds
        wanted = set(ids)
        rows = [row for row in rows if str(row[0][spec.id_field]).lower() in wanted]
    if spec.endpoint == "Invoices":
        if params.get("InvoiceNumbers"):
            numbers = set(_csv(params["InvoiceNumbers"]))
            rows = [row for row in rows if row[0].get("InvoiceNumber") in numbers]
        if params.get("ContactIDs"):
            contacts = {c.lower() for c in _csv(params["ContactIDs"])}
            rows = [row for row in rows if row[0]["Contact"]["ContactID"].lower() in contacts]
        if params.get("Statuses"):
            statuses = set(_csv(params["Statuses"]))
            rows = [row for row in rows if row[0].get("Status") in statuses]
    if spec.endpoint in _ADVANCE_FILTERS:
        param, field_name = _ADVANCE_FILTERS[spec.endpoint]
        if params.get(param):
            wanted_values = set(_csv(params[param]))
            rows = [row for row in rows if row[0].get(field_name) in wanted_values]
    if spec.endpoint == "PurchaseOrders":
        rows = _purchase_order_filters(rows, params)
    if params.get("where") and spec.takes_where:
        predicate = parse_where(params["where"])
        rows = [row for row in rows if predicate(*row)]
    if if_modified_since and spec.modified_since:
        since_s = parse_if_modified_since(if_modified_since) // 1000
        # accurate to the second: a record updated within the given second is included
        rows = [row for row in rows if row[1] // 1000 >= since_s]
    if spec.include_archived and not _bool(params.get("includeArchived")):
        status_field = "ContactStatus" if spec.endpoint == "Contacts" else "Status"
        rows = [row for row in rows if row[0].get(status_field) != "ARCHIVED"]
    order = parse_order(params["order"]) if params.get("order") else []
    if not order and spec.default_order:
        order = [(spec.default_order, False)]
    id_field = spec.id_field
    rows.sort(key=lambda row: str(row[0].get(id_field, "")))  # stable tie-break for paging
    for field_name, descending in reversed(order):
        rows.sort(key=sort_key(field_name), reverse=descending)  # type: ignore[arg-type]
    return rows


def _purchase_order_filters(
    rows: list[tuple[dict, int, int]], params: Any
) -> list[tuple[dict, int, int]]:
    """PurchaseOrders take Status, DateFrom and DateTo (yyyy-mm-dd) instead of ``where``."""
    if params.get("Status"):
        rows = [row for row in rows if row[0].get("Status") == params["Status"]]
    for name, keep in (("DateFrom", lambda w, b: w >= b), ("DateTo", lambda w, b: w <= b)):
        if params.get(name):
            try:
                bound = day_ms(date.fromisoformat(params[name]))
            except ValueError as exc:
                raise QueryError(f"Invalid {name}: {params[name]!r}") from exc
            rows = [row for row in rows if keep(row[2], bound)]
    return rows
