"""The raw lake's columnar layout of each transactional Xero entity: Arrow schemas and row builders.

A layout turns one validated record into a documents row and, for entities with lines, line rows
naming exactly the schema's columns after the fixed head (``DOC_HEAD``: the id, the versions and
the read's provenance; checked by :func:`xero_tableau.transform.raw.flatten`). Schemas are fixed.
Money is ``decimal128(18, 2)``, quantities and unit prices ``decimal128(18, 4)``, rates
``decimal128(18, 6)``; ``/Date(0+0000)/`` is stored as null. Which layout belongs to which
endpoint is said once, in ``xero_tableau.entities``.

No dagster here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa

from xero_tableau.xero.models import (
    BankTransaction,
    Contact,
    ContactRef,
    CreditNote,
    Invoice,
    LineItem,
    ManualJournal,
    ManualJournalLine,
    Overpayment,
    Payment,
    Prepayment,
    PurchaseOrder,
)

Row = dict[str, Any]

MONEY = pa.decimal128(18, 2)
UNIT = pa.decimal128(18, 4)
RATE = pa.decimal128(18, 6)
INSTANT = pa.timestamp("ms", tz="UTC")

_EPOCH_DATE = date(1970, 1, 1)
_MAX_TRACKING = 2


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_DOC_HEAD = [
    _f("id", pa.string(), False),
    _f("updated_at_utc", INSTANT, False),
    _f("fetched_at_utc", INSTANT, False),
    # Provenance of the stored content (transform/provenance.py): the read that produced it,
    # which is the latest read unless later reads found the same content. Null in partitions
    # written before these columns existed.
    _f("synced_at_utc", INSTANT),
    _f("sync_source", pa.string()),
    _f("dagster_run_id", pa.string()),
    _f("source_event_at_utc", INSTANT),
]
#: Columns every documents schema starts with; the layout's row builder fills the rest.
DOC_HEAD = tuple(f.name for f in _DOC_HEAD)
#: The provenance part of ``DOC_HEAD``.
PROVENANCE = ("synced_at_utc", "sync_source", "dagster_run_id", "source_event_at_utc")
_LINE_HEAD = [
    _f("document_id", pa.string(), False),
    _f("document_row", pa.int32(), False),
    _f("line_number", pa.int32(), False),
    _f("line_id", pa.string()),
]
_TRACKING = [
    _f(f"tracking_{slot}_{part}", pa.string())
    for slot in ("a", "b")
    for part in ("category_id", "category_name", "option_id", "option_name")
]
_CONTACT = [_f("contact_id", pa.string()), _f("contact_name", pa.string())]
_TOTALS = [_f("sub_total", MONEY), _f("total_tax", MONEY), _f("total", MONEY)]
_CURRENCY = [_f("currency_code", pa.string()), _f("currency_rate", RATE)]

INVOICE_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("type", pa.string()),
        _f("status", pa.string()),
        _f("invoice_number", pa.string()),
        _f("reference", pa.string()),
        *_CONTACT,
        _f("date", pa.date32()),
        _f("due_date", pa.date32()),
        _f("fully_paid_on_date", pa.date32()),
        _f("expected_payment_date", pa.date32()),
        _f("line_amount_types", pa.string()),
        *_CURRENCY,
        *_TOTALS,
        _f("total_discount", MONEY),
        _f("amount_due", MONEY),
        _f("amount_paid", MONEY),
        _f("amount_credited", MONEY),
        _f("sent_to_contact", pa.bool_()),
        _f("has_attachments", pa.bool_()),
    ]
)
CREDIT_NOTE_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("type", pa.string()),
        _f("status", pa.string()),
        _f("credit_note_number", pa.string()),
        _f("reference", pa.string()),
        *_CONTACT,
        _f("date", pa.date32()),
        _f("due_date", pa.date32()),
        _f("fully_paid_on_date", pa.date32()),
        _f("line_amount_types", pa.string()),
        *_CURRENCY,
        *_TOTALS,
        _f("remaining_credit", MONEY),
        _f("applied_amount", MONEY),
        # the live (not deleted) allocations to invoices, summed and counted as for over- and
        # prepayments; null in partitions written before these columns existed
        _f("allocated_amount", MONEY),
        _f("allocations", pa.int32()),
        _f("sent_to_contact", pa.bool_()),
        _f("has_attachments", pa.bool_()),
    ]
)
PAYMENT_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("payment_type", pa.string()),
        _f("status", pa.string()),
        _f("date", pa.date32()),
        _f("reference", pa.string()),
        _f("is_reconciled", pa.bool_()),
        _f("amount", MONEY),
        _f("bank_amount", MONEY),
        _f("currency_rate", RATE),
        _f("account_id", pa.string()),
        _f("account_code", pa.string()),
        _f("account_name", pa.string()),
        _f("invoice_id", pa.string()),
        _f("invoice_number", pa.string()),
        _f("invoice_type", pa.string()),
        _f("invoice_currency_code", pa.string()),
        _f("credit_note_id", pa.string()),
        _f("credit_note_number", pa.string()),
        _f("prepayment_id", pa.string()),
        _f("overpayment_id", pa.string()),
        _f("batch_payment_id", pa.string()),
        *_CONTACT,
    ]
)
BANK_TRANSACTION_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("type", pa.string()),
        _f("status", pa.string()),
        _f("reference", pa.string()),
        _f("is_reconciled", pa.bool_()),
        _f("bank_account_id", pa.string()),
        _f("bank_account_code", pa.string()),
        _f("bank_account_name", pa.string()),
        *_CONTACT,
        _f("date", pa.date32()),
        _f("line_amount_types", pa.string()),
        *_CURRENCY,
        *_TOTALS,
        _f("prepayment_id", pa.string()),
        _f("overpayment_id", pa.string()),
        _f("has_attachments", pa.bool_()),
    ]
)
MANUAL_JOURNAL_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("status", pa.string()),
        _f("narration", pa.string()),
        _f("date", pa.date32()),
        _f("line_amount_types", pa.string()),
        _f("show_on_cash_basis_reports", pa.bool_()),
        _f("has_attachments", pa.bool_()),
    ]
)
PURCHASE_ORDER_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("status", pa.string()),
        _f("purchase_order_number", pa.string()),
        _f("reference", pa.string()),
        *_CONTACT,
        _f("date", pa.date32()),
        _f("delivery_date", pa.date32()),
        _f("expected_arrival_date", pa.date32()),
        _f("line_amount_types", pa.string()),
        *_CURRENCY,
        *_TOTALS,
        _f("total_discount", MONEY),
        _f("sent_to_contact", pa.bool_()),
        _f("has_attachments", pa.bool_()),
    ]
)
CONTACT_DOCUMENTS = pa.schema(
    [
        *_DOC_HEAD,
        _f("name", pa.string()),
        _f("contact_status", pa.string()),
        _f("contact_number", pa.string()),
        _f("account_number", pa.string()),
        _f("first_name", pa.string()),
        _f("last_name", pa.string()),
        _f("email_address", pa.string()),
        _f("tax_number", pa.string()),
        _f("is_customer", pa.bool_()),
        _f("is_supplier", pa.bool_()),
        _f("default_currency", pa.string()),
        _f("merged_to_contact_id", pa.string()),
        _f("sales_default_account_code", pa.string()),
        _f("purchases_default_account_code", pa.string()),
    ]
)

LINE_ITEM_LINES = pa.schema(
    [
        *_LINE_HEAD,
        _f("description", pa.string()),
        _f("item_code", pa.string()),
        _f("quantity", UNIT),
        _f("unit_amount", UNIT),
        _f("account_id", pa.string()),
        _f("account_code", pa.string()),
        _f("tax_type", pa.string()),
        _f("tax_amount", MONEY),
        _f("line_amount", MONEY),
        _f("discount_rate", RATE),
        _f("discount_amount", MONEY),
        *_TRACKING,
    ]
)
JOURNAL_LINES = pa.schema(
    [
        *_LINE_HEAD,
        _f("description", pa.string()),
        _f("account_id", pa.string()),
        _f("account_code", pa.string()),
        _f("tax_type", pa.string()),
        _f("tax_amount", MONEY),
        _f("line_amount", MONEY),
        _f("is_blank", pa.bool_()),
        *_TRACKING,
    ]
)


_CREDIT = [
    *_DOC_HEAD,
    _f("type", pa.string()),
    _f("status", pa.string()),
    _f("reference", pa.string()),
    *_CONTACT,
    _f("date", pa.date32()),
    _f("line_amount_types", pa.string()),
    *_CURRENCY,
    *_TOTALS,
    _f("remaining_credit", MONEY),
    _f("applied_amount", MONEY),
    _f("allocated_amount", MONEY),
    _f("allocations", pa.int32()),
    _f("has_attachments", pa.bool_()),
]
OVERPAYMENT_DOCUMENTS = pa.schema(_CREDIT)
PREPAYMENT_DOCUMENTS = pa.schema([*_CREDIT, _f("invoice_number", pa.string())])
ALLOCATION_LINES = pa.schema(
    [
        *_LINE_HEAD,
        _f("allocation_date", pa.date32()),
        _f("amount", MONEY),
        _f("invoice_id", pa.string()),
        _f("invoice_number", pa.string()),
        _f("is_deleted", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class RawLayout:
    """How one entity's records are laid out in the lake."""

    documents: pa.Schema
    header: Callable[[Any, dict[str, Any]], Row]
    lines: pa.Schema | None = None
    line_rows: Callable[[Any, str], list[Row]] | None = None
    lines_key: str = ""  # the JSON key of the lines, used to locate a bad line in a reason


