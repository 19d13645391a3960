"""The sandbox generator's promises: deterministic output, the requested size, and books that add
up the way Xero's do (line sums, payments, credits, balanced journals, valid references and
timestamps), so tests and the demo downstream can trust the data they sync.

The datasets are small so the whole module runs in about a second.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from xero_tableau.sandbox.dataset import (
    ENTITIES,
    SandboxDataset,
    TenantData,
    date_string,
    day_ms,
    ms_date,
    parse_ms_date,
    utc_string,
)
from xero_tableau.sandbox.generator import GeneratorConfig, generate

AS_OF = date(2026, 3, 31)
CONFIG = GeneratorConfig(seed=11, tenants=2, invoice_lines=1500, as_of=AS_OF, history_days=400)
AS_OF_END = day_ms(AS_OF) + 86_400_000 - 1
CENT = Decimal("0.01")
LINE_DOCUMENTS = ("Invoices", "CreditNotes", "BankTransactions", "PurchaseOrders")
LINE_DOCUMENTS += ("Overpayments", "Prepayments")
CREDITS = ("CreditNotes", "Overpayments", "Prepayments")  # what can be allocated to an invoice


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def tenants(dataset: SandboxDataset) -> list[TenantData]:
    return list(dataset.tenants.values())


def dec(value: float) -> Decimal:
    """Money as Xero's JSON carries it, read back exactly."""
    return Decimal(str(value))


def values(tenant: TenantData, endpoint: str) -> list[dict]:
    return list(tenant.collections[endpoint].values())


def snapshot(dataset: SandboxDataset) -> dict:
    return {
        tenant_id: {"organisation": t.organisation, "collections": t.collections}
        for tenant_id, t in dataset.tenants.items()
    }


