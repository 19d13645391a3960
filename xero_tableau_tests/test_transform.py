"""The raw lake and the normalize step, checked against figures computed independently from the
raw Xero JSON with ``Decimal(str(x))``: if a transform drops, duplicates, mis-slots, mis-rounds or
mis-signs anything, a total here stops matching.

A small sandbox dataset (two tenants, a short history) is flattened per UTC day of
UpdatedDateUTC, written with the raw lake, read back and normalized once per module; tests that
need a lake of their own build it in a temporary folder.
"""

import copy
import gzip
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pa_compute
import pytest

from xero_tableau import raw_lake
from xero_tableau.entities import TRANSACTIONAL
from xero_tableau.sandbox.dataset import TenantData, ms_date
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.transform.normalize import (
    NORMALIZE_COLUMNS,
    Reference,
    normalize,
)
from xero_tableau.transform.raw import (
    DOCUMENT_SCHEMAS,
    LINE_SCHEMAS,
    empty_batch,
    flatten,
)
from xero_tableau.transform.schema import TABLES, arrow_schema, render_schema_markdown
from xero_tableau.xero.dates import parse_xero_datetime, xero_timezone_to_iana

TRANSACTIONAL_ENTITIES = [e.endpoint for e in TRANSACTIONAL]

# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute

CONFIG = GeneratorConfig(
    seed=5, tenants=2, invoice_lines=1200, as_of=date(2026, 2, 28), history_days=45
)
FETCHED = datetime(2026, 3, 1, 6, 0, 0, 123000, tzinfo=UTC)
CENT = Decimal("0.01")
REPO = Path(__file__).resolve().parents[1]
LINE_KEY = {
    "Invoices": "LineItems",
    "CreditNotes": "LineItems",
    "BankTransactions": "LineItems",
    "PurchaseOrders": "LineItems",
    "ManualJournals": "JournalLines",
}


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def base(amount: Decimal, rate: Any) -> Decimal:
    """Independent base-currency rule: amount / rate, half away from zero to cents."""
    return (amount / dec(rate)).quantize(CENT, rounding=ROUND_HALF_UP)


def line_net(doc: dict[str, Any], line: dict[str, Any]) -> Decimal:
    amount = dec(line["LineAmount"])
    if doc.get("LineAmountTypes") == "Inclusive":
        amount -= dec(line.get("TaxAmount", 0))
    return amount


def utc_day(record: dict[str, Any]) -> date:
    return parse_xero_datetime(record["UpdatedDateUTC"]).date()


def write_entity(lake: Path, tenant_id: str, entity: str, records: list[dict[str, Any]]) -> None:
    """Flatten and store records the way the raw asset does: one partition per UTC day."""
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_day[utc_day(record)].append(record)
    for day, batch_records in by_day.items():
        batch = flatten(entity, batch_records, FETCHED)
        raw_lake.write_day_partition(lake, tenant_id, entity, day, batch, batch_records)


def write_reference(lake: Path, tenant: TenantData) -> None:
    raw_lake.write_reference(lake, tenant.tenant_id, "Organisation", [tenant.organisation])
    for entity in ("Accounts", "TrackingCategories"):
        records = list(tenant.collections[entity].values())
        raw_lake.write_reference(lake, tenant.tenant_id, entity, records)


def normalize_from_lake(lake: Path, tenant_id: str) -> dict[str, pa.Table]:
    raw = {
        entity: raw_lake.read_entity(lake, tenant_id, entity) for entity in TRANSACTIONAL_ENTITIES
    }
    reference = Reference(
        organisation=raw_lake.read_reference(lake, tenant_id, "Organisation")[0],
        accounts=raw_lake.read_reference(lake, tenant_id, "Accounts"),
        tracking_categories=raw_lake.read_reference(lake, tenant_id, "TrackingCategories"),
    )
    return normalize(tenant_id, raw, reference)


@dataclass
class Synced:
    tenants: dict[str, TenantData]
    lake: Path
    tables: dict[str, dict[str, pa.Table]]  # tenant id -> table name -> table


def sync_into_lake(config: GeneratorConfig, lake: Path) -> Synced:
    """The generated organisations written to ``lake`` as the raw assets would, normalized."""
    dataset = generate(config)
    tables = {}
    for tenant_id, tenant in dataset.tenants.items():
        write_reference(lake, tenant)
        for entity in TRANSACTIONAL_ENTITIES:
            write_entity(lake, tenant_id, entity, list(tenant.collections[entity].values()))
        tables[tenant_id] = normalize_from_lake(lake, tenant_id)
    return Synced(dataset.tenants, lake, tables)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Synced:
    return sync_into_lake(CONFIG, tmp_path_factory.mktemp("lake"))