class TooMuchTracking(ValueError):
    """A line with more than two tracking elements: Xero allows two, so the record is corrupt."""


# --- row builders --------------------------------------------------------------------------------


def _day(value: date | None) -> date | None:
    """Xero's /Date(0)/ placeholder (voided documents) means "no date"."""
    return None if value is None or value == _EPOCH_DATE else value


def _contact(ref: ContactRef | None) -> Row:
    if ref is None:
        return {"contact_id": None, "contact_name": None}
    return {"contact_id": ref.contact_id, "contact_name": ref.name}


def _money(m: Any) -> Row:
    return {
        "line_amount_types": m.line_amount_types,
        "currency_code": m.currency_code,
        "currency_rate": m.currency_rate,
        "sub_total": m.sub_total,
        "total_tax": m.total_tax,
        "total": m.total,
    }


def _invoice(m: Invoice, _raw: dict[str, Any]) -> Row:
    return {
        "type": m.type,
        "status": m.status,
        "invoice_number": m.invoice_number,
        "reference": m.reference,
        **_contact(m.contact),
        "date": _day(m.date),
        "due_date": _day(m.due_date),
        "fully_paid_on_date": _day(m.fully_paid_on_date),
        "expected_payment_date": _day(m.expected_payment_date),
        **_money(m),
        "total_discount": m.total_discount,
        "amount_due": m.amount_due,
        "amount_paid": m.amount_paid,
        "amount_credited": m.amount_credited,
        "sent_to_contact": m.sent_to_contact,
        "has_attachments": m.has_attachments,
    }


