"""The Xero webhook receiver: a small Starlette app that verifies and records events.

Xero wants an answer within 5 seconds: 200 with an empty body and no cookies for a correctly
signed payload, 401 for a bad signature (its intent-to-receive handshake checks both). So the
request path does only what must happen before that answer: read the raw body (bounded), check
``x-xero-signature`` in constant time *before* parsing anything, validate the shape and store the
events in the durable queue (``EventQueue``) in one transaction. Nothing here calls Xero or
Tableau; a sensor picks the events up later. Duplicates and reordering are absorbed by the queue's
dedupe key, so a re-delivery is answered 200 like any other. An event dated out of bounds (before
2006, more than a day ahead, or out of ``datetime``'s range) is stored as ignored with the reason
and the batch is still answered 200: Xero retries a refused delivery, good events and all.

This module must not import dagster: the receiver runs as its own small process.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xero_tableau.store.event_queue import (
    EventQueue,
    EventShapeError,
    ParsedEvent,
    out_of_bounds,
    parse_payload,
)
from xero_tableau.store.tenants import list_tenants

if TYPE_CHECKING:
    from xero_tableau.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-xero-signature"
WEBHOOK_PATH = "/webhooks/xero"
#: How long the known-tenant set is reused: tenants change rarely, the request path is hot.
TENANT_CACHE_SECONDS = 5.0


class _BodyTooLarge(Exception):
    pass


def expected_signature(key: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, raw body)), as Xero computes ``x-xero-signature``."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def signature_ok(key: str, body: bytes, given: str | None) -> bool:
    """Constant-time comparison, so the answer time leaks nothing about the right signature."""
    if not given:
        return False
    return hmac.compare_digest(expected_signature(key, body).encode(), given.encode())


class _TenantCache:
    """The known-tenant set, refreshed at most every ``ttl`` seconds (thread-safe)."""

    def __init__(self, load: Callable[[], set[str]], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: set[str] = set()
        self._loaded_at: float | None = None

    def get(self) -> set[str]:
        with self._lock:
            now = time.monotonic()
            if self._loaded_at is None or now - self._loaded_at >= self._ttl:
                self._value = {tenant.lower() for tenant in self._load()}
                self._loaded_at = now
            return self._value


async def _read_body(request: Request, max_body: int) -> bytes:
    """The raw body, refusing more than ``max_body`` bytes without reading it all: a declared
    Content-Length over the cap is refused at once, and the stream is cut at the cap."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_body:
                raise _BodyTooLarge
        except ValueError:
            pass  # uvicorn rejects malformed lengths itself; the stream cap still applies
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _empty(status_code: int) -> Response:
    """An answer with no body and no cookies, as Xero requires."""
    return Response(status_code=status_code)


def build_receiver(
    engine: Engine,
    webhook_key: str,
    *,
    max_body: int = 1_000_000,
    known_tenants: Callable[[], set[str]] | None = None,
    tenant_cache_seconds: float = TENANT_CACHE_SECONDS,
) -> Starlette:
    """The receiver app: ``POST /webhooks/xero`` and ``GET /healthz``.

    ``known_tenants`` defaults to the tenants in the state DB (``xero_tenants``); it is cached
    for ``tenant_cache_seconds`` so most requests cost one INSERT and nothing else.
    """
    if not webhook_key:
        raise ValueError("the webhook key must not be empty")
    queue = EventQueue(engine)

    def tenants_in_db() -> set[str]:
        return {tenant.tenant_id for tenant in list_tenants(engine) if tenant.active}

    tenants = _TenantCache(known_tenants or tenants_in_db, tenant_cache_seconds)
    # SQLite has one writer at a time: many threads writing at once only contend (for the GIL
    # and SQLite's lock, whose busy handler sleeps), which is what blew the tail latency. One
    # writer thread, with requests waiting their turn on the event loop, is much faster.
    # PostgreSQL takes concurrent inserts, so it uses a few.
    writers = ThreadPoolExecutor(
        max_workers=1 if engine.dialect.name == "sqlite" else 8,
        thread_name_prefix="webhook-writer",
    )

    def store(events: list[ParsedEvent], received_at: datetime) -> tuple[int, int]:
        known = tenants.get()
        strangers = sorted({e.tenant_id for e in events if e.category != "SUBSCRIPTION"} - known)
        if strangers:
            log.warning(
                "webhook events for organisation(s) not connected here, recorded as ignored: %s"
                " (run `xero-tableau connect` to sync them)",
                ", ".join(strangers),
            )
        for event in events:
            reason = event.out_of_range or out_of_bounds(event.event_time, received_at)
            if reason is not None:
                log.warning("webhook event %s recorded as ignored: %s", event.resource_id, reason)
        return queue.add_batch(events, received_at, known)

    async def receive(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body)
        except _BodyTooLarge:
            log.warning("webhook refused: body over %d bytes", max_body)
            return _empty(413)
        if not signature_ok(webhook_key, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("webhook refused: missing or bad signature (%d bytes)", len(body))
            return _empty(401)
        try:
            events = parse_payload(json.loads(body))
        except (ValueError, EventShapeError) as exc:  # JSONDecodeError is a ValueError
            log.warning("webhook refused: signed but malformed payload (%s)", exc)
            return _empty(400)
        if not events:
            log.info("webhook intent-to-receive answered")
            return _empty(200)
        received_at = datetime.now(UTC)
        inserted, duplicates = await asyncio.get_running_loop().run_in_executor(
            writers, store, events, received_at
        )
        log.info(
            "webhook batch stored: %d events, %d new, %d duplicates",
            len(events),
            inserted,
            duplicates,
        )
        return _empty(200)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve(host: str, port: int, settings: "Settings") -> None:
    """Build the receiver from settings and run it under uvicorn until interrupted (for
    ``xero-tableau webhooks serve``). Xero needs HTTPS on 443: put a TLS proxy in front."""
    import uvicorn

    from xero_tableau.settings import ConfigError
    from xero_tableau.store.db import connect

    if not settings.xero_webhook_key:
        raise ConfigError(
            "XERO_WEBHOOK_KEY is not set: copy the webhook key from the Xero developer portal"
            " (your app > Webhooks) into the environment before serving webhooks"
        )
    engine = connect(settings.database_url)
    app = build_receiver(engine, settings.xero_webhook_key)
    log.info("serving Xero webhooks on http://%s:%d%s", host, port, WEBHOOK_PATH)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
