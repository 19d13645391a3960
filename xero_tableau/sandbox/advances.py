"""The cash side of overpayments and prepayments: the bank transaction Xero lists for each.

Xero keeps the money of an overpayment or prepayment as a bank transaction: ``GET
/BankTransactions`` lists one for each (the endpoint "includes spend and receive money
transactions, overpayments and prepayments", and ``PUT /BankTransactions`` is how they are
created), of Type RECEIVE-OVERPAYMENT, SPEND-OVERPAYMENT, RECEIVE-PREPAYMENT or SPEND-PREPAYMENT.
It carries what the Overpayment and Prepayment records lack: the bank account the money went
through. The link between the two is the one Xero's spec gives: ``OverpaymentID`` /
``PrepaymentID`` on the bank transaction ("returned on BankTransactions with a Type of
SPEND-OVERPAYMENT or RECEIVE-OVERPAYMENT"); the Overpayment and Prepayment schemas have no
BankTransactionID, and the bank transaction has an id of its own.

It shows what the document shows of the money, never the credit: contact, date, the lines as the
document has them (an overpayment's single line on the Accounts Receivable or Payable control
account, a prepayment's on the accounts it is for, same LineItemIDs), SubTotal, TotalTax, Total,
CurrencyCode and CurrencyRate (Xero lets an overpayment be raised in a currency other than the
bank account's: then Total is in that currency, and the bank account moves Total / CurrencyRate),
IsReconciled, and no Reference (Xero: "only supported for SPEND and RECEIVE transactions"). A bank
transaction has no PAID status: it is AUTHORISED while the document is AUTHORISED or PAID, and
VOIDED with it. Allocations and RemainingCredit are not on it, so allocating credit leaves it (and
its UpdatedDateUTC) as it was. Voiding either record voids both; Xero refuses to update or delete
these bank transactions through /BankTransactions, and so does the admin API.

The general ledger posts the document once (SourceType AROVERPAYMENT, APOVERPAYMENT, ARPREPAYMENT,
APPREPAYMENT) to the bank account of its bank transaction; the bank transaction posts nothing of
its own (it is not a CASHREC or CASHPAID).
"""

import copy
from typing import Any

from xero_tableau.sandbox.dataset import TenantData

#: bank transaction Type -> the endpoint of the document it is the cash side of
ADVANCE_TYPES: dict[str, str] = {
    "RECEIVE-OVERPAYMENT": "Overpayments",
    "SPEND-OVERPAYMENT": "Overpayments",
    "RECEIVE-PREPAYMENT": "Prepayments",
    "SPEND-PREPAYMENT": "Prepayments",
}
#: endpoint -> the field that links its bank transaction to it (and is the document's id)
LINK_FIELDS: dict[str, str] = {"Overpayments": "OverpaymentID", "Prepayments": "PrepaymentID"}

# what the bank transaction copies from its document, in the order Xero lists them
_SHOWN = ("Contact", "DateString", "Date", "Status", "LineAmountTypes", "LineItems", "SubTotal")
_TOTALS = ("TotalTax", "Total")


def linked_advance(bank_transaction: dict) -> tuple[str, str] | None:
    """(endpoint, document id) of the overpayment or prepayment a bank transaction is the cash
    side of; None for any other bank transaction."""
    endpoint = ADVANCE_TYPES.get(str(bank_transaction.get("Type")))
    if endpoint is None:
        return None
    advance_id = bank_transaction.get(LINK_FIELDS[endpoint])
    return (endpoint, str(advance_id)) if advance_id else None


def bank_transaction_of(tenant: TenantData, endpoint: str, advance_id: str) -> dict | None:
    """The bank transaction of an overpayment or prepayment, if it has one."""
    link = LINK_FIELDS[endpoint]
    for record in tenant.collections["BankTransactions"].values():
        if record.get(link) == advance_id and record.get("Type") in ADVANCE_TYPES:
            return record
    return None


def bank_status(advance: dict) -> str:
    """The bank transaction's Status for its document's (a bank transaction is never PAID)."""
    return "VOIDED" if advance.get("Status") == "VOIDED" else "AUTHORISED"


def cash_side(
    endpoint: str,
    advance: dict,
    *,
    bank_transaction_id: str,
    bank_account: dict[str, Any],
    is_reconciled: bool,
    updated: str,
) -> dict:
    """The bank transaction of ``advance`` (an Overpayments or Prepayments record) in Xero's
    JSON shape; ``bank_account`` is ``{"AccountID", "Code", "Name"}`` of a BANK account and
    ``updated`` its UpdatedDateUTC. Shares no dict or list with ``advance``."""
    record: dict[str, Any] = {
        "BankTransactionID": bank_transaction_id,
        "BankAccount": dict(bank_account),
        "Type": advance["Type"],
        "IsReconciled": is_reconciled,
        "HasAttachments": False,
        "UpdatedDateUTC": updated,
    }
    mirror(endpoint, advance, record)
    return record


def mirror(endpoint: str, advance: dict, bank_transaction: dict) -> bool:
    """Bring ``bank_transaction`` in line with its document (what the document shows of the
    money, see the module doc); whether anything changed. Keeps its id, bank account,
    IsReconciled (cleared when voided) and UpdatedDateUTC."""
    before = copy.deepcopy(bank_transaction)
    head = {
        key: bank_transaction[key]
        for key in ("BankTransactionID", "BankAccount", "Type", "IsReconciled", "HasAttachments")
        if key in bank_transaction
    }
    head["Type"] = advance["Type"]
    updated = bank_transaction.get("UpdatedDateUTC")
    shown: dict[str, Any] = {
        key: copy.deepcopy(advance[key]) for key in (*_SHOWN, *_TOTALS) if key in advance
    }
    shown["Status"] = bank_status(advance)
    if shown["Status"] == "VOIDED":
        head["IsReconciled"] = False
    bank_transaction.clear()
    bank_transaction.update(head)
    bank_transaction.update(shown)
    if updated is not None:
        bank_transaction["UpdatedDateUTC"] = updated
    bank_transaction["CurrencyCode"] = advance.get("CurrencyCode")
    bank_transaction["CurrencyRate"] = advance.get("CurrencyRate", 1.0)
    bank_transaction[LINK_FIELDS[endpoint]] = advance[LINK_FIELDS[endpoint]]
    return bank_transaction != before
