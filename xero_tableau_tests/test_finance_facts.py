"""fct_invoices, fct_credit_notes and fct_bank_balances end to end: sandbox records flattened into
the raw lake per UTC day, read back and normalized, then checked against figures computed
independently from the raw Xero JSON (``Decimal(str(x))``); hand-written Xero records for what
the sandbox does not generate (foreign-currency bank accounts, refunds, transfers, over- and
prepayment receipts, an expected payment date); and a property test of the pure
``bank_balances`` function on random movements.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pa_compute
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xero_tableau import raw_lake
from xero_tableau.sandbox.dataset import TenantData, ms_date
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.store import db, watermarks
from xero_tableau.tenant_tables import build_tenant_tables
from xero_tableau.transform.balances import BALANCE_SCHEMA, MOVEMENT_SCHEMA, bank_balances
from xero_tableau.transform.changes import diff_documents, document_fingerprints, document_key
from xero_tableau.transform.checks import CheckInputs, checks_for
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
from xero_tableau.transform.raw import flatten
from xero_tableau.transform.schema import TABLES, arrow_schema
from xero_tableau.xero.dates import parse_xero_datetime, xero_timezone_to_iana
from xero_tableau_tests.test_transform import (
    FETCHED,
    Synced,
    base,
    dec,
    sync_into_lake,
)

CONFIG = GeneratorConfig(
    seed=8, tenants=2, invoice_lines=2000, as_of=date(2026, 2, 28), history_days=240
)
NEW = ("fct_invoices", "fct_credit_notes", "fct_bank_balances")
# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute
PAYMENTS_IN = {"ACCRECPAYMENT", "APCREDITPAYMENT", "APOVERPAYMENTPAYMENT", "APPREPAYMENTPAYMENT"}
PAYMENTS_OUT = {"ACCPAYPAYMENT", "ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT"}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Synced:
    return sync_into_lake(CONFIG, tmp_path_factory.mktemp("finance-lake"))


def records(tenant: TenantData, entity: str) -> list[dict[str, Any]]:
    return list(tenant.collections[entity].values())


def by_id(table: pa.Table, column: str) -> dict[str, dict[str, Any]]:
    out = {row[column]: row for row in table.to_pylist()}
    assert len(out) == table.num_rows, "one row per record"
    return out


def day_of(value: str | None) -> date | None:
    return None if value is None else parse_xero_datetime(value).date()


def sync_date(tenant: TenantData, moment: datetime = FETCHED) -> date:
    return moment.astimezone(xero_timezone_to_iana(tenant.organisation["Timezone"])).date()


# --- fct_invoices ---------------------------------------------------------------------------------


def test_the_new_tables_have_their_schema_and_one_row_per_document(synced: Synced) -> None:
    for tenant_id, tenant in synced.tenants.items():
        tables = synced.tables[tenant_id]
        for name in NEW:
            assert tables[name].schema.equals(arrow_schema(TABLES[name])), name
            assert tables[name].num_rows, name
            assert set(tables[name].column("tenant_id").to_pylist()) == {tenant_id}
        invoices = by_id(tables["fct_invoices"], "invoice_id")
        assert set(invoices) == {i["InvoiceID"] for i in records(tenant, "Invoices")}
        notes = by_id(tables["fct_credit_notes"], "credit_note_id")
        assert set(notes) == {c["CreditNoteID"] for c in records(tenant, "CreditNotes")}
    assert document_key("fct_invoices") == ("tenant_id", "invoice_id")
    assert document_key("fct_credit_notes") == ("tenant_id", "credit_note_id")
    # a bank account's days are one document: the incremental publish replaces them together
    assert document_key("fct_bank_balances") == ("tenant_id", "bank_account_id")


def test_invoice_amount_due_is_xeros_and_total_less_paid_and_credited(synced: Synced) -> None:
    kinds: set[tuple[str, str]] = set()
    for tenant_id, tenant in synced.tenants.items():
        rows = by_id(synced.tables[tenant_id]["fct_invoices"], "invoice_id")
        for doc in records(tenant, "Invoices"):
            row = rows[doc["InvoiceID"]]
            assert row["amount_due"] == dec(doc["AmountDue"])
            assert row["amount_paid"] == dec(doc["AmountPaid"])
            assert row["amount_credited"] == dec(doc["AmountCredited"])
            assert row["gross_amount"] == dec(doc["Total"])
            assert row["net_amount"] == dec(doc["SubTotal"])
            assert row["tax_amount"] == dec(doc["TotalTax"])
            assert row["amount_due"] == (
                row["gross_amount"] - row["amount_paid"] - row["amount_credited"]
            )
            # independently of AmountPaid: the live payments of the invoice in /Payments
            paid = sum(
                (
                    dec(p["Amount"])
                    for p in records(tenant, "Payments")
                    if p["Invoice"]["InvoiceID"] == doc["InvoiceID"] and p["Status"] != "DELETED"
                ),
                Decimal(0),
            )
            assert row["amount_paid"] == paid
            kinds.add((row["status"], row["document_kind"]))
    # voided and deleted documents stay, flagged, as in fct_invoice_lines
    assert {s for s, _ in kinds} >= {"AUTHORISED", "PAID", "VOIDED", "DELETED", "DRAFT"}
    assert {k for _, k in kinds} == {"invoice", "bill"}


def test_invoice_header_and_dates_follow_the_record(synced: Synced) -> None:
    for tenant_id, tenant in synced.tenants.items():
        rows = by_id(synced.tables[tenant_id]["fct_invoices"], "invoice_id")
        contacts = {c["ContactID"]: c["Name"] for c in records(tenant, "Contacts")}
        lines = synced.tables[tenant_id]["fct_invoice_lines"].to_pylist()
        line_of = {line["invoice_id"]: line for line in lines}
        for doc in records(tenant, "Invoices"):
            row = rows[doc["InvoiceID"]]
            assert row["invoice_type"] == doc["Type"]
            assert row["document_kind"] == {"ACCREC": "invoice", "ACCPAY": "bill"}[doc["Type"]]
            assert row["invoice_number"] == doc["InvoiceNumber"]
            assert row["reference"] == doc["Reference"]
            assert row["contact_id"] == doc["Contact"]["ContactID"]
            assert row["contact_name"] == contacts[doc["Contact"]["ContactID"]]
            assert row["status"] == doc["Status"]
            assert row["is_voided"] == (doc["Status"] == "VOIDED")
            assert row["is_deleted"] == (doc["Status"] == "DELETED")
            assert row["document_date"] == day_of(doc["Date"])
            assert row["due_date"] == day_of(doc["DueDate"])
            assert row["fully_paid_on_date"] == day_of(doc.get("FullyPaidOnDate"))
            assert (row["fully_paid_on_date"] is not None) == (doc["Status"] == "PAID")
            assert row["updated_at_utc"] == parse_xero_datetime(doc["UpdatedDateUTC"])
            assert row["fetched_at_utc"] == FETCHED
            assert row["currency_code"] == doc["CurrencyCode"]
            assert row["base_currency_code"] == tenant.organisation["BaseCurrency"]
            # the same document-level values and provenance as its lines
            line = line_of.get(doc["InvoiceID"])
            if line is not None:
                for name in ("updated_date_local", "synced_at_utc", "sync_source", "due_date"):
                    assert row[name] == line[name], name


def test_base_amounts_use_the_documents_rate(synced: Synced) -> None:
    foreign = 0
    for tenant_id, tenant in synced.tenants.items():
        invoices = by_id(synced.tables[tenant_id]["fct_invoices"], "invoice_id")
        for doc in records(tenant, "Invoices"):
            row, rate = invoices[doc["InvoiceID"]], doc["CurrencyRate"]
            assert row["currency_rate"] == dec(rate)
            for column, field in (
                ("net_amount", "SubTotal"),
                ("tax_amount", "TotalTax"),
                ("gross_amount", "Total"),
                ("amount_due", "AmountDue"),
                ("amount_paid", "AmountPaid"),
                ("amount_credited", "AmountCredited"),
            ):
                assert row[f"{column}_base"] == base(dec(doc[field]), rate), column
            if dec(rate) != 1 and dec(doc["Total"]):
                foreign += 1
                assert row["gross_amount_base"] != row["gross_amount"]
        notes = by_id(synced.tables[tenant_id]["fct_credit_notes"], "credit_note_id")
        for doc in records(tenant, "CreditNotes"):
            row, rate = notes[doc["CreditNoteID"]], doc["CurrencyRate"]
            assert row["gross_amount_base"] == base(dec(doc["Total"]), rate)
            assert row["remaining_credit_base"] == base(dec(doc["RemainingCredit"]), rate)
    assert foreign


# --- fct_credit_notes -----------------------------------------------------------------------------


def test_credit_notes_remaining_and_allocated(synced: Synced) -> None:
    seen = defaultdict(int)
    for tenant_id, tenant in synced.tenants.items():
        rows = by_id(synced.tables[tenant_id]["fct_credit_notes"], "credit_note_id")
        for doc in records(tenant, "CreditNotes"):
            row = rows[doc["CreditNoteID"]]
            live = [a for a in doc["Allocations"] if not a.get("IsDeleted")]
            assert row["credit_note_type"] == doc["Type"]
            assert (
                row["document_kind"]
                == {
                    "ACCRECCREDIT": "sales_credit",
                    "ACCPAYCREDIT": "purchase_credit",
                }[doc["Type"]]
            )
            assert row["credit_note_number"] == doc["CreditNoteNumber"]
            assert row["remaining_credit"] == dec(doc["RemainingCredit"])
            assert row["allocated_amount"] == sum((dec(a["Amount"]) for a in live), Decimal(0))
            assert row["allocation_count"] == len(live)
            assert row["gross_amount"] == dec(doc["Total"])
            if row["status"] in ("AUTHORISED", "PAID"):
                # nothing is refunded in the sandbox: what is not allocated is left
                assert row["remaining_credit"] == row["gross_amount"] - row["allocated_amount"]
            seen[row["status"]] += 1
            seen["allocated"] += bool(live)
    assert seen["PAID"] and seen["AUTHORISED"] and seen["VOIDED"] and seen["allocated"]


def test_what_a_contact_owes_from_the_published_tables(synced: Synced) -> None:
    """The documented formula (docs/schema.md, "What a contact owes") on the published tables
    equals the money view of the raw records: invoice totals, less the live payments in
    /Payments, less every credit given (credit notes, over- and prepayments), per contact and
    currency. Allocations move an amount from a document's credit to an invoice's AmountDue,
    so they cancel out of the second view, which never looks at AmountDue or RemainingCredit."""
    checked = 0
    for tenant_id, tenant in synced.tenants.items():
        tables = synced.tables[tenant_id]
        published: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for row in tables["fct_invoices"].to_pylist():
            if row["status"] == "AUTHORISED":
                side = "customer" if row["document_kind"] == "invoice" else "supplier"
                published[(side, row["contact_id"], row["currency_code"])] += row["amount_due"]
        for row in tables["fct_credit_notes"].to_pylist():
            if row["status"] == "AUTHORISED":
                side = "customer" if row["document_kind"] == "sales_credit" else "supplier"
                key = (side, row["contact_id"], row["currency_code"])
                published[key] -= row["remaining_credit"]
        for name in ("fct_overpayments", "fct_prepayments"):
            for row in tables[name].to_pylist():
                if row["status"] == "AUTHORISED":
                    side = "customer" if row["document_kind"] == "received" else "supplier"
                    key = (side, row["contact_id"], row["currency_code"])
                    published[key] -= row["remaining_credit"]

        expected: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        paid: dict[str, Decimal] = defaultdict(Decimal)
        for payment in records(tenant, "Payments"):
            if payment["Status"] == "AUTHORISED":
                paid[payment["Invoice"]["InvoiceID"]] += dec(payment["Amount"])
        for doc in records(tenant, "Invoices"):
            if doc["Status"] in ("AUTHORISED", "PAID"):
                side = "customer" if doc["Type"] == "ACCREC" else "supplier"
                key = (side, doc["Contact"]["ContactID"], doc["CurrencyCode"])
                expected[key] += dec(doc["Total"]) - paid[doc["InvoiceID"]]
        credits = [
            (d, d["Type"] == "ACCRECCREDIT")
            for d in records(tenant, "CreditNotes")
            if d["Status"] in ("AUTHORISED", "PAID")
        ]
        for entity in ("Overpayments", "Prepayments"):
            credits += [
                (d, d["Type"].startswith("RECEIVE"))
                for d in records(tenant, entity)
                if d["Status"] in ("AUTHORISED", "PAID")
            ]
        for doc, customer in credits:
            key = ("customer" if customer else "supplier", doc["Contact"]["ContactID"])
            expected[(*key, doc["CurrencyCode"])] -= dec(doc["Total"])

        def nonzero(figures: dict[tuple[str, str, str], Decimal]) -> dict:
            return {k: v for k, v in figures.items() if v}

        assert nonzero(published) == nonzero(expected)
        checked += len(nonzero(expected))
    assert checked


# --- fct_bank_balances ----------------------------------------------------------------------------


def bank_side(tenant: TenantData) -> dict[tuple[str, date], list[Decimal]]:
    """(bank account, document date) -> the signed bank-side amounts of the live documents
    that moved money there, from the raw JSON."""
    banks = {a["AccountID"] for a in records(tenant, "Accounts") if a["Type"] == "BANK"}
    out: dict[tuple[str, date], list[Decimal]] = defaultdict(list)
    for payment in records(tenant, "Payments"):
        account = payment["Account"]["AccountID"]
        if payment["Status"] != "AUTHORISED" or account not in banks:
            continue
        sign = 1 if payment["PaymentType"] in PAYMENTS_IN else -1
        assert payment["PaymentType"] in PAYMENTS_IN | PAYMENTS_OUT
        day = day_of(payment["Date"])
        assert day is not None
        out[(account, day)].append(sign * dec(payment["BankAmount"]))
    for doc in records(tenant, "BankTransactions"):
        if doc["Status"] != "AUTHORISED":
            continue
        sign = 1 if doc["Type"].startswith("RECEIVE") else -1
        day = day_of(doc["Date"])
        assert day is not None
        account = doc["BankAccount"]["AccountID"]
        amount = in_account_currency(tenant, account, doc, dec(doc["Total"]))
        out[(account, day)].append(sign * amount)
    return out


def in_account_currency(tenant: TenantData, account: str, doc: dict, amount: Decimal) -> Decimal:
    """``amount`` of a bank transaction in its bank account's currency: Xero lets an overpayment
    (the cash side of one, in /BankTransactions) be raised in another currency than its bank
    account's, with no BankAmount: the base-currency account then moves amount / CurrencyRate."""
    base_currency = tenant.organisation["BaseCurrency"]
    banks = {a["AccountID"]: a for a in records(tenant, "Accounts") if a["Type"] == "BANK"}
    currency = banks[account].get("CurrencyCode", base_currency)
    if doc.get("CurrencyCode", currency) == currency:
        return amount
    assert currency == base_currency, "the sandbox's bank accounts are in base currency"
    return base(amount, doc["CurrencyRate"])


