"""The sandbox's webhook sender, tested over real HTTP on loopback.

A small Starlette receiver runs under uvicorn in a background thread. It checks signatures the
way Xero tells subscribers to (HMAC-SHA256 of the raw body, constant-time compare) and can be told
to misbehave: skip the check, answer with a body or a cookie, stall, or fail deliveries. The tests
recompute signatures themselves rather than call the sender's ``sign``, so a wrong signature
cannot hide behind a matching wrong implementation.
"""

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
import yaml
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xero_tableau.sandbox.clock import SandboxClock
from xero_tableau.sandbox.webhooks import INTENT_PROBES, WebhookSender

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "xero-openapi"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
EVENT_FIELDS = {
    "resourceUrl",
    "resourceId",
    "eventDateUtc",
    "eventType",
    "eventCategory",
    "tenantId",
    "tenantType",
}

ReceiverMode = Literal["verify", "always_200", "body", "cookie", "slow"]


def xero_signature(key: str, body: bytes) -> str:
    """The signature as Xero documents it, written out here independently of the sender."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Received:
    body: bytes
    signature: str
    content_type: str
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """One subscriber endpoint. ``verify`` is a correct receiver; the other modes are the
    mistakes intent to receive exists to catch. ``fail_events`` answers 500 to that many event
    payloads first; ``failing`` answers 500 to every event payload while set."""

    key: str
    mode: ReceiverMode = "verify"
    fail_events: int = 0
    failing: bool = False
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def answer(self, body: bytes, signature: str) -> Response:
        signed_well = hmac.compare_digest(xero_signature(self.key, body), signature)
        has_events = bool(json.loads(body)["events"])
        if self.mode == "always_200":
            response = Response(status_code=200)
        elif not signed_well:
            response = Response(status_code=401)
        elif self.mode == "body":
            response = Response("thanks", status_code=200)
        elif self.mode == "cookie":
            response = Response(status_code=200, headers={"set-cookie": "session=1; Path=/"})
        elif has_events and (self.failing or self.fail_events > 0):
            self.fail_events -= 1
            response = Response(status_code=500)
        else:
            response = Response(status_code=200)
        return response

    def event_posts(self) -> list[Received]:
        """What arrived beyond the intent-to-receive probes."""
        return [r for r in self.received if r.payload["events"]]


@dataclass
class HookServer:
    base_url: str
    receivers: dict[str, Receiver] = field(default_factory=dict)

    def add(self, **settings: Any) -> tuple[Receiver, str]:
        name = uuid.uuid4().hex
        receiver = Receiver(key=settings.pop("key", "test-webhook-key"), **settings)
        self.receivers[name] = receiver
        return receiver, f"{self.base_url}/hooks/{name}"


@pytest.fixture(scope="module")
def hooks() -> Iterator[HookServer]:
    """Uvicorn on a free loopback port, serving every test's receivers at /hooks/<name>."""
    receivers: dict[str, Receiver] = {}

    async def hook(request: Request) -> Response:
        receiver = receivers[request.path_params["name"]]
        body = await request.body()
        if receiver.delay:
            await asyncio.sleep(receiver.delay)
        response = receiver.answer(body, request.headers.get("x-xero-signature", ""))
        receiver.received.append(
            Received(
                body,
                request.headers.get("x-xero-signature", ""),
                request.headers.get("content-type", ""),
                response.status_code,
            )
        )
        return response

    app = Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test webhook receiver did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield HookServer(f"http://127.0.0.1:{port}", receivers)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def make_sender() -> Iterator[Callable[..., WebhookSender]]:
    """Build senders with test-friendly timing; every one is stopped at teardown."""
    senders: list[WebhookSender] = []

    def build(clock: SandboxClock | None = None, **settings: Any) -> WebhookSender:
        settings.setdefault("batch_seconds", 0.05)
        sender = WebhookSender(clock or SandboxClock(), **settings)
        senders.append(sender)
        return sender

    yield build
    for sender in senders:
        sender.stop()


def emit_invoices(sender: WebhookSender, count: int) -> list[str]:
    ids = [str(uuid.UUID(int=n + 1)) for n in range(count)]
    for resource_id in ids:
        sender.emit(TENANT, "INVOICE", "UPDATE", resource_id)
    return ids


