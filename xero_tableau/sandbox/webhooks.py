"""The sandbox's webhook sender: the part of emulated Xero that POSTs events to subscribers.

It follows Xero's documented behaviour: thin INVOICE, CREDITNOTE and CONTACT events (CREATE and
UPDATE only), payloads signed with HMAC-SHA256, intent to receive before any delivery, retries
for up to 24 hours and then a disabled subscription. It can duplicate and reorder deliveries on
purpose, and all of its randomness comes from one seeded ``random.Random``, so a failing test can
be replayed. Retry delays are virtual seconds on the ``SandboxClock``.
"""

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import string
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any, Literal

import httpx

from xero_tableau.sandbox.clock import SandboxClock

logger = logging.getLogger(__name__)

SubscriptionStatus = Literal["OK", "INTENT_TO_RECEIVE_FAILED", "DISABLED"]
DeliveryKind = Literal["intent", "event", "duplicate"]

#: Webhook category -> Accounting API collection that ``resourceUrl`` points into.
CATEGORY_ENDPOINTS: dict[str, str] = {
    "INVOICE": "Invoices",
    "CREDITNOTE": "CreditNotes",
    "CONTACT": "Contacts",
}
EVENT_TYPES = frozenset({"CREATE", "UPDATE"})
CREDIT_NOTE_TYPES = frozenset({"ACCPAYCREDIT", "ACCRECCREDIT"})
CREDIT_NOTE_STATUSES = frozenset({"DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"})

#: Virtual seconds between retries: sooner at first, then every 15 minutes. The last delay repeats
#: until ``give_up_after``. Xero's exact cadence is not published, only "decreasing frequency".
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (15.0, 60.0, 300.0, 900.0)

#: How many POSTs one intent-to-receive check sends (a seeded mix of good and bad signatures).
INTENT_PROBES = 4


def sign(key: str, body: bytes) -> str:
    """Xero's ``x-xero-signature``: base64 HMAC-SHA256 of the raw body, keyed by the webhook key."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def xero_event_time(moment: datetime) -> str:
    """Format an instant as Xero's ``eventDateUtc``: UTC, milliseconds, no ``Z``."""
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


@dataclass
class Subscription:
    """One subscriber endpoint as the admin API and the tests see it (a snapshot, not live)."""

    id: str
    url: str
    key: str
    status: SubscriptionStatus
    next_sequence: int = 1  # the sequence number the next event payload starts at
    events_queued: int = 0
    events_delivered: int = 0  # counted once per event, not once per duplicate re-send
    payloads_delivered: int = 0
    failed_attempts: int = 0
    duplicates_sent: int = 0


@dataclass(frozen=True)
class Delivery:
    """One POST the sender made: what went out and how the subscriber answered."""

    subscription_id: str
    kind: DeliveryKind
    body: bytes
    signature: str
    status_code: int | None  # None when no HTTP answer came back (see ``error``)
    error: str | None  # why the POST failed, if it did; None for a delivered payload
    attempt: int  # 1 for the first try of a payload, 2 for its first retry, ...
    at: datetime  # virtual time the answer (or failure) came back
    first_sequence: int  # 0 for intent-to-receive probes, as Xero sends them
    last_sequence: int


@dataclass(eq=False)  # identity, not value: a duplicate must not be mistaken for its original
class _Payload:
    """A built payload. Its bytes are frozen, so a retry or a duplicate re-sends them unchanged."""

    body: bytes
    signature: str
    first_sequence: int
    last_sequence: int
    event_count: int
    duplicate: bool = False
    attempts: int = 0


@dataclass
class _State:
    """Everything the sender tracks for one subscription. Only touched under the sender's lock."""

    info: Subscription
    pending: deque[dict[str, Any]] = field(default_factory=deque)  # events not yet in a payload
    outbox: list[_Payload] = field(default_factory=list)  # built, waiting to go out (in order)
    failing_since: float | None = None  # virtual time of the first failure in the current streak
    streak_failures: int = 0
    retry_due: float | None = None  # virtual time of the next attempt while failing

    def undelivered_events(self) -> int:
        return len(self.pending) + sum(p.event_count for p in self.outbox if not p.duplicate)


