"""The durable queue of Xero webhook events (table ``xero_webhook_events``).

The receiver only records events here; the webhook sensor reads them later and asks for runs.
Every event has a ``dedupe_key`` and a batch is inserted in one transaction, ignoring conflicts,
so a re-delivered or overlapping batch inserts only what is new. Events of unknown tenants,
SUBSCRIPTION events and events dated outside :data:`EARLIEST_EVENT` .. receipt +
:data:`LATEST_AHEAD` (e.g. .NET's default ``0001-01-01T00:00:00``) are stored as "ignored", with
the reason, and never acted on: refusing the delivery instead would make Xero retry the whole
signed batch, good events included, until it disables the webhook. An actionable event goes
``pending`` -> ``requested`` -> ``done`` (or back to ``pending`` after a failed run); nothing is
marked done before a run that covered it succeeded.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import as_utc, insert_or_ignore, xero_webhook_events

EventStatus = Literal["pending", "requested", "done", "ignored"]
STATUSES: tuple[str, ...] = get_args(EventStatus)

#: Categories a sync acts on; SUBSCRIPTION (app-level) is accepted and stored as ignored.
ACTIONABLE_CATEGORIES = frozenset({"INVOICE", "CREDITNOTE", "CONTACT"})
CATEGORIES = ACTIONABLE_CATEGORIES | {"SUBSCRIPTION"}
#: Xero has no DELETE: a delete or void arrives as UPDATE.
EVENT_TYPES = frozenset({"CREATE", "UPDATE"})

# Rows per INSERT statement: keeps SQLite under its bound-variable limit for any batch size.
_CHUNK = 500
#: Event dates before this are not Xero's (Xero launched in 2006): stored as ignored.
EARLIEST_EVENT = datetime(2006, 1, 1, tzinfo=UTC)
#: Event dates further than this past their receipt are not believable: stored as ignored.
LATEST_AHEAD = timedelta(days=1)
_REASON_LENGTH = 255


class EventShapeError(ValueError):
    """A payload that is not what Xero sends; the receiver answers 400 and stores nothing."""


@dataclass(frozen=True)
class Event:
    """One stored webhook event, as the sensor reads it."""

    id: int
    tenant_id: str
    category: str
    event_type: str
    resource_id: str
    event_time: datetime
    received_at: datetime
    tenant_known: bool
    status: str
    run_id: str | None
    run_key: str | None = None
    attempts: int = 0
    ignored_reason: str | None = None


@dataclass(frozen=True)
class InFlight:
    """Events handed to one requested run (one ``run_key``), as the sensor reconciles them."""

    run_key: str
    tenant_id: str
    category: str
    event_ids: tuple[int, ...]
    first_event_time: datetime
    last_event_time: datetime
    requested_at: datetime


@dataclass(frozen=True)
class ParsedEvent:
    """A validated event from a payload, before it is stored."""

    tenant_id: str
    category: str
    event_type: str
    resource_id: str
    event_time: datetime
    out_of_range: str | None = None  # why event_time is not the instant sent, if it is not

    @property
    def dedupe_key(self) -> str:
        """sha256 of tenant|category|type|resource|time: the identity of one Xero event, so a
        re-delivery (same event, new payload, new entropy) maps to the same row."""
        time_text = self.event_time.isoformat(timespec="microseconds")
        raw = "|".join(
            (self.tenant_id, self.category, self.event_type, self.resource_id, time_text)
        )
        return hashlib.sha256(raw.encode()).hexdigest()


def parse_event_time(text: str) -> datetime:
    """Xero's ``eventDateUtc`` is UTC without a ``Z`` ("2024-06-21T01:15:39.902"); an explicit
    offset is honoured too. Always returns an aware UTC datetime. ValueError for text that is no
    date; OverflowError for a date whose offset takes it out of ``datetime``'s range."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def out_of_bounds(moment: datetime, received_at: datetime) -> str | None:
    """Why an event dated ``moment`` cannot be a real Xero event received at ``received_at``
    (before 2006, or more than a day after its receipt); None when it can be."""
    if moment < EARLIEST_EVENT:
        return f"eventDateUtc {moment.isoformat()} is before {EARLIEST_EVENT.date()}"
    if moment > received_at + LATEST_AHEAD:
        return f"eventDateUtc {moment.isoformat()} is more than {LATEST_AHEAD} after its receipt"
    return None