def resource_ids(received: Received) -> list[str]:
    return [event["resourceId"] for event in received.payload["events"]]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the sender"
        time.sleep(0.01)


def test_signature_is_base64_hmac_sha256_of_the_raw_body(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add(key="s3cret-key")
    sender = make_sender()
    sender.subscribe(url, "s3cret-key")
    emit_invoices(sender, 3)
    sender.start()
    assert sender.flush(5)

    [post] = receiver.event_posts()
    assert post.status == 200
    assert post.content_type == "application/json"
    assert post.signature == xero_signature("s3cret-key", post.body)
    # Compact JSON: the bytes signed are the bytes sent, with no re-serialisation in between.
    assert post.body == json.dumps(post.payload, separators=(",", ":")).encode()
    assert post.signature != xero_signature("s3cret-key", post.body + b" ")
    [record] = [d for d in sender.deliveries if d.kind == "event"]
    assert (record.body, record.signature, record.status_code) == (post.body, post.signature, 200)


def test_payload_has_xero_shape_and_matches_the_webhooks_spec(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    clock = SandboxClock(start=datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC))
    sender = make_sender(clock)
    sender.resource_base = "http://127.0.0.1:9999"
    sender.subscribe(url, "test-webhook-key")
    invoice_id, contact_id, credit_id = (str(uuid.uuid4()) for _ in range(3))
    sender.emit(TENANT, "INVOICE", "CREATE", invoice_id)
    sender.emit(TENANT, "CONTACT", "UPDATE", contact_id)
    sender.start()
    assert sender.flush(5)
    sender.emit(
        TENANT, "CREDITNOTE", "UPDATE", credit_id, {"Type": "ACCPAYCREDIT", "Status": "VOIDED"}
    )
    assert sender.flush(5)

    first, second = (post.payload for post in receiver.event_posts())
    invoice, contact = first["events"]
    assert invoice == {
        "resourceUrl": f"http://127.0.0.1:9999/api.xro/2.0/Invoices/{invoice_id}",
        "resourceId": invoice_id,
        "eventDateUtc": invoice["eventDateUtc"],
        "eventType": "CREATE",
        "eventCategory": "INVOICE",
        "tenantId": TENANT,
        "tenantType": "ORGANISATION",
    }
    assert contact["resourceUrl"] == f"http://127.0.0.1:9999/api.xro/2.0/Contacts/{contact_id}"
    [credit] = second["events"]
    assert credit["resourceUrl"].endswith(f"/api.xro/2.0/CreditNotes/{credit_id}")
    assert credit["data"] == {"Type": "ACCPAYCREDIT", "Status": "VOIDED"}
    for event in (invoice, contact, credit):
        assert set(event) >= EVENT_FIELDS
        # Xero's format: milliseconds and no Z; the clock started at 01:15:39.902.
        assert re.fullmatch(r"2024-06-21T01:1\d:\d\d\.\d{3}", event["eventDateUtc"])
    assert (first["firstEventSequence"], first["lastEventSequence"]) == (1, 2)
    assert (second["firstEventSequence"], second["lastEventSequence"]) == (3, 3)
    assert re.fullmatch(r"[A-Z]{20}", first["entropy"])
    assert first["entropy"] != second["entropy"]

    if not (OPENAPI_DIR / "xero-webhooks.yaml").exists():
        pytest.skip(f"Xero's webhooks spec is not at {OPENAPI_DIR}; shape checked by hand only")
    spec = yaml.safe_load((OPENAPI_DIR / "xero-webhooks.yaml").read_text())
    for name, payload in (("WebhookEvent", first), ("CreditNoteWebhookEvent", second)):
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        Draft202012Validator(schema).validate(payload)


def test_events_in_one_round_batch_into_one_payload_with_increasing_sequences(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    sender = make_sender()
    sender.subscribe(url, "test-webhook-key")
    first_ids = emit_invoices(sender, 5)  # before start(): certainly within one round
    sender.start()
    assert sender.flush(5)
    later_ids = [str(uuid.uuid4()) for _ in range(3)]
    for resource_id in later_ids:
        sender.emit(TENANT, "CONTACT", "CREATE", resource_id)
    assert sender.flush(5)

    first, *later = receiver.event_posts()
    assert (first.payload["firstEventSequence"], first.payload["lastEventSequence"]) == (1, 5)
    assert resource_ids(first) == first_ids
    sequences = [(p.payload["firstEventSequence"], p.payload["lastEventSequence"]) for p in later]
    assert sequences[0][0] == 6
    assert sequences[-1][1] == 8
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(sequences))
    assert [rid for post in later for rid in resource_ids(post)] == later_ids
    assert sender.subscriptions()[0].next_sequence == 9


def test_large_rounds_split_at_max_events_per_payload(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    sender = make_sender(max_events_per_payload=2)
    sender.subscribe(url, "test-webhook-key")
    ids = emit_invoices(sender, 5)
    sender.start()
    assert sender.flush(5)

    posts = receiver.event_posts()
    assert [len(resource_ids(post)) for post in posts] == [2, 2, 1]
    assert [post.payload["firstEventSequence"] for post in posts] == [1, 3, 5]
    assert [rid for post in posts for rid in resource_ids(post)] == ids


def test_intent_to_receive_passes_a_receiver_that_checks_signatures(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    sender = make_sender()
    subscription = sender.subscribe(url, "test-webhook-key")

    assert subscription.status == "OK"
    assert len(receiver.received) == INTENT_PROBES
    assert {post.status for post in receiver.received} == {200, 401}  # good and bad signatures
    for post in receiver.received:
        assert post.payload["events"] == []
        assert post.payload["firstEventSequence"] == post.payload["lastEventSequence"] == 0
    assert len({post.payload["entropy"] for post in receiver.received}) == INTENT_PROBES
    assert [d.kind for d in sender.deliveries] == ["intent"] * INTENT_PROBES

    sender.unsubscribe(subscription.id)
    assert sender.subscriptions() == []
    with pytest.raises(KeyError):
        sender.subscription(subscription.id)


def unused_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/nobody"


@pytest.mark.parametrize(
    "mode", ["always_200", "body", "cookie", "slow", "unreachable"], ids=lambda mode: mode
)
def test_intent_to_receive_fails_a_careless_receiver_which_then_gets_nothing(
    hooks: HookServer, make_sender: Callable[..., WebhookSender], mode: str
) -> None:
    if mode == "unreachable":
        receiver, url = Receiver(key="test-webhook-key"), unused_port_url()
    elif mode == "slow":
        receiver, url = hooks.add(delay=0.6)
    else:
        receiver, url = hooks.add(mode=mode)
    sender = make_sender(timeout=0.3)
    subscription = sender.subscribe(url, "test-webhook-key")

    assert subscription.status == "INTENT_TO_RECEIVE_FAILED"
    assert [d.kind for d in sender.deliveries][-1] == "intent"
    assert sender.deliveries[-1].error is not None
    emit_invoices(sender, 2)
    assert sender.pending_count(subscription.id) == 0
    sender.start()
    assert sender.flush(5)
    time.sleep(0.15)  # a few rounds
    assert receiver.event_posts() == []
    assert all(d.kind == "intent" for d in sender.deliveries)


def test_failed_deliveries_are_retried_with_the_same_payload_and_nothing_is_lost(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add(fail_events=2)
    # 600x: a 60-virtual-second retry delay lasts 0.1 real seconds.
    sender = make_sender(SandboxClock(speed=600), retry_schedule=(60.0, 120.0))
    subscription = sender.subscribe(url, "test-webhook-key")
    ids = emit_invoices(sender, 3)
    sender.start()
    assert sender.flush(10)

    posts = receiver.event_posts()
    assert [post.status for post in posts] == [500, 500, 200]
    assert len({(post.body, post.signature) for post in posts}) == 1  # the same payload re-sent
    assert resource_ids(posts[-1]) == ids
    attempts = [d for d in sender.deliveries if d.kind == "event"]
    assert [(d.attempt, d.status_code) for d in attempts] == [(1, 500), (2, 500), (3, 200)]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 59  # the schedule, in virtual seconds
    assert gaps[1] >= 119
    state = sender.subscription(subscription.id)
    assert (state.status, state.failed_attempts, state.events_delivered) == ("OK", 2, 3)
    assert sender.pending_count() == 0


def test_duplicate_rate_one_redelivers_identical_payloads(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    sender = make_sender(duplicate_rate=1.0)
    subscription = sender.subscribe(url, "test-webhook-key")
    emit_invoices(sender, 2)
    sender.start()
    assert sender.flush(5)

    original, duplicate = receiver.event_posts()  # exactly two: duplicates are not re-duplicated
    assert (original.body, original.signature) == (duplicate.body, duplicate.signature)
    assert [d.kind for d in sender.deliveries if d.kind != "intent"] == ["event", "duplicate"]
    state = sender.subscription(subscription.id)
    assert (state.events_delivered, state.payloads_delivered, state.duplicates_sent) == (2, 1, 1)


def shuffled_order(hooks: HookServer, make_sender: Callable[..., WebhookSender]) -> list[str]:
    receiver, url = hooks.add()
    sender = make_sender(seed=7, reorder_rate=1.0)
    sender.subscribe(url, "test-webhook-key")
    emit_invoices(sender, 10)
    sender.start()
    assert sender.flush(5)
    [post] = receiver.event_posts()
    assert (post.payload["firstEventSequence"], post.payload["lastEventSequence"]) == (1, 10)
    return resource_ids(post)


def test_reorder_shuffles_events_reproducibly_with_the_seed(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    emitted = [str(uuid.UUID(int=n + 1)) for n in range(10)]
    order = shuffled_order(hooks, make_sender)
    assert order != emitted
    assert sorted(order) == sorted(emitted)
    assert shuffled_order(hooks, make_sender) == order


def test_reorder_can_send_a_later_payload_first(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add()
    sender = make_sender(reorder_rate=1.0, max_events_per_payload=3)
    sender.subscribe(url, "test-webhook-key")
    emit_invoices(sender, 6)
    sender.start()
    assert sender.flush(5)

    posts = receiver.event_posts()
    assert [post.payload["firstEventSequence"] for post in posts] == [4, 1]


@pytest.mark.parametrize(
    ("category", "event_type", "data", "complaint"),
    [
        ("PAYMENT", "CREATE", None, "no webhook category"),
        ("SUBSCRIPTION", "CREATE", None, "no webhook category"),  # app-level, not emulated
        ("contact", "UPDATE", None, "no webhook category"),
        ("INVOICE", "DELETE", None, "no webhook event type"),
        ("INVOICE", "UPDATE", {"Type": "ACCREC", "Status": "PAID"}, "only CREDITNOTE"),
        ("CREDITNOTE", "UPDATE", {"Type": "ACCRECCREDIT", "Status": "ARCHIVED"}, "Type and Status"),
    ],
)
def test_emit_refuses_what_xero_never_sends(
    make_sender: Callable[..., WebhookSender],
    category: str,
    event_type: str,
    data: dict[str, str] | None,
    complaint: str,
) -> None:
    with pytest.raises(ValueError, match=complaint):
        make_sender().emit(TENANT, category, event_type, str(uuid.uuid4()), data)


def test_subscription_is_disabled_after_give_up_after_and_enable_replays(
    hooks: HookServer, make_sender: Callable[..., WebhookSender]
) -> None:
    receiver, url = hooks.add(failing=True)
    sender = make_sender(SandboxClock(speed=600), retry_schedule=(30.0,), give_up_after=120.0)
    subscription = sender.subscribe(url, "test-webhook-key")
    ids = emit_invoices(sender, 2)
    sender.start()
    wait_for(lambda: sender.subscription(subscription.id).status == "DISABLED")

    attempts = [d for d in sender.deliveries if d.kind == "event"]
    assert all(d.status_code == 500 for d in attempts)
    assert (attempts[-1].at - attempts[0].at).total_seconds() >= 120
    assert 2 <= len(attempts) <= 5  # every 30 virtual s (or later) over 120 s, last at 120 s
    assert sender.pending_count(subscription.id) == 2  # held, not dropped
    sender.emit(TENANT, "CONTACT", "UPDATE", str(uuid.uuid4()))  # not queued while disabled
    assert sender.pending_count(subscription.id) == 2
    time.sleep(0.2)
    assert len([d for d in sender.deliveries if d.kind == "event"]) == len(attempts)

    receiver.failing = False
    assert sender.enable(subscription.id).status == "OK"
    assert sender.flush(5)
    assert resource_ids(receiver.event_posts()[-1]) == ids
    assert receiver.event_posts()[-1].body == receiver.event_posts()[0].body
    assert sender.pending_count() == 0
