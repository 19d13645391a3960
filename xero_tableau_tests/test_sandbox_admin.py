"""The sandbox's admin API over real HTTP: writes behave as Xero's do, seen through the Accounting
API and through webhooks delivered to a small signature-checking receiver on loopback.

Totals are recomputed here from the tax rates the API serves; UpdatedDateUTC is compared with the
sandbox clock read around each write.
"""

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau_tests.conftest import SandboxFactory, XeroConnection, connect_sandbox
from xero_tableau_tests.xero_spec import ACCOUNTING, assert_valid, spec_available

WEBHOOK_KEY = "admin-test-webhook-key"
CENT = Decimal("0.01")


def ms(value: str) -> int:
    assert value.startswith("/Date(") and value.endswith(")/"), value
    return int(value[6:-2].split("+")[0])


def money(value: Decimal) -> float:
    return float(value.quantize(CENT, ROUND_HALF_UP))


class WebhookReceiver:
    """A subscriber that checks Xero's signature (HMAC-SHA256 of the raw body) and keeps events."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                digest = hmac.new(receiver.key.encode(), body, hashlib.sha256).digest()
                good = hmac.compare_digest(
                    base64.b64encode(digest).decode(), self.headers.get("x-xero-signature", "")
                )
                if good:
                    with receiver._lock:
                        receiver.payloads.append(json.loads(body))
                self.send_response(200 if good else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xero-webhooks"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for payload in self.payloads for event in payload["events"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Env:
    """A sandbox of the test's own, connected, with a webhook subscription."""

    running: RunningXeroSandbox
    http: httpx.Client
    xero: XeroConnection
    receiver: WebhookReceiver

    @property
    def tenant(self) -> str:
        return self.xero.tenant_ids[0]

    def admin(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        url = f"{self.running.base_url}/sandbox/admin/{path}"
        return self.http.request(method, url, json=body)

    def write(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        """An admin write on the first tenant that must succeed."""
        response = self.admin(method, f"tenants/{self.tenant}/{path}", body)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(self, method: str, path: str, body: dict | None = None) -> str:
        response = self.admin(method, f"tenants/{self.tenant}/{path}", body)
        assert response.status_code == 400, response.text
        return response.json()["error"]

    def one(self, endpoint: str, record_id: str) -> dict[str, Any]:
        (record,) = self.xero.ok(f"{endpoint}/{record_id}")[endpoint]
        return record

    def events(self) -> list[dict[str, Any]]:
        """Everything delivered so far (after pushing out what is queued)."""
        assert self.running.sandbox.webhooks.flush(10.0)
        return self.receiver.events()

    def now_ms(self) -> int:
        return self.running.sandbox.clock.now_ms()


@pytest.fixture
def env(make_sandbox: SandboxFactory, http: httpx.Client) -> Iterator[Env]:
    running = make_sandbox(XeroSandboxConfig(webhook_batch_seconds=0.2))
    receiver = WebhookReceiver(WEBHOOK_KEY)
    try:
        sub = http.post(
            f"{running.base_url}/sandbox/admin/webhooks",
            json={"url": receiver.url, "key": WEBHOOK_KEY},
        )
        assert sub.status_code == 200 and sub.json()["status"] == "OK", sub.text
        yield Env(running, http, connect_sandbox(http, running), receiver)
    finally:
        receiver.close()


def _codes(env: Env) -> tuple[str, str, str, Decimal]:
    """(revenue code, another revenue code, sales tax type, its rate) served by the API."""
    accounts = env.xero.ok("Accounts")["Accounts"]
    revenue = [a["Code"] for a in accounts if a["Type"] in ("REVENUE", "SALES")]
    rates = env.xero.ok("TaxRates")["TaxRates"]
    sales = next(r for r in rates if r["CanApplyToRevenue"] and r["EffectiveRate"] > 0)
    return revenue[0], revenue[1], sales["TaxType"], Decimal(str(sales["EffectiveRate"])) / 100


def _contact(env: Env) -> dict[str, Any]:
    return env.xero.ok("Contacts", params={"page": 1})["Contacts"][0]


def _invoice_body(env: Env, kind: str = "Exclusive", status: str = "AUTHORISED") -> dict:
    code, _, tax_type, _ = _codes(env)
    return {
        "Type": "ACCREC",
        "Status": status,
        "Contact": {"ContactID": _contact(env)["ContactID"]},
        "Date": "2026-10-01",
        "DueDate": "2026-10-31",
        "LineAmountTypes": kind,
        "LineItems": [
            {
                "Description": "Advice",
                "Quantity": 3,
                "UnitAmount": 123.45,
                "AccountCode": code,
                "TaxType": tax_type,
            },
            {
                "Description": "Travel",
                "Quantity": 1.5,
                "UnitAmount": 80.1,
                "AccountCode": code,
                "TaxType": tax_type,
            },
        ],
    }


def _events_for(env: Env, resource_id: str) -> list[dict[str, Any]]:
    return [e for e in env.events() if e["resourceId"] == resource_id]


# --- creating and updating ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Exclusive", "Inclusive"])
def test_create_invoice(env: Env, kind: str) -> None:
    _, _, _, rate = _codes(env)
    before = env.now_ms()
    created = env.write("POST", "Invoices", _invoice_body(env, kind))
    after = env.now_ms()
    invoice = env.one("Invoices", created["InvoiceID"])

    amounts = [Decimal("3") * Decimal("123.45"), Decimal("1.5") * Decimal("80.1")]
    amounts = [a.quantize(CENT, ROUND_HALF_UP) for a in amounts]
    if kind == "Exclusive":
        taxes = [(a * rate).quantize(CENT, ROUND_HALF_UP) for a in amounts]
        subtotal, total = sum(amounts), sum(amounts) + sum(taxes)
    else:
        taxes = [(a - a / (1 + rate)).quantize(CENT, ROUND_HALF_UP) for a in amounts]
        subtotal, total = sum(amounts) - sum(taxes), sum(amounts)
    assert [line["LineAmount"] for line in invoice["LineItems"]] == [money(a) for a in amounts]
    assert [line["TaxAmount"] for line in invoice["LineItems"]] == [money(t) for t in taxes]
    assert invoice["SubTotal"] == money(Decimal(subtotal))
    assert invoice["TotalTax"] == money(Decimal(sum(taxes)))
    assert invoice["Total"] == money(Decimal(total))
    assert invoice["AmountDue"] == invoice["Total"] and invoice["AmountPaid"] == 0
    assert invoice["Status"] == "AUTHORISED"
    midnight = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)
    assert invoice["Date"] == f"/Date({midnight}+0000)/"  # a date-only field: midnight UTC
    assert invoice["DateString"] == "2026-10-01T00:00:00"
    accounts = {a["Code"]: a["AccountID"] for a in env.xero.ok("Accounts")["Accounts"]}
    for line in invoice["LineItems"]:
        assert line["LineItemID"] and line["AccountID"] == accounts[line["AccountCode"]]

    updated = ms(invoice["UpdatedDateUTC"])
    assert before <= updated <= after  # stamped with the sandbox's now
    stamp = datetime.fromtimestamp(updated / 1000, UTC)
    assert invoice["UpdatedDateUTCString"] == stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    since = {"If-Modified-Since": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
    changed = env.xero.all_records("Invoices", headers=since)
    assert created["InvoiceID"] in [r["InvoiceID"] for r in changed]
    if spec_available(ACCOUNTING):
        assert_valid({"Invoices": [invoice]}, "Invoices", strict=True)

    (event,) = _events_for(env, created["InvoiceID"])
    assert event["eventCategory"] == "INVOICE" and event["eventType"] == "CREATE"
    assert event["tenantId"] == env.tenant and event["tenantType"] == "ORGANISATION"
    assert event["resourceUrl"].endswith(f"/api.xro/2.0/Invoices/{created['InvoiceID']}")


def test_create_refuses_what_xero_refuses(env: Env) -> None:
    body = _invoice_body(env)
    assert "Account code" in env.refused(
        "POST", "Invoices", {**body, "LineItems": [{**body["LineItems"][0], "AccountCode": "NOPE"}]}
    )
    assert env.refused("POST", "Invoices", {**body, "Type": "ACCRECCREDIT"})
    assert env.refused("POST", "Invoices", {**body, "Contact": {"ContactID": "missing"}})
    unknown = env.admin("POST", f"tenants/{env.tenant}/NotAnEndpoint", {})
    assert unknown.status_code == 404


def test_update_bumps_updated_date_strictly(env: Env) -> None:
    invoice = env.xero.ok("Invoices", params={"page": 1, "where": 'Status=="AUTHORISED"'})[
        "Invoices"
    ][0]
    stamps = [ms(invoice["UpdatedDateUTC"])]
    for reference in ("first", "second", "third"):  # quicker than the clock's millisecond
        updated = env.write("PATCH", f"Invoices/{invoice['InvoiceID']}", {"Reference": reference})
        stamps.append(ms(updated["UpdatedDateUTC"]))
    assert stamps == sorted(set(stamps))  # strictly increasing
    served = env.one("Invoices", invoice["InvoiceID"])
    assert served["Reference"] == "third" and ms(served["UpdatedDateUTC"]) == stamps[-1]
    events = _events_for(env, invoice["InvoiceID"])
    assert [e["eventType"] for e in events] == ["UPDATE"] * 3
    assert "cannot change" in env.refused(
        "PATCH", f"Invoices/{invoice['InvoiceID']}", {"UpdatedDateUTC": "/Date(0+0000)/"}
    )


# --- voiding and deleting -----------------------------------------------------------------------


def test_void_an_authorised_invoice_is_a_soft_delete(env: Env) -> None:
    created = env.write("POST", "Invoices", _invoice_body(env))
    voided = env.write("POST", f"Invoices/{created['InvoiceID']}/void")
    assert voided["Status"] == "VOIDED"
    assert ms(voided["UpdatedDateUTC"]) > ms(created["UpdatedDateUTC"])
    listed = env.xero.all_records("Invoices", where='Status=="VOIDED"')
    assert created["InvoiceID"] in [r["InvoiceID"] for r in listed]  # still served
    assert env.one("Invoices", created["InvoiceID"])["Status"] == "VOIDED"
    assert [e["eventType"] for e in _events_for(env, created["InvoiceID"])] == ["CREATE", "UPDATE"]
    assert env.refused("PATCH", f"Invoices/{created['InvoiceID']}", {"Reference": "late"})


def test_delete_a_draft_but_not_an_authorised_invoice(env: Env) -> None:
    draft = env.write("POST", "Invoices", _invoice_body(env, status="DRAFT"))
    deleted = env.write("POST", f"Invoices/{draft['InvoiceID']}/delete")
    assert deleted["Status"] == "DELETED"
    assert env.one("Invoices", draft["InvoiceID"])["Status"] == "DELETED"
    authorised = env.write("POST", "Invoices", _invoice_body(env))
    assert "void it instead" in env.refused("POST", f"Invoices/{authorised['InvoiceID']}/delete")
    submitted = env.write("POST", "Invoices", _invoice_body(env, status="SUBMITTED"))
    assert "delete it instead" in env.refused("POST", f"Invoices/{submitted['InvoiceID']}/void")
    assert env.write("POST", f"Invoices/{submitted['InvoiceID']}/delete")["Status"] == "DELETED"
    types = [e["eventType"] for e in _events_for(env, draft["InvoiceID"])]
    assert types == ["CREATE", "UPDATE"]  # Xero has no DELETE event


def test_void_a_paid_invoice_is_refused(env: Env) -> None:
    paid = env.xero.ok("Invoices", params={"page": 1, "where": 'Status=="PAID"'})["Invoices"][0]
    env.refused("POST", f"Invoices/{paid['InvoiceID']}/void")
    assert env.one("Invoices", paid["InvoiceID"]) == paid  # unchanged


# --- payments -----------------------------------------------------------------------------------


def test_pay_then_delete_the_payment(env: Env) -> None:
    invoice = env.write("POST", "Invoices", _invoice_body(env))
    invoice_id, total = invoice["InvoiceID"], Decimal(str(invoice["Total"]))
    part = Decimal("100.00")

    first = env.write("POST", f"Invoices/{invoice_id}/payments", {"Amount": float(part)})
    partly = env.one("Invoices", invoice_id)
    assert partly["Status"] == "AUTHORISED"
    assert partly["AmountPaid"] == money(part) and partly["AmountDue"] == money(total - part)
    assert "FullyPaidOnDate" not in partly

    assert env.refused("POST", f"Invoices/{invoice_id}/payments", {"Amount": float(total)})
    before = ms(partly["UpdatedDateUTC"])
    rest = env.write("POST", f"Invoices/{invoice_id}/payments", {"Reference": "the rest"})
    paid = env.one("Invoices", invoice_id)
    assert paid["Status"] == "PAID"
    assert paid["AmountPaid"] == money(total) and paid["AmountDue"] == 0
    assert ms(paid["UpdatedDateUTC"]) > before
    assert paid["FullyPaidOnDate"] == rest["Date"]
    assert sorted(p["PaymentID"] for p in paid["Payments"]) == sorted(
        (first["PaymentID"], rest["PaymentID"])
    )

    payment = env.one("Payments", rest["PaymentID"])
    assert payment["Amount"] == money(total - part)
    assert payment["Status"] == "AUTHORISED" and payment["PaymentType"] == "ACCRECPAYMENT"
    assert payment["Invoice"]["InvoiceID"] == invoice_id
    assert payment["Reference"] == "the rest"
    if spec_available(ACCOUNTING):
        assert_valid({"Payments": [payment]}, "Payments", strict=True)
        assert_valid({"Invoices": [paid]}, "Invoices", strict=True)
    assert env.refused("POST", f"Invoices/{invoice_id}/void")  # it has payments

    deleted = env.write("POST", f"Payments/{rest['PaymentID']}/delete")
    assert deleted["Status"] == "DELETED"
    reopened = env.one("Invoices", invoice_id)
    assert reopened["Status"] == "AUTHORISED"
    assert reopened["AmountPaid"] == money(part)
    assert reopened["AmountDue"] == money(total - part)
    assert "FullyPaidOnDate" not in reopened
    assert [p["PaymentID"] for p in reopened["Payments"]] == [first["PaymentID"]]
    assert ms(reopened["UpdatedDateUTC"]) > ms(paid["UpdatedDateUTC"])
    assert env.one("Payments", rest["PaymentID"])["Status"] == "DELETED"  # soft delete
    assert env.refused("POST", f"Payments/{rest['PaymentID']}/delete")  # only once

    # the invoice events tell the story; payments have no webhook category at all
    events = env.events()
    assert {e["eventCategory"] for e in events} == {"INVOICE"}
    assert {e["resourceId"] for e in events} == {invoice_id}
    assert [e["eventType"] for e in events] == ["CREATE", "UPDATE", "UPDATE", "UPDATE"]


def test_foreign_currency_payment_bank_amount(env: Env) -> None:
    body = {**_invoice_body(env), "CurrencyCode": "AUD", "CurrencyRate": 0.937811}
    invoice = env.write("POST", "Invoices", body)
    payment = env.write("POST", f"Invoices/{invoice['InvoiceID']}/payments", {})
    rate = Decimal(str(invoice["CurrencyRate"]))
    assert payment["Amount"] == invoice["AmountDue"]
    assert payment["CurrencyRate"] == invoice["CurrencyRate"]
    # BankAmount is in the bank account's (base) currency: Amount / CurrencyRate
    assert payment["BankAmount"] == money(Decimal(str(invoice["AmountDue"])) / rate)


# --- the silent account-code edit ---------------------------------------------------------------


def test_line_account_code_edit_leaves_updated_date_alone(env: Env) -> None:
    cut = env.now_ms() - 86_400_000  # an invoice last updated well before now
    invoice = next(
        inv for inv in env.xero.all_records("Invoices") if ms(inv["UpdatedDateUTC"]) < cut
    )
    line = invoice["LineItems"][0]
    accounts = {a["Code"]: a["AccountID"] for a in env.xero.ok("Accounts")["Accounts"]}
    new_code = next(code for code in sorted(accounts) if code != line["AccountCode"])
    watermark = datetime.fromtimestamp(env.now_ms() / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    events_before = len(env.events())

    path = f"Invoices/{invoice['InvoiceID']}/lines/{line['LineItemID']}/account-code"
    env.write("POST", path, {"AccountCode": new_code})

    served = env.one("Invoices", invoice["InvoiceID"])
    assert served["LineItems"][0]["AccountCode"] == new_code
    assert served["LineItems"][0]["AccountID"] == accounts[new_code]  # the ID follows the code
    assert served["UpdatedDateUTC"] == invoice["UpdatedDateUTC"]
    assert served["LineItems"][1:] == invoice["LineItems"][1:]
    # the trap: an incremental read from before the edit does not see it, and no webhook fires
    changed = env.xero.all_records("Invoices", headers={"If-Modified-Since": watermark})
    assert invoice["InvoiceID"] not in [r["InvoiceID"] for r in changed]
    assert len(env.events()) == events_before
    assert env.refused("POST", path, {"AccountCode": "NOPE"})
    missing = env.admin(
        "POST",
        f"tenants/{env.tenant}/Invoices/{invoice['InvoiceID']}/lines/no-such-line/account-code",
        {"AccountCode": new_code},
    )
    assert missing.status_code == 404


# --- which writes fire webhooks -----------------------------------------------------------------


def test_webhook_categories_follow_xero(env: Env) -> None:
    contact = env.write("POST", "Contacts", {"Name": "Webhook Test Ltd"})
    env.write("PATCH", f"Contacts/{contact['ContactID']}", {"EmailAddress": "a@example.com"})
    editable = 'Status!="VOIDED" && Status!="DELETED"'
    credit = env.xero.ok("CreditNotes", params={"page": 1, "where": editable})["CreditNotes"][0]
    env.write("PATCH", f"CreditNotes/{credit['CreditNoteID']}", {"Reference": "adjusted"})
    events = env.events()
    by_resource = {(e["eventCategory"], e["eventType"], e["resourceId"]) for e in events}
    assert by_resource == {
        ("CONTACT", "CREATE", contact["ContactID"]),
        ("CONTACT", "UPDATE", contact["ContactID"]),
        ("CREDITNOTE", "UPDATE", credit["CreditNoteID"]),
    }
    (credit_event,) = [e for e in events if e["eventCategory"] == "CREDITNOTE"]
    assert credit_event["data"] == {"Type": credit["Type"], "Status": credit["Status"]}
    assert credit_event["resourceUrl"].endswith(f"/CreditNotes/{credit['CreditNoteID']}")

    # bank transactions and manual journals have no webhook category
    bank = next(a for a in env.xero.ok("Accounts")["Accounts"] if a["Type"] == "BANK")
    code, _, _, _ = _codes(env)
    spend = env.write(
        "POST",
        "BankTransactions",
        {
            "Type": "RECEIVE",
            "Status": "AUTHORISED",
            "Contact": {"ContactID": contact["ContactID"]},
            "BankAccount": {"AccountID": bank["AccountID"], "Code": bank["Code"]},
            "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Refund", "UnitAmount": 12.5, "AccountCode": code}],
        },
    )
    assert spend["Total"] == 12.5
    env.write("POST", f"BankTransactions/{spend['BankTransactionID']}/void")
    journal = env.write(
        "POST",
        "ManualJournals",
        {
            "Narration": "Reclass",
            "Status": "POSTED",
            "JournalLines": [
                {"LineAmount": 50.0, "AccountCode": code},
                {"LineAmount": -50.0, "AccountCode": code},
            ],
        },
    )
    served_journal = env.one("ManualJournals", journal["ManualJournalID"])
    assert served_journal["Narration"] == "Reclass"
    served_spend = env.one("BankTransactions", spend["BankTransactionID"])
    assert served_spend["Status"] == "VOIDED"
    if spec_available(ACCOUNTING):  # what the admin API writes is what Xero could serve
        assert_valid({"ManualJournals": [served_journal]}, "ManualJournals", strict=True)
        assert_valid({"BankTransactions": [served_spend]}, "BankTransactions", strict=True)
        served_contact = env.one("Contacts", contact["ContactID"])
        assert_valid({"Contacts": [served_contact]}, "Contacts", strict=True)
        served_credit = env.one("CreditNotes", credit["CreditNoteID"])
        assert_valid({"CreditNotes": [served_credit]}, "CreditNotes", strict=True)
    assert env.events() == events  # nothing new


# --- steering the emulator ----------------------------------------------------------------------


def test_clock_advance(env: Env) -> None:
    before = env.now_ms()
    response = env.admin("POST", "clock/advance", {"seconds": 7200})
    assert response.status_code == 200
    now = datetime.fromisoformat(response.json()["now"])
    assert now.timestamp() * 1000 >= before + 7_200_000
    created = env.write("POST", "Contacts", {"Name": "Later Ltd"})
    assert ms(created["UpdatedDateUTC"]) >= before + 7_200_000
    assert env.admin("POST", "clock/advance", {"seconds": -5}).status_code == 400


def test_faults_endpoint(env: Env) -> None:
    response = env.admin("POST", "faults", {"fail_next": [503, 503]})
    assert response.status_code == 200 and response.json()["fail_next"] == [503, 503]
    assert env.xero.get("Organisation").status_code == 503
    assert env.xero.get("Organisation").status_code == 503
    assert env.xero.get("Organisation").status_code == 200
    assert env.admin("POST", "faults", {"no_such_fault": 1}).status_code == 400


def test_state_counts(env: Env) -> None:
    state = env.admin("GET", "state").json()
    tenants = env.running.sandbox.dataset.tenants
    assert set(state["tenants"]) == set(tenants)
    counts = state["tenants"][env.tenant]["counts"]
    invoices = env.xero.all_records("Invoices")
    assert counts["Invoices"] == len(invoices)
    assert counts["Contacts"] == len(env.xero.all_records("Contacts", includeArchived="true"))
    env.write("POST", "Invoices", _invoice_body(env))
    after = env.admin("GET", "state").json()
    assert after["tenants"][env.tenant]["counts"]["Invoices"] == counts["Invoices"] + 1
    assert after["calls"][f"{env.tenant} Invoices"] >= 1
    (subscription,) = after["webhooks"]
    assert subscription["status"] == "OK"
    verified = env.admin("POST", f"webhooks/{subscription['id']}/verify")
    assert verified.status_code == 200 and verified.json()["status"] == "OK"
    listed = env.admin("GET", "webhooks").json()
    assert [s["url"] for s in listed] == [env.receiver.url]
    unknown = env.admin("POST", f"tenants/{env.tenant}/Invoices/{uuid.uuid4()}/payments", {})
    assert unknown.status_code == 404


def test_tenant_disconnect(env: Env) -> None:
    response = env.admin("POST", f"tenants/{env.tenant}/disconnect")
    assert response.status_code == 200 and response.json()["grants"] >= 1
    assert env.xero.get("Organisation").status_code == 403
    assert env.xero.get("Organisation", env.xero.tenant_ids[1]).status_code == 200


# --- overpayments and prepayments --------------------------------------------------------------


def _open_sale(env: Env) -> dict[str, Any]:
    """An AUTHORISED sales invoice with something still due, in the base currency."""
    base = env.xero.ok("Organisation")["Organisations"][0]["BaseCurrency"]
    invoices = env.xero.all_records("Invoices", where='Type=="ACCREC" && Status=="AUTHORISED"')
    return next(i for i in invoices if i["AmountDue"] > 1 and i["CurrencyCode"] == base)


def test_prepayment_created_and_allocated_like_xero(env: Env) -> None:
    invoice = _open_sale(env)
    contact = invoice["Contact"]["ContactID"]
    revenue, _other, tax_type, rate = _codes(env)
    before = len(env.events())
    prepayment = env.write(
        "POST",
        "Prepayments",
        {
            "Type": "RECEIVE-PREPAYMENT",
            "Contact": {"ContactID": contact},
            "Date": "2020-01-02",  # before any invoice of the generated history
            "LineAmountTypes": "Inclusive",
            "LineItems": [{"Description": "Deposit", "LineAmount": 115.0, "AccountCode": revenue,
                           "TaxType": tax_type}],
        },
    )  # fmt: skip
    pid = prepayment["PrepaymentID"]
    served = env.one("Prepayments", pid)
    tax = (Decimal("115") - Decimal("115") / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
    assert (served["Status"], served["Total"], served["RemainingCredit"]) == (
        "AUTHORISED",
        115,
        115,
    )
    assert Decimal(str(served["TotalTax"])) == tax and served["Allocations"] == []
    if spec_available(ACCOUNTING):
        assert_valid({"Prepayments": [served]}, "Prepayments", strict=True)

    due = Decimal(str(invoice["AmountDue"]))
    amount = min(due, Decimal("40.00"))
    path = f"Prepayments/{pid}/allocations"
    env.write("POST", path, {"InvoiceID": invoice["InvoiceID"], "Amount": float(amount)})
    served = env.one("Prepayments", pid)
    assert Decimal(str(served["RemainingCredit"])) == Decimal("115") - amount
    assert [a["Invoice"]["InvoiceID"] for a in served["Allocations"]] == [invoice["InvoiceID"]]
    after = env.one("Invoices", invoice["InvoiceID"])
    assert Decimal(str(after["AmountDue"])) == due - amount
    credited = Decimal(str(after["AmountCredited"]))
    assert credited == Decimal(str(invoice["AmountCredited"])) + amount
    assert Decimal(str(after["AmountPaid"])) + credited + due - amount == Decimal(
        str(after["Total"])
    )
    assert [p["PrepaymentID"] for p in after["Prepayments"]] == [pid]
    assert ms(after["UpdatedDateUTC"]) > ms(invoice["UpdatedDateUTC"])
    if spec_available(ACCOUNTING):
        assert_valid({"Invoices": [after]}, "Invoices", strict=True)
    # Xero has no webhook for prepayments: only the invoice's UPDATE is delivered
    new = env.events()[before:]
    assert {(e["eventCategory"], e["resourceId"]) for e in new} == {
        ("INVOICE", invoice["InvoiceID"])
    }
    assert "allocated" in env.refused("POST", f"Prepayments/{pid}/void")


def test_overpayment_refusals_and_void(env: Env) -> None:
    invoice = _open_sale(env)
    contact = invoice["Contact"]["ContactID"]
    body = {"Type": "RECEIVE-OVERPAYMENT", "Contact": {"ContactID": contact}, "Total": 25.0}
    overpayment = env.write("POST", "Overpayments", {**body, "Date": "2020-01-02"})
    oid = overpayment["OverpaymentID"]
    served = env.one("Overpayments", oid)
    (line,) = served["LineItems"]
    accounts = {a["Code"]: a for a in env.xero.ok("Accounts")["Accounts"]}
    assert accounts[line["AccountCode"]]["SystemAccount"] == "DEBTORS"
    assert (served["Total"], served["RemainingCredit"], served["TotalTax"]) == (25, 25, 0)
    if spec_available(ACCOUNTING):
        assert_valid({"Overpayments": [served]}, "Overpayments", strict=True)
    assert "Type" in env.refused("POST", "Overpayments", {**body, "Type": "RECEIVE-PREPAYMENT"})
    path = f"Overpayments/{oid}/allocations"
    assert "amount" in env.refused("POST", path, {"InvoiceID": invoice["InvoiceID"], "Amount": 26})
    other = next(
        i
        for i in env.xero.all_records("Invoices", where='Status=="AUTHORISED"')
        if i["Contact"]["ContactID"] != contact
    )
    assert env.refused("POST", path, {"InvoiceID": other["InvoiceID"], "Amount": 1})
    assert env.one("Invoices", invoice["InvoiceID"]) == invoice  # nothing was applied
    env.write("POST", f"Overpayments/{oid}/void")
    voided = env.one("Overpayments", oid)
    assert (voided["Status"], voided["RemainingCredit"]) == ("VOIDED", 0)
    assert env.refused("POST", path, {"InvoiceID": invoice["InvoiceID"], "Amount": 1})


# --- tracking categories and options ------------------------------------------------------------


def _categories(env: Env) -> dict[str, dict[str, Any]]:
    served = env.xero.ok("TrackingCategories", params={"includeArchived": "true"})
    return {c["TrackingCategoryID"]: c for c in served["TrackingCategories"]}


def test_tracking_options_rename_archive_restore_and_delete_like_xero(env: Env) -> None:
    used = next(
        line["Tracking"][0]
        for invoice in env.xero.all_records("Invoices")
        for line in invoice.get("LineItems", [])
        if line.get("Tracking")
    )
    category_id, option_id = used["TrackingCategoryID"], used["TrackingOptionID"]
    path = f"TrackingCategories/{category_id}/Options/{option_id}"
    renamed = env.write("POST", path, {"Name": "Renamed Region"})
    assert renamed["Name"] == "Renamed Region" and renamed["Status"] == "ACTIVE"
    env.write("POST", path, {"Status": "ARCHIVED"})
    options = {o["TrackingOptionID"]: o for o in _categories(env)[category_id]["Options"]}
    assert options[option_id]["Status"] == "ARCHIVED" and options[option_id]["IsArchived"]
    active_only = env.xero.ok("TrackingCategories")["TrackingCategories"]
    assert option_id not in {
        o["TrackingOptionID"] for c in active_only for o in c["Options"]
    }  # archived options need includeArchived=true
    env.write("POST", path, {"Status": "ACTIVE"})
    assert "archive it instead" in env.refused("POST", path + "/delete")  # used on documents
    assert "Status must be" in env.refused("POST", path, {"Status": "DELETED"})
    # a category of the test's own, with an option no document uses, can be deleted
    first_active = next(c for c in _categories(env).values() if c["Status"] == "ACTIVE")[
        "TrackingCategoryID"
    ]
    assert "at most two" in env.refused("POST", "TrackingCategories", {"Name": "Third"})
    env.write("PATCH", f"TrackingCategories/{first_active}", {"Status": "ARCHIVED"})
    created = env.write(
        "POST", "TrackingCategories", {"Name": "Project", "Options": [{"Name": "Apollo"}]}
    )
    new_id = created["TrackingCategoryID"]
    (apollo,) = created["Options"]
    assert "at most two" in env.refused(
        "PATCH", f"TrackingCategories/{first_active}", {"Status": "ACTIVE"}
    )
    env.write("PATCH", f"TrackingCategories/{new_id}", {"Name": "Projects"})
    gone = env.write(
        "POST", f"TrackingCategories/{new_id}/Options/{apollo['TrackingOptionID']}/delete"
    )
    assert gone["Status"] == "DELETED" and gone["IsDeleted"]
    assert _categories(env)[new_id]["Options"] == []
    assert _categories(env)[new_id]["Name"] == "Projects"
    deleted = env.write("POST", f"TrackingCategories/{new_id}/delete")
    assert deleted["Status"] == "DELETED"
    assert new_id not in _categories(env)  # never listed again
    env.write("PATCH", f"TrackingCategories/{first_active}", {"Status": "ACTIVE"})
    assert "archive it instead" in env.refused("POST", f"TrackingCategories/{category_id}/delete")
    assert env.events() == []  # Xero has no webhooks for tracking
