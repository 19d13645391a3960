"""Overpayments and prepayments in the sandbox, read over real HTTP as a connector reads them.

The checks are written from Xero's rules, not from the generator's code: an allocation applies
credit to an invoice of the same contact and currency (ACCREC for RECEIVE-*, ACCPAY for SPEND-*),
RemainingCredit is what is left of the total, and an allocated invoice's AmountDue, AmountPaid and
AmountCredited still add up to its Total. The endpoint table (``dataset.ENTITIES``) is compared
with the parameters Xero's OpenAPI spec gives each endpoint.

Xero lists the cash side of every overpayment and prepayment in /BankTransactions (Types
RECEIVE-/SPEND-OVERPAYMENT and -PREPAYMENT, with the bank account the money went through and
the link OverpaymentID / PrepaymentID); its general ledger posts the money once, as the
overpayment or prepayment (SourceType AROVERPAYMENT ...), never also as a CASHREC or CASHPAID.
"""

import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from xero_tableau.sandbox import generator
from xero_tableau.sandbox.credentials import JOURNALS_SCOPE, READ_SCOPES
from xero_tableau.sandbox.dataset import ENTITIES, endpoint_scopes
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.sandbox.ledger import journals
from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau_tests.conftest import (
    GENEROUS_LIMITS,
    SandboxFactory,
    XeroConnection,
    connect,
    connect_sandbox,
)
from xero_tableau_tests.test_sandbox_admin import WebhookReceiver
from xero_tableau_tests.xero_spec import (
    ACCOUNTING,
    assert_valid,
    load_spec,
    skip_reason,
    spec_available,
)

ADVANCES = ("Overpayments", "Prepayments")
# Xero's BankTransaction Type of each advance Type, and the field linking the two
CASH_TYPES = ("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT", "RECEIVE-PREPAYMENT", "SPEND-PREPAYMENT")
LINKS = ("OverpaymentID", "PrepaymentID")
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
ZERO = Decimal(0)


def ms(value: str) -> int:
    """Epoch ms of Xero's ``/Date(ms[+hhmm])/`` (written here, independent of the sandbox)."""
    match = _MS_DATE.match(value)
    assert match is not None, value
    return int(match.group(1))


def dec(value: float) -> Decimal:
    return Decimal(str(value))


def kind(record: dict) -> str:
    return "Prepayments" if "PrepaymentID" in record else "Overpayments"


def record_id(record: dict) -> str:
    return record["PrepaymentID"] if "PrepaymentID" in record else record["OverpaymentID"]


Books = dict[str, dict[str, list[dict]]]  # tenant -> endpoint -> records


@pytest.fixture(scope="module")
def books(xero: XeroConnection) -> Books:
    """Both advance endpoints, invoices and accounts of every tenant, read page by page."""
    out: Books = {}
    for tenant in xero.tenant_ids:
        out[tenant] = {name: xero.all_records(name, tenant) for name in (*ADVANCES, "Invoices")}
        out[tenant]["Accounts"] = xero.ok("Accounts", tenant)["Accounts"]
    return out


def advances(books: Books) -> list[tuple[str, dict]]:
    return [(t, r) for t, by in books.items() for name in ADVANCES for r in by[name]]


# --- what is served ------------------------------------------------------------------------------


def test_both_endpoints_serve_varied_records(
    books: Books, xero_sandbox: RunningXeroSandbox
) -> None:
    for tenant, by in books.items():
        stored = xero_sandbox.sandbox.dataset.tenants[tenant]
        for name in ADVANCES:
            assert by[name], f"{name} is empty for {tenant}"
            assert sorted(map(record_id, by[name])) == sorted(stored.collections[name])
    seen = Counter((r["Type"], r["Status"]) for _, r in advances(books))
    types = {t for t, _ in seen}
    assert types == {
        "RECEIVE-OVERPAYMENT",
        "SPEND-OVERPAYMENT",
        "RECEIVE-PREPAYMENT",
        "SPEND-PREPAYMENT",
    }
    assert {s for _, s in seen} == {"AUTHORISED", "PAID", "VOIDED"}
    foreign = [
        r
        for tenant, r in advances(books)
        if r["CurrencyCode"]
        != xero_sandbox.sandbox.dataset.tenants[tenant].organisation["BaseCurrency"]
    ]
    assert foreign and all(r["CurrencyRate"] != 1.0 for r in foreign)
    payments = sum(
        len(xero_sandbox.sandbox.dataset.tenants[t].collections["Payments"]) for t in books
    )
    assert 0.01 * payments < len(advances(books)) < 0.1 * payments  # a few percent of payments