def balances_by_account(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        out[row["bank_account_id"]].append(row)
    return out


def test_bank_movements_sum_to_the_documents_bank_side_amounts(synced: Synced) -> None:
    for tenant_id, tenant in synced.tenants.items():
        expected = bank_side(tenant)
        table = synced.tables[tenant_id]["fct_bank_balances"]
        got = {(r["bank_account_id"], r["balance_date"]): r for r in table.to_pylist()}
        for key, amounts in expected.items():
            row = got[key]
            assert row["money_in"] == sum((a for a in amounts if a > 0), Decimal(0)), key
            assert row["money_out"] == -sum((a for a in amounts if a < 0), Decimal(0)), key
            assert row["movement_count"] == len(amounts), key
        quiet = [r for k, r in got.items() if k not in expected]
        assert quiet and all(
            r["money_in"] == r["money_out"] == 0 and r["movement_count"] == 0 for r in quiet
        )
        per_account: dict[str, Decimal] = defaultdict(Decimal)
        for (account, _day), amounts in expected.items():
            per_account[account] += sum(amounts, Decimal(0))
        for account, rows in balances_by_account(table).items():
            net = sum((r["money_in"] - r["money_out"] for r in rows), Decimal(0))
            assert net == per_account[account] == rows[-1]["closing_balance"], account
        assert len(per_account) >= 2, "both sandbox bank accounts move money"


ADVANCE_CASH = {
    "RECEIVE-OVERPAYMENT": "OverpaymentID",
    "SPEND-OVERPAYMENT": "OverpaymentID",
    "RECEIVE-PREPAYMENT": "PrepaymentID",
    "SPEND-PREPAYMENT": "PrepaymentID",
}


def test_bank_balances_count_overpayment_and_prepayment_cash_once(synced: Synced) -> None:
    """Xero lists the cash side of every overpayment and prepayment in /BankTransactions: the
    balances hold each live one's money exactly once (computed here from the /Overpayments and
    /Prepayments documents, on the account their bank transaction names), beside payments and
    spend and receive money; a voided one moves nothing."""
    foreign = 0
    for tenant_id, tenant in synced.tenants.items():
        table = synced.tables[tenant_id]["fct_bank_balances"]
        cash = {
            doc[ADVANCE_CASH[doc["Type"]]]: doc
            for doc in records(tenant, "BankTransactions")
            if doc["Type"] in ADVANCE_CASH
        }
        per_account: dict[str, Decimal] = defaultdict(Decimal)
        advances = 0
        for entity, id_field in (
            ("Overpayments", "OverpaymentID"),
            ("Prepayments", "PrepaymentID"),
        ):
            for doc in records(tenant, entity):
                account = cash[doc[id_field]]["BankAccount"]["AccountID"]
                if doc["Status"] == "VOIDED":
                    continue
                sign = 1 if doc["Type"].startswith("RECEIVE") else -1
                amount = in_account_currency(tenant, account, doc, dec(doc["Total"]))
                foreign += amount != dec(doc["Total"])
                per_account[account] += sign * amount
                advances += 1
        assert advances >= 10
        banks = {a["AccountID"] for a in records(tenant, "Accounts") if a["Type"] == "BANK"}
        for payment in records(tenant, "Payments"):
            account = payment["Account"]["AccountID"]
            if payment["Status"] == "AUTHORISED" and account in banks:
                sign = 1 if payment["PaymentType"] in PAYMENTS_IN else -1
                per_account[account] += sign * dec(payment["BankAmount"])
        for doc in records(tenant, "BankTransactions"):
            if doc["Status"] == "AUTHORISED" and doc["Type"] in ("RECEIVE", "SPEND"):
                sign = 1 if doc["Type"] == "RECEIVE" else -1
                per_account[doc["BankAccount"]["AccountID"]] += sign * dec(doc["Total"])
        closing = {
            account: rows[-1]["closing_balance"]
            for account, rows in balances_by_account(table).items()
        }
        assert closing == dict(per_account)
    assert foreign, "no advance in another currency than its bank account's"


def test_balances_roll_forward_over_dense_days_to_the_sync_date(synced: Synced) -> None:
    for tenant_id, tenant in synced.tenants.items():
        table = synced.tables[tenant_id]["fct_bank_balances"]
        expected = bank_side(tenant)
        accounts = {a["AccountID"]: a for a in records(tenant, "Accounts")}
        for account, rows in balances_by_account(table).items():
            first = min(day for (a, day) in expected if a == account)
            days = [r["balance_date"] for r in rows]
            assert days[0] == first
            assert days[-1] == sync_date(tenant) > max(d for (a, d) in expected if a == account)
            assert days == [first + timedelta(days=i) for i in range(len(days))], "dense"
            assert rows[0]["opening_balance"] == rows[0]["opening_balance_base"] == 0
            for row in rows:
                assert (
                    row["opening_balance"] + row["money_in"] - row["money_out"]
                    == row["closing_balance"]
                )
                assert (
                    row["opening_balance_base"] + row["money_in_base"] - row["money_out_base"]
                    == row["closing_balance_base"]
                )
                # the sandbox's bank accounts are in base currency
                assert row["closing_balance_base"] == row["closing_balance"]
                assert row["currency_code"] == tenant.organisation["BaseCurrency"]
                assert row["bank_account_code"] == accounts[account]["Code"]
                assert row["bank_account_name"] == accounts[account]["Name"]
                assert row["bank_account_type"] == "BANK"
            for before, after in pairwise(rows):
                assert before["closing_balance"] == after["opening_balance"]
                assert before["closing_balance_base"] == after["opening_balance_base"]


def test_balance_provenance_is_the_latest_read_of_the_movements_so_far(synced: Synced) -> None:
    for tenant_id in synced.tenants:
        table = synced.tables[tenant_id]["fct_bank_balances"]
        assert set(table.column("synced_at_utc").to_pylist()) == {FETCHED}
        assert table.column("synced_at_utc").null_count == 0


def test_the_new_tables_pass_their_data_checks(synced: Synced) -> None:
    for tenant_id, tables in synced.tables.items():
        documents = {
            entity: raw_lake.read_entity(synced.lake, tenant_id, entity)[0]
            for entity in NORMALIZE_COLUMNS
        }
        inputs = CheckInputs(tenant_id, documents)
        for name in NEW:
            applied = checks_for(name)
            assert {c.name for c in applied} >= {"unique_keys", "single_tenant"}
            for check in applied:
                outcome = check.run(name, tables[name], inputs)
                assert outcome.passed, (name, check.name, outcome)


# --- hand-written records: what the sandbox does not generate ------------------------------------

ORG = {
    "OrganisationID": "org",
    "Name": "Books Ltd",
    "BaseCurrency": "NZD",
    "Timezone": "NEWZEALANDSTANDARDTIME",
}
NZD_BANK, USD_BANK, CLEARING = "bank-nzd", "bank-usd", "clearing"
ACCOUNTS = [
    {"AccountID": NZD_BANK, "Code": "090", "Name": "Cheque", "Type": "BANK", "Class": "ASSET",
     "Status": "ACTIVE", "BankAccountType": "BANK", "CurrencyCode": "NZD"},
    {"AccountID": USD_BANK, "Code": "091", "Name": "USD account", "Type": "BANK",
     "Class": "ASSET", "Status": "ACTIVE", "BankAccountType": "BANK", "CurrencyCode": "USD"},
    {"AccountID": CLEARING, "Code": "850", "Name": "Clearing", "Type": "CURRLIAB",
     "Class": "LIABILITY", "Status": "ACTIVE", "EnablePaymentsToAccount": True},
]  # fmt: skip
READ = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 2026-03-10 14:00 in Auckland


def ms(day: date) -> str:
    return ms_date(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000))