def each_tenant(synced: Synced) -> Iterator[tuple[TenantData, dict[str, pa.Table]]]:
    for tenant_id, tenant in synced.tenants.items():
        yield tenant, synced.tables[tenant_id]


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def records(tenant: TenantData, entity: str) -> list[dict[str, Any]]:
    return list(tenant.collections[entity].values())


# --- shape and counts -----------------------------------------------------------------------------


def test_every_table_has_its_published_schema_keys_and_non_nulls(synced: Synced) -> None:
    for _, tables in each_tenant(synced):
        assert list(tables) == list(TABLES)
        for name, table in tables.items():
            spec = TABLES[name]
            assert table.schema.equals(arrow_schema(spec)), name
            assert table.num_rows > 0, name
            for column in spec.columns:
                if not column.nullable:
                    assert table.column(column.name).null_count == 0, (name, column.name)
            keys = Counter(tuple(row.values()) for row in table.select(list(spec.key)).to_pylist())
            assert max(keys.values()) == 1, f"{name}: duplicate keys"


def test_row_counts_match_the_raw_records(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        for table, entity in (
            ("fct_invoice_lines", "Invoices"),
            ("fct_credit_note_lines", "CreditNotes"),
            ("fct_bank_transaction_lines", "BankTransactions"),
            ("fct_manual_journal_lines", "ManualJournals"),
            ("fct_purchase_order_lines", "PurchaseOrders"),
        ):
            expected = sum(len(doc[LINE_KEY[entity]]) for doc in records(tenant, entity))
            assert tables[table].num_rows == expected, table
        assert tables["fct_payments"].num_rows == len(records(tenant, "Payments"))
        assert tables["fct_overpayments"].num_rows == len(records(tenant, "Overpayments"))
        assert tables["fct_prepayments"].num_rows == len(records(tenant, "Prepayments"))
        assert tables["dim_contacts"].num_rows == len(records(tenant, "Contacts"))
        assert tables["dim_accounts"].num_rows == len(records(tenant, "Accounts"))
        options = sum(len(c["Options"]) for c in records(tenant, "TrackingCategories"))
        assert tables["dim_tracking_options"].num_rows == options
        assert set(tables["fct_invoice_lines"].column("tenant_id").to_pylist()) == {
            tenant.tenant_id
        }


# --- money ----------------------------------------------------------------------------------------


def test_invoice_net_and_base_sums_per_account(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        expected_net: dict[str, Decimal] = defaultdict(Decimal)
        expected_base: dict[str, Decimal] = defaultdict(Decimal)
        for doc in records(tenant, "Invoices"):
            for line in doc["LineItems"]:
                net = line_net(doc, line)
                expected_net[line["AccountCode"]] += net
                expected_base[line["AccountCode"]] += base(net, doc["CurrencyRate"])
        got_net: dict[str, Decimal] = defaultdict(Decimal)
        got_base: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows(tables["fct_invoice_lines"]):
            got_net[row["account_code"]] += row["net_amount"]
            got_base[row["account_code"]] += row["net_amount_base"]
        assert got_net == expected_net
        assert got_base == expected_base
        foreign = [d for d in records(tenant, "Invoices") if dec(d["CurrencyRate"]) != 1]
        assert foreign, "the dataset must exercise currency conversion"


def test_accounts_resolve_to_name_type_and_class(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        chart = {a["Code"]: a for a in records(tenant, "Accounts")}
        for row in rows(tables["fct_invoice_lines"]):
            account = chart[row["account_code"]]
            assert row["account_id"] == account["AccountID"]
            assert row["account_name"] == account["Name"]
            assert row["account_type"] == account["Type"]
            assert row["account_class"] == account["Class"]


def test_net_amount_per_invoice_equals_subtotal_and_gross_equals_total(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        net: dict[str, Decimal] = defaultdict(Decimal)
        gross: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows(tables["fct_invoice_lines"]):
            net[row["invoice_id"]] += row["net_amount"]
            gross[row["invoice_id"]] += row["gross_amount"]
            assert row["gross_amount"] == row["net_amount"] + row["tax_amount"]
        docs = records(tenant, "Invoices")
        assert {d["InvoiceID"]: dec(d["SubTotal"]) for d in docs} == dict(net)
        assert {d["InvoiceID"]: dec(d["Total"]) for d in docs} == dict(gross)
        kinds = Counter(d["LineAmountTypes"] for d in docs)
        assert kinds["Inclusive"] and kinds["Exclusive"], "both tax treatments must be exercised"


def test_invoice_gross_per_month_matches_raw_totals(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for doc in records(tenant, "Invoices"):
            month = parse_xero_datetime(doc["Date"]).strftime("%Y-%m")
            expected[(doc["Type"], month)] += dec(doc["Total"])
        got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in rows(tables["fct_invoice_lines"]):
            got[(row["invoice_type"], row["document_date"].strftime("%Y-%m"))] += row[
                "gross_amount"
            ]
        assert got == expected


def test_foreign_currency_invoice_base_amounts(synced: Synced) -> None:
    tenant, tables = next(each_tenant(synced))
    doc = next(d for d in records(tenant, "Invoices") if dec(d["CurrencyRate"]) != 1)
    lines = {
        row["line_item_id"]: row
        for row in rows(tables["fct_invoice_lines"])
        if row["invoice_id"] == doc["InvoiceID"]
    }
    assert len(lines) == len(doc["LineItems"])
    for line in doc["LineItems"]:
        row = lines[line["LineItemID"]]
        net = line_net(doc, line)
        tax = dec(line["TaxAmount"])
        assert row["currency_code"] == doc["CurrencyCode"] != row["base_currency_code"]
        assert row["base_currency_code"] == tenant.organisation["BaseCurrency"]
        assert row["currency_rate"] == dec(doc["CurrencyRate"])
        assert row["net_amount_base"] == base(net, doc["CurrencyRate"])
        assert row["tax_amount_base"] == base(tax, doc["CurrencyRate"])
        assert row["gross_amount_base"] == base(net + tax, doc["CurrencyRate"])
        assert row["quantity"] == dec(line["Quantity"])
        assert row["unit_amount"] == dec(line["UnitAmount"])


def test_base_rounding_is_half_away_from_zero() -> None:
    """1.25 / 2 = 0.625 -> 0.63 and -0.625 -> -0.63 (Python ROUND_HALF_UP, not banker's), also
    for amounts too large for the fast integer path."""
    tenant_id = "t-round"
    amounts = ("1.25", "-1.25", "0.01", "123456.78", "50000000000.01", "-99999999999.99")
    docs = [
        invoice_record(f"inv-{i}", amount, rate="2.0", lat="NoTax")
        for i, amount in enumerate(amounts)
    ]
    out = normalize(tenant_id, {"Invoices": as_raw("Invoices", docs)}, minimal_reference())
    got = out["fct_invoice_lines"].column("net_amount_base").to_pylist()
    assert got == [base(Decimal(a), "2.0") for a in amounts]
    assert got[:2] == [Decimal("0.63"), Decimal("-0.63")]
    assert got[4] == Decimal("25000000000.01")


def test_tracking_sums_per_slot_and_option(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        slot_of = {"Region": 1, "Service Line": 2}  # categories ordered by name
        expected: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        for doc in records(tenant, "Invoices"):
            for line in doc["LineItems"]:
                for element in line["Tracking"]:
                    key = (slot_of[element["Name"]], element["Option"])
                    expected[key] += line_net(doc, line)
        got: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        for row in rows(tables["fct_invoice_lines"]):
            for slot in (1, 2):
                if row[f"tracking{slot}_option_id"] is not None:
                    got[(slot, row[f"tracking{slot}_option_name"])] += row["net_amount"]
                    category = row[f"tracking{slot}_category_name"]
                    assert category == ("Region" if slot == 1 else "Service Line")
        assert got == expected
        assert any(key[1] == "Central" for key in got), "archived options must still resolve"
        dim = rows(tables["dim_tracking_options"])
        assert {(r["category_name"], r["slot"]) for r in dim} == set(slot_of.items())
        assert any(r["is_archived"] for r in dim)


def test_bank_transaction_signs_and_bank_account(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        expected: dict[str, Decimal] = defaultdict(Decimal)
        for doc in records(tenant, "BankTransactions"):
            sign = 1 if doc["Type"].startswith("RECEIVE") else -1
            rate = doc.get("CurrencyRate", 1)  # an overpayment's or prepayment's may be foreign
            for line in doc["LineItems"]:
                expected[doc["Type"]] += sign * base(line_net(doc, line), rate)
        got: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows(tables["fct_bank_transaction_lines"]):
            got[row["bank_transaction_type"]] += row["signed_net_amount_base"]
            assert row["bank_account_code"] in ("090", "091")
            assert row["bank_account_name"] is not None
        assert got == expected
        assert expected["RECEIVE"] > 0 > expected["SPEND"]


def test_manual_journal_lines_are_signed_and_in_base_currency(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        table = tables["fct_manual_journal_lines"]
        per_journal: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows(table):
            per_journal[row["manual_journal_id"]] += row["line_amount"]
            assert row["currency_rate"] == 1
            assert row["currency_code"] == tenant.organisation["BaseCurrency"]
            assert row["net_amount_base"] == row["net_amount"] == row["line_amount"]
        assert set(per_journal.values()) == {Decimal(0)}
        debits = sum(
            dec(line["LineAmount"])
            for doc in records(tenant, "ManualJournals")
            for line in doc["JournalLines"]
            if dec(line["LineAmount"]) > 0
        )
        got = pc.sum(pc.filter(table["line_amount"], pc.greater(table["line_amount"], 0)))
        assert got.as_py() == debits


def test_payments(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        by_id = {row["payment_id"]: row for row in rows(tables["fct_payments"])}
        for payment in records(tenant, "Payments"):
            row = by_id[payment["PaymentID"]]
            assert row["amount"] == dec(payment["Amount"])
            assert row["amount_base"] == base(dec(payment["Amount"]), payment["CurrencyRate"])
            assert row["bank_amount"] == dec(payment["BankAmount"])
            assert row["account_code"] == payment["Account"]["Code"] == "090"
            assert row["account_type"] == "BANK"
            assert row["invoice_id"] == payment["Invoice"]["InvoiceID"]
            assert row["contact_id"] == payment["Invoice"]["Contact"]["ContactID"]
            assert row["is_deleted"] == (payment["Status"] == "DELETED")
            assert row["tracking1_option_id"] is None


def test_document_kind_status_flags_and_contacts(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        docs = {d["InvoiceID"]: d for d in records(tenant, "Invoices")}
        contacts = {c["ContactID"]: c["Name"] for c in records(tenant, "Contacts")}
        statuses = Counter()
        for row in rows(tables["fct_invoice_lines"]):
            doc = docs[row["invoice_id"]]
            assert row["document_kind"] == {"ACCREC": "invoice", "ACCPAY": "bill"}[doc["Type"]]
            assert row["is_voided"] == (doc["Status"] == "VOIDED")
            assert row["is_deleted"] == (doc["Status"] == "DELETED")
            assert row["contact_name"] == contacts[doc["Contact"]["ContactID"]]
            assert row["updated_at_utc"] == parse_xero_datetime(doc["UpdatedDateUTC"])
            assert row["fetched_at_utc"] == FETCHED
            statuses[doc["Status"]] += 1
        assert statuses["VOIDED"] and statuses["DELETED"], "voids and deletes must be exercised"
        credits = {c["CreditNoteID"]: c for c in records(tenant, "CreditNotes")}
        kinds = {"ACCRECCREDIT": "sales_credit", "ACCPAYCREDIT": "purchase_credit"}
        for row in rows(tables["fct_credit_note_lines"]):
            credit = credits[row["credit_note_id"]]
            assert row["document_kind"] == kinds[credit["Type"]]
            assert row["credit_note_type"] == credit["Type"]
            assert row["is_voided"] == (credit["Status"] == "VOIDED")


def test_updated_date_local_uses_the_organisation_zone(synced: Synced) -> None:
    for tenant, tables in each_tenant(synced):
        zone = xero_timezone_to_iana(tenant.organisation["Timezone"])
        table = tables["fct_invoice_lines"]
        shifted = 0
        for row in rows(table.select(["updated_at_utc", "updated_date_local"])):
            assert row["updated_date_local"] == row["updated_at_utc"].astimezone(zone).date()
            shifted += row["updated_date_local"] != row["updated_at_utc"].date()
        if zone.key != "Europe/London":
            assert shifted, "a non-UTC zone must move some dates"


# --- latest version, quarantine, lake mechanics ---------------------------------------------------


def invoice_record(
    invoice_id: str,
    amount: str,
    *,
    rate: str = "1.0",
    lat: str = "Exclusive",
    updated: datetime = datetime(2026, 1, 10, 12, tzinfo=UTC),
    lines: int = 1,
) -> dict[str, Any]:
    updated_ms = int(updated.timestamp() * 1000)
    return {
        "InvoiceID": invoice_id,
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1", "Name": "Client"},
        "Date": ms_date(updated_ms - updated_ms % 86_400_000),
        "LineAmountTypes": lat,
        "CurrencyCode": "NZD" if rate == "1.0" else "USD",
        "CurrencyRate": float(rate),
        "LineItems": [
            {
                "LineItemID": f"{invoice_id}-line-{n}",
                "AccountCode": "200",
                "LineAmount": float(amount),
                "TaxAmount": 0.0,
                "Tracking": [],
            }
            for n in range(lines)
        ],
        "SubTotal": float(Decimal(amount) * lines),
        "TotalTax": 0.0,
        "Total": float(Decimal(amount) * lines),
        "UpdatedDateUTC": ms_date(updated_ms),
    }


def minimal_reference() -> Reference:
    return Reference(
        organisation={
            "OrganisationID": "org",
            "BaseCurrency": "NZD",
            "Timezone": "NEWZEALANDSTANDARDTIME",
        },
        accounts=[
            {"AccountID": "acc-200", "Code": "200", "Name": "Sales", "Type": "REVENUE"},
        ],
    )


def as_raw(entity: str, docs: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table | None]:
    batch = flatten(entity, docs, FETCHED)
    assert not batch.rejected
    return batch.documents, batch.lines


def test_latest_version_wins_and_only_its_lines(tmp_path: Path) -> None:
    tenant_id = "t-dedupe"
    new = invoice_record("inv-1", "100.00", updated=datetime(2026, 1, 20, 9, tzinfo=UTC), lines=2)
    old = invoice_record("inv-1", "70.00", updated=datetime(2026, 1, 5, 9, tzinfo=UTC), lines=3)
    old["LineItems"][0]["AccountCode"] = "999"
    other = invoice_record("inv-2", "5.00", updated=datetime(2026, 1, 5, 10, tzinfo=UTC))
    # the old version still sits in the earlier day's partition, as after a real move
    write_entity(tmp_path, tenant_id, "Invoices", [old, other])
    write_entity(tmp_path, tenant_id, "Invoices", [new])
    assert len(raw_lake.partition_days(tmp_path, tenant_id, "Invoices")) == 2
    raw = {"Invoices": raw_lake.read_entity(tmp_path, tenant_id, "Invoices")}
    assert raw["Invoices"][0].num_rows == 3
    table = normalize(tenant_id, raw, minimal_reference())["fct_invoice_lines"]
    got = sorted(
        (row["invoice_id"], row["line_item_id"], row["net_amount"], row["account_code"])
        for row in rows(table)
    )
    assert got == [
        ("inv-1", "inv-1-line-0", Decimal("100.00"), "200"),
        ("inv-1", "inv-1-line-1", Decimal("100.00"), "200"),
        ("inv-2", "inv-2-line-0", Decimal("5.00"), "200"),
    ]


def test_same_updated_date_later_fetch_wins() -> None:
    tenant_id = "t-fetch"
    first = invoice_record("inv-1", "10.00")
    second = copy.deepcopy(first)
    second["LineItems"][0]["LineAmount"] = 12.0
    early = flatten("Invoices", [first], FETCHED)
    late = flatten("Invoices", [second], FETCHED + timedelta(hours=1))
    for order in ((late, early), (early, late)):
        documents = pa.concat_tables([b.documents for b in order])
        lines_parts = []
        for offset, b in zip((0, 1), order, strict=True):
            assert b.lines is not None
            shifted = pc.add(b.lines["document_row"], pa.scalar(offset, pa.int32()))
            lines_parts.append(b.lines.set_column(1, b.lines.schema.field(1), shifted))
        lines = pa.concat_tables(lines_parts)
        out = normalize(tenant_id, {"Invoices": (documents, lines)}, minimal_reference())
        amounts = out["fct_invoice_lines"].column("line_amount").to_pylist()
        assert amounts == [Decimal("12.00")]


def test_misaligned_lines_are_refused() -> None:
    documents, lines = as_raw(
        "Invoices", [invoice_record("a", "1.00"), invoice_record("b", "2.00")]
    )
    assert lines is not None
    swapped = lines.set_column(1, lines.schema.field(1), pa.array([1, 0], pa.int32()))
    with pytest.raises(ValueError, match="not aligned"):
        normalize("t", {"Invoices": (documents, swapped)}, minimal_reference())


def test_malformed_records_are_quarantined_and_the_rest_is_written(tmp_path: Path) -> None:
    tenant_id = "t-quarantine"
    good = invoice_record("good", "10.00")
    bad_date = invoice_record("bad-date", "10.00")
    bad_date["UpdatedDateUTC"] = "yesterday-ish"
    bad_total = invoice_record("bad-total", "10.00")
    bad_total["Total"] = "abc"
    bad_rate = invoice_record("bad-rate", "10.00", rate="0.61")
    bad_rate["CurrencyRate"] = Decimal("0.1234567")  # more than Xero's 6 decimals
    bad_tracking = invoice_record("bad-tracking", "10.00")
    bad_tracking["LineItems"][0]["Tracking"] = [
        {"TrackingCategoryID": f"c{i}", "TrackingOptionID": f"o{i}"} for i in range(3)
    ]
    batch_records = [good, bad_date, bad_total, bad_rate, bad_tracking]
    batch = flatten("Invoices", batch_records, FETCHED)
    assert batch.documents.column("id").to_pylist() == ["good"]
    assert batch.lines is not None and batch.lines.num_rows == 1
    reasons = {r.record_id: r.reason for r in batch.rejected}
    assert set(reasons) == {"bad-date", "bad-total", "bad-rate", "bad-tracking"}
    assert "LineItems.0.Tracking" in reasons["bad-tracking"]
    assert "UpdatedDateUTC" in reasons["bad-date"]
    assert "Total" in reasons["bad-total"]
    assert "currency_rate" in reasons["bad-rate"]

    day = date(2026, 1, 10)
    raw_lake.write_day_partition(tmp_path, tenant_id, "Invoices", day, batch, batch_records)
    folder = raw_lake.partition_dir(tmp_path, tenant_id, "Invoices", day)
    stored = json.loads((folder / "rejected.json").read_text())
    assert {r["id"]: r["reason"] for r in stored} == reasons
    assert {r["raw"]["InvoiceID"] for r in stored} == set(reasons)
    listed = raw_lake.quarantined(tmp_path, tenant_id)
    assert sorted((q["entity"], q["day"], q["id"]) for q in listed) == sorted(
        ("Invoices", "2026-01-10", rid) for rid in reasons
    )
    assert all(q["reason"] for q in listed)
    documents, lines = raw_lake.read_entity(tmp_path, tenant_id, "Invoices")
    assert documents.column("id").to_pylist() == ["good"]
    assert lines is not None and lines.column("document_id").to_pylist() == ["good"]


def test_raw_json_is_kept_exactly_for_audit(tmp_path: Path) -> None:
    record = invoice_record("inv-audit", "148062.76")
    record["LineItems"][0]["UnitAmount"] = Decimal("148062.7600")
    batch = flatten("Invoices", [record], FETCHED)
    day = date(2026, 1, 10)
    raw_lake.write_day_partition(tmp_path, "t", "Invoices", day, batch, [record])
    folder = raw_lake.partition_dir(tmp_path, "t", "Invoices", day)
    stored = json.loads(
        gzip.decompress((folder / "records.json.gz").read_bytes()), parse_float=Decimal
    )
    assert stored[0]["Total"] == Decimal("148062.76")
    assert stored[0]["LineItems"][0]["UnitAmount"] == Decimal("148062.76")
    assert stored[0]["InvoiceID"] == "inv-audit"


def test_partition_is_replaced_atomically_and_removed_when_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id, day = "t-atomic", date(2026, 1, 10)
    folder = raw_lake.partition_dir(tmp_path, tenant_id, "Invoices", day)
    first = [invoice_record("a", "1.00"), invoice_record("b", "2.00")]
    raw_lake.write_day_partition(
        tmp_path, tenant_id, "Invoices", day, flatten("Invoices", first, FETCHED), first
    )
    assert sorted(os.listdir(folder)) == [
        "documents.parquet",
        "lines.parquet",
        "records.json.gz",
        "write_id",
    ]

    second = [invoice_record("c", "3.00")]
    raw_lake.write_day_partition(
        tmp_path, tenant_id, "Invoices", day, flatten("Invoices", second, FETCHED), second
    )
    documents, _ = raw_lake.read_entity(tmp_path, tenant_id, "Invoices", refresh_cache=False)
    assert documents.column("id").to_pylist() == ["c"]
    assert os.listdir(folder.parent) == [folder.name], "no scratch folders left behind"

    # a crash while writing the new version leaves the old one whole and no scratch behind
    def boom(path: Path, data: Any) -> None:
        if path.name == "lines.parquet":
            raise OSError("disk full")
        with open(path, "wb") as handle:
            handle.write(data)

    monkeypatch.setattr(raw_lake, "_write_synced", boom)
    with pytest.raises(OSError, match="disk full"):
        raw_lake.write_day_partition(
            tmp_path, tenant_id, "Invoices", day, flatten("Invoices", first, FETCHED), first
        )
    monkeypatch.undo()
    documents, _ = raw_lake.read_entity(tmp_path, tenant_id, "Invoices", refresh_cache=False)
    assert documents.column("id").to_pylist() == ["c"]
    assert os.listdir(folder.parent) == [folder.name]

    raw_lake.write_day_partition(tmp_path, tenant_id, "Invoices", day, empty_batch("Invoices"), [])
    assert not folder.exists()
    assert os.listdir(folder.parent) == []
    documents, lines = raw_lake.read_entity(tmp_path, tenant_id, "Invoices")
    assert documents.num_rows == 0 and lines is not None and lines.num_rows == 0
    assert documents.schema.equals(DOCUMENT_SCHEMAS["Invoices"])
    assert lines.schema.equals(LINE_SCHEMAS["Invoices"])


def test_compacted_copy_is_only_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads through the compacted copy equal reads of the day folders, whatever happened to the
    days (rewritten, removed, added) or to the copy (stale, corrupt) since it was built."""
    tenant_id, entity = "t-cache", "Invoices"
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    docs = [
        invoice_record(f"inv-{i}", f"{i}.00", updated=start + timedelta(days=i), lines=1 + i % 3)
        for i in range(12)
    ]
    write_entity(tmp_path, tenant_id, entity, docs)
    cache_dir = raw_lake.entity_dir(tmp_path, tenant_id, entity) / raw_lake.CACHE_DIR

    def check() -> tuple[pa.Table, pa.Table | None]:
        direct = raw_lake.read_entity(tmp_path, tenant_id, entity, refresh_cache=False)
        via_cache = raw_lake.read_entity(tmp_path, tenant_id, entity)
        again = raw_lake.read_entity(tmp_path, tenant_id, entity)
        for got in (via_cache, again):
            assert got[0].equals(direct[0]) and got[1] is not None
            assert got[1].equals(direct[1])
        return direct

    check()
    assert cache_dir.exists(), "the first read builds the compacted copy"
    folders_read: list[str] = []
    read_day = raw_lake._read_day
    monkeypatch.setattr(
        raw_lake, "_read_day", lambda f, name, s: folders_read.append(name) or read_day(f, name, s)
    )
    raw_lake.read_entity(tmp_path, tenant_id, entity)
    assert folders_read == [], "an up-to-date copy serves every day"
    # rewrite one day, remove another, add a new one: the copy is now stale for those days
    changed = copy.deepcopy(docs[3])
    changed["LineItems"][0]["LineAmount"] = 99.0
    write_entity(tmp_path, tenant_id, entity, [changed])
    removed_day = utc_day(docs[5])
    raw_lake.write_day_partition(tmp_path, tenant_id, entity, removed_day, empty_batch(entity), [])
    early = start - timedelta(days=1)
    write_entity(tmp_path, tenant_id, entity, [invoice_record("late", "1.00", updated=early)])
    folders_read.clear()
    documents, lines = check()
    assert len(set(folders_read)) == 2, "only the rewritten and the new day are read from disk"
    assert "inv-5" not in documents.column("id").to_pylist()
    assert lines is not None and Decimal("99.00") in lines.column("line_amount").to_pylist()
    # a projection reads the same values
    columns = (["id", "updated_at_utc"], ["document_id", "document_row", "line_amount"])
    projected = raw_lake.read_entity(tmp_path, tenant_id, entity, columns=columns)
    assert projected[0].equals(documents.select(columns[0]))
    assert projected[1] is not None and projected[1].equals(lines.select(columns[1]))
    # a corrupt copy is ignored and rebuilt
    (cache_dir / raw_lake.CACHE_LINES).write_bytes(b"garbage")
    check()
    raw_lake.compact_entity(tmp_path, tenant_id, entity)
    assert not [p for p in os.listdir(cache_dir.parent) if p.startswith(".")]


def test_reference_snapshots_round_trip(tmp_path: Path) -> None:
    accounts = [{"AccountID": "a", "Code": "200", "Name": "Sales", "Rate": 0.15}]
    raw_lake.write_reference(tmp_path, "t", "Accounts", accounts)
    assert raw_lake.read_reference(tmp_path, "t", "Accounts") == [
        {"AccountID": "a", "Code": "200", "Name": "Sales", "Rate": Decimal("0.15")}
    ]
    assert raw_lake.read_reference(tmp_path, "t", "TrackingCategories") == []


def test_projected_read_normalizes_to_the_same_tables(synced: Synced) -> None:
    tenant_id = next(iter(synced.tenants))
    raw = {
        entity: raw_lake.read_entity(
            synced.lake, tenant_id, entity, columns=NORMALIZE_COLUMNS[entity]
        )
        for entity in NORMALIZE_COLUMNS
    }
    full = synced.tables[tenant_id]
    reference = Reference(
        organisation=raw_lake.read_reference(synced.lake, tenant_id, "Organisation")[0],
        accounts=raw_lake.read_reference(synced.lake, tenant_id, "Accounts"),
        tracking_categories=raw_lake.read_reference(synced.lake, tenant_id, "TrackingCategories"),
    )
    projected = normalize(tenant_id, raw, reference)
    for name, table in projected.items():
        # fetched_at/updated_at and all values identical; only the read differs
        assert table.equals(full[name]), name


def test_a_line_without_account_stays_unresolved() -> None:
    doc = invoice_record("inv", "10.00", lines=2)
    doc["LineItems"][0]["AccountCode"] = None
    doc["LineItems"][1]["AccountCode"] = "404"  # not in the chart
    reference = Reference(
        organisation=minimal_reference().organisation,
        accounts=[
            *minimal_reference().accounts,
            {"AccountID": "acc-bank", "Name": "Bank without code", "Type": "BANK"},
        ],
    )
    out = normalize("t", {"Invoices": as_raw("Invoices", [doc])}, reference)
    got = [
        (r["account_code"], r["account_id"], r["account_name"])
        for r in rows(out["fct_invoice_lines"])
    ]
    assert got == [(None, None, None), ("404", None, None)]


def test_zero_dates_are_null_and_empty_entities_give_empty_tables() -> None:
    voided = invoice_record("voided", "10.00")
    voided["Status"] = "VOIDED"
    voided["Date"] = "/Date(0+0000)/"
    out = normalize("t", {"Invoices": as_raw("Invoices", [voided])}, minimal_reference())
    row = rows(out["fct_invoice_lines"])[0]
    assert row["document_date"] is None
    assert row["is_voided"] is True and row["is_deleted"] is False
    for name in ("fct_payments", "fct_manual_journal_lines", "dim_contacts"):
        assert out[name].num_rows == 0
        assert out[name].schema.equals(arrow_schema(TABLES[name]))


def test_tracking_slot_follows_category_not_element_order() -> None:
    def option(option_id: str, name: str) -> dict[str, Any]:
        return {"TrackingOptionID": option_id, "Name": name, "Status": "ACTIVE"}

    def element(category_id: str, category: str, option_id: str, name: str) -> dict[str, Any]:
        return {
            "TrackingCategoryID": category_id,
            "TrackingOptionID": option_id,
            "Name": category,
            "Option": name,
        }

    region = {
        "TrackingCategoryID": "cat-r",
        "Name": "Region",
        "Status": "ACTIVE",
        "Options": [option("opt-north", "North")],
    }
    service = {
        "TrackingCategoryID": "cat-s",
        "Name": "Service Line",
        "Status": "ACTIVE",
        "Options": [option("opt-adv", "Advisory")],
    }
    doc = invoice_record("inv", "10.00", lines=3)
    north = element("cat-r", "Region", "opt-north", "North")
    advisory = element("cat-s", "Service Line", "opt-adv", "Advisory")
    stray = element("cat-gone", "Old", "opt-gone", "X")
    doc["LineItems"][0]["Tracking"] = [advisory, north]  # reversed order
    doc["LineItems"][1]["Tracking"] = [advisory]  # only slot 2
    doc["LineItems"][2]["Tracking"] = [stray, advisory]  # a third category: slot 3, no column
    reference = Reference(
        organisation=minimal_reference().organisation,
        accounts=minimal_reference().accounts,
        tracking_categories=[service, region],  # listed out of name order
    )
    out = normalize("t", {"Invoices": as_raw("Invoices", [doc])}, reference)
    got = [
        (r["tracking1_option_name"], r["tracking1_option_id"], r["tracking2_option_name"])
        for r in rows(out["fct_invoice_lines"])
    ]
    assert got == [
        ("North", "opt-north", "Advisory"),
        (None, None, "Advisory"),
        (None, None, "Advisory"),
    ]


# --- contract -------------------------------------------------------------------------------------


def test_docs_schema_md_is_the_render_of_schema_py() -> None:
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert text == render_schema_markdown(), "regenerate docs/schema.md (see its header comment)"
    for spec in TABLES.values():
        assert f"## {spec.name}" in text


def test_every_table_and_column_is_described() -> None:
    for spec in TABLES.values():
        assert spec.description.strip() and spec.grain.strip(), spec.name
        for column in spec.columns:
            assert column.description.strip().endswith("."), (spec.name, column.name)


def test_every_transactional_entity_feeds_its_published_table() -> None:
    for entity in TRANSACTIONAL:
        assert entity.published_table in TABLES, entity.endpoint
        assert entity.endpoint in NORMALIZE_COLUMNS


def test_transform_and_store_never_import_dagster() -> None:
    code = (
        "import sys\n"
        "import xero_tableau.transform.normalize, xero_tableau.transform.raw\n"
        "import xero_tableau.transform.schema, xero_tableau.raw_lake\n"
        "loaded = [m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')]\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_partition_folder_naming(tmp_path: Path) -> None:
    path = raw_lake.partition_dir(tmp_path, "abc", "BankTransactions", date(2026, 1, 2))
    assert path == tmp_path / "tenant=abc" / "raw" / "bank_transactions" / "day=2026-01-02"