class WebhookSender:
    """Queues webhook events per subscription and delivers them from a background thread.

    Thread-safe: the sandbox's HTTP handlers call ``emit`` while the delivery thread sends, and
    the admin API subscribes and inspects. One lock guards all state. No HTTP call is made while
    holding it, so a slow subscriber never blocks ``emit``.
    """

    def __init__(
        self,
        clock: SandboxClock,
        *,
        seed: int = 0,
        batch_seconds: float = 1.0,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        max_events_per_payload: int = 100,
        retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE,
        give_up_after: float = 24 * 3600,
        timeout: float = 5.0,
        keep_deliveries: int = 1000,
    ) -> None:
        """See the module docstring for what the timing and randomness settings mean.

        ``keep_deliveries`` bounds the ``deliveries`` log, so a long demo run does not keep every
        body it ever sent.
        """
        if batch_seconds <= 0:
            raise ValueError("batch_seconds must be positive")
        if not 0.0 <= duplicate_rate <= 1.0 or not 0.0 <= reorder_rate <= 1.0:
            raise ValueError("duplicate_rate and reorder_rate are probabilities in [0, 1]")
        if max_events_per_payload < 1:
            raise ValueError("max_events_per_payload must be at least 1")
        if not retry_schedule or any(delay < 0 for delay in retry_schedule):
            raise ValueError("retry_schedule needs at least one non-negative delay")
        self.clock = clock
        self.batch_seconds = batch_seconds
        self.duplicate_rate = duplicate_rate
        self.reorder_rate = reorder_rate
        self.max_events_per_payload = max_events_per_payload
        self.retry_schedule = retry_schedule
        self.give_up_after = give_up_after
        self.timeout = timeout
        #: Base of every ``resourceUrl``; the sandbox server sets it to its own address.
        self.resource_base = "https://api.xero.com"
        self._rng = Random(seed)
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)
        self._subs: dict[str, _State] = {}
        self._deliveries: deque[Delivery] = deque(maxlen=keep_deliveries)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- subscriptions

    def subscribe(self, url: str, key: str) -> Subscription:
        """Register an endpoint and run intent to receive on it before it gets any event."""
        with self._lock:
            sub_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        passed = self._intent_to_receive(sub_id, url, key)
        with self._lock:
            status: SubscriptionStatus = "OK" if passed else "INTENT_TO_RECEIVE_FAILED"
            state = _State(Subscription(id=sub_id, url=url, key=key, status=status))
            self._subs[sub_id] = state
            return dataclasses.replace(state.info)

    def verify(self, sub_id: str) -> Subscription:
        """Re-run intent to receive, as Xero does on re-enable. On success, held events go out.

        A failed check stops deliveries but keeps events already queued for the subscription.
        """
        with self._lock:
            info = self._state(sub_id).info
            url, key = info.url, info.key
        passed = self._intent_to_receive(sub_id, url, key)
        with self._lock:
            state = self._state(sub_id)
            state.info.status = "OK" if passed else "INTENT_TO_RECEIVE_FAILED"
            if passed:
                state.failing_since = state.retry_due = None
                state.streak_failures = 0
            snapshot = dataclasses.replace(state.info)
        if passed:
            self._wake.set()
        return snapshot

    def enable(self, sub_id: str) -> Subscription:
        """Re-enable a DISABLED subscription. Xero re-checks intent to receive first."""
        return self.verify(sub_id)

    def unsubscribe(self, sub_id: str) -> None:
        """Forget a subscription and every event still queued for it."""
        with self._lock:
            self._state(sub_id)
            del self._subs[sub_id]

    def subscription(self, sub_id: str) -> Subscription:
        with self._lock:
            return dataclasses.replace(self._state(sub_id).info)

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return [dataclasses.replace(state.info) for state in self._subs.values()]

    # ---------------------------------------------------------------- events

    def emit(
        self,
        tenant_id: str,
        category: str,
        event_type: str,
        resource_id: str,
        data: dict[str, str] | None = None,
        tenant_type: str = "ORGANISATION",
        at: datetime | None = None,
    ) -> None:
        """Queue one event for every OK subscription. It goes out in the next delivery round.

        ``at`` is the moment of the change (``eventDateUtc``); the sandbox clock's now if unset.

        Raises ValueError for anything Xero never sends, so a sandbox bug fails loudly instead
        of teaching the client to expect events Xero does not have.
        """
        if category not in CATEGORY_ENDPOINTS:
            raise ValueError(
                f"Xero has no webhook category {category!r}; it has {sorted(CATEGORY_ENDPOINTS)}"
            )
        if event_type not in EVENT_TYPES:
            raise ValueError(
                f"Xero has no webhook event type {event_type!r}; it has {sorted(EVENT_TYPES)}"
                " (a delete or void arrives as UPDATE)"
            )
        if tenant_type != "ORGANISATION":
            raise ValueError(
                "INVOICE, CREDITNOTE and CONTACT events always have tenantType ORGANISATION"
            )
        if data is not None:
            if category != "CREDITNOTE":
                raise ValueError("only CREDITNOTE events carry data")
            if data.get("Type") not in CREDIT_NOTE_TYPES or (
                data.get("Status") not in CREDIT_NOTE_STATUSES
            ):
                raise ValueError(f"credit note event data needs a valid Type and Status: {data}")
        event: dict[str, Any] = {
            "resourceUrl": (
                f"{self.resource_base}/api.xro/2.0/{CATEGORY_ENDPOINTS[category]}/{resource_id}"
            ),
            "resourceId": resource_id,
            "eventDateUtc": xero_event_time(at or self.clock.now()),
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": tenant_id,
            "tenantType": tenant_type,
        }
        if data is not None:
            event["data"] = dict(data)
        with self._lock:
            for state in self._subs.values():
                if state.info.status == "OK":
                    state.pending.append(event)
                    state.info.events_queued += 1

    # ---------------------------------------------------------------- introspection

    @property
    def deliveries(self) -> list[Delivery]:
        """The most recent POSTs (intent checks, deliveries, retries, duplicates), oldest first."""
        with self._lock:
            return list(self._deliveries)

    def pending_count(self, sub_id: str | None = None) -> int:
        """Events queued or in retry but not yet delivered, for one subscription or for all."""
        with self._lock:
            if sub_id is not None:
                return self._state(sub_id).undelivered_events()
            return sum(state.undelivered_events() for state in self._subs.values())

    def flush(self, timeout: float) -> bool:
        """Wait until every OK subscription has nothing left to send, including retries and
        duplicate re-sends. Returns False if that did not happen within ``timeout`` real seconds.

        Wakes the delivery thread once so a test need not wait out ``batch_seconds``; after that
        retries keep their schedule. Needs ``start()``: without the thread nothing drains.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._round_done:
            while not self._drained():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._round_done.wait(remaining)
            return True

    # ---------------------------------------------------------------- delivery thread

    def start(self) -> None:
        """Start the delivery thread (no-op if it runs already)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread and wait for it. Queued events stay for the next ``start``."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while not self._stopping.is_set():
                self._wake.wait(self._seconds_to_next_round())
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    self._deliver_round(client)
                except Exception:  # the thread must outlive any bug or odd subscriber
                    logger.exception("webhook delivery round failed")
                with self._round_done:
                    self._round_done.notify_all()

    def _seconds_to_next_round(self) -> float:
        """One batch interval, or less when a retry falls due sooner."""
        with self._lock:
            dues = [
                s.retry_due
                for s in self._subs.values()
                if s.info.status == "OK" and s.retry_due is not None
            ]
        if not dues:
            return self.batch_seconds
        until_due = self.clock.real_seconds(min(dues) - self.clock.time())
        return max(0.0, min(self.batch_seconds, until_due))

    def _deliver_round(self, client: httpx.Client) -> None:
        """Send what each OK subscription has ready, in order, stopping a subscription at its
        first failure so later payloads queue behind the one being retried."""
        plan: list[tuple[str, str, list[_Payload]]] = []
        with self._lock:
            now = self.clock.time()
            for sub_id, state in self._subs.items():
                if state.info.status != "OK":
                    continue
                if state.retry_due is not None:
                    if now < state.retry_due:
                        continue
                else:
                    self._build_payloads(state)
                if len(state.outbox) >= 2 and self._rng.random() < self.reorder_rate:
                    state.outbox[0], state.outbox[1] = state.outbox[1], state.outbox[0]
                if state.outbox:
                    plan.append((sub_id, state.info.url, list(state.outbox)))
        for sub_id, url, payloads in plan:
            for payload in payloads:
                if not self._send(client, sub_id, url, payload):
                    break

    def _build_payloads(self, state: _State) -> None:
        """Turn pending events into payloads of at most ``max_events_per_payload`` each.

        Sequence numbers are fixed here, so a retried payload keeps its numbers."""
        while state.pending:
            count = min(len(state.pending), self.max_events_per_payload)
            events = [state.pending.popleft() for _ in range(count)]
            if self._rng.random() < self.reorder_rate:
                self._rng.shuffle(events)
            first = state.info.next_sequence
            state.info.next_sequence = first + count
            body = _encode(
                {
                    "events": events,
                    "firstEventSequence": first,
                    "lastEventSequence": first + count - 1,
                    "entropy": self._entropy(),
                }
            )
            state.outbox.append(
                _Payload(body, sign(state.info.key, body), first, first + count - 1, count)
            )

    def _send(self, client: httpx.Client, sub_id: str, url: str, payload: _Payload) -> bool:
        """POST one payload and record the outcome. Returns whether the subscription may go on."""
        payload.attempts += 1
        answer = _post(client, url, payload.body, payload.signature)
        if isinstance(answer, str):
            status_code, error = None, answer
        else:
            status_code = answer.status_code
            error = None if status_code == 200 else f"HTTP {status_code}"
        with self._lock:
            state = self._subs.get(sub_id)
            if state is None:  # unsubscribed while we were sending
                return False
            now = self.clock.time()
            kind: DeliveryKind = "duplicate" if payload.duplicate else "event"
            self._record(sub_id, kind, payload, status_code, error, now)
            if payload in state.outbox:
                state.outbox.remove(payload)
            if error is None:
                self._delivered(state, payload)
                return True
            state.info.failed_attempts += 1
            logger.info(
                "webhook delivery to %s failed (%s), attempt %d", url, error, payload.attempts
            )
            if payload.duplicate:
                # A re-send of something already delivered: dropping it loses nothing.
                return True
            state.outbox.insert(0, payload)
            self._schedule_retry(state, now)
            return False

    def _delivered(self, state: _State, payload: _Payload) -> None:
        state.failing_since = state.retry_due = None
        state.streak_failures = 0
        if payload.duplicate:
            state.info.duplicates_sent += 1
            return
        state.info.payloads_delivered += 1
        state.info.events_delivered += payload.event_count
        if self._rng.random() < self.duplicate_rate:
            state.outbox.append(
                _Payload(
                    payload.body,
                    payload.signature,
                    payload.first_sequence,
                    payload.last_sequence,
                    payload.event_count,
                    duplicate=True,
                )
            )

    def _schedule_retry(self, state: _State, now: float) -> None:
        """Back off per ``retry_schedule``; disable the subscription after ``give_up_after``.

        The last try lands exactly at the give-up time, so a subscriber that recovers just
        before it still gets its events."""
        if state.failing_since is None:
            state.failing_since = now
        state.streak_failures += 1
        give_up_at = state.failing_since + self.give_up_after
        if now >= give_up_at:
            state.info.status = "DISABLED"
            state.retry_due = None
            logger.warning(
                "webhook subscription %s disabled after %.0f s of failed deliveries",
                state.info.id,
                now - state.failing_since,
            )
            return
        delay = self.retry_schedule[min(state.streak_failures, len(self.retry_schedule)) - 1]
        state.retry_due = min(now + delay, give_up_at)

    # ---------------------------------------------------------------- intent to receive

    def _intent_to_receive(self, sub_id: str, url: str, key: str) -> bool:
        """Xero's handshake: every good signature must get 200 (empty, no cookie), every bad
        one 401. A receiver that skips the signature check fails here, which is the point."""
        with self._lock:
            good = [True, False] + [self._rng.random() < 0.5 for _ in range(INTENT_PROBES - 2)]
            self._rng.shuffle(good)
            bodies = [
                _encode(
                    {
                        "events": [],
                        "firstEventSequence": 0,
                        "lastEventSequence": 0,
                        "entropy": self._entropy(),
                    }
                )
                for _ in good
            ]
            wrong_key = key
            while wrong_key == key:
                wrong_key = "".join(self._rng.choices(string.ascii_letters, k=32))
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            for attempt, (signed_well, body) in enumerate(zip(good, bodies, strict=True), 1):
                signature = sign(key if signed_well else wrong_key, body)
                answer = _post(client, url, body, signature)
                if isinstance(answer, str):
                    status_code, error = None, answer
                else:
                    status_code, error = answer.status_code, _intent_problem(signed_well, answer)
                probe = _Payload(body, signature, 0, 0, 0, attempts=attempt)
                with self._lock:
                    self._record(sub_id, "intent", probe, status_code, error, self.clock.time())
                if error is not None:
                    logger.warning("intent to receive failed for %s: %s", url, error)
                    return False
        return True

    # ---------------------------------------------------------------- helpers

    def _state(self, sub_id: str) -> _State:
        try:
            return self._subs[sub_id]
        except KeyError:
            raise KeyError(f"no webhook subscription {sub_id!r}") from None

    def _drained(self) -> bool:
        return not any(
            state.pending or state.outbox
            for state in self._subs.values()
            if state.info.status == "OK"
        )

    def _entropy(self) -> str:
        """A random string like Xero's ``entropy`` (20 capital letters), so equal event lists
        still sign differently."""
        return "".join(self._rng.choices(string.ascii_uppercase, k=20))

    def _record(
        self,
        sub_id: str,
        kind: DeliveryKind,
        payload: _Payload,
        status_code: int | None,
        error: str | None,
        now: float,
    ) -> None:
        self._deliveries.append(
            Delivery(
                subscription_id=sub_id,
                kind=kind,
                body=payload.body,
                signature=payload.signature,
                status_code=status_code,
                error=error,
                attempt=payload.attempts,
                at=datetime.fromtimestamp(now, UTC),
                first_sequence=payload.first_sequence,
                last_sequence=payload.last_sequence,
            )
        )


def _encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON, as Xero sends it. The signature covers exactly these bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


def _intent_problem(signed_well: bool, answer: httpx.Response) -> str | None:
    """Why one intent-to-receive answer is wrong, or None when it is right."""
    if not signed_well:
        return (
            None
            if answer.status_code == 401
            else f"answered {answer.status_code} to a bad signature"
        )
    if answer.status_code != 200:
        return f"answered {answer.status_code} to a good signature"
    if answer.content:
        return "answered a good signature with a non-empty body"
    if "set-cookie" in answer.headers:
        return "answered a good signature with a cookie"
    return None


def _post(client: httpx.Client, url: str, body: bytes, signature: str) -> httpx.Response | str:
    """POST a signed body; return the answer, or why none came (refused, timed out, ...)."""
    try:
        response = client.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", "x-xero-signature": signature},
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"{type(exc).__name__}: {exc}"
    client.cookies.clear()  # Xero keeps no session with a subscriber
    return response