def bank_transaction(
    tid: str, type_: str, account: str, day: date, total: str, **extra: Any
) -> dict[str, Any]:
    currency = "USD" if account == USD_BANK else "NZD"
    return {
        "BankTransactionID": tid,
        "Type": type_,
        "Status": "AUTHORISED",
        "BankAccount": {"AccountID": account},
        "Contact": {"ContactID": "c-1", "Name": "Someone"},
        "Date": ms(day),
        "LineAmountTypes": "NoTax",
        "LineItems": [
            {"Description": "x", "Quantity": 1, "UnitAmount": float(total),
             "LineAmount": float(total), "AccountCode": "850", "TaxAmount": 0.0}
        ],
        "SubTotal": float(total),
        "TotalTax": 0.0,
        "Total": float(total),
        "CurrencyCode": currency,
        "UpdatedDateUTC": ms(day),
        **extra,
    }  # fmt: skip


def payment(
    pid: str, type_: str, account: str, day: date, amount: str, bank_amount: str, **extra: Any
) -> dict[str, Any]:
    return {
        "PaymentID": pid,
        "PaymentType": type_,
        "Status": "AUTHORISED",
        "Date": ms(day),
        "Amount": float(amount),
        "BankAmount": float(bank_amount),
        "Account": {"AccountID": account},
        "UpdatedDateUTC": ms(day),
        **extra,
    }


