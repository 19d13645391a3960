"""The Xero webhook receiver and its durable event queue, over real HTTP.

The receiver is served by uvicorn on loopback (``ServedApp``) and driven by httpx and by the
sandbox's own ``WebhookSender`` (which signs, handshakes, duplicates and reorders like Xero). The
queue tests run on SQLite and on PostgreSQL.
"""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.sandbox.clock import SandboxClock
from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY
from xero_tableau.sandbox.server import ServedApp
from xero_tableau.sandbox.webhooks import WebhookSender, sign
from xero_tableau.store.db import connect, xero_webhook_events
from xero_tableau.store.event_queue import EventQueue, EventShapeError, parse_event_time
from xero_tableau.store.tenants import record_connections
from xero_tableau.webhooks.receiver import WEBHOOK_PATH, build_receiver
from xero_tableau_tests.conftest import fresh_state_db

KEY = DEMO_WEBHOOK_KEY
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
STRANGER = "00000000-0000-4000-8000-00000000beef"
MAX_BODY = 200_000


@dataclass
class Receiver:
    url: str
    base_url: str
    engine: Engine

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(xero_webhook_events).order_by(xero_webhook_events.c.id)
            return [dict(row) for row in conn.execute(query).mappings()]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    engine = connect(f"sqlite:///{tmp_path / 'state.db'}")
    record_connections(engine, [(TENANT, "Demo Org", "ORGANISATION", str(uuid.uuid4()))])
    app = build_receiver(engine, KEY, max_body=MAX_BODY)
    with ServedApp(app) as served:
        yield Receiver(served.base_url + WEBHOOK_PATH, served.base_url, engine)
    engine.dispose()


def event(
    resource_id: str | None = None,
    *,
    tenant: str = TENANT,
    category: str = "INVOICE",
    event_type: str = "UPDATE",
    when: str = "2024-06-21T01:15:39.902",
) -> dict[str, Any]:
    resource_id = resource_id or str(uuid.uuid4())
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": when,
        "eventType": event_type,
        "eventCategory": category,
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }


def payload(events: list[dict[str, Any]]) -> bytes:
    n = len(events)
    body = {"events": events, "firstEventSequence": 1 if n else 0, "lastEventSequence": n}
    return json.dumps({**body, "entropy": "S0m3r4Nd0mt3xt"}, separators=(",", ":")).encode()


def post(url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["x-xero-signature"] = signature
    return httpx.post(url, content=body, headers=headers, trust_env=False, timeout=10)


def assert_xero_ok(response: httpx.Response) -> None:
    """What Xero demands of a good delivery: 200, empty body, no cookies."""
    assert response.status_code == 200
    assert response.content == b""
    assert "set-cookie" not in response.headers


def sender(**options: Any) -> WebhookSender:
    return WebhookSender(SandboxClock(), batch_seconds=0.05, seed=7, **options)


# ------------------------------------------------------------------ signatures


def test_good_signature_is_accepted_and_stored(receiver: Receiver) -> None:
    body = payload([event("717F2BFC-C6D4-41FD-B238-3F2F0C0CF777", category="CONTACT")])
    assert_xero_ok(post(receiver.url, body, sign(KEY, body)))
    [row] = receiver.rows()
    assert row["tenant_id"] == TENANT
    assert row["category"] == "CONTACT"
    assert row["event_type"] == "UPDATE"
    assert row["resource_id"] == "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
    assert row["event_time"].replace(tzinfo=UTC) == datetime(
        2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC
    )
    assert row["tenant_known"] is True
    assert row["status"] == "pending"
    assert row["run_id"] is None


@pytest.mark.parametrize("problem", ["altered-body", "wrong-key", "empty-header", "no-header"])
def test_bad_signature_is_refused_and_nothing_stored(receiver: Receiver, problem: str) -> None:
    body = payload([event()])
    signature: str | None = sign(KEY, body)
    if problem == "altered-body":
        body = body.replace(b"UPDATE", b"UPDATF")  # one byte changed after signing
    elif problem == "wrong-key":
        signature = sign("not-the-key", body)
    elif problem == "empty-header":
        signature = ""
    else:
        signature = None
    response = post(receiver.url, body, signature)
    assert response.status_code == 401
    assert response.content == b""
    assert receiver.rows() == []


def test_intent_to_receive_handshake(receiver: Receiver) -> None:
    body = payload([])
    assert_xero_ok(post(receiver.url, body, sign(KEY, body)))
    assert post(receiver.url, body, sign("wrong", body)).status_code == 401
    webhooks = sender()
    subscription = webhooks.subscribe(receiver.url, KEY)
    assert subscription.status == "OK"
    assert any(d.kind == "intent" and d.status_code == 401 for d in webhooks.deliveries)
    assert receiver.rows() == []


def test_a_receiver_with_another_key_fails_the_handshake(receiver: Receiver) -> None:
    assert sender().subscribe(receiver.url, "some-other-key").status == "INTENT_TO_RECEIVE_FAILED"


# ------------------------------------------------------------------ malformed and oversized


def test_signed_body_that_is_not_json_is_400(receiver: Receiver) -> None:
    body = b"this is not json {"
    response = post(receiver.url, body, sign(KEY, body))
    assert response.status_code == 400
    assert receiver.rows() == []


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"events": "nope"},
        {"no-events": []},
        {"events": [42]},
        {"events": [{**event(), "eventCategory": "PAYMENT"}]},
        {"events": [{**event(), "eventType": "DELETE"}]},
        {"events": [{**event(), "eventDateUtc": "yesterday"}]},
        {"events": [{k: v for k, v in event().items() if k != "resourceId"}]},
        {"events": [event(), {k: v for k, v in event().items() if k != "tenantId"}]},
    ],
)
def test_signed_body_of_the_wrong_shape_is_400(receiver: Receiver, document: Any) -> None:
    body = json.dumps(document).encode()
    response = post(receiver.url, body, sign(KEY, body))
    assert response.status_code == 400
    assert receiver.rows() == []  # all or nothing: the good event of a bad batch is not kept