def _credit_note(m: CreditNote, _raw: dict[str, Any]) -> Row:
    live = [a for a in m.allocations if not a.is_deleted]
    return {
        "type": m.type,
        "status": m.status,
        "credit_note_number": m.credit_note_number,
        "reference": m.reference,
        **_contact(m.contact),
        "date": _day(m.date),
        "due_date": _day(m.due_date),
        "fully_paid_on_date": _day(m.fully_paid_on_date),
        **_money(m),
        "remaining_credit": m.remaining_credit,
        "applied_amount": m.applied_amount,
        "allocated_amount": sum((a.amount for a in live if a.amount is not None), Decimal(0)),
        "allocations": len(live),
        "sent_to_contact": m.sent_to_contact,
        "has_attachments": m.has_attachments,
    }


def _raw_contact(raw: dict[str, Any]) -> Row:
    """A payment's contact: Xero nests it in the Invoice stub, which the model does not keep."""
    stub = raw.get("Invoice")
    contact = stub.get("Contact") if isinstance(stub, dict) else None
    if not isinstance(contact, dict):
        return {"contact_id": None, "contact_name": None}
    cid, name = contact.get("ContactID"), contact.get("Name")
    return {
        "contact_id": cid if isinstance(cid, str) else None,
        "contact_name": name if isinstance(name, str) else None,
    }