D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 4), date(2026, 3, 7)
TRANSACTIONS = [
    bank_transaction("bt-receive", "RECEIVE", NZD_BANK, D1, "100.00"),
    bank_transaction("bt-over", "RECEIVE-OVERPAYMENT", NZD_BANK, D1, "20.00"),
    bank_transaction("bt-prepay-out", "SPEND-PREPAYMENT", NZD_BANK, D2, "30.00"),
    bank_transaction("bt-transfer-out", "SPEND-TRANSFER", NZD_BANK, D2, "50.00"),
    bank_transaction("bt-transfer-in", "RECEIVE-TRANSFER", USD_BANK, D2, "30.00", CurrencyRate=0.6),
    bank_transaction("bt-usd-spend", "SPEND", USD_BANK, D3, "10.01", CurrencyRate=0.7),
    bank_transaction("bt-voided", "RECEIVE", NZD_BANK, D2, "999.00", Status="VOIDED"),
    bank_transaction("bt-deleted", "SPEND", NZD_BANK, D2, "999.00", Status="DELETED"),
]
PAYMENTS = [
    # a customer pays a USD invoice into the USD account
    payment("p-usd", "ACCRECPAYMENT", USD_BANK, D2, "12.00", "12.00", CurrencyRate=0.6,
            Invoice={"InvoiceID": "i-1", "CurrencyCode": "USD", "Type": "ACCREC"}),
    # a refund to a customer of a sales credit note, and one from a supplier
    payment("p-refund-out", "ARCREDITPAYMENT", NZD_BANK, D3, "5.00", "5.00",
            CreditNote={"CreditNoteID": "cn-1"}),
    payment("p-refund-in", "APCREDITPAYMENT", NZD_BANK, D3, "7.00", "7.00",
            CreditNote={"CreditNoteID": "cn-2"}),
    # a bill paid in NZD for a USD bill: BankAmount is in the account's currency
    payment("p-bill", "ACCPAYPAYMENT", NZD_BANK, D3, "6.00", "10.00", CurrencyRate=0.6,
            Invoice={"InvoiceID": "i-2", "CurrencyCode": "USD", "Type": "ACCPAY"}),
    payment("p-deleted", "ACCRECPAYMENT", NZD_BANK, D3, "999.00", "999.00", Status="DELETED"),
    # a payment to an account that is not a bank account moves no bank balance
    payment("p-clearing", "ACCRECPAYMENT", CLEARING, D3, "999.00", "999.00"),
]  # fmt: skip


