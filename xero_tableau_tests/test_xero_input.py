"""What Xero sends is read exactly: the units of the pieces, without a server.

- If-Modified-Since goes out as an RFC 3339 date-time with its offset (the spec's format).
- Binary-float noise on an amount is the cent (unit amounts: the 4-dp) value it stands for, with
  a data-quality note; a real sub-cent amount is still refused.
- Webhook event dates are bounded on receipt, and a tick sets aside events it cannot plan
  instead of failing (the HTTP halves of these are in ``test_xero_input_http.py``).
"""

import json
import math
import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from xero_tableau import raw_lake
from xero_tableau.entities import parse_records
from xero_tableau.store.db import connect, xero_webhook_events
from xero_tableau.store.event_queue import EventQueue, parse_event
from xero_tableau.transform.raw import flatten
from xero_tableau.webhooks.tick import RunState, run_tick
from xero_tableau.xero.api import format_if_modified_since
from xero_tableau.xero.models import FLOAT_NOISE
from xero_tableau_tests.conftest import fresh_state_db
from xero_tableau_tests.xero_spec import (
    ACCOUNTING,
    RFC3339_DATETIME_PATTERN,
    request_header_errors,
    spec_available,
)

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
OTHER = "0b1f6a8e-5d5a-4c1b-9d7c-2f4e6a8b0c1d"


# --- If-Modified-Since --------------------------------------------------------------------------

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2006, 1, 2), max_value=datetime(2100, 1, 1), timezones=OFFSETS
    )
)
def test_if_modified_since_is_an_rfc3339_date_time_of_the_same_second(moment: datetime) -> None:
    header = format_if_modified_since(moment)
    assert re.fullmatch(RFC3339_DATETIME_PATTERN, header), header
    back = datetime.fromisoformat(header.replace("Z", "+00:00"))
    assert back.utcoffset() == timedelta(0)
    assert back == moment.astimezone(UTC).replace(microsecond=0)