def digest(dataset: SandboxDataset) -> str:
    blob = json.dumps(snapshot(dataset), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


# --- determinism and size ----------------------------------------------------------------------


def test_same_config_gives_identical_data(dataset: SandboxDataset) -> None:
    again = generate(CONFIG)
    assert snapshot(again) == snapshot(dataset)
    assert [t.short_code for t in again.tenants.values()] == [
        t.short_code for t in dataset.tenants.values()
    ]


def test_determinism_survives_a_new_process_with_another_hash_seed(
    dataset: SandboxDataset,
) -> None:
    """Nothing may depend on str hashing or set order: another interpreter must agree."""
    code = (
        "import hashlib, json, datetime\n"
        "from xero_tableau.sandbox.generator import GeneratorConfig, generate\n"
        "d = generate(GeneratorConfig(seed=11, tenants=2, invoice_lines=1500, "
        "as_of=datetime.date(2026, 3, 31), history_days=400))\n"
        "s = {i: {'organisation': t.organisation, 'collections': t.collections}"
        " for i, t in d.tenants.items()}\n"
        "print(hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest())\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == digest(dataset)


def test_another_seed_gives_other_data(dataset: SandboxDataset) -> None:
    other = generate(GeneratorConfig(seed=12, tenants=2, invoice_lines=1500, as_of=AS_OF))
    assert set(other.tenants).isdisjoint(dataset.tenants)
    for a, b in zip(other.tenants.values(), dataset.tenants.values(), strict=True):
        assert set(a.collections["Invoices"]).isdisjoint(b.collections["Invoices"])
        totals_a = [i["Total"] for i in values(a, "Invoices")]
        totals_b = [i["Total"] for i in values(b, "Invoices")]
        assert totals_a != totals_b


def test_invoice_lines_are_exact_and_the_rest_scales(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        invoices = values(tenant, "Invoices")
        assert sum(len(i["LineItems"]) for i in invoices) == CONFIG.invoice_lines
        assert all(1 <= len(i["LineItems"]) <= 6 for i in invoices)
    bigger = next(
        iter(generate(GeneratorConfig(tenants=1, invoice_lines=6000, as_of=AS_OF)).tenants.values())
    )
    small = tenants[0]
    assert bigger.count("Invoices") > 3 * small.count("Invoices")
    for endpoint in ("Payments", "BankTransactions", "PurchaseOrders", "Contacts"):
        assert bigger.count(endpoint) > small.count(endpoint), endpoint
    assert 150 <= bigger.count("Contacts") <= 500  # a few hundred at the default-ish size


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError):
        generate(GeneratorConfig(tenants=0))
    with pytest.raises(ValueError):
        generate(GeneratorConfig(history_days=0))


# --- the organisations -------------------------------------------------------------------------


def test_tenants_are_the_nz_and_uk_firms_with_disjoint_ids(tenants: list[TenantData]) -> None:
    nz, uk = (t.organisation for t in tenants)
    assert (nz["Name"], nz["BaseCurrency"], nz["Timezone"], nz["CountryCode"]) == (
        "Meridian Advisory (NZ)",
        "NZD",
        "NEWZEALANDSTANDARDTIME",
        "NZ",
    )
    assert (uk["Name"], uk["BaseCurrency"], uk["Timezone"]) == (
        "Meridian Advisory (UK)",
        "GBP",
        "GMTSTANDARDTIME",
    )
    for tenant in tenants:
        assert tenant.organisation["OrganisationID"] == tenant.tenant_id
        assert tenant.organisation["ShortCode"] == tenant.short_code != ""
        assert tenant.organisation["IsDemoCompany"] is False
    ids = [
        {rid for endpoint in ENTITIES for rid in t.collections[endpoint]} - _shared_keys(t)
        for t in tenants
    ]
    assert ids[0].isdisjoint(ids[1])
    assert tenants[0].tenant_id != tenants[1].tenant_id


def _shared_keys(tenant: TenantData) -> set[str]:
    """Currency codes and tax types are natural keys, legitimately the same in every org."""
    return set(tenant.collections["Currencies"]) | set(tenant.collections["TaxRates"])


def test_tax_rates_match_each_country(tenants: list[TenantData]) -> None:
    rates = [{r["TaxType"]: r["EffectiveRate"] for r in values(t, "TaxRates")} for t in tenants]
    assert rates[0]["OUTPUT2"] == 15.0
    assert rates[1]["OUTPUT2"] == 20.0


def test_every_id_is_a_version_4_uuid(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        for endpoint, spec in ENTITIES.items():
            if endpoint in ("TaxRates", "Currencies"):
                continue
            for record in tenant.collections[endpoint].values():
                assert uuid.UUID(record[spec.id_field]).version == 4


def test_no_dict_or_list_is_shared_between_records(tenants: list[TenantData]) -> None:
    """The admin API edits records in place, so a shared line or stub would leak edits."""
    for tenant in tenants:
        seen: set[int] = set()
        for endpoint in ENTITIES:
            for record in tenant.collections[endpoint].values():
                for container in _containers(record):
                    assert id(container) not in seen, endpoint
                    seen.add(id(container))


def _containers(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _containers(item)
    elif isinstance(value, list):
        yield value
        for item in value:
            yield from _containers(item)


# --- documents add up --------------------------------------------------------------------------


def test_line_items_and_totals_are_consistent(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        rates = {r["TaxType"]: dec(r["EffectiveRate"]) for r in values(tenant, "TaxRates")}
        for endpoint in LINE_DOCUMENTS:
            for doc in values(tenant, endpoint):
                lines = doc["LineItems"]
                assert lines, (endpoint, doc)
                line_sum = sum((dec(li["LineAmount"]) for li in lines), Decimal(0))
                tax_sum = sum((dec(li["TaxAmount"]) for li in lines), Decimal(0))
                kind = doc["LineAmountTypes"]
                for li in lines:
                    amount, rate = dec(li["LineAmount"]), rates[li["TaxType"]]
                    assert dec(li["Quantity"]) * dec(li["UnitAmount"]) == amount
                    if kind == "Exclusive":
                        expected = amount * rate / 100
                    elif kind == "Inclusive":
                        expected = amount * rate / (100 + rate)
                    else:
                        expected = Decimal(0)
                    tax = dec(li["TaxAmount"])
                    assert tax == expected.quantize(CENT, ROUND_HALF_UP), (endpoint, li)
                assert dec(doc["TotalTax"]) == tax_sum
                if kind == "Inclusive":
                    assert dec(doc["SubTotal"]) == line_sum - tax_sum
                    assert dec(doc["Total"]) == line_sum
                else:
                    assert dec(doc["SubTotal"]) == line_sum
                    assert dec(doc["Total"]) == line_sum + tax_sum
                if kind == "NoTax":
                    assert tax_sum == 0


def test_money_has_at_most_two_decimals(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        for endpoint in (*LINE_DOCUMENTS, "Payments"):
            for doc in values(tenant, endpoint):
                for key in ("Total", "SubTotal", "TotalTax", "Amount", "AmountDue", "BankAmount"):
                    if key in doc:
                        assert dec(doc[key]) == dec(doc[key]).quantize(CENT), (key, doc[key])


def test_payments_and_credits_settle_invoices(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        authorised: dict[str, list[dict]] = {}
        for payment in values(tenant, "Payments"):
            if payment["Status"] == "AUTHORISED":
                authorised.setdefault(payment["Invoice"]["InvoiceID"], []).append(payment)
        allocated: dict[str, Decimal] = {}  # AmountCredited: credit notes, over- and prepayments
        for endpoint in CREDITS:
            for note in values(tenant, endpoint):
                for allocation in note["Allocations"]:
                    key = allocation["Invoice"]["InvoiceID"]
                    allocated[key] = allocated.get(key, Decimal(0)) + dec(allocation["Amount"])
        for invoice in values(tenant, "Invoices"):
            payments = authorised.get(invoice["InvoiceID"], [])
            paid = sum((dec(p["Amount"]) for p in payments), Decimal(0))
            assert dec(invoice["AmountPaid"]) == paid
            assert {p["PaymentID"] for p in invoice["Payments"]} == {
                p["PaymentID"] for p in payments
            }
            assert dec(invoice["AmountCredited"]) == allocated.get(invoice["InvoiceID"], 0)
            due = dec(invoice["Total"]) - paid - dec(invoice["AmountCredited"])
            assert dec(invoice["AmountDue"]) == due >= 0
            if invoice["Status"] == "PAID":
                assert due == 0 and "FullyPaidOnDate" in invoice
            if invoice["Status"] in ("DRAFT", "SUBMITTED", "VOIDED", "DELETED"):
                assert not payments and not invoice["CreditNotes"]
            invoice_date = parse_ms_date(invoice["Date"])
            for payment in payments:
                assert invoice_date <= parse_ms_date(payment["Date"]) <= AS_OF_END
                assert payment["Invoice"]["Type"] == invoice["Type"]
                assert payment["PaymentType"] == (
                    "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT"
                )
                bank = dec(payment["Amount"]) / dec(payment["CurrencyRate"])
                assert abs(dec(payment["BankAmount"]) - bank) <= CENT


def test_allocated_credit_notes_are_used_up(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        for note in values(tenant, "CreditNotes"):
            applied = sum((dec(a["Amount"]) for a in note["Allocations"]), Decimal(0))
            if note["Status"] == "PAID":
                assert applied == dec(note["Total"]) and dec(note["RemainingCredit"]) == 0
            elif note["Status"] in ("AUTHORISED", "DRAFT", "SUBMITTED"):
                assert dec(note["RemainingCredit"]) == dec(note["Total"]) - applied


def test_manual_journals_balance(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        for journal in values(tenant, "ManualJournals"):
            amounts = [dec(line["LineAmount"]) for line in journal["JournalLines"]]
            assert len(amounts) >= 2 and sum(amounts) == 0, journal["Narration"]
            assert any(a > 0 for a in amounts) and any(a < 0 for a in amounts)


# --- references --------------------------------------------------------------------------------


def _lines(tenant: TenantData) -> Iterator[tuple[str, dict]]:
    for endpoint in LINE_DOCUMENTS:
        for doc in values(tenant, endpoint):
            for line in doc["LineItems"]:
                yield endpoint, line
    for journal in values(tenant, "ManualJournals"):
        for line in journal["JournalLines"]:
            yield "ManualJournals", line


def test_lines_reference_existing_accounts_and_tracking_options(
    tenants: list[TenantData],
) -> None:
    for tenant in tenants:
        accounts = {a["Code"]: a for a in values(tenant, "Accounts")}
        options = {
            (c["TrackingCategoryID"], o["TrackingOptionID"]): (c["Name"], o["Name"])
            for c in values(tenant, "TrackingCategories")
            for o in c["Options"]
        }
        tax_types = set(tenant.collections["TaxRates"])
        for endpoint, line in _lines(tenant):
            account = accounts[line["AccountCode"]]
            assert line["AccountID"] == account["AccountID"], endpoint
            assert line["TaxType"] in tax_types
            tracking = line["Tracking"]
            assert len(tracking) <= 2
            assert len({t["TrackingCategoryID"] for t in tracking}) == len(tracking)
            for element in tracking:
                key = (element["TrackingCategoryID"], element["TrackingOptionID"])
                assert options[key] == (element["Name"], element["Option"])


def test_chart_of_accounts_is_coherent(tenants: list[TenantData]) -> None:
    classes = {"BANK": "ASSET", "REVENUE": "REVENUE", "DIRECTCOSTS": "EXPENSE", "EQUITY": "EQUITY"}
    for tenant in tenants:
        accounts = {a["Code"]: a for a in values(tenant, "Accounts")}
        assert accounts["090"]["Type"] == "BANK" and accounts["090"]["BankAccountType"] == "BANK"
        assert accounts["610"]["SystemAccount"] == "DEBTORS"
        assert accounts["800"]["SystemAccount"] == "CREDITORS"
        assert sum(a["Status"] == "ARCHIVED" for a in accounts.values()) == 1
        for account in accounts.values():
            if account["Type"] in classes:
                assert account["Class"] == classes[account["Type"]]
        used = {line["AccountCode"] for _, line in _lines(tenant)}
        assert {"200", "210", "220", "310"} <= used


def test_documents_reference_existing_contacts_and_bank_accounts(
    tenants: list[TenantData],
) -> None:
    for tenant in tenants:
        contacts = {c["ContactID"]: c["Name"] for c in values(tenant, "Contacts")}
        assert len(set(contacts.values())) == len(contacts)  # names are unique
        accounts = {a["AccountID"]: a for a in values(tenant, "Accounts")}
        for endpoint in LINE_DOCUMENTS:
            for doc in values(tenant, endpoint):
                assert contacts[doc["Contact"]["ContactID"]] == doc["Contact"]["Name"]
        for payment in values(tenant, "Payments"):
            account = accounts[payment["Account"]["AccountID"]]
            assert account["Type"] == "BANK" and account["Code"] == payment["Account"]["Code"]
            invoice = tenant.get("Invoices", payment["Invoice"]["InvoiceID"])
            assert invoice is not None
            assert payment["Invoice"]["InvoiceNumber"] == invoice["InvoiceNumber"]
        for txn in values(tenant, "BankTransactions"):
            assert accounts[txn["BankAccount"]["AccountID"]]["Type"] == "BANK"


def test_customer_and_supplier_roles(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        contacts = {c["ContactID"]: c for c in values(tenant, "Contacts")}
        statuses = Counter(c["ContactStatus"] for c in contacts.values())
        assert statuses["ACTIVE"] > 0 and statuses["ARCHIVED"] > 0
        for invoice in values(tenant, "Invoices"):
            contact = contacts[invoice["Contact"]["ContactID"]]
            role = "IsCustomer" if invoice["Type"] == "ACCREC" else "IsSupplier"
            assert contact[role], invoice["InvoiceNumber"]
            if "DefaultCurrency" in contact:
                assert invoice["CurrencyCode"] == contact["DefaultCurrency"]


# --- dates -------------------------------------------------------------------------------------


def test_instants_are_ordered_and_well_formed(tenants: list[TenantData]) -> None:
    first_day = day_ms(AS_OF - timedelta(days=CONFIG.history_days - 1))
    for tenant in tenants:
        for endpoint in ENTITIES:
            for record, updated, when in tenant.records(endpoint):
                if "UpdatedDateUTC" not in record:
                    continue
                assert updated <= AS_OF_END, endpoint
                if when:
                    assert first_day <= when <= updated, (endpoint, record)
                    assert when % 86_400_000 == 0  # date-only: midnight UTC
                if "UpdatedDateUTCString" in record:
                    assert record["UpdatedDateUTCString"] == utc_string(updated)
                if "DateString" in record:
                    assert record["DateString"] == date_string(
                        date(1970, 1, 1) + timedelta(milliseconds=when)
                    )
                for key in ("DueDate", "DeliveryDate", "FullyPaidOnDate"):
                    if key in record:
                        assert parse_ms_date(record[key]) >= when
        assert ms_date(0) == "/Date(0+0000)/"


def test_default_as_of_is_today_and_nothing_is_in_the_future() -> None:
    """Xero never serves a future UpdatedDateUTC; a connector's watermark would skip changes."""
    dataset = generate(GeneratorConfig(tenants=1, invoice_lines=300))
    now_ms = int(time.time() * 1000)
    tenant = next(iter(dataset.tenants.values()))
    latest = max(u for endpoint in ENTITIES for _, u, _ in tenant.records(endpoint))
    assert now_ms - 86_400_000 < latest <= now_ms


def test_updates_cover_most_days_and_grow_towards_the_present(
    tenants: list[TenantData],
) -> None:
    tenant = tenants[0]
    days = Counter(
        (AS_OF_END - updated) // 86_400_000
        for endpoint in ENTITIES
        for _, updated, _ in tenant.records(endpoint)
        if updated
    )
    history = CONFIG.history_days
    assert sum(1 for ago in range(history) if days[ago]) > 0.75 * history
    recent = sum(days[ago] for ago in range(history // 4))
    early = sum(days[ago] for ago in range(history - history // 4, history))
    assert recent > early
    sub_second = Counter(updated % 1000 for _, updated, _ in tenant.records("Invoices"))
    assert len(sub_second) > 100  # milliseconds vary


def test_invoice_numbers_follow_dates(tenants: list[TenantData]) -> None:
    for tenant in tenants:
        sales = sorted(
            (i["InvoiceNumber"], parse_ms_date(i["Date"]))
            for i in values(tenant, "Invoices")
            if i["Type"] == "ACCREC"
        )
        assert sales[0][0] == "INV-00001"
        assert len({number for number, _ in sales}) == len(sales)
        assert [when for _, when in sales] == sorted(when for _, when in sales)


# --- variety a connector must cope with --------------------------------------------------------


def test_statuses_and_currencies_are_varied(tenants: list[TenantData]) -> None:
    seen = Counter((i["Type"], i["Status"]) for t in tenants for i in values(t, "Invoices"))
    for type_ in ("ACCREC", "ACCPAY"):
        for status in ("AUTHORISED", "PAID", "VOIDED", "DELETED"):
            assert seen[(type_, status)] > 0, (type_, status)
    assert seen[("ACCREC", "DRAFT")] + seen[("ACCPAY", "DRAFT")] > 0
    assert seen[("ACCREC", "SUBMITTED")] + seen[("ACCPAY", "SUBMITTED")] > 0
    assert seen[("ACCREC", "PAID")] > 10 * seen[("ACCREC", "VOIDED")]
    for tenant in tenants:
        invoices = values(tenant, "Invoices")
        base = tenant.organisation["BaseCurrency"]
        foreign = [i for i in invoices if i["CurrencyCode"] != base]
        assert 0.04 * len(invoices) < len(foreign) < 0.25 * len(invoices)
        assert all(i["CurrencyRate"] != 1.0 for i in foreign)
        assert all(i["CurrencyRate"] == 1.0 for i in invoices if i["CurrencyCode"] == base)
        assert {i["LineAmountTypes"] for i in invoices} == {"Exclusive", "Inclusive", "NoTax"}
        partly_paid = [i for i in invoices if i["AmountPaid"] and i["AmountDue"]]
        assert partly_paid and all(i["Status"] == "AUTHORISED" for i in partly_paid)
        assert any(len(i["Payments"]) > 1 for i in invoices)
        assert any(i["AmountCredited"] for i in invoices)
        assert any(p["Status"] == "DELETED" for p in values(tenant, "Payments"))
        credit_types = Counter((c["Type"], c["Status"]) for c in values(tenant, "CreditNotes"))
        assert {t for t, _ in credit_types} == {"ACCRECCREDIT", "ACCPAYCREDIT"}
        assert {s for _, s in credit_types} >= {"PAID", "AUTHORISED", "VOIDED"}
        # spend and receive money, and the cash side of every over- and prepayment (as Xero
        # lists them); no transfers
        assert {t["Type"] for t in values(tenant, "BankTransactions")} == {
            "SPEND", "RECEIVE", "RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT", "RECEIVE-PREPAYMENT",
            "SPEND-PREPAYMENT",
        }  # fmt: skip
        assert {j["Status"] for j in values(tenant, "ManualJournals")} >= {"POSTED"}


def test_purchase_orders_move_through_their_statuses(tenants: list[TenantData]) -> None:
    orders = Counter(o["Status"] for t in tenants for o in values(t, "PurchaseOrders"))
    assert orders.most_common(1)[0][0] == "BILLED" and len(orders) >= 3
    for tenant in tenants:
        numbers = [o["PurchaseOrderNumber"] for o in values(tenant, "PurchaseOrders")]
        assert len(set(numbers)) == len(numbers)


def test_tracking_is_usually_filled_and_uses_the_archived_option(
    tenants: list[TenantData],
) -> None:
    for tenant in tenants:
        sales_lines = [
            line
            for i in values(tenant, "Invoices")
            if i["Type"] == "ACCREC"
            for line in i["LineItems"]
        ]
        counts = Counter(len(line["Tracking"]) for line in sales_lines)
        assert counts[2] > 0.6 * len(sales_lines) and counts[0] > 0
        archived = {
            o["TrackingOptionID"]
            for c in values(tenant, "TrackingCategories")
            for o in c["Options"]
            if o["Status"] == "ARCHIVED"
        }
        assert len(archived) == 1
        used = {t["TrackingOptionID"] for line in sales_lines for t in line["Tracking"]}
        assert archived <= used  # old work still points at the archived option
