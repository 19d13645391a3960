"""The typed Xero models: Xero's own examples and the sandbox's records parse, money stays exact
(Decimal, never float), and a bad record is reported with its id without stopping the batch."""

import copy
import gc
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from xero_tableau.entities import ENTITIES, TRANSACTIONAL, parse_records
from xero_tableau.sandbox.dataset import SandboxDataset
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.xero.models import (
    Account,
    Contact,
    Invoice,
    ManualJournal,
    Organisation,
    Payment,
    PurchaseOrder,
)
from xero_tableau_tests import xero_spec

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "xero-openapi"
ENDPOINTS = [
    "Invoices",
    "CreditNotes",
    "Payments",
    "BankTransactions",
    "ManualJournals",
    "PurchaseOrders",
    "Contacts",
    "Overpayments",
    "Prepayments",
    "Accounts",
    "TrackingCategories",
    "TaxRates",
    "Currencies",
    "Organisation",
]
# Endpoints whose records carry UpdatedDateUTC (Accounts too, but the spec's example omits it).
INCREMENTAL = [
    "Invoices",
    "CreditNotes",
    "Payments",
    "BankTransactions",
    "ManualJournals",
    "PurchaseOrders",
    "Contacts",
    "Overpayments",
    "Prepayments",
]
ENTITY_MODELS = {name: spec.model for name, spec in ENTITIES.items()}
ID_FIELDS = {name: spec.id_field for name, spec in ENTITIES.items()}
# GET /Organisation answers with the plural envelope key.
ENVELOPE_KEYS = {endpoint: endpoint for endpoint in ENDPOINTS} | {"Organisation": "Organisations"}