def _text(event: Mapping[str, Any], name: str, limit: int) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise EventShapeError(f"event field {name!r} must be a non-empty string")
    return value


def parse_event(event: Any) -> ParsedEvent:
    """Validate one event of a payload against Xero's shape; EventShapeError if it is not."""
    if not isinstance(event, Mapping):
        raise EventShapeError("each event must be a JSON object")
    category = _text(event, "eventCategory", 32)
    if category not in CATEGORIES:
        raise EventShapeError(f"unknown eventCategory {category!r}")
    event_type = _text(event, "eventType", 16)
    if event_type not in EVENT_TYPES:
        raise EventShapeError(f"unknown eventType {event_type!r}")
    text = _text(event, "eventDateUtc", 40)
    out_of_range = None
    try:
        event_time = parse_event_time(text)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+05:00: its wall-clock time, as UTC, stands in for it
        event_time = datetime.fromisoformat(text).replace(tzinfo=UTC)
        out_of_range = f"eventDateUtc {text!r} is out of range"
    except ValueError as exc:
        raise EventShapeError(f"bad eventDateUtc: {exc}") from None
    return ParsedEvent(
        tenant_id=_text(event, "tenantId", 36).lower(),
        category=category,
        event_type=event_type,
        resource_id=_text(event, "resourceId", 64).lower(),
        event_time=event_time,
        out_of_range=out_of_range,
    )


def parse_payload(payload: Any) -> list[ParsedEvent]:
    """Validate a whole payload (``{"events": [...], ...}``); an empty list is intent to
    receive. All or nothing: one bad event refuses the batch, so nothing half-stored."""
    if not isinstance(payload, Mapping):
        raise EventShapeError("the payload must be a JSON object")
    events = payload.get("events")
    if not isinstance(events, list):
        raise EventShapeError("the payload must have an 'events' list")
    return [parse_event(event) for event in events]


@dataclass(frozen=True)
class QueueHealth:
    """What ``doctor`` reports about the queue."""

    counts: dict[str, int]
    unknown_tenants: dict[str, int]  # tenant id -> events from an organisation not connected here
    oldest_pending: datetime | None  # receive time of the oldest event not yet done
    retrying: int  # pending events whose run failed at least once
    last_received: datetime | None