def test_body_over_the_cap_is_413(receiver: Receiver) -> None:
    body = payload([event() for _ in range(MAX_BODY // 300 + 10)])
    assert len(body) > MAX_BODY
    assert post(receiver.url, body, sign(KEY, body)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is cut at the cap
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    response = httpx.post(
        receiver.url,
        content=chunks(),
        headers={"x-xero-signature": sign(KEY, body)},
        trust_env=False,
    )
    assert response.status_code == 413
    assert receiver.rows() == []


def test_healthz(receiver: Receiver) -> None:
    response = httpx.get(receiver.base_url + "/healthz", trust_env=False)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# ------------------------------------------------------------------ delivery semantics


def test_same_batch_twice_is_stored_once(receiver: Receiver) -> None:
    events = [event() for _ in range(5)]
    body = payload(events)
    assert_xero_ok(post(receiver.url, body, sign(KEY, body)))
    # A re-delivery is a new payload (new entropy, other order) of the same events.
    again = payload([*reversed(events), events[0]]).replace(b"S0m3", b"An0t")
    assert_xero_ok(post(receiver.url, again, sign(KEY, again)))
    assert len(receiver.rows()) == 5


def test_unknown_tenant_is_recorded_as_ignored(receiver: Receiver) -> None:
    body = payload([event(tenant=STRANGER), event()])
    assert_xero_ok(post(receiver.url, body, sign(KEY, body)))
    by_tenant = {row["tenant_id"]: row for row in receiver.rows()}
    assert by_tenant[STRANGER]["tenant_known"] is False
    assert by_tenant[STRANGER]["status"] == "ignored"
    assert by_tenant[TENANT]["status"] == "pending"
    assert [e.tenant_id for e in EventQueue(receiver.engine).pending()] == [TENANT]


def test_a_disconnected_tenant_is_ignored_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'state.db'}")
    record_connections(engine, [(TENANT, "Demo Org", "ORGANISATION", str(uuid.uuid4()))])
    record_connections(engine, [])  # the organisation disconnected the app
    app = build_receiver(engine, KEY, tenant_cache_seconds=0)
    try:
        with ServedApp(app) as served, caplog.at_level("WARNING"):
            body = payload([event()])
            assert_xero_ok(post(served.base_url + WEBHOOK_PATH, body, sign(KEY, body)))
        assert EventQueue(engine).counts()["ignored"] == 1
        assert EventQueue(engine).pending() == []
        assert f"not connected here, recorded as ignored: {TENANT}" in caplog.text
    finally:
        engine.dispose()


def test_sender_duplicates_and_reorders_are_stored_once(receiver: Receiver) -> None:
    webhooks = sender(duplicate_rate=1.0, reorder_rate=1.0, max_events_per_payload=7)
    assert webhooks.subscribe(receiver.url, KEY).status == "OK"
    resources = [str(uuid.uuid4()) for _ in range(40)]
    for resource in resources:
        webhooks.emit(TENANT, "INVOICE", "CREATE", resource)
    webhooks.start()
    try:
        assert webhooks.flush(timeout=10)
    finally:
        webhooks.stop()
    info = webhooks.subscriptions()[0]
    assert info.duplicates_sent > 0
    assert info.failed_attempts == 0
    rows = receiver.rows()
    assert sorted(row["resource_id"] for row in rows) == sorted(resources)


def test_burst_of_1000_events_is_stored_exactly(receiver: Receiver) -> None:
    webhooks = sender(duplicate_rate=0.2)
    assert webhooks.subscribe(receiver.url, KEY).status == "OK"
    for _ in range(1000):
        webhooks.emit(TENANT, "CONTACT", "UPDATE", str(uuid.uuid4()))
    webhooks.start()
    try:
        assert webhooks.flush(timeout=15)
    finally:
        webhooks.stop()
    assert webhooks.subscriptions()[0].events_delivered == 1000
    assert len(receiver.rows()) == 1000
    assert EventQueue(receiver.engine).counts()["pending"] == 1000


def test_receiver_package_never_imports_dagster() -> None:
    code = (
        "import sys, xero_tableau.webhooks.receiver, xero_tableau.store.event_queue;"
        "sys.exit('dagster' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------ the queue, on both backends


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = fresh_state_db(request, tmp_path, request.param, xero_webhook_events.name)
    engine = connect(url)
    yield engine
    engine.dispose()


def test_queue_dedupes_reads_and_marks(queue_engine: Engine) -> None:
    queue = EventQueue(queue_engine)
    now = datetime.now(UTC)
    first = [event(when=f"2024-06-21T01:15:{s:02d}.000") for s in range(10)]
    assert queue.add_batch(first, now, {TENANT.upper()}) == (10, 0)
    # Overlap, an in-batch repeat, a SUBSCRIPTION event and a stranger's event.
    second = [*first[5:], first[0], event(category="SUBSCRIPTION"), event(tenant=STRANGER)]
    assert queue.add_batch(second, now, {TENANT}) == (2, 6)
    assert queue.add_batch([], now, {TENANT}) == (0, 0)
    assert queue.counts() == {"pending": 10, "requested": 0, "done": 0, "ignored": 2}

    page = queue.pending(after_id=0, limit=4)
    assert len(page) == 4
    assert [e.id for e in page] == sorted(e.id for e in page)
    assert page[0].event_time == datetime(2024, 6, 21, 1, 15, 0, tzinfo=UTC)
    assert page[0].received_at.tzinfo is not None
    rest = queue.pending(after_id=page[-1].id, limit=100)
    assert len(rest) == 6

    assert queue.request([e.id for e in page], "run-key-1", now) == 4
    assert queue.request([page[0].id], "run-key-2", now) == 0  # no longer pending
    assert queue.counts()["requested"] == 4
    assert len(queue.pending()) == 6
    (flight,) = queue.in_flight()
    assert (flight.run_key, flight.tenant_id, flight.category) == ("run-key-1", TENANT, "INVOICE")
    assert flight.event_ids == tuple(e.id for e in page)
    assert flight.first_event_time == page[0].event_time
    assert flight.last_event_time == page[-1].event_time

    # A failed run: its events are pending again, one attempt more, after the backoff.
    later = now + timedelta(seconds=60)
    assert queue.failed("run-key-1", "run-a", later) == 4
    assert queue.in_flight() == []
    cursor = page[-1].id  # the sensor took in these four, not the rest
    assert queue.returned(up_to_id=cursor, now=now) == []  # still backing off
    back = queue.returned(up_to_id=cursor, now=later)
    assert [e.id for e in back] == [e.id for e in page]
    assert {(e.attempts, e.run_id) for e in back} == {(1, "run-a")}

    # Asked for again and succeeded: done, with the run that did it.
    assert queue.request([e.id for e in back], "run-key-1b", later) == 4
    assert queue.succeeded("run-key-1b", "run-b", later) == 4
    assert {(e.status, e.run_id) for e in queue.of_run("run-key-1b")} == {("done", "run-b")}
    assert queue.counts() == {"pending": 6, "requested": 0, "done": 4, "ignored": 2}
    assert [e.id for e in queue.history(page[0].resource_id.upper())] == [page[0].id]


def test_queue_refuses_a_malformed_event_before_writing(queue_engine: Engine) -> None:
    queue = EventQueue(queue_engine)
    with pytest.raises(EventShapeError):
        queue.add_batch([event(), {**event(), "eventType": "DELETE"}], datetime.now(UTC), set())
    assert queue.counts()["pending"] == 0


def test_event_time_has_no_z_but_is_utc() -> None:
    assert parse_event_time("2024-06-21T01:15:39.902") == datetime(
        2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC
    )
    assert parse_event_time("2024-06-21T11:15:39+10:00").hour == 1