@pytest.mark.parametrize("endpoint", ADVANCES)
def test_records_conform_to_the_spec_strictly(xero: XeroConnection, endpoint: str) -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip(skip_reason(ACCOUNTING))
    for tenant in xero.tenant_ids:
        body = xero.ok(endpoint, tenant, {"page": 1, "pageSize": 1000})
        assert body[endpoint]
        assert_valid(body, endpoint, strict=True)
        one = body[endpoint][0]
        single = xero.ok(f"{endpoint}/{record_id(one)}", tenant)
        assert single[endpoint] == [one]
        assert_valid(single, endpoint, strict=True)


def test_allocated_invoices_conform_to_the_spec_strictly(
    xero: XeroConnection, books: Books
) -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip(skip_reason(ACCOUNTING))
    for by in books.values():
        allocated = [i for i in by["Invoices"] if i.get("Prepayments") or i.get("Overpayments")]
        assert allocated
        assert_valid({"Invoices": allocated}, "Invoices", strict=True)


# --- allocations ---------------------------------------------------------------------------------


def test_allocations_apply_to_invoices_of_the_same_contact_and_currency(
    books: Books, xero_sandbox: RunningXeroSandbox
) -> None:
    now_ms = xero_sandbox.sandbox.clock.now_ms()
    count = 0
    for tenant, record in advances(books):
        invoices = {i["InvoiceID"]: i for i in books[tenant]["Invoices"]}
        wanted_type = "ACCREC" if record["Type"].startswith("RECEIVE") else "ACCPAY"
        for allocation in record["Allocations"]:
            count += 1
            invoice = invoices[allocation["Invoice"]["InvoiceID"]]  # an existing invoice
            assert allocation["Invoice"]["InvoiceNumber"] == invoice["InvoiceNumber"]
            assert invoice["Type"] == wanted_type
            assert invoice["Contact"]["ContactID"] == record["Contact"]["ContactID"]
            assert invoice["CurrencyCode"] == record["CurrencyCode"]
            assert invoice["Status"] in ("AUTHORISED", "PAID")
            when = ms(allocation["Date"])
            assert max(ms(record["Date"]), ms(invoice["Date"])) <= when <= now_ms
            assert ms(invoice["UpdatedDateUTC"]) >= when
            assert ms(record["UpdatedDateUTC"]) >= when
            listed = [a for a in invoice.get(kind(record), []) if record_id(a) == record_id(record)]
            assert [dec(a["AppliedAmount"]) for a in listed] == [dec(allocation["Amount"])]
            assert dec(listed[0]["Total"]) == dec(record["Total"])
            assert listed[0]["Date"] == allocation["Date"]
    assert count >= 10, "too few allocations for the checks to mean anything"


def test_remaining_credit_is_what_the_allocations_left(books: Books) -> None:
    statuses = Counter()
    for _, record in advances(books):
        applied = sum((dec(a["Amount"]) for a in record["Allocations"]), ZERO)
        remaining = dec(record["RemainingCredit"])
        statuses[record["Status"]] += 1
        if record["Status"] == "VOIDED":
            assert not record["Allocations"] and remaining == 0
            continue
        assert all(dec(a["Amount"]) > 0 for a in record["Allocations"])
        assert remaining == dec(record["Total"]) - applied >= 0
        assert (record["Status"] == "PAID") == (remaining == 0)
    assert statuses["PAID"] and statuses["AUTHORISED"]
    partly = [r for _, r in advances(books) if r["Allocations"] and r["RemainingCredit"] > 0]
    assert partly, "no partly used credit: the arithmetic above is only half tested"