class EventQueue:
    """Add, read and mark webhook events in the state DB (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_batch(
        self,
        events: Sequence[Mapping[str, Any] | ParsedEvent],
        received_at: datetime,
        known_tenants: set[str],
    ) -> tuple[int, int]:
        """Store a delivered batch in one transaction; returns (inserted, duplicates).

        Raw event dicts are validated (EventShapeError before anything is written). Duplicates
        are events already stored or repeated within the batch. An event of a stranger tenant,
        an app-level one or one dated out of bounds (:func:`out_of_bounds`) is stored as ignored
        with its reason; the others of the batch are stored as usual."""
        parsed = [e if isinstance(e, ParsedEvent) else parse_event(e) for e in events]
        received_at = as_utc(received_at)
        known = {tenant.lower() for tenant in known_tenants}
        rows: dict[str, dict[str, Any]] = {}
        for event in parsed:
            key = event.dedupe_key
            if key in rows:
                continue
            tenant_known = event.tenant_id in known
            reason = event.out_of_range or out_of_bounds(event.event_time, received_at)
            if reason is None and event.category not in ACTIONABLE_CATEGORIES:
                reason = f"{event.category} events are not acted on"
            if reason is None and not tenant_known:
                reason = "the organisation is not connected here"
            rows[key] = {
                "dedupe_key": key,
                "tenant_id": event.tenant_id,
                "category": event.category,
                "event_type": event.event_type,
                "resource_id": event.resource_id,
                "event_time": event.event_time,
                "received_at": received_at,
                "tenant_known": tenant_known,
                "status": "pending" if reason is None else "ignored",
                "run_id": None,
                "attempts": 0,
                "ignored_reason": None if reason is None else reason[:_REASON_LENGTH],
            }
        values = list(rows.values())
        inserted = 0
        if values:
            with self.engine.begin() as conn:
                for start in range(0, len(values), _CHUNK):
                    chunk = values[start : start + _CHUNK]
                    statement = (
                        insert_or_ignore(self.engine, xero_webhook_events)
                        .values(chunk)
                        .on_conflict_do_nothing(index_elements=["dedupe_key"])
                    )
                    inserted += conn.execute(statement).rowcount
        return inserted, len(parsed) - inserted

    def _events(self, query: Any) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Event(
                id=row["id"],
                tenant_id=row["tenant_id"],
                category=row["category"],
                event_type=row["event_type"],
                resource_id=row["resource_id"],
                event_time=as_utc(row["event_time"]),
                received_at=as_utc(row["received_at"]),
                tenant_known=bool(row["tenant_known"]),
                status=row["status"],
                run_id=row["run_id"],
                run_key=row["run_key"],
                attempts=int(row["attempts"] or 0),
                ignored_reason=row.get("ignored_reason"),
            )
            for row in rows
        ]

    def pending(self, after_id: int = 0, limit: int = 1000) -> list[Event]:
        """Pending events with ``id > after_id``, oldest id first (the sensor's cursor)."""
        table = xero_webhook_events
        query = (
            sa.select(table)
            .where(table.c.status == "pending", table.c.id > after_id)
            .order_by(table.c.id)
            .limit(limit)
        )
        return self._events(query)

    def returned(self, up_to_id: int, now: datetime, limit: int = 1000) -> list[Event]:
        """Pending events at or below the cursor whose backoff is over: events of a failed run,
        or events the sensor held back while their tenant and entity had a run in flight."""
        table = xero_webhook_events
        query = (
            sa.select(table)
            .where(
                table.c.status == "pending",
                table.c.id <= up_to_id,
                sa.or_(table.c.not_before.is_(None), table.c.not_before <= now),
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        return self._events(query)

    def of_run(self, run_key: str) -> list[Event]:
        """The events handed to the run ``run_key`` (what that run covers)."""
        table = xero_webhook_events
        return self._events(sa.select(table).where(table.c.run_key == run_key).order_by(table.c.id))

    def request(self, ids: Iterable[int], run_key: str, now: datetime) -> int:
        """Hand pending events to the run ``run_key``; returns how many were still pending."""
        return self._update(
            ids,
            xero_webhook_events.c.status == "pending",
            status="requested",
            run_key=run_key,
            requested_at=now,
            run_id=None,
        )

    def in_flight(self) -> list[InFlight]:
        """Every run asked for and not yet settled, with the events it covers."""
        table = xero_webhook_events
        query = (
            sa.select(
                table.c.id,
                table.c.run_key,
                table.c.tenant_id,
                table.c.category,
                table.c.event_time,
                table.c.requested_at,
            )
            .where(table.c.status == "requested")
            .order_by(table.c.id)
        )
        groups: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                groups.setdefault(row.run_key, []).append(row)
        return [
            InFlight(
                run_key=key,
                tenant_id=rows[0].tenant_id,
                category=rows[0].category,
                event_ids=tuple(r.id for r in rows),
                first_event_time=min(as_utc(r.event_time) for r in rows),
                last_event_time=max(as_utc(r.event_time) for r in rows),
                requested_at=min(as_utc(r.requested_at) for r in rows),
            )
            for key, rows in groups.items()
        ]

    def succeeded(self, run_key: str, run_id: str, now: datetime) -> int:
        """The run ``run_key`` succeeded: its events are done."""
        table = xero_webhook_events
        with self.engine.begin() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.run_key == run_key, table.c.status == "requested")
                .values(status="done", run_id=run_id, done_at=now)
            )
        return result.rowcount

    def failed(self, run_key: str, run_id: str | None, not_before: datetime) -> int:
        """The run ``run_key`` failed (or was cancelled): its events are pending again, one
        attempt more, and wait until ``not_before`` (the backoff) before the next run."""
        table = xero_webhook_events
        with self.engine.begin() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.run_key == run_key, table.c.status == "requested")
                .values(
                    status="pending",
                    run_id=run_id,
                    attempts=table.c.attempts + 1,
                    not_before=not_before,
                )
            )
        return result.rowcount

    def ignore(self, reasons: Mapping[int, str]) -> int:
        """Set events aside for good, each with its reason (an event no run can be planned
        for); only events still pending or requested change. Returns how many did."""
        table = xero_webhook_events
        open_ = table.c.status.in_(("pending", "requested"))
        changed = 0
        with self.engine.begin() as conn:
            for event_id, reason in reasons.items():
                result = conn.execute(
                    table.update()
                    .where(table.c.id == event_id, open_)
                    .values(status="ignored", ignored_reason=reason[:_REASON_LENGTH])
                )
                changed += result.rowcount
        return changed

    def _update(self, ids: Iterable[int], condition: Any, **values: Any) -> int:
        id_list = list(ids)
        table = xero_webhook_events
        changed = 0
        with self.engine.begin() as conn:
            for start in range(0, len(id_list), _CHUNK):
                chunk = id_list[start : start + _CHUNK]
                result = conn.execute(
                    table.update().where(table.c.id.in_(chunk), condition).values(**values)
                )
                changed += result.rowcount
        return changed

    def history(self, resource_id: str) -> list[Event]:
        """Every event received for one Xero record (any tenant), oldest first: the webhook side
        of the audit trail."""
        table = xero_webhook_events
        query = (
            sa.select(table).where(table.c.resource_id == resource_id.lower()).order_by(table.c.id)
        )
        return self._events(query)

    def health(self) -> QueueHealth:
        """Counts, strangers, the oldest unfinished event and retries, for ``doctor``."""
        table = xero_webhook_events
        open_ = table.c.status.in_(("pending", "requested"))
        with self.engine.connect() as conn:
            strangers = conn.execute(
                sa.select(table.c.tenant_id, sa.func.count())
                .where(~table.c.tenant_known, table.c.category != "SUBSCRIPTION")
                .group_by(table.c.tenant_id)
            ).all()
            oldest = conn.execute(sa.select(sa.func.min(table.c.received_at)).where(open_))
            retrying = conn.execute(
                sa.select(sa.func.count()).where(table.c.status == "pending", table.c.attempts > 0)
            )
            last = conn.execute(sa.select(sa.func.max(table.c.received_at)))
            oldest_at, retries, last_at = oldest.scalar(), retrying.scalar(), last.scalar()
        return QueueHealth(
            counts=self.counts(),
            unknown_tenants={tenant: int(n) for tenant, n in strangers},
            oldest_pending=as_utc(oldest_at) if oldest_at else None,
            retrying=int(retries or 0),
            last_received=as_utc(last_at) if last_at else None,
        )

    def counts(self) -> dict[str, int]:
        """Rows per status (every status present, zero when none), for logs and ``doctor``."""
        table = xero_webhook_events
        query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
        with self.engine.connect() as conn:
            found = {status: int(count) for status, count in conn.execute(query).all()}
        return {status: found.get(status, 0) for status in STATUSES}