def walk(value: object) -> Iterator[object]:
    """Every value inside a model, recursively (fields, list items, nested models)."""
    yield value
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from walk(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# --- the registry ---------------------------------------------------------------------------------


def test_registry_covers_every_synced_endpoint() -> None:
    assert sorted(ENTITIES) == sorted(ENDPOINTS)
    assert sorted(e.endpoint for e in TRANSACTIONAL) == sorted(INCREMENTAL)
    assert ID_FIELDS["Invoices"] == "InvoiceID"
    assert ID_FIELDS["TaxRates"] == "TaxType"
    assert ID_FIELDS["Currencies"] == "Code"
    assert ID_FIELDS["Organisation"] == "OrganisationID"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_id_field_is_a_required_field_of_the_model(endpoint: str) -> None:
    fields = {info.alias: info for info in ENTITY_MODELS[endpoint].model_fields.values()}
    assert ID_FIELDS[endpoint] in fields
    assert fields[ID_FIELDS[endpoint]].is_required()


@pytest.mark.parametrize("endpoint", INCREMENTAL)
def test_updated_date_utc_is_required_where_the_entity_has_it(endpoint: str) -> None:
    fields = {info.alias: info for info in ENTITY_MODELS[endpoint].model_fields.values()}
    assert fields["UpdatedDateUTC"].is_required()


def test_transactional_entities_have_a_raw_layout_and_a_published_table() -> None:
    for spec in TRANSACTIONAL:
        assert spec.raw_layout.documents.names[:3] == ["id", "updated_at_utc", "fetched_at_utc"]
        if spec.raw_layout.lines is not None:
            assert spec.raw_layout.lines.names[:2] == ["document_id", "document_row"]
            assert spec.raw_layout.line_rows is not None
        assert spec.published_table


def test_unknown_entity_raises() -> None:
    with pytest.raises(ValueError, match="Journals"):
        parse_records("Journals", [])


# --- Xero's own examples --------------------------------------------------------------------------


def spec_get_examples() -> dict[str, list[tuple[str, list[Any]]]]:
    """Per endpoint: (path, records) of every GET response example in Xero's spec for it."""
    spec = xero_spec.load_spec()
    found: dict[str, list[tuple[str, list[Any]]]] = {endpoint: [] for endpoint in ENDPOINTS}
    for path, item in spec["paths"].items():
        operation = item.get("get")
        segments = path.strip("/").split("/")
        if not isinstance(operation, dict) or segments[0] not in ENVELOPE_KEYS or len(segments) > 2:
            continue
        endpoint, key = segments[0], ENVELOPE_KEYS[segments[0]]
        for response in operation.get("responses", {}).values():
            for media in response.get("content", {}).values():
                example = media.get("example")
                if isinstance(example, dict) and isinstance(example.get(key), list):
                    found[endpoint].append((path, copy.deepcopy(example[key])))
    return found


@pytest.fixture(scope="module")
def spec_examples() -> dict[str, list[tuple[str, list[Any]]]]:
    if not (SPEC_DIR / xero_spec.ACCOUNTING).is_file():
        pytest.skip(f"Xero's OpenAPI spec is not checked out at {SPEC_DIR}")
    return spec_get_examples()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_spec_get_examples_parse(
    spec_examples: dict[str, list[tuple[str, list[Any]]]], endpoint: str
) -> None:
    examples = spec_examples[endpoint]
    assert examples, f"no GET example for {endpoint} in the spec"
    for path, records in examples:
        assert records, path
        result = parse_records(endpoint, records)
        assert result.rejected == [], f"GET {path}: {[r.reason for r in result.rejected]}"
        assert len(result.records) == len(records)
        assert all(isinstance(record, ENTITY_MODELS[endpoint]) for record in result.records)


def test_spec_invoice_example_values(spec_examples: dict[str, list[tuple[str, list[Any]]]]) -> None:
    records = dict(spec_examples["Invoices"])["/Invoices/{InvoiceID}"]
    (invoice,) = parse_records("Invoices", records).records
    assert isinstance(invoice, Invoice)
    assert invoice.invoice_id == "a03ffcd2-5d91-4c7e-b483-318584e9e439"
    assert invoice.type == "ACCREC"
    assert invoice.total == Decimal("148062.76")
    assert invoice.line_items[0].unit_amount == Decimal("148062.76")
    assert invoice.date == date(2019, 3, 7)
    assert invoice.due_date == date(2019, 3, 13)
    assert invoice.fully_paid_on_date == date(2019, 3, 19)
    # UpdatedDateUTC to the millisecond, agreeing with its UpdatedDateUTCString twin.
    assert invoice.updated_date_utc == datetime(2019, 3, 7, 17, 59, 28, 133000, tzinfo=UTC)
    assert invoice.payments[0].amount == Decimal("148062.76")
    assert invoice.contact is not None and invoice.contact.name == "Liam Gallagher"


def test_spec_quirks_are_tolerated(spec_examples: dict[str, list[tuple[str, list[Any]]]]) -> None:
    # A credit-note payment carries the credit note as "Invoice" with Type ACCRECCREDIT.
    payments = parse_records("Payments", dict(spec_examples["Payments"])["/Payments"]).records
    kinds = {
        (p.payment_type, p.invoice.type) for p in payments if isinstance(p, Payment) and p.invoice
    }
    assert kinds == {("ACCRECPAYMENT", "ACCREC"), ("ARCREDITPAYMENT", "ACCRECCREDIT")}
    # The GET /Accounts list example has no UpdatedDateUTC.
    accounts = parse_records("Accounts", dict(spec_examples["Accounts"])["/Accounts"]).records
    assert [a.updated_date_utc for a in accounts if isinstance(a, Account)] == [None, None]
    # Organisation.CreatedDateUTC has no offset; Timezone maps to an IANA zone.
    (org,) = parse_records("Organisation", spec_examples["Organisation"][0][1]).records
    assert isinstance(org, Organisation)
    assert org.created_date_utc == datetime(2016, 2, 18, 20, 29, 53, tzinfo=UTC)
    assert org.zone().key == "Pacific/Auckland"
    # A purchase order's contact in the spec has "Addresses": [null, {...}] (nulls dropped).
    orders = dict(spec_examples["PurchaseOrders"])["/PurchaseOrders/{PurchaseOrderID}"]
    (order,) = parse_records("PurchaseOrders", orders).records
    assert isinstance(order, PurchaseOrder)
    assert order.line_items[0].tracking[0].option == "Homer"
    contact = orders[0]["Contact"]
    assert None in contact["Addresses"]
    (parsed_contact,) = parse_records("Contacts", [contact]).records
    assert isinstance(parsed_contact, Contact)
    assert [a.city for a in parsed_contact.addresses] == ["Anytown"]
    # Manual journal lines: debits positive, credits negative, summing to zero.
    journals = dict(spec_examples["ManualJournals"])["/ManualJournals/{ManualJournalID}"]
    (journal,) = parse_records("ManualJournals", journals).records
    assert isinstance(journal, ManualJournal)
    amounts = [line.line_amount for line in journal.journal_lines]
    assert amounts == [Decimal("100"), Decimal("-100")]
    assert sum(a for a in amounts if a is not None) == 0


# --- the sandbox's generated records --------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return generate(GeneratorConfig(tenants=2, invoice_lines=2000))


def test_generated_records_parse(dataset: SandboxDataset) -> None:
    assert len(dataset.tenants) == 2
    for tenant_id, tenant in dataset.tenants.items():
        for endpoint in ENDPOINTS:
            if endpoint == "Organisation":
                raw = [tenant.organisation]
            else:
                raw = list(tenant.collections[endpoint].values())
            assert raw, f"{tenant_id}: the generator made no {endpoint}"
            result = parse_records(endpoint, raw)
            assert result.rejected == [], (endpoint, result.rejected[:3])
            assert len(result.records) == len(raw)
            ids = [getattr(r, name) for r in result.records for name in id_attr(endpoint)]
            assert ids == [record[ID_FIELDS[endpoint]] for record in raw]
            for record in result.records:
                for value in walk(record):
                    assert not isinstance(value, float), f"{endpoint}: float in a model"


def id_attr(endpoint: str) -> list[str]:
    """The attribute name of an endpoint's id field (the field aliased to ID_FIELDS[endpoint])."""
    model = ENTITY_MODELS[endpoint]
    return [name for name, info in model.model_fields.items() if info.alias == ID_FIELDS[endpoint]]


def test_generated_organisations_have_mappable_zones(dataset: SandboxDataset) -> None:
    zones = set()
    for tenant in dataset.tenants.values():
        (org,) = parse_records("Organisation", [tenant.organisation]).records
        assert isinstance(org, Organisation)
        zones.add(org.zone().key)
    assert len(zones) == 2


def invoices_of(dataset: SandboxDataset) -> list[Invoice]:
    parsed: list[Invoice] = []
    for tenant in dataset.tenants.values():
        result = parse_records("Invoices", list(tenant.collections["Invoices"].values()))
        assert not result.rejected
        parsed.extend(r for r in result.records if isinstance(r, Invoice))
    return parsed


def test_money_is_exact_on_generated_invoices(dataset: SandboxDataset) -> None:
    invoices = invoices_of(dataset)
    exclusive = [i for i in invoices if i.line_amount_types == "Exclusive" and i.line_items]
    assert len(exclusive) > 100
    float_mismatches = 0
    for invoice in exclusive:
        amounts = [line.line_amount for line in invoice.line_items]
        assert all(isinstance(a, Decimal) for a in amounts)
        assert sum(a for a in amounts if a is not None) == invoice.sub_total, invoice.invoice_id
        float_sum = sum(float(a) for a in amounts if a is not None)
        float_mismatches += float_sum != float(invoice.sub_total or 0)
    for invoice in invoices:
        assert invoice.sub_total is not None and invoice.total_tax is not None
        assert invoice.sub_total + invoice.total_tax == invoice.total, invoice.invoice_id
    # The same sums in binary floats do drift on some invoices; Decimal never does.
    assert float_mismatches > 0


def test_parse_float_decimal_and_plain_floats_give_the_same_models(dataset: SandboxDataset) -> None:
    raw = list(next(iter(dataset.tenants.values())).collections["Invoices"].values())[:300]
    body = json.dumps(raw)
    from_floats = parse_records("Invoices", json.loads(body))
    from_decimals = parse_records("Invoices", json.loads(body, parse_float=Decimal))
    assert not from_floats.rejected and not from_decimals.rejected
    assert from_floats.records == from_decimals.records


def invoice_json(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Type": "ACCREC",
        "InvoiceID": "11111111-2222-3333-4444-555555555555",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "Date": "/Date(1551916800000+0000)/",
        "UpdatedDateUTC": "/Date(1551981568133+0000)/",
        "LineItems": [
            {"Quantity": 1.0, "UnitAmount": 0.1, "LineAmount": 0.1, "TaxAmount": 0.0},
            {"Quantity": 1.0, "UnitAmount": 0.2, "LineAmount": 0.2, "TaxAmount": 0.0},
        ],
        "SubTotal": 0.3,
        "TotalTax": 0.0,
        "Total": 0.3,
    }
    record.update(changes)
    return record


def test_point_one_plus_point_two_is_point_three() -> None:
    raw = json.loads(json.dumps(invoice_json()))
    assert isinstance(raw["SubTotal"], float)
    (invoice,) = parse_records("Invoices", [raw]).records
    assert isinstance(invoice, Invoice)
    first, second = (line.line_amount for line in invoice.line_items)
    assert (first, second) == (Decimal("0.1"), Decimal("0.2"))
    assert first is not None and second is not None
    assert first + second == invoice.sub_total == Decimal("0.3")
    assert 0.1 + 0.2 != 0.3  # what float would have done


def test_float_noise_is_read_as_the_cent_value_with_a_note() -> None:
    # Formerly the record was rejected; float noise is now the cent value it stands for, noted.
    result = parse_records("Invoices", [invoice_json(SubTotal=0.1 + 0.2)])
    (invoice,) = result.records
    assert invoice.sub_total == Decimal("0.30")
    (note,) = result.notes
    assert (note.record, note.field, note.received) == (0, "SubTotal", "0.30000000000000004")
    assert "SubTotal" in note.text and "0.30000000000000004" in note.text


def test_a_real_sub_cent_amount_is_still_rejected() -> None:
    result = parse_records("Invoices", [invoice_json(SubTotal=10.005)])
    assert result.records == [] and result.notes == []
    (rejected,) = result.rejected
    assert "SubTotal" in rejected.reason and "10.005" in rejected.reason


def test_unit_amounts_keep_four_decimal_places() -> None:
    line = {"Quantity": 2.5, "UnitAmount": 12.3456, "LineAmount": 30.86, "TaxAmount": 0.0}
    (invoice,) = parse_records("Invoices", [invoice_json(LineItems=[line])]).records
    assert isinstance(invoice, Invoice)
    assert invoice.line_items[0].unit_amount == Decimal("12.3456")
    assert invoice.line_items[0].quantity == Decimal("2.5")
    too_fine = {**line, "UnitAmount": 12.34567}
    (rejected,) = parse_records("Invoices", [invoice_json(LineItems=[too_fine])]).rejected
    assert "LineItems.0.UnitAmount" in rejected.reason


def test_rates_keep_their_precision() -> None:
    (invoice,) = parse_records("Invoices", [invoice_json(CurrencyRate=0.61989123)]).records
    assert isinstance(invoice, Invoice)
    assert invoice.currency_rate == Decimal("0.61989123")


# --- dates, enums and shape -----------------------------------------------------------------------


def test_dates_in_models() -> None:
    (invoice,) = parse_records(
        "Invoices", [invoice_json(DueDate="/Date(-80006400000+0000)/")]
    ).records
    assert isinstance(invoice, Invoice)
    assert invoice.date == date(2019, 3, 7) and type(invoice.date) is date
    assert invoice.due_date == date(1967, 6, 20)
    assert invoice.updated_date_utc == datetime(2019, 3, 7, 17, 59, 28, 133000, tzinfo=UTC)
    assert invoice.updated_date_utc.utcoffset() is not None


def test_unknown_status_is_kept_but_unknown_type_is_rejected() -> None:
    result = parse_records(
        "Invoices",
        [
            invoice_json(InvoiceID="a", Status="SOMEFUTURESTATUS"),
            invoice_json(InvoiceID="b", Type="ACCRECCREDIT"),
            invoice_json(InvoiceID="c", LineAmountTypes="Gross"),
        ],
    )
    assert [r.invoice_id for r in result.records if isinstance(r, Invoice)] == ["a"]
    assert [(r.record_id, r.reason.split(":")[0]) for r in result.rejected] == [
        ("b", "Type"),
        ("c", "LineAmountTypes"),
    ]


def test_extra_keys_are_ignored_and_models_are_frozen() -> None:
    (invoice,) = parse_records("Invoices", [invoice_json(SomethingNew={"x": 1})]).records
    assert isinstance(invoice, Invoice)
    assert not hasattr(invoice, "SomethingNew")
    with pytest.raises(ValidationError):
        invoice.total = Decimal("1")  # type: ignore[misc]


def test_nulls_are_tolerated() -> None:
    (invoice,) = parse_records(
        "Invoices", [invoice_json(LineItems=None, Payments=[None], Contact=None, DueDate=None)]
    ).records
    assert isinstance(invoice, Invoice)
    assert invoice.line_items == [] and invoice.payments == []
    assert invoice.contact is None and invoice.due_date is None


# --- rejected records -----------------------------------------------------------------------------


def test_bad_records_are_reported_with_id_and_reason_and_the_rest_parse(
    dataset: SandboxDataset,
) -> None:
    tenant = next(iter(dataset.tenants.values()))
    good_1, garbage_date, good_2, bad_total, no_id, good_3 = (
        copy.deepcopy(r) for r in list(tenant.collections["Invoices"].values())[:6]
    )
    garbage_date["UpdatedDateUTC"] = "garbage"
    bad_total["Total"] = "abc"
    del no_id["InvoiceID"]
    not_an_object = ["not", "an", "object"]
    raw: list[Any] = [good_1, garbage_date, not_an_object, good_2, bad_total, no_id, good_3]

    result = parse_records("Invoices", raw)

    parsed_ids = [r.invoice_id for r in result.records if isinstance(r, Invoice)]
    assert parsed_ids == [good_1["InvoiceID"], good_2["InvoiceID"], good_3["InvoiceID"]]
    assert len(result.rejected) == 4
    first, second, third, fourth = result.rejected  # in input order

    assert first.record_id == garbage_date["InvoiceID"]
    assert first.reason.startswith("UpdatedDateUTC:") and "'garbage'" in first.reason
    assert first.raw is garbage_date

    assert second.record_id is None
    assert "not a JSON object" in second.reason

    assert third.record_id == bad_total["InvoiceID"]
    assert third.reason.startswith("Total:") and "'abc'" in third.reason
    assert third.raw is bad_total

    assert fourth.record_id is None
    assert fourth.reason == "InvoiceID: required field missing"
    assert fourth.raw is no_id


def test_reasons_locate_nested_problems() -> None:
    bad_line = {"LineAmount": "lots", "Tracking": [{"TrackingCategoryID": 5}]}
    (rejected,) = parse_records("Invoices", [invoice_json(LineItems=[bad_line])]).rejected
    assert "LineItems.0.LineAmount" in rejected.reason
    assert "LineItems.0.Tracking.0.TrackingCategoryID" in rejected.reason


def test_id_of_other_entities_is_reported() -> None:
    rejected = parse_records(
        "TaxRates", [{"TaxType": "OUTPUT2", "DisplayTaxRate": "fifteen"}, {"Name": "no type"}]
    ).rejected
    assert [r.record_id for r in rejected] == ["OUTPUT2", None]


def test_parse_records_pauses_the_garbage_collector_and_restores_it() -> None:
    seen: list[bool] = []

    def records() -> Iterator[dict[str, Any]]:
        for _ in range(3):
            seen.append(gc.isenabled())
            yield invoice_json()

    assert gc.isenabled()
    assert len(parse_records("Invoices", records()).records) == 3
    assert seen == [False, False, False]
    parse_records("Invoices", [invoice_json(), invoice_json(Total="abc")])
    assert gc.isenabled()
    gc.disable()
    try:
        parse_records("Invoices", [invoice_json()])
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- speed ----------------------------------------------------------------------------------------


def test_parsing_10k_invoices_of_4_lines(dataset: SandboxDataset) -> None:
    """10,000 invoices of 4 lines parse, every one (their speed is a bench figure:
    bench/normalize_hyper.py; tests do not time things)."""
    templates = [
        r
        for tenant in dataset.tenants.values()
        for r in tenant.collections["Invoices"].values()
        if r["LineItems"]
    ]
    invoices = []
    for n in range(10_000):
        invoice = copy.deepcopy(templates[n % len(templates)])
        invoice["InvoiceID"] = f"{n:08d}-0000-0000-0000-000000000000"
        lines = invoice["LineItems"]
        invoice["LineItems"] = [copy.deepcopy(lines[k % len(lines)]) for k in range(4)]
        invoices.append(invoice)
    raw = json.loads(json.dumps(invoices))
    result = parse_records("Invoices", raw)
    assert len(result.records) == 10_000
    assert all(len(invoice.line_items) == 4 for invoice in result.records)