def test_every_invoice_still_adds_up(books: Books) -> None:
    """AmountDue + AmountPaid + AmountCredited == Total, and AmountCredited is every applied
    credit note, prepayment and overpayment; an invoice is PAID exactly when nothing is due."""
    allocated = 0
    for by in books.values():
        for invoice in by["Invoices"]:
            applied = [
                dec(a["AppliedAmount"])
                for key in ("CreditNotes", "Prepayments", "Overpayments")
                for a in invoice.get(key, [])
            ]
            due, paid = dec(invoice["AmountDue"]), dec(invoice["AmountPaid"])
            credited = dec(invoice["AmountCredited"])
            assert due + paid + credited == dec(invoice["Total"]), invoice["InvoiceID"]
            assert credited == sum(applied, ZERO) and due >= 0
            if invoice["Status"] in ("AUTHORISED", "PAID"):
                assert (invoice["Status"] == "PAID") == (due == 0)
            if invoice["Status"] == "PAID":
                assert ms(invoice["FullyPaidOnDate"]) >= ms(invoice["Date"])
            if invoice.get("Prepayments") or invoice.get("Overpayments"):
                allocated += 1
    assert allocated >= 10


def test_lines_are_booked_as_xero_books_them(books: Books) -> None:
    for tenant, record in advances(books):
        accounts = {a["Code"]: a for a in books[tenant]["Accounts"]}
        lines = record["LineItems"]
        assert lines
        for line in lines:
            assert accounts[line["AccountCode"]]["AccountID"] == line["AccountID"]
        line_sum = sum((dec(li["LineAmount"]) for li in lines), ZERO)
        tax = sum((dec(li["TaxAmount"]) for li in lines), ZERO)
        assert dec(record["TotalTax"]) == tax
        if record["LineAmountTypes"] == "Inclusive":
            assert dec(record["Total"]) == line_sum == dec(record["SubTotal"]) + tax
        else:
            assert dec(record["Total"]) == line_sum + tax == dec(record["SubTotal"]) + tax
        if kind(record) == "Overpayments":  # one untaxed line on the AR / AP control account
            system = "DEBTORS" if record["Type"].startswith("RECEIVE") else "CREDITORS"
            assert len(lines) == 1 and tax == 0
            assert accounts[lines[0]["AccountCode"]].get("SystemAccount") == system
        else:
            assert all(accounts[li["AccountCode"]]["Class"] != "LIABILITY" for li in lines)


# --- their cash side in /BankTransactions -------------------------------------------------------


def link_of(bank_transaction: dict) -> str:
    """The document a bank transaction is the cash side of (the spec's OverpaymentID /
    PrepaymentID, by its Type), checking it carries that link and not the other."""
    kind = "OverpaymentID" if "OVERPAYMENT" in bank_transaction["Type"] else "PrepaymentID"
    other = LINKS[1 - LINKS.index(kind)]
    assert other not in bank_transaction, bank_transaction
    return bank_transaction[kind]


@pytest.fixture(scope="module")
def cash(xero: XeroConnection) -> dict[str, list[dict]]:
    """Every tenant's bank transactions of the four advance Types, read page by page."""
    out = {}
    for tenant in xero.tenant_ids:
        listed = xero.all_records("BankTransactions", tenant)
        assert len({b["BankTransactionID"] for b in listed}) == len(listed)
        out[tenant] = [b for b in listed if b["Type"] in CASH_TYPES]
    return out