def hand_written(
    transactions: list[dict[str, Any]] = TRANSACTIONS,
    payments: list[dict[str, Any]] = PAYMENTS,
    synced_through: datetime | None = None,
) -> dict[str, pa.Table]:
    raw = {}
    for entity, docs in (("BankTransactions", transactions), ("Payments", payments)):
        batch = flatten(entity, docs, READ)
        assert not batch.rejected, batch.rejected
        raw[entity] = (batch.documents, batch.lines)
    reference = Reference(organisation=ORG, accounts=ACCOUNTS)
    return normalize("t", raw, reference, synced_through=synced_through)


def test_every_kind_of_movement_in_account_currency_and_base() -> None:
    table = hand_written()["fct_bank_balances"]
    rows = {(r["bank_account_id"], r["balance_date"]): r for r in table.to_pylist()}
    nzd = [rows[(NZD_BANK, D1 + timedelta(days=i))] for i in range(9)]
    assert [r["balance_date"] for r in nzd][-1] == date(2026, 3, 10), "to the sync date"
    assert (NZD_BANK, date(2026, 3, 11)) not in rows
    assert (nzd[0]["money_in"], nzd[0]["money_out"], nzd[0]["movement_count"]) == (
        Decimal("120.00"),
        0,
        2,
    )
    d2 = nzd[(D2 - D1).days]
    assert (d2["money_in"], d2["money_out"], d2["movement_count"]) == (0, Decimal("80.00"), 2)
    d3 = nzd[(D3 - D1).days]
    # in: the supplier's refund 7.00; out: the customer's refund 5.00, the bill's 10.00 NZD
    assert (d3["money_in"], d3["money_out"], d3["movement_count"]) == (
        Decimal("7.00"),
        Decimal("15.00"),
        3,
    )
    assert nzd[-1]["closing_balance"] == Decimal("32.00") == nzd[-1]["closing_balance_base"]
    assert {r["currency_code"] for r in nzd} == {"NZD"}

    usd = [r for k, r in sorted(rows.items()) if k[0] == USD_BANK]
    assert usd[0]["balance_date"] == D2 and usd[-1]["balance_date"] == date(2026, 3, 10)
    assert {r["currency_code"] for r in usd} == {"USD"}
    assert usd[0]["money_in"] == Decimal("42.00")
    # base: each movement at its own rate: 30 / 0.6 + 12 / 0.6, then 10.01 / 0.7 = 14.3
    assert usd[0]["money_in_base"] == Decimal("70.00")
    d3_usd = usd[(D3 - D2).days]
    assert d3_usd["money_out"] == Decimal("10.01")
    assert d3_usd["money_out_base"] == Decimal("14.30")
    assert usd[-1]["closing_balance"] == Decimal("31.99")
    assert usd[-1]["closing_balance_base"] == Decimal("55.70")
    assert CLEARING not in {k[0] for k in rows}