def _payment(m: Payment, raw: dict[str, Any]) -> Row:
    account, invoice, credit = m.account, m.invoice, m.credit_note
    return {
        "payment_type": m.payment_type,
        "status": m.status,
        "date": _day(m.date),
        "reference": m.reference,
        "is_reconciled": m.is_reconciled,
        "amount": m.amount,
        "bank_amount": m.bank_amount,
        "currency_rate": m.currency_rate,
        "account_id": None if account is None else account.account_id,
        "account_code": None if account is None else account.code,
        "account_name": None if account is None else account.name,
        "invoice_id": None if invoice is None else invoice.invoice_id,
        "invoice_number": None if invoice is None else invoice.invoice_number,
        "invoice_type": None if invoice is None else invoice.type,
        "invoice_currency_code": None if invoice is None else invoice.currency_code,
        "credit_note_id": None if credit is None else credit.credit_note_id,
        "credit_note_number": None if credit is None else credit.credit_note_number,
        "prepayment_id": None if m.prepayment is None else m.prepayment.prepayment_id,
        "overpayment_id": None if m.overpayment is None else m.overpayment.overpayment_id,
        "batch_payment_id": m.batch_payment_id,
        **_raw_contact(raw),
    }


def _bank_transaction(m: BankTransaction, _raw: dict[str, Any]) -> Row:
    bank = m.bank_account
    return {
        "type": m.type,
        "status": m.status,
        "reference": m.reference,
        "is_reconciled": m.is_reconciled,
        "bank_account_id": None if bank is None else bank.account_id,
        "bank_account_code": None if bank is None else bank.code,
        "bank_account_name": None if bank is None else bank.name,
        **_contact(m.contact),
        "date": _day(m.date),
        **_money(m),
        "prepayment_id": m.prepayment_id,
        "overpayment_id": m.overpayment_id,
        "has_attachments": m.has_attachments,
    }


def _manual_journal(m: ManualJournal, _raw: dict[str, Any]) -> Row:
    return {
        "status": m.status,
        "narration": m.narration,
        "date": _day(m.date),
        "line_amount_types": m.line_amount_types,
        "show_on_cash_basis_reports": m.show_on_cash_basis_reports,
        "has_attachments": m.has_attachments,
    }


def _purchase_order(m: PurchaseOrder, _raw: dict[str, Any]) -> Row:
    return {
        "status": m.status,
        "purchase_order_number": m.purchase_order_number,
        "reference": m.reference,
        **_contact(m.contact),
        "date": _day(m.date),
        "delivery_date": _day(m.delivery_date),
        "expected_arrival_date": _day(m.expected_arrival_date),
        **_money(m),
        "total_discount": m.total_discount,
        "sent_to_contact": m.sent_to_contact,
        "has_attachments": m.has_attachments,
    }


def _contact_record(m: Contact, _raw: dict[str, Any]) -> Row:
    return {
        "name": m.name,
        "contact_status": m.contact_status,
        "contact_number": m.contact_number,
        "account_number": m.account_number,
        "first_name": m.first_name,
        "last_name": m.last_name,
        "email_address": m.email_address,
        "tax_number": m.tax_number,
        "is_customer": m.is_customer,
        "is_supplier": m.is_supplier,
        "default_currency": m.default_currency,
        "merged_to_contact_id": m.merged_to_contact_id,
        "sales_default_account_code": m.sales_default_account_code,
        "purchases_default_account_code": m.purchases_default_account_code,
    }


def _credit(m: Overpayment | Prepayment) -> Row:
    live = [a for a in m.allocations if not a.is_deleted]
    return {
        "type": m.type,
        "status": m.status,
        "reference": m.reference,
        **_contact(m.contact),
        "date": _day(m.date),
        **_money(m),
        "remaining_credit": m.remaining_credit,
        "applied_amount": m.applied_amount,
        "allocated_amount": sum((a.amount for a in live if a.amount is not None), Decimal(0)),
        "allocations": len(live),
        "has_attachments": m.has_attachments,
    }


def _overpayment(m: Overpayment, _raw: dict[str, Any]) -> Row:
    return _credit(m)


def _prepayment(m: Prepayment, _raw: dict[str, Any]) -> Row:
    return {**_credit(m), "invoice_number": m.invoice_number}