def test_every_advance_is_listed_in_bank_transactions_as_xero_lists_it(
    books: Books, cash: dict[str, list[dict]], xero: XeroConnection
) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    foreign = 0
    for tenant, by in books.items():
        accounts = {a["AccountID"]: a for a in by["Accounts"]}
        (organisation,) = xero.ok("Organisation", tenant)["Organisations"]
        by_link: dict[str, list[dict]] = {}
        for bank_transaction in cash[tenant]:
            by_link.setdefault(link_of(bank_transaction), []).append(bank_transaction)
        documents = [r for name in ADVANCES for r in by[name]]
        assert sorted(by_link) == sorted(map(record_id, documents)), "one each, no other"
        for record in documents:
            (listed,) = by_link[record_id(record)]
            assert listed["Type"] == record["Type"]
            for key in ("Contact", "Date", "LineAmountTypes", "LineItems", "CurrencyCode"):
                assert listed[key] == record[key], key
            for key in ("SubTotal", "TotalTax", "Total", "CurrencyRate"):
                assert dec(listed[key]) == dec(record[key]), key
            # a bank transaction is never PAID: it stays AUTHORISED when the credit is used up
            assert listed["Status"] == ("VOIDED" if record["Status"] == "VOIDED" else "AUTHORISED")
            bank = accounts[listed["BankAccount"]["AccountID"]]
            assert bank["Type"] == "BANK"
            assert (listed["BankAccount"]["Code"], listed["BankAccount"]["Name"]) == (
                bank["Code"],
                bank["Name"],
            )
            assert isinstance(listed["IsReconciled"], bool)
            assert not (listed["IsReconciled"] and listed["Status"] == "VOIDED")
            # Reference is "only supported for SPEND and RECEIVE"; the credit is not shown
            for key in ("Reference", "RemainingCredit", "Allocations", "UpdatedDateUTCString"):
                assert key not in listed, key
            assert ms(listed["Date"]) <= ms(listed["UpdatedDateUTC"])
            assert ms(listed["UpdatedDateUTC"]) <= ms(record["UpdatedDateUTC"])
            seen[(listed["Type"], listed["Status"])] += 1
            if record["CurrencyCode"] != bank.get("CurrencyCode", organisation["BaseCurrency"]):
                foreign += 1  # raised in another currency than its bank account's
    assert {t for t, _ in seen} == set(CASH_TYPES)
    assert {s for _, s in seen} == {"AUTHORISED", "VOIDED"}
    assert foreign, "no advance in another currency than its bank account's"


def test_advance_bank_transactions_conform_to_the_spec_strictly(
    cash: dict[str, list[dict]], xero: XeroConnection
) -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip(skip_reason(ACCOUNTING))
    for tenant, listed in cash.items():
        assert_valid({"BankTransactions": listed}, "BankTransactions", strict=True)
        one = listed[0]
        single = xero.ok(f"BankTransactions/{one['BankTransactionID']}", tenant)
        assert single["BankTransactions"] == [one]
        for link in LINKS:  # the link is the spec's: read-only uuid fields of BankTransaction
            declared = load_spec(ACCOUNTING)["components"]["schemas"]["BankTransaction"]
            assert declared["properties"][link]["format"] == "uuid"


def test_advance_bank_transactions_filter_by_type_like_the_others(
    cash: dict[str, list[dict]], xero: XeroConnection
) -> None:
    tenant = xero.tenant_ids[0]
    for kind in CASH_TYPES:
        got = xero.all_records("BankTransactions", tenant, where=f'Type=="{kind}"')
        expected = [b["BankTransactionID"] for b in cash[tenant] if b["Type"] == kind]
        assert expected, kind
        assert sorted(b["BankTransactionID"] for b in got) == sorted(expected)
    spend = xero.all_records("BankTransactions", tenant, where='Type=="SPEND"')
    assert spend and all(b["Type"] == "SPEND" for b in spend)


def test_the_ledger_posts_an_advances_money_once_on_its_bank_account() -> None:
    """The overpayment's or prepayment's own journal carries the money, on the account of its
    bank transaction; the bank transaction posts nothing of its own (no CASHREC or CASHPAID, no
    journal with its id), however many there are."""
    data = generate(GeneratorConfig(seed=5, tenants=2, invoice_lines=1200, as_of=date(2026, 1, 31)))
    checked = 0
    for tenant in data.tenants.values():
        ledger = journals(tenant)
        bank_transactions = list(tenant.collections["BankTransactions"].values())
        cash_of = {link_of(b): b for b in bank_transactions if b["Type"] in CASH_TYPES}
        cash_ids = {b["BankTransactionID"] for b in cash_of.values()}
        money = {b["BankTransactionID"] for b in bank_transactions if b["Type"] not in CASH_TYPES}
        accounts = {a["AccountID"]: a for a in tenant.collections["Accounts"].values()}
        banks = {a for a, account in accounts.items() if account["Type"] == "BANK"}
        for journal in ledger:
            assert journal.get("SourceID") not in cash_ids, journal
            if journal.get("SourceType") in ("CASHREC", "CASHPAID"):
                assert journal["SourceID"] in money, journal
        for name in ADVANCES:
            for record in tenant.collections[name].values():
                bank = cash_of[record_id(record)]["BankAccount"]["AccountID"]
                own = [j for j in ledger if j.get("SourceID") == record_id(record)]
                # allocations never touch the bank: only the money does (and a void's reversal)
                on_banks = [
                    [line for line in journal["JournalLines"] if line["AccountID"] in banks]
                    for journal in own
                ]
                posted = [lines for lines in on_banks if lines]
                (line,) = posted[0]
                assert line["AccountID"] == bank
                sign = 1 if record["Type"].startswith("RECEIVE") else -1
                amount = dec(line["NetAmount"])
                if record["CurrencyRate"] == 1:
                    assert amount == sign * dec(record["Total"])
                else:  # each line converted, the rounding cents on the bank line
                    exact = sign * dec(record["Total"]) / dec(record["CurrencyRate"])
                    assert abs(amount - exact) <= Decimal("0.01") * len(record["LineItems"])
                if record["Status"] == "VOIDED":  # posted, then reversed: nothing left
                    (reversal,) = posted[1:]
                    assert [(x["AccountID"], dec(x["NetAmount"])) for x in reversal] == [
                        (bank, -amount)
                    ]
                else:
                    assert len(posted) == 1
                checked += 1
    assert checked >= 40