def test_an_overpayment_in_another_currency_moves_its_account_at_its_rate() -> None:
    """Xero lets an overpayment be raised in another currency than its bank account's and
    lists its cash side in /BankTransactions with that currency's Total and CurrencyRate (no
    BankAmount): a USD 30.00 overpayment at 0.6 received into the NZD account moves NZD 50.00
    (the balances added 30.00 to the NZD account); an EUR one paid from the USD account (no rate
    between two foreign currencies) moves nothing rather than a wrong amount."""
    over = bank_transaction(
        "bt-over-usd", "RECEIVE-OVERPAYMENT", NZD_BANK, D3, "30.00",
        CurrencyCode="USD", CurrencyRate=0.6,
    )  # fmt: skip
    euro = bank_transaction(
        "bt-over-eur", "SPEND-OVERPAYMENT", USD_BANK, D3, "9.00",
        CurrencyCode="EUR", CurrencyRate=0.5,
    )  # fmt: skip
    before = hand_written()["fct_bank_balances"].to_pylist()
    after = hand_written([*TRANSACTIONS, over, euro])["fct_bank_balances"].to_pylist()
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert (old["bank_account_id"], old["balance_date"]) == (
            new["bank_account_id"],
            new["balance_date"],
        )
        moved = new["bank_account_id"] == NZD_BANK and new["balance_date"] >= D3
        delta = Decimal("50.00") if moved else 0
        for column in ("closing_balance", "closing_balance_base"):
            assert new[column] - old[column] == delta, (column, new)
        if new["bank_account_id"] == NZD_BANK and new["balance_date"] == D3:
            assert new["money_in"] - old["money_in"] == Decimal("50.00")
            assert new["money_in_base"] - old["money_in_base"] == Decimal("50.00")
            assert new["movement_count"] == old["movement_count"] + 1
        else:
            assert new["movement_count"] == old["movement_count"]