_NO_TRACKING: Row = {field.name: None for field in _TRACKING}


def _tracking(line: LineItem | ManualJournalLine, where: str) -> Row:
    elements = line.tracking
    if not elements:
        return _NO_TRACKING
    if len(elements) > _MAX_TRACKING:
        raise TooMuchTracking(
            f"{where}.Tracking: {len(elements)} tracking elements, Xero allows at most 2"
        )
    out = dict(_NO_TRACKING)
    for slot, element in zip("ab", elements, strict=False):
        out[f"tracking_{slot}_category_id"] = element.tracking_category_id
        out[f"tracking_{slot}_category_name"] = element.name
        out[f"tracking_{slot}_option_id"] = element.tracking_option_id
        out[f"tracking_{slot}_option_name"] = element.option
    return out


def _line_items(m: Any, key: str) -> list[Row]:
    return [
        {
            "line_number": number,
            "line_id": line.line_item_id,
            "description": line.description,
            "item_code": line.item_code,
            "quantity": line.quantity,
            "unit_amount": line.unit_amount,
            "account_id": line.account_id,
            "account_code": line.account_code,
            "tax_type": line.tax_type,
            "tax_amount": line.tax_amount,
            "line_amount": line.line_amount,
            "discount_rate": line.discount_rate,
            "discount_amount": line.discount_amount,
            **_tracking(line, f"{key}.{number}"),
        }
        for number, line in enumerate(m.line_items)
    ]


def _journal_lines(m: ManualJournal, key: str) -> list[Row]:
    return [
        {
            "line_number": number,
            "line_id": None,
            "description": line.description,
            "account_id": line.account_id,
            "account_code": line.account_code,
            "tax_type": line.tax_type,
            "tax_amount": line.tax_amount,
            "line_amount": line.line_amount,
            "is_blank": line.is_blank,
            **_tracking(line, f"{key}.{number}"),
        }
        for number, line in enumerate(m.journal_lines)
    ]


def _allocations(m: Overpayment | Prepayment, _key: str) -> list[Row]:
    return [
        {
            "line_number": number,
            "line_id": allocation.allocation_id,
            "allocation_date": _day(allocation.date),
            "amount": allocation.amount,
            "invoice_id": None if allocation.invoice is None else allocation.invoice.invoice_id,
            "invoice_number": (
                None if allocation.invoice is None else allocation.invoice.invoice_number
            ),
            "is_deleted": allocation.is_deleted,
        }
        for number, allocation in enumerate(m.allocations)
    ]


# --- the layouts ---------------------------------------------------------------------------------

INVOICES = RawLayout(INVOICE_DOCUMENTS, _invoice, LINE_ITEM_LINES, _line_items, "LineItems")
CREDIT_NOTES = RawLayout(
    CREDIT_NOTE_DOCUMENTS, _credit_note, LINE_ITEM_LINES, _line_items, "LineItems"
)
PAYMENTS = RawLayout(PAYMENT_DOCUMENTS, _payment)
BANK_TRANSACTIONS = RawLayout(
    BANK_TRANSACTION_DOCUMENTS, _bank_transaction, LINE_ITEM_LINES, _line_items, "LineItems"
)
MANUAL_JOURNALS = RawLayout(
    MANUAL_JOURNAL_DOCUMENTS, _manual_journal, JOURNAL_LINES, _journal_lines, "JournalLines"
)
PURCHASE_ORDERS = RawLayout(
    PURCHASE_ORDER_DOCUMENTS, _purchase_order, LINE_ITEM_LINES, _line_items, "LineItems"
)
CONTACTS = RawLayout(CONTACT_DOCUMENTS, _contact_record)
# Overpayments and prepayments: the lines table holds their allocations to invoices (what the
# contact's credit was used for); the documents carry the remaining credit and the live total.
OVERPAYMENTS = RawLayout(
    OVERPAYMENT_DOCUMENTS, _overpayment, ALLOCATION_LINES, _allocations, "Allocations"
)
PREPAYMENTS = RawLayout(
    PREPAYMENT_DOCUMENTS, _prepayment, ALLOCATION_LINES, _allocations, "Allocations"
)