# --- created, voided and refused through the admin API -------------------------------------------


class OwnSandbox:
    """A sandbox of the test's own, connected with the journals scope too, and a webhook
    subscriber."""

    def __init__(self, running: RunningXeroSandbox, http: httpx.Client) -> None:
        self.running, self.http = running, http
        self.xero = connect_sandbox(http, running, scope=f"{READ_SCOPES} {JOURNALS_SCOPE}")
        self.tenant = next(
            tid
            for tid in self.xero.tenant_ids
            if self.xero.ok("Organisation", tid)["Organisations"][0]["BaseCurrency"] == "NZD"
        )

    def admin(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        url = f"{self.running.base_url}/sandbox/admin/tenants/{self.tenant}/{path}"
        return self.http.request(method, url, json=body)

    def write(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        response = self.admin(method, path, body)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(self, method: str, path: str, body: dict | None = None) -> str:
        response = self.admin(method, path, body)
        assert response.status_code == 400, response.text
        return response.json()["error"]

    def one(self, endpoint: str, record_id: str) -> dict[str, Any]:
        (record,) = self.xero.ok(f"{endpoint}/{record_id}", self.tenant)[endpoint]
        return record

    def cash_of(self, record: dict) -> dict[str, Any]:
        """The bank transaction an advance is listed as, found through the spec's link."""
        link = "PrepaymentID" if "PrepaymentID" in record else "OverpaymentID"
        where = f'{link}==GUID("{record[link]}")'
        (listed,) = self.xero.all_records("BankTransactions", self.tenant, where=where)
        return listed

    def journals_of(self, source_id: str) -> list[dict]:
        out, offset = [], 0
        while batch := self.xero.ok("Journals", self.tenant, {"offset": offset})["Journals"]:
            out += [j for j in batch if j.get("SourceID") == source_id]
            offset = batch[-1]["JournalNumber"]
        return out

    def bank_lines(self, source_id: str) -> list[tuple[str, Decimal]]:
        """(account code, NetAmount) of the journal lines of ``source_id`` on bank accounts."""
        accounts = self.xero.ok("Accounts", self.tenant)["Accounts"]
        banks = {a["AccountID"]: a["Code"] for a in accounts if a["Type"] == "BANK"}
        return [
            (banks[line["AccountID"]], dec(line["NetAmount"]))
            for journal in self.journals_of(source_id)
            for line in journal["JournalLines"]
            if line["AccountID"] in banks
        ]


def test_admin_advances_come_with_their_bank_transaction_and_void_together(
    make_sandbox: SandboxFactory, http: httpx.Client
) -> None:
    running = make_sandbox(XeroSandboxConfig(limits=GENEROUS_LIMITS, webhook_batch_seconds=0.2))
    receiver = WebhookReceiver("advance-test-key")
    try:
        subscribed = http.post(
            f"{running.base_url}/sandbox/admin/webhooks",
            json={"url": receiver.url, "key": "advance-test-key"},
        )
        assert subscribed.status_code == 200, subscribed.text
        _admin_advances(OwnSandbox(running, http), receiver)
    finally:
        receiver.close()


def _admin_advances(env: OwnSandbox, receiver: WebhookReceiver) -> None:
    invoice = next(
        i
        for i in env.xero.all_records("Invoices", env.tenant, where='Status=="AUTHORISED"')
        if i["Type"] == "ACCREC" and i["CurrencyCode"] == "NZD" and i["AmountDue"] >= 10
    )
    contact = {"ContactID": invoice["Contact"]["ContactID"]}
    # an overpayment received into the savings account (091), as the admin API makes it
    over = env.write(
        "POST",
        "Overpayments",
        {"Type": "RECEIVE-OVERPAYMENT", "Contact": contact, "Total": 25.0,
         "BankAccount": {"Code": "091"}, "Date": invoice["DateString"][:10]},
    )  # fmt: skip
    assert "BankAccount" not in env.one("Overpayments", over["OverpaymentID"])
    listed = env.cash_of(over)
    assert (listed["Type"], listed["Status"], listed["BankAccount"]["Code"]) == (
        "RECEIVE-OVERPAYMENT",
        "AUTHORISED",
        "091",
    )
    assert (dec(listed["Total"]), listed["LineItems"]) == (Decimal(25), over["LineItems"])
    assert listed["Contact"] == over["Contact"] and listed["Date"] == over["Date"]
    if spec_available(ACCOUNTING):
        assert_valid({"BankTransactions": [listed]}, "BankTransactions", strict=True)
    # posted once: the overpayment's journal, on 091; none for the bank transaction
    assert env.bank_lines(over["OverpaymentID"]) == [("091", Decimal(25))]
    assert env.journals_of(listed["BankTransactionID"]) == []
    # allocating credit changes nothing the bank transaction shows
    env.write(
        "POST",
        f"Overpayments/{over['OverpaymentID']}/allocations",
        {"InvoiceID": invoice["InvoiceID"], "Amount": 10.0},
    )
    assert env.cash_of(over) == listed
    # Xero refuses to update or delete it; voiding it is refused while the credit is allocated
    path = f"BankTransactions/{listed['BankTransactionID']}"
    assert env.refused("PATCH", path, {"Reference": "x"})
    assert "void" in env.refused("POST", f"{path}/delete")
    assert "allocated" in env.refused("POST", f"{path}/void")
    assert env.one("Overpayments", over["OverpaymentID"])["Status"] == "AUTHORISED"
    assert env.cash_of(over) == listed

    # a prepayment made Xero's way, as a bank transaction: the answer is the bank transaction
    made = env.write(
        "POST",
        "BankTransactions",
        {"Type": "RECEIVE-PREPAYMENT", "Contact": contact, "BankAccount": {"Code": "090"},
         "LineAmountTypes": "NoTax",
         "LineItems": [{"Description": "Deposit", "Quantity": 1, "UnitAmount": 40.0,
                        "AccountCode": "200"}]},
    )  # fmt: skip
    prepayment = env.one("Prepayments", made["PrepaymentID"])
    assert env.cash_of(prepayment) == env.one("BankTransactions", made["BankTransactionID"])
    assert (prepayment["Type"], dec(prepayment["Total"]), prepayment["Status"]) == (
        "RECEIVE-PREPAYMENT",
        Decimal(40),
        "AUTHORISED",
    )
    assert prepayment["LineItems"] == made["LineItems"]
    assert env.bank_lines(made["PrepaymentID"]) == [("090", Decimal(40))]
    # voiding the bank transaction voids the prepayment, and the ledger reverses it once
    env.write("POST", f"BankTransactions/{made['BankTransactionID']}/void")
    voided = env.one("Prepayments", made["PrepaymentID"])
    assert (voided["Status"], voided["RemainingCredit"]) == ("VOIDED", 0)
    assert env.cash_of(voided)["Status"] == "VOIDED"
    assert env.bank_lines(made["PrepaymentID"]) == [("090", Decimal(40)), ("090", Decimal(-40))]
    assert env.journals_of(made["BankTransactionID"]) == []

    # and voiding an overpayment voids its bank transaction (paid out: SPEND-, in USD)
    spent = env.write(
        "POST",
        "Overpayments",
        {"Type": "SPEND-OVERPAYMENT", "Contact": contact, "Total": 50.0,
         "CurrencyCode": "USD", "CurrencyRate": 0.5},
    )  # fmt: skip
    before = env.cash_of(spent)
    assert (before["BankAccount"]["Code"], before["CurrencyCode"], dec(before["Total"])) == (
        "090",
        "USD",
        Decimal(50),
    )
    assert dec(before["CurrencyRate"]) == Decimal("0.5")
    assert env.bank_lines(spent["OverpaymentID"]) == [("090", Decimal(-100))]
    env.write("POST", f"Overpayments/{spent['OverpaymentID']}/void")
    after = env.cash_of(spent)
    assert (after["Status"], after["IsReconciled"]) == ("VOIDED", False)
    assert ms(after["UpdatedDateUTC"]) > ms(before["UpdatedDateUTC"])
    assert env.bank_lines(spent["OverpaymentID"]) == [("090", Decimal(-100)), ("090", Decimal(100))]

    # no webhooks for either (Xero has none): only the allocated invoice's UPDATE
    assert env.running.sandbox.webhooks.flush(10.0)
    events = receiver.events()
    assert {(e["eventCategory"], e["resourceId"]) for e in events} == {
        ("INVOICE", invoice["InvoiceID"])
    }
    # a bank account that is not a bank account is refused
    assert "BANK" in env.refused(
        "POST",
        "Overpayments",
        {"Type": "RECEIVE-OVERPAYMENT", "Contact": contact, "Total": 1.0,
         "BankAccount": {"Code": "200"}},
    )  # fmt: skip


# --- reading them like any other paged endpoint --------------------------------------------------


@pytest.mark.parametrize("endpoint", ADVANCES)
def test_paging_modified_since_where_and_order(
    xero: XeroConnection, books: Books, endpoint: str
) -> None:
    tenant = xero.tenant_ids[0]
    records = books[tenant][endpoint]
    ids = [record_id(r) for r in records]
    seen: list[str] = []
    page = 1
    while True:
        body = xero.ok(endpoint, tenant, {"page": page, "pageSize": 4})
        assert body["pagination"]["itemCount"] == len(records)
        seen.extend(record_id(r) for r in body[endpoint])
        if page >= body["pagination"]["pageCount"]:
            break
        page += 1
    assert len(seen) == len(set(seen)) == len(records) and page > 1
    capped = xero.ok(endpoint, tenant, {"page": 1, "pageSize": 5000})
    assert capped["pagination"]["pageSize"] == 1000 and len(capped[endpoint]) == len(ids)

    instants = sorted(ms(r["UpdatedDateUTC"]) for r in records)
    second = instants[len(instants) // 2] // 1000
    since = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = xero.all_records(endpoint, tenant, headers={"If-Modified-Since": since})
    expected = [record_id(r) for r in records if ms(r["UpdatedDateUTC"]) // 1000 >= second]
    assert 0 < len(expected) < len(records)
    assert sorted(map(record_id, got)) == sorted(expected)

    where = 'Status=="AUTHORISED" && Type.StartsWith("RECEIVE")'
    got = xero.all_records(endpoint, tenant, where=where)
    expected = [
        record_id(r)
        for r in records
        if r["Status"] == "AUTHORISED" and r["Type"].startswith("RECEIVE")
    ]
    assert expected and sorted(map(record_id, got)) == sorted(expected)

    descending = xero.all_records(endpoint, tenant, order="Date DESC")
    dates = [ms(r["Date"]) for r in descending]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) > 1
    default = xero.all_records(endpoint, tenant)
    assert [ms(r["UpdatedDateUTC"]) for r in default] == instants


def test_references_and_invoice_numbers_filters(xero: XeroConnection, books: Books) -> None:
    """The spec's list filters: Overpayments by References, Prepayments by InvoiceNumbers (only
    RECEIVE-PREPAYMENTs carry an InvoiceNumber)."""
    tenant = xero.tenant_ids[0]
    overs = [r for r in books[tenant]["Overpayments"] if r["Reference"]][:2]
    refs = ",".join(f'"{r["Reference"]}"' for r in overs)
    got = xero.all_records("Overpayments", tenant, References=refs)
    assert overs and sorted(map(record_id, got)) == sorted(map(record_id, overs))
    pres = [r for r in books[tenant]["Prepayments"] if "InvoiceNumber" in r]
    assert pres and all(r["Type"] == "RECEIVE-PREPAYMENT" for r in pres)
    numbers = [r["InvoiceNumber"] for r in pres[:2]]
    got = xero.all_records("Prepayments", tenant, InvoiceNumbers=",".join(numbers))
    assert sorted(r["InvoiceNumber"] for r in got) == sorted(numbers)


def test_the_payments_scope_opens_both(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox, xero: XeroConnection
) -> None:
    for scope, allowed in (("accounting.payments.read", True), ("accounting.invoices.read", False)):
        token = connect(http, xero_sandbox.base_url, scope=f"offline_access {scope}")
        narrow = XeroConnection(http, xero.base_url, token, xero.tenant_ids)
        for endpoint in ADVANCES:
            status = narrow.get(endpoint, params={"page": 1}).status_code
            assert status == (200 if allowed else 403), (scope, endpoint)


# --- the generator -------------------------------------------------------------------------------


def test_advances_leave_every_other_record_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """They draw from their own random stream: without them the generator yields the very same
    records, except the invoices they were allocated to, the two endpoints (then empty) and
    their bank transactions (one each, added beside the others)."""
    config = GeneratorConfig(seed=5, tenants=2, invoice_lines=1200, as_of=date(2026, 1, 31))
    with_them = generate(config)
    monkeypatch.setattr(generator._AdvanceBuilder, "build", lambda self: None)
    without = generate(config)
    for tenant_id, full in with_them.tenants.items():
        bare = without.tenants[tenant_id]
        assert full.organisation == bare.organisation
        allocated = {
            a["Invoice"]["InvoiceID"]
            for name in ADVANCES
            for r in full.collections[name].values()
            for a in r["Allocations"]
        }
        assert allocated
        for name in ENTITIES:
            if name in ADVANCES:
                assert full.collections[name] and not bare.collections[name]
                continue
            if name == "BankTransactions":
                added = full.collections[name].keys() - bare.collections[name].keys()
                linked = sorted(
                    record_id(a) for n in ADVANCES for a in full.collections[n].values()
                )
                cash = [full.collections[name][b] for b in added]
                assert sorted(b.get("OverpaymentID") or b["PrepaymentID"] for b in cash) == linked
            else:
                added = set()
            assert full.collections[name].keys() - added == bare.collections[name].keys(), name
            changed = {
                rid
                for rid, record in bare.collections[name].items()
                if record != full.collections[name][rid]
            }
            assert changed == (allocated if name == "Invoices" else set()), name


# --- the endpoint table against the spec ---------------------------------------------------------


def _spec_parameters(spec: dict[str, Any], path: str) -> set[str]:
    names = set()
    for param in spec["paths"][path]["get"].get("parameters", []):
        if "$ref" in param:
            param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[-1]]
        names.add(param["name"])
    return names


def test_endpoint_table_matches_the_spec_parameters() -> None:
    if not spec_available(ACCOUNTING):
        pytest.skip(skip_reason(ACCOUNTING))
    spec = load_spec(ACCOUNTING)
    for name, entity in ENTITIES.items():
        params = _spec_parameters(spec, f"/{name}")
        assert entity.paged == ("pageSize" in params), name
        assert entity.modified_since == ("If-Modified-Since" in params), name
        assert entity.unit_dp == ("unitdp" in params), name
        assert entity.takes_ids == ("IDs" in params), name
        assert entity.summary_only == ("summaryOnly" in params), name
        # Invoices list includeArchived in the spec, but no Invoice status is ARCHIVED
        assert entity.include_archived == ("includeArchived" in params and name != "Invoices")
        assert entity.takes_where == ("where" in params), name
        assert entity.scopes and all(s.startswith("accounting.") for s in entity.scopes)
        broad = spec["paths"][f"/{name}"]["get"]["security"][0]["OAuth2"]
        assert any(s in broad or f"{s}.read" in broad for s in entity.scopes), name
    assert endpoint_scopes("Organisation") == ("accounting.settings",)
    assert {n for n, e in ENTITIES.items() if e.unit_dp} >= set(ADVANCES)
    assert all(ENTITIES[n].webhook_category is None for n in ADVANCES)  # Xero has none