def test_a_movement_without_a_rate_leaves_the_base_balances_unknown_from_its_day() -> None:
    no_rate = bank_transaction("bt-no-rate", "RECEIVE", USD_BANK, D3, "1.00")  # USD, no rate
    table = hand_written([*TRANSACTIONS, no_rate])["fct_bank_balances"]
    usd = [r for r in table.to_pylist() if r["bank_account_id"] == USD_BANK]
    for row in usd:
        known = row["balance_date"] < D3
        assert (row["closing_balance_base"] is not None) == known
        assert (row["opening_balance_base"] is not None) == (row["balance_date"] <= D3)
        assert (row["money_in_base"] is not None) == (row["balance_date"] != D3)
        assert row["closing_balance"] is not None


def test_the_sync_date_is_the_latest_read_or_watermark_in_local_time() -> None:
    later = datetime(2026, 3, 12, 11, 30, tzinfo=UTC)  # 2026-03-13 00:30 in Auckland
    table = hand_written(synced_through=later)["fct_bank_balances"]
    assert max(table.column("balance_date").to_pylist()) == date(2026, 3, 13)
    earlier = hand_written(synced_through=READ - timedelta(days=5))["fct_bank_balances"]
    assert max(earlier.column("balance_date").to_pylist()) == date(2026, 3, 10)
    # a movement dated after the sync date still counts, on its own day
    future = bank_transaction("bt-future", "RECEIVE", NZD_BANK, date(2026, 3, 20), "1.00")
    table = hand_written([*TRANSACTIONS, future])["fct_bank_balances"]
    last = max(r["balance_date"] for r in table.to_pylist() if r["bank_account_id"] == NZD_BANK)
    assert last == date(2026, 3, 20)


def test_build_tenant_tables_runs_balances_to_the_read_watermark(
    synced: Synced, tmp_path: Path
) -> None:
    tenant_id, tenant = next(iter(synced.tenants.items()))
    engine = db.connect(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        mark = FETCHED + timedelta(days=3)
        watermarks.advance(engine, tenant_id, "Payments", mark)
        built = build_tenant_tables(synced.lake, tenant_id, engine)
    finally:
        engine.dispose()
    table = next(t.table for t in built.tables if t.name == "fct_bank_balances")
    assert max(table.column("balance_date").to_pylist()) == sync_date(tenant, mark)


def test_an_expected_payment_date_is_published() -> None:
    invoice = {
        "InvoiceID": "i-1",
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1", "Name": "Customer"},
        "Date": ms(D1),
        "DueDate": ms(D2),
        "ExpectedPaymentDate": ms(D3),
        "LineAmountTypes": "NoTax",
        "LineItems": [],
        "SubTotal": 10.0,
        "TotalTax": 0.0,
        "Total": 10.0,
        "AmountDue": 10.0,
        "AmountPaid": 0.0,
        "AmountCredited": 0.0,
        "CurrencyCode": "NZD",
        "UpdatedDateUTC": ms(D1),
    }
    batch = flatten("Invoices", [invoice], READ)
    out = normalize("t", {"Invoices": (batch.documents, batch.lines)}, Reference(ORG))
    (row,) = out["fct_invoices"].to_pylist()
    assert (row["due_date"], row["expected_payment_date"]) == (D2, D3)
    assert row["currency_rate"] == 1 and row["amount_due_base"] == Decimal("10.00")


# --- change detection -----------------------------------------------------------------------------


def test_summary_tables_count_provenance_and_send_a_bank_account_whole() -> None:
    """A summary row does not show every value of its records (a line's account, a bank
    transaction's reference), so a new read that changed only those must still re-send it, or
    the incremental publish would keep the old provenance a full replace no longer shows."""
    before = hand_written()
    reread = [
        dict(t, Reference="edited") if t["BankTransactionID"] == "bt-receive" else t
        for t in TRANSACTIONS
    ]
    batch = flatten("BankTransactions", reread, READ)
    documents = batch.documents
    # the later read found a new reference on one transaction: only that one has its read
    edited = pa.array([i == "bt-receive" for i in documents.column("id").to_pylist()])
    index = documents.schema.get_field_index("synced_at_utc")
    later = pa.scalar(READ + timedelta(hours=1), documents.schema.field(index).type)
    synced = pc.if_else(edited, later, documents.column(index))
    documents = documents.set_column(index, documents.schema.field(index), synced)
    raw = {
        "BankTransactions": (documents, batch.lines),
        "Payments": (flatten("Payments", PAYMENTS, READ).documents, None),
    }
    after = normalize("t", raw, Reference(organisation=ORG, accounts=ACCOUNTS))
    name = "fct_bank_balances"
    diff = diff_documents(name, document_fingerprints(name, before[name]), after[name])
    # every day of the NZD account (the edited transaction's) is re-sent, the USD one is not
    assert diff.changed_ids.to_pylist() == [{"tenant_id": "t", "bank_account_id": NZD_BANK}]
    assert diff.new_ids.num_rows == diff.removed_ids.num_rows == 0
    unchanged = before[name].select([c for c in before[name].column_names if "synced" not in c])
    assert unchanged.equals(
        after[name].select([c for c in after[name].column_names if "synced" not in c])
    ), "only the provenance changed"


# --- the pure function ----------------------------------------------------------------------------

EPOCH = date(2026, 1, 1)
CENTS = st.integers(min_value=-(10**12), max_value=10**12)


@dataclass
class Move:
    account: str
    day: int
    cents: int
    base_cents: int | None
    read: int  # hours after EPOCH: the provenance's synced_at_utc


MOVES = st.builds(
    Move,
    account=st.sampled_from(["a", "b", "c"]),
    day=st.integers(min_value=0, max_value=40),
    cents=CENTS,
    base_cents=st.one_of(CENTS, CENTS, CENTS, st.none()),
    read=st.integers(min_value=0, max_value=5),
)


def movements(moves: list[Move]) -> pa.Table:
    base_time = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "bank_account_id": [m.account for m in moves],
            "date": [EPOCH + timedelta(days=m.day) for m in moves],
            "amount": [Decimal(m.cents).scaleb(-2) for m in moves],
            "amount_base": [
                None if m.base_cents is None else Decimal(m.base_cents).scaleb(-2) for m in moves
            ],
            "synced_at_utc": [base_time + timedelta(hours=m.read) for m in moves],
            "sync_source": [f"read-{m.read}" for m in moves],
        },
        schema=pa.schema(
            [MOVEMENT_SCHEMA.field(n) for n in ("bank_account_id", "date", "amount")]
            + [MOVEMENT_SCHEMA.field("amount_base").with_nullable(True)]
            + [MOVEMENT_SCHEMA.field(n) for n in ("synced_at_utc", "sync_source")]
        ),
    )


