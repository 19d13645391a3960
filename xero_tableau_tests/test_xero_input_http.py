"""What Xero sends is read exactly, over real HTTP: the sandbox answers as Xero does and the
connector keeps every digit of it.

- Unit amounts: Xero answers 2 dp unless ``unitdp=4`` is asked on an endpoint that takes it; our
  client asks on every read, so a 4-dp unit price reaches the published tables.
- Records whose UpdatedDateUTC names no day are quarantined; the rest of the page syncs.
- A server that sums money in floating point (the sandbox's ``float_money`` fault): every
  document still lands in the tables, each rounding noted.
- Webhook deliveries with out-of-bounds event dates are answered 200, the good events kept.
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from xero_tableau import raw_lake
from xero_tableau.entities import ENTITIES, REFERENCE
from xero_tableau.raw_sync import ReadTotals, read_ids_into_lake, read_window_into_lake
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.dataset import ENTITIES as SANDBOX_ENTITIES
from xero_tableau.sandbox.dataset import TenantData, parse_ms_date
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.server import ServedApp
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.tenant_tables import build_tenant_tables
from xero_tableau.webhooks.receiver import WEBHOOK_PATH, build_receiver, expected_signature
from xero_tableau.xero_connection import XeroConnection, open_xero
from xero_tableau_tests.conftest import (
    GENEROUS_LIMITS,
    SandboxFactory,
    connect_sandbox,
)
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    sandbox_with_callback,
)

DATA = GeneratorConfig(tenants=1, invoice_lines=300, history_days=60)
FINE = 12.3456  # a unit price Xero stores to 4 dp
LINED = [name for name, spec in SANDBOX_ENTITIES.items() if spec.has_lines == "LineItems"]


def day_of(record: dict[str, Any]) -> date:
    return datetime.fromtimestamp(parse_ms_date(record["UpdatedDateUTC"]) / 1000, UTC).date()


def with_fine_unit(tenant: TenantData, endpoint: str) -> dict[str, Any]:
    """The newest record of ``endpoint`` with lines, its first line now priced at 4 dp (stored as
    Xero stores it; the sandbox serves it as the request asks)."""
    record = max(
        (r for r in tenant.collections[endpoint].values() if r.get("LineItems")),
        key=lambda r: r["UpdatedDateUTC"],
    )
    record["LineItems"][0]["UnitAmount"] = FINE
    return record


# --- the sandbox answers unit amounts as Xero does ----------------------------------------------


def test_sandbox_rounds_unit_amounts_to_2dp_unless_unitdp_4(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    running = make_sandbox(XeroSandboxConfig(limits=GENEROUS_LIMITS), DATA)
    xero = connect_sandbox(http, running)
    tenant = running.sandbox.dataset.tenants[xero.tenant_ids[0]]
    with running.sandbox.dataset.lock:
        chosen = {endpoint: with_fine_unit(tenant, endpoint) for endpoint in LINED}
        halfway = chosen["Invoices"]["LineItems"]
        if len(halfway) > 1:
            halfway[1]["UnitAmount"] = -0.125  # half a cent: away from zero, as Xero rounds
    for endpoint, record in chosen.items():
        spec = SANDBOX_ENTITIES[endpoint]
        record_id = record[spec.id_field]
        for unitdp in (None, "4", "2"):
            asked = {} if unitdp is None else {"unitdp": unitdp}
            fine = spec.unit_dp and unitdp == "4"
            listed = (
                xero.all_records(endpoint)
                if unitdp is None
                else xero.all_records(endpoint, unitdp=unitdp)
            )
            (served,) = [r for r in listed if r[spec.id_field] == record_id]
            (single,) = xero.ok(f"{endpoint}/{record_id}", params=asked)[endpoint]
            for answer in (served, single):
                unit = answer["LineItems"][0]["UnitAmount"]
                assert unit == (FINE if fine else 12.35), (endpoint, asked, unit)
                if endpoint == "Invoices" and len(halfway) > 1:
                    assert answer["LineItems"][1]["UnitAmount"] == (-0.125 if fine else -0.13)
                # totals and quantities are never rounded by unitdp
                assert answer["LineItems"][0]["LineAmount"] == record["LineItems"][0]["LineAmount"]
                assert answer["LineItems"][0]["Quantity"] == record["LineItems"][0]["Quantity"]
    # the store keeps the 4-dp price whatever was served
    assert chosen["Invoices"]["LineItems"][0]["UnitAmount"] == FINE
    # PurchaseOrders do not take unitdp (Xero's spec): always 2 dp
    assert not SANDBOX_ENTITIES["PurchaseOrders"].unit_dp


# --- our client against the sandbox -------------------------------------------------------------


@dataclass
class World:
    sandbox: CallbackSandbox
    settings: Settings
    tenant_id: str

    @property
    def data(self) -> TenantData:
        return self.sandbox.sandbox.dataset.tenants[self.tenant_id]

    @property
    def lake(self) -> Path:
        return self.settings.lake_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox = sandbox_with_callback(XeroSandboxConfig(limits=GENEROUS_LIMITS), DATA)
    try:
        settings, tenants = connected_settings(sandbox, tmp_path_factory.mktemp("home"))
        yield World(sandbox, settings, tenants[0].tenant_id)
    finally:
        sandbox.stop()


def _read_reference(xero: XeroConnection, lake: Path, tenant_id: str) -> None:
    for spec in REFERENCE:
        records = [r for page in xero.client.read_all(spec, tenant_id) for r in page]
        raw_lake.write_reference(lake, tenant_id, spec.endpoint, records)


def test_our_client_asks_for_unitdp_on_every_read_of_every_entity_that_takes_it(
    world: World,
) -> None:
    takes_unitdp = [name for name in LINED if SANDBOX_ENTITIES[name].unit_dp]
    assert set(takes_unitdp) == {
        "Invoices",
        "CreditNotes",
        "BankTransactions",
        "Overpayments",
        "Prepayments",
    }
    with world.sandbox.sandbox.dataset.lock:
        chosen = {name: with_fine_unit(world.data, name) for name in takes_unitdp}
    seen: list[httpx.Request] = []
    with open_xero(world.settings) as xero:
        xero.client.http.event_hooks["request"].append(seen.append)
        for name, record in chosen.items():
            spec = ENTITIES[name]
            record_id = record[spec.id_field]
            day = day_of(record)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            reads = {
                "all": [r for page in xero.client.read_all(spec, world.tenant_id) for r in page],
                "window": [
                    r
                    for page in xero.client.read_window(
                        spec, world.tenant_id, start, start + timedelta(days=1)
                    )
                    for r in page
                ],
            }
            if spec.takes_ids:
                reads["ids"] = xero.client.read_ids(spec, world.tenant_id, [record_id])
            for way, records in reads.items():
                (got,) = [r for r in records if r[spec.id_field] == record_id]
                assert got["LineItems"][0]["UnitAmount"] == FINE, (name, way)
    accounting = [r for r in seen if "/api.xro/2.0/" in r.url.path]
    assert {r.url.path.rsplit("/", 1)[-1] for r in accounting} == set(takes_unitdp)
    for request in accounting:
        assert request.url.params.get("unitdp") == "4", request.url


def test_a_4dp_unit_price_reaches_the_published_table(world: World) -> None:
    with world.sandbox.sandbox.dataset.lock:
        invoice = with_fine_unit(world.data, "Invoices")
    line_id = invoice["LineItems"][0]["LineItemID"]
    day = day_of(invoice)
    with open_xero(world.settings) as xero:
        _read_reference(xero, world.lake, world.tenant_id)
        read_window_into_lake(
            xero.client, world.lake, world.tenant_id, "Invoices", [day], totals=ReadTotals()
        )
    engine = connect(world.settings.database_url)
    try:
        built = build_tenant_tables(world.lake, world.tenant_id, engine)
    finally:
        engine.dispose()
    (lines,) = [t.table for t in built.tables if t.name == "fct_invoice_lines"]
    assert lines.schema.field("unit_amount").type == pa.decimal128(18, 4)
    (row,) = [r for r in lines.to_pylist() if r["line_item_id"] == line_id]
    assert row["unit_amount"] == Decimal("12.3456")


# --- records that name no day -------------------------------------------------------------------


def lake_ids(world: World, day: date) -> set[str]:
    records = raw_lake.read_day_records(world.lake, world.tenant_id, "Invoices", day)
    return {r["InvoiceID"] for r in records}


@pytest.mark.parametrize(
    "stamp",
    ["/Date(not-a-date)/", "/Date(99999999999999999+0000)/", "2026-13-45T25:61:00", None],
    ids=["garbage", "out-of-range", "impossible-iso", "missing"],
)
def test_an_undatable_record_is_quarantined_and_the_rest_of_the_page_syncs(
    world: World, stamp: str | None
) -> None:
    data = world.data
    with world.sandbox.sandbox.dataset.lock:
        victim = max(data.collections["Invoices"].values(), key=lambda r: r["UpdatedDateUTC"])
        real = victim["UpdatedDateUTC"]
        day = day_of(victim)
        # Xero still knows when it changed (its index); what it sends cannot be read.
        if stamp is None:
            victim.pop("UpdatedDateUTC")
        else:
            victim["UpdatedDateUTC"] = stamp
    others = {
        rid
        for rid, r in data.collections["Invoices"].items()
        if r is not victim and day_of(r) == day
    }
    totals = ReadTotals()
    warnings: list[str] = []
    try:
        with open_xero(world.settings) as xero:
            read_window_into_lake(
                xero.client,
                world.lake,
                world.tenant_id,
                "Invoices",
                [day],
                totals=totals,
                warn=warnings.append,
            )
            # by id too (what a webhook run may do)
            read_ids_into_lake(
                xero.client,
                world.lake,
                world.tenant_id,
                "Invoices",
                [victim["InvoiceID"]],
                totals=totals,
            )
        (held,) = [q for q in raw_lake.quarantined(world.lake, world.tenant_id) if q["day"] is None]
        assert held["entity"] == "Invoices" and held["id"] == victim["InvoiceID"]
        assert "UpdatedDateUTC" in held["reason"]
        assert totals.undated == 2  # once per read, one entry in the quarantine
        assert any(victim["InvoiceID"] in w and "no day" in w for w in warnings)
        written = {
            r["InvoiceID"]
            for r in raw_lake.read_day_records(world.lake, world.tenant_id, "Invoices", day)
        }
        assert others <= written and victim["InvoiceID"] not in written
    finally:
        with world.sandbox.sandbox.dataset.lock:
            victim["UpdatedDateUTC"] = real
    # Xero sends a readable date again: the record goes to its day and leaves the quarantine.
    with open_xero(world.settings) as xero:
        read_window_into_lake(
            xero.client, world.lake, world.tenant_id, "Invoices", [day], totals=ReadTotals()
        )
    assert not [q for q in raw_lake.quarantined(world.lake, world.tenant_id) if q["day"] is None]
    written = {
        r["InvoiceID"]
        for r in raw_lake.read_day_records(world.lake, world.tenant_id, "Invoices", day)
    }
    assert victim["InvoiceID"] in written


# --- a server that sums in floating point ---------------------------------------------------------


def noisy_pairs(count: int) -> list[tuple[Decimal, Decimal]]:
    """Pairs of cent amounts whose float sum is not the float of their exact sum's shortest
    decimal (what ``0.1 + 0.2`` is to ``0.3``)."""
    pairs = []
    for cents in range(1, 100_000):
        a, b = Decimal(cents) / 100, Decimal(cents * 7 + 3) / 100
        if repr(float(a) + float(b)) != str(a + b):
            pairs.append((a, b))
            if len(pairs) == count:
                return pairs
    raise AssertionError("not enough noisy pairs")


def test_sixty_float_noise_documents_in_sixty_documents_in_the_tables(
    tmp_path: Path,
) -> None:
    sandbox = sandbox_with_callback(XeroSandboxConfig(limits=GENEROUS_LIMITS), DATA)
    try:
        settings, tenants = connected_settings(sandbox, tmp_path / "home")
        tenant_id = tenants[0].tenant_id
        data = sandbox.sandbox.dataset.tenants[tenant_id]
        contact = next(iter(data.collections["Contacts"].values()))
        writer = SandboxWriter(sandbox.sandbox)
        created = []
        with sandbox.sandbox.dataset.lock:
            sandbox.sandbox.clock.advance(86_400)  # a day of its own
            for first, second in noisy_pairs(60):
                lines = [
                    {"Description": "noise", "Quantity": 1, "UnitAmount": float(amount),
                     "AccountCode": "200", "LineAmount": float(amount)}
                    for amount in (first, second)
                ]  # fmt: skip
                body = {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}}
                body |= {"LineAmountTypes": "NoTax", "LineItems": lines}
                created.append(writer.create(tenant_id, "Invoices", body))
            sandbox.sandbox.faults.float_money = True
        day = day_of(created[0])
        assert {day_of(c) for c in created} == {day}
        totals = ReadTotals()
        with open_xero(settings) as xero:
            _read_reference(xero, settings.lake_dir, tenant_id)
            # the server really answers noise, e.g. "SubTotal":0.30000000000000004
            page = xero.client.get(
                "Invoices", tenant_id, {"IDs": created[0]["InvoiceID"], "page": 1}
            )["Invoices"][0]
            assert repr(page["SubTotal"]) != str(Decimal(str(created[0]["SubTotal"])))
            read_window_into_lake(
                xero.client, settings.lake_dir, tenant_id, "Invoices", [day], totals=totals
            )
        ids = {c["InvoiceID"] for c in created}
        assert totals.rejected == 0
        assert totals.dq_notes >= 60
        assert len(totals.notes_preview) == 20
        documents = raw_lake.read_entity(
            settings.lake_dir, tenant_id, "Invoices", columns=(["id", "sub_total", "total"], None)
        )[0]
        exact = {c["InvoiceID"]: Decimal(str(c["SubTotal"])) for c in created}
        got = {row["id"]: row["sub_total"] for row in documents.to_pylist() if row["id"] in ids}
        assert got == exact
        engine = connect(settings.database_url)
        try:
            built = build_tenant_tables(settings.lake_dir, tenant_id, engine)
        finally:
            engine.dispose()
        (lines,) = [t for t in built.tables if t.name == "fct_invoice_lines"]
        assert ids <= set(lines.table.column("invoice_id").to_pylist())
        assert not [q for q in built.quarantined if q["id"] in ids]
        noted = {n["id"] for n in built.dq_notes}
        assert ids <= noted
    finally:
        sandbox.stop()


# --- webhook deliveries with out-of-bounds dates ------------------------------------------------


def test_a_signed_batch_with_out_of_bounds_dates_is_answered_200_and_the_good_event_kept(
    tmp_path: Path,
) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'state.db'}")
    tenant = str(uuid.uuid4())
    key = "webhook-key"
    app = build_receiver(engine, key, known_tenants=lambda: {tenant})
    now = datetime.now(UTC)

    def event(when: str) -> dict[str, Any]:
        resource = str(uuid.uuid4())
        return {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}",
            "resourceId": resource,
            "eventDateUtc": when,
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }

    good = event(now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
    bad = [
        event("0001-01-01T00:00:00"),
        event("0001-01-01T00:00:00+05:00"),
        event("9999-12-31T23:59:59.9999999"),
    ]
    body = json.dumps({"events": [good, *bad], "firstEventSequence": 1, "lastEventSequence": 4})
    raw = body.encode()
    with ServedApp(app) as served:
        response = httpx.post(
            served.base_url + WEBHOOK_PATH,
            content=raw,
            headers={"x-xero-signature": expected_signature(key, raw)},
            trust_env=False,
        )
    assert response.status_code == 200 and response.content == b""
    queue = EventQueue(engine)
    assert [e.resource_id for e in queue.pending()] == [good["resourceId"]]
    for event_json in bad:
        (stored,) = queue.history(event_json["resourceId"])
        assert stored.status == "ignored" and "eventDateUtc" in (stored.ignored_reason or "")
    engine.dispose()