def test_if_modified_since_passes_the_specs_header_check() -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip("Xero's OpenAPI spec is not beside the repository")
    header = format_if_modified_since(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert header == "2026-12-01T10:00:00Z"
    for path in ("/Invoices", "/CreditNotes", "/Contacts", "/Accounts"):
        headers = {"If-Modified-Since": header, "xero-tenant-id": TENANT}
        assert request_header_errors(path, headers) == [], path
    # what the client used to send, and what the spec's own example looks like
    assert request_header_errors(
        "/Invoices", {"If-Modified-Since": "2026-12-01T10:00:00", "xero-tenant-id": TENANT}
    )
    assert not request_header_errors(
        "/Invoices",
        {"If-Modified-Since": "2020-02-06T12:17:43.202-08:00", "xero-tenant-id": TENANT},
    )


def test_if_modified_since_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_if_modified_since(datetime(2026, 12, 1, 10, 0))


# --- float noise --------------------------------------------------------------------------------


def invoice_text(sub_total: str, unit_amount: str = "1.0") -> str:
    """An invoice as JSON text with two amounts written exactly as a server wrote them."""
    return (
        '{"Type":"ACCREC","InvoiceID":"11111111-2222-3333-4444-555555555555",'
        '"UpdatedDateUTC":"/Date(1551981568133+0000)/","Status":"AUTHORISED",'
        f'"LineItems":[{{"Quantity":1.0,"UnitAmount":{unit_amount},"LineAmount":1.0}}],'
        f'"SubTotal":{sub_total},"TotalTax":0.0,"Total":1.0}}'
    )


def as_servers_write(value: float) -> list[str]:
    """A float as JSON number text the way servers write it: Python's and .NET Core's shortest
    round trip, .NET Framework's "R"/G17 with 17 significant digits."""
    return [json.dumps(value), repr(value), format(value, ".17g")]


def nudged(value: float, steps: int) -> float:
    for _ in range(abs(steps)):
        value = math.nextafter(value, math.inf if steps > 0 else -math.inf)
    return value


@settings(max_examples=300, deadline=None)
@given(
    cents=st.integers(min_value=-(10**11), max_value=10**11),
    steps=st.integers(min_value=-4, max_value=4),
)
def test_any_cent_value_with_float_noise_parses_back_to_exactly_itself(
    cents: int, steps: int
) -> None:
    exact = Decimal(cents) / 100  # |exact| < 1e9: a billion in any currency
    noisy = nudged(float(exact), steps)
    for text in as_servers_write(noisy):
        for loads in (json.loads, lambda t: json.loads(t, parse_float=Decimal)):
            record = loads(invoice_text(text))
            result = parse_records("Invoices", [record])
            assert not result.rejected, (text, result.rejected)
            (invoice,) = result.records
            assert invoice.sub_total == exact, text
            received = record["SubTotal"]  # a float reads as its shortest repr
            if Decimal(repr(received) if isinstance(received, float) else received) != exact:
                (note,) = result.notes
                assert note.field == "SubTotal" and note.read_as == exact
            else:
                assert result.notes == []


@settings(max_examples=200, deadline=None)
@given(
    units=st.integers(min_value=-(10**11), max_value=10**11),
    steps=st.integers(min_value=-4, max_value=4),
)
def test_any_4dp_unit_amount_with_float_noise_parses_back_to_exactly_itself(
    units: int, steps: int
) -> None:
    exact = Decimal(units) / 10_000  # |exact| < 1e7 per unit
    noisy = nudged(float(exact), steps)
    for text in as_servers_write(noisy):
        result = parse_records("Invoices", [json.loads(invoice_text("1.0", unit_amount=text))])
        assert not result.rejected, (text, result.rejected)
        (invoice,) = result.records
        assert invoice.line_items[0].unit_amount == exact, text


@pytest.mark.parametrize(
    ("sub_total", "why"),
    [("10.005", "half a cent"), ("10.0000011", "just past the tolerance"), ("0.3333", "a third")],
)
def test_a_real_sub_cent_amount_is_refused(sub_total: str, why: str) -> None:
    result = parse_records("Invoices", [json.loads(invoice_text(sub_total))])
    assert result.records == [] and result.notes == [], why
    (rejected,) = result.rejected
    assert "SubTotal" in rejected.reason


def test_the_tolerance_is_a_millionth_of_a_currency_unit() -> None:
    assert Decimal("0.000001") == FLOAT_NOISE
    (inside,) = parse_records("Invoices", [json.loads(invoice_text("10.000001"))]).records
    assert inside.sub_total == Decimal("10.00")


def test_the_quoted_case_lands_in_the_lake_with_a_note(tmp_path: Path) -> None:
    """``"SubTotal": 11062.119999999999`` used to quarantine the whole invoice."""
    record = json.loads(invoice_text("11062.119999999999"))
    batch = flatten("Invoices", [record], datetime.now(UTC))
    assert batch.rejected == []
    assert batch.documents.column("sub_total").to_pylist() == [Decimal("11062.12")]
    (note,) = batch.notes
    assert note.text == "SubTotal: 11062.119999999999 read as 11062.12 (binary-float noise)"
    day = date(2019, 3, 7)
    raw_lake.write_day_partition(tmp_path, TENANT, "Invoices", day, batch, [record])
    (listed,) = raw_lake.dq_notes(tmp_path, TENANT)
    assert listed == {
        "entity": "Invoices",
        "day": "2019-03-07",
        "id": record["InvoiceID"],
        "field": "SubTotal",
        "received": "11062.119999999999",
        "read_as": "11062.12",
    }
    # the raw JSON stays exactly as received, for audit
    (kept,) = raw_lake.read_day_records(tmp_path, TENANT, "Invoices", day)
    assert kept["SubTotal"] == Decimal("11062.119999999999")


def test_notes_of_an_older_duplicate_are_dropped_with_it() -> None:
    older = json.loads(invoice_text("0.30000000000000004"))
    newer = {**json.loads(invoice_text("0.3")), "UpdatedDateUTC": "/Date(1551981569000+0000)/"}
    batch = flatten("Invoices", [older, newer], datetime.now(UTC))
    assert batch.documents.num_rows == 1 and batch.notes == []


# --- webhook event dates ------------------------------------------------------------------------


def event(when: str, tenant: str = TENANT) -> dict[str, Any]:
    resource_id = str(uuid.uuid4())
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": when,
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00",  # .NET's default DateTime
        "0001-01-01T00:00:00+05:00",  # out of datetime's range once made UTC
        "9999-12-31T23:59:59.9999999",
        "9999-12-31T23:59:59-05:00",
        "2005-12-31T23:59:59",
    ],
)
def test_an_event_dated_out_of_bounds_is_stored_ignored_with_its_reason(
    tmp_path: Path, when: str
) -> None:
    queue = EventQueue(connect(f"sqlite:///{tmp_path / 'state.db'}"))
    now = datetime.now(UTC)
    good = event(now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
    bad = event(when)
    assert queue.add_batch([good, bad], now, {TENANT}) == (2, 0)
    assert [e.resource_id for e in queue.pending()] == [good["resourceId"]]
    (stored,) = queue.history(bad["resourceId"])
    assert stored.status == "ignored"
    assert stored.ignored_reason and "eventDateUtc" in stored.ignored_reason


def test_an_event_a_day_ahead_is_believed_and_two_days_ahead_is_not(tmp_path: Path) -> None:
    queue = EventQueue(connect(f"sqlite:///{tmp_path / 'state.db'}"))
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    near = event((now + timedelta(hours=23)).isoformat())
    far = event((now + timedelta(days=2)).isoformat())
    queue.add_batch([near, far], now, {TENANT})
    assert [e.resource_id for e in queue.pending()] == [near["resourceId"]]


def test_parse_event_never_overflows() -> None:
    parsed = parse_event(event("0001-01-01T00:00:00+05:00"))
    assert parsed.out_of_range is not None
    assert parsed.event_time == datetime(1, 1, 1, tzinfo=UTC)


def _legacy_pending(engine: sa.Engine, tenant: str, when: datetime) -> None:
    """A pending event stored before event dates were bounded."""
    with engine.begin() as conn:
        conn.execute(
            xero_webhook_events.insert().values(
                dedupe_key=uuid.uuid4().hex,
                tenant_id=tenant,
                category="INVOICE",
                event_type="UPDATE",
                resource_id=str(uuid.uuid4()),
                event_time=when,
                received_at=datetime.now(UTC),
                tenant_known=True,
                status="pending",
                attempts=0,
            )
        )


def test_a_tick_sets_aside_events_it_cannot_plan_and_plans_the_rest(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'state.db'}")
    queue = EventQueue(engine)
    now = datetime.now(UTC)
    _legacy_pending(engine, TENANT, datetime(1, 1, 1, tzinfo=UTC))
    _legacy_pending(engine, TENANT, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    _legacy_pending(engine, TENANT, now - timedelta(hours=1))
    _legacy_pending(engine, OTHER, now - timedelta(hours=2))
    result = run_tick(
        queue,
        cursor=0,
        tenants={TENANT, OTHER},
        run_of=lambda _key: None,
        now=now,
        retry_seconds=30,
    )
    assert sorted(ask.tenant_id for ask in result.asks) == sorted([TENANT, OTHER])
    assert all(ask.events == 1 for ask in result.asks)
    assert result.ignored == 2 and "2 event(s) set aside" in result.summary
    assert len(result.warnings) == 2
    counts = queue.counts()
    assert (counts["ignored"], counts["requested"], counts["pending"]) == (2, 2, 0)
    with engine.connect() as conn:
        reasons = conn.execute(
            sa.select(xero_webhook_events.c.ignored_reason).where(
                xero_webhook_events.c.status == "ignored"
            )
        ).scalars()
        assert all(reason and "no day partition" in reason for reason in reasons)
    # the next tick is quiet: nothing left to trip over
    again = run_tick(
        queue,
        cursor=result.next_cursor,
        tenants={TENANT, OTHER},
        run_of=lambda _key: RunState("r", "running", "STARTED"),
        now=now,
        retry_seconds=30,
    )
    assert again.asks == [] and again.ignored == 0


def test_a_requested_batch_that_cannot_be_asked_again_is_set_aside(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'state.db'}")
    queue = EventQueue(engine)
    now = datetime.now(UTC)
    _legacy_pending(engine, TENANT, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    (legacy,) = queue.pending()
    queue.request([legacy.id], "webhook-lost-run", now)
    result = run_tick(
        queue, cursor=legacy.id, tenants={TENANT}, run_of=lambda _k: None, now=now, retry_seconds=1
    )
    assert result.asks == [] and result.ignored == 1
    assert queue.counts()["ignored"] == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_state_db_gains_the_reason_column_on_an_older_schema(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_state_db(request, tmp_path, backend, xero_webhook_events.name)
    engine = connect(url)
    with engine.begin() as conn:  # the table as an older release made it
        conn.execute(sa.text("ALTER TABLE xero_webhook_events DROP COLUMN ignored_reason"))
    engine.dispose()
    again = connect(url)
    connect(url).dispose()  # a second process connecting finds it done
    columns = {c["name"] for c in sa.inspect(again).get_columns("xero_webhook_events")}
    assert "ignored_reason" in columns
    EventQueue(again).add_batch([event("0001-01-01T00:00:00")], datetime.now(UTC), {TENANT})
    assert EventQueue(again).counts()["ignored"] == 1
    again.dispose()