def cents(value: Any) -> int:
    assert isinstance(value, Decimal) and value.as_tuple().exponent == -2, value
    return int(value * 100)


@settings(max_examples=300, deadline=None)
@given(
    moves=st.lists(MOVES, max_size=60),
    as_of=st.one_of(st.none(), st.integers(min_value=-5, max_value=60)),
)
def test_bank_balances_invariants(moves: list[Move], as_of: int | None) -> None:
    as_of_day = None if as_of is None else EPOCH + timedelta(days=as_of)
    table = bank_balances(movements(moves), as_of_day)
    assert table.schema.equals(BALANCE_SCHEMA)
    rows = balances_by_account(table)
    assert set(rows) == {m.account for m in moves}
    assert sum(r["movement_count"] for r in table.to_pylist()) == len(moves)
    for account, got in rows.items():
        mine = [m for m in moves if m.account == account]
        first, last = min(m.day for m in mine), max(m.day for m in mine)
        if as_of is not None:
            last = max(last, as_of)
        # dense days from the first movement to the sync date (or the last movement)
        assert [r["balance_date"] for r in got] == [
            EPOCH + timedelta(days=d) for d in range(first, last + 1)
        ]
        assert cents(got[0]["opening_balance"]) == 0
        for row in got:
            day = (row["balance_date"] - EPOCH).days
            today = [m for m in mine if m.day == day]
            # exact totals: every movement counted once, on its day, by its sign
            assert cents(row["money_in"]) == sum(m.cents for m in today if m.cents > 0)
            assert cents(row["money_out"]) == -sum(m.cents for m in today if m.cents < 0)
            assert row["movement_count"] == len(today)
            assert cents(row["opening_balance"]) + cents(row["money_in"]) - cents(
                row["money_out"]
            ) == cents(row["closing_balance"])
            assert cents(row["closing_balance"]) == sum(m.cents for m in mine if m.day <= day)
            # base: the same rules, unknown from the first movement without a base amount
            unknown = [m.day for m in mine if m.base_cents is None]
            if unknown and min(unknown) <= day:
                assert row["closing_balance_base"] is None
            else:
                assert cents(row["closing_balance_base"]) == sum(
                    m.base_cents or 0 for m in mine if m.day <= day
                )
            if day in unknown:
                assert row["money_in_base"] is None and row["money_out_base"] is None
            else:
                assert cents(row["money_in_base"]) == sum(
                    m.base_cents or 0 for m in today if (m.base_cents or 0) > 0
                )
            if row["opening_balance_base"] is not None and row["money_in_base"] is not None:
                assert cents(row["opening_balance_base"]) + cents(row["money_in_base"]) - cents(
                    row["money_out_base"]
                ) == cents(row["closing_balance_base"])
            # provenance: the latest read among the movements so far
            latest = max(m.read for m in mine if m.day <= day)
            assert row["sync_source"] == f"read-{latest}"
        for before, after in pairwise(got):
            assert before["closing_balance"] == after["opening_balance"]
            assert before["closing_balance_base"] == after["opening_balance_base"]


def test_bank_balances_of_no_movements_is_empty_and_nulls_are_refused() -> None:
    empty = bank_balances(movements([]))
    assert empty.num_rows == 0 and empty.schema.equals(BALANCE_SCHEMA)
    bad = movements([Move("a", 0, 1, 1, 0)]).set_column(
        0, "bank_account_id", pa.array([None], pa.string())
    )
    with pytest.raises(ValueError, match="bank_account_id"):
        bank_balances(bad)
