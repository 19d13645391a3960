"""Typed, immutable models of the Xero Accounting records the connector syncs.

Each model reads Xero's JSON as the API returns it and exposes snake_case attributes; extra keys
are ignored. :func:`parse_records` reports each bad record instead of failing the batch. Money is
``Decimal``, never ``float``. An amount within a millionth (:data:`FLOAT_NOISE`) of a 2-dp value
(4-dp for unit amounts) is binary-float noise and read as that value, with a :class:`DQNote`;
a real sub-cent amount (``10.005``) rejects its record. Enums the transforms branch on are
validated; other codes stay ``str``. Instants are aware UTC ``datetime``, date-only fields ``date``.

This package must never import dagster.
"""

import gc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from xero_tableau.xero.dates import parse_xero_date, parse_xero_datetime, xero_timezone_to_iana

__all__ = [
    "FLOAT_NOISE",
    "Account",
    "AccountRef",
    "Address",
    "Allocation",
    "AppliedCreditNote",
    "AppliedOverpayment",
    "AppliedPrepayment",
    "BankTransaction",
    "BankTransactionType",
    "Contact",
    "ContactBalances",
    "ContactGroupRef",
    "ContactRef",
    "CreditNote",
    "CreditNoteRef",
    "CreditNoteType",
    "Currency",
    "DQNote",
    "Invoice",
    "InvoicePayment",
    "InvoiceRef",
    "InvoiceType",
    "JournalLine",
    "LineAmountTypes",
    "LineItem",
    "LineItemTracking",
    "ManualJournal",
    "ManualJournalLine",
    "Money",
    "Organisation",
    "OutstandingOverdue",
    "Overpayment",
    "OverpaymentRef",
    "OverpaymentType",
    "ParseResult",
    "Payment",
    "PaymentType",
    "Phone",
    "Prepayment",
    "PrepaymentRef",
    "PrepaymentType",
    "PurchaseOrder",
    "Rate",
    "RejectedRecord",
    "TaxComponent",
    "TaxRate",
    "Tracking",
    "TrackingCategory",
    "TrackingOption",
    "UnitDecimal",
    "UtcDatetime",
    "XeroDate",
    "XeroList",
    "XeroModel",
    "parse_records",
]

# --- field types -------------------------------------------------------------------------------

Money = Annotated[Decimal, Field(decimal_places=2)]
"""A 2-dp amount (totals, tax, line amounts). Floats become ``Decimal(str(x))``; NaN/inf refused;
float noise is read as the cent value by :func:`parse_records`."""
UnitDecimal = Annotated[Decimal, Field(decimal_places=4)]
"""``Quantity``/``UnitAmount``: up to 4 dp when read with ``unitdp=4``."""
FLOAT_NOISE = Decimal("0.000001")
"""How far (in currency units) an amount may sit from a 2-dp (or, for unit amounts, 4-dp) value
and still be that value: binary floating point is off by far less; a real sub-cent amount by
far more (``10.005`` is 0.005 from a cent)."""
Rate = Decimal
"""Exchange, tax and discount rates: exact, no dp limit (Xero allows e.g. 6 dp exchange rates)."""


def _to_utc_datetime(value: object) -> object:
    """BeforeValidator: Xero instant strings -> aware UTC datetime; other types left to pydantic."""
    if isinstance(value, str | datetime):
        return parse_xero_datetime(value)
    return value


def _to_date(value: object) -> object:
    """BeforeValidator: Xero date-only strings (midnight UTC) -> the UTC calendar date."""
    if isinstance(value, str | date):
        return parse_xero_date(value)
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(_to_utc_datetime)]
XeroDate = Annotated[date, BeforeValidator(_to_date)]

_T = TypeVar("_T")


def _clean_list(value: object) -> object:
    """BeforeValidator: ``null`` list -> ``[]`` and ``null`` items dropped.

    The spec's own PurchaseOrder example has ``"Addresses": [null, {...}]``.
    """
    if value is None:
        return []
    if isinstance(value, list) and None in value:
        return [item for item in value if item is not None]
    return value


XeroList = Annotated[list[_T], BeforeValidator(_clean_list)]

InvoiceType = Literal["ACCREC", "ACCPAY"]
"""``/Invoices`` returns sales invoices and bills only; credit notes come from ``/CreditNotes``."""
CreditNoteType = Literal["ACCRECCREDIT", "ACCPAYCREDIT"]
BankTransactionType = Literal[
    "RECEIVE",
    "RECEIVE-OVERPAYMENT",
    "RECEIVE-PREPAYMENT",
    "SPEND",
    "SPEND-OVERPAYMENT",
    "SPEND-PREPAYMENT",
    "RECEIVE-TRANSFER",
    "SPEND-TRANSFER",
]
PaymentType = Literal[
    "ACCRECPAYMENT",
    "ACCPAYPAYMENT",
    "ARCREDITPAYMENT",
    "APCREDITPAYMENT",
    "AROVERPAYMENTPAYMENT",
    "ARPREPAYMENTPAYMENT",
    "APPREPAYMENTPAYMENT",
    "APOVERPAYMENTPAYMENT",
]
LineAmountTypes = Literal["Exclusive", "Inclusive", "NoTax"]


class XeroModel(BaseModel):
    """Base: PascalCase aliases in, snake_case attributes out, unknown keys ignored, immutable."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- references embedded in other records ------------------------------------------------------


class ContactRef(XeroModel):
    """The contact stub on documents; join on ``contact_id``, the name is as of the document."""

    contact_id: str | None = Field(default=None, alias="ContactID")
    name: str | None = Field(default=None, alias="Name")


class AccountRef(XeroModel):
    """An account stub (payment account, bank account of a bank transaction)."""

    account_id: str | None = Field(default=None, alias="AccountID")
    code: str | None = Field(default=None, alias="Code")
    name: str | None = Field(default=None, alias="Name")


class InvoiceRef(XeroModel):
    """The invoice a payment or allocation applies to.

    ``type`` stays a plain ``str``: on ``ARCREDITPAYMENT`` payments Xero puts the credit note here
    with ``Type: ACCRECCREDIT`` (see the spec's ``GET /Payments`` example).
    """

    invoice_id: str | None = Field(default=None, alias="InvoiceID")
    invoice_number: str | None = Field(default=None, alias="InvoiceNumber")
    type: str | None = Field(default=None, alias="Type")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")


class CreditNoteRef(XeroModel):
    credit_note_id: str | None = Field(default=None, alias="CreditNoteID")
    credit_note_number: str | None = Field(default=None, alias="CreditNoteNumber")


class PrepaymentRef(XeroModel):
    prepayment_id: str | None = Field(default=None, alias="PrepaymentID")


class OverpaymentRef(XeroModel):
    overpayment_id: str | None = Field(default=None, alias="OverpaymentID")


class InvoicePayment(XeroModel):
    """A payment as listed inside an invoice or credit note (the full record is in /Payments)."""

    payment_id: str | None = Field(default=None, alias="PaymentID")
    date: XeroDate | None = Field(default=None, alias="Date")
    amount: Money | None = Field(default=None, alias="Amount")
    reference: str | None = Field(default=None, alias="Reference")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")


class AppliedCreditNote(XeroModel):
    """A credit note applied to an invoice, with the amount applied to it."""

    credit_note_id: str | None = Field(default=None, alias="CreditNoteID")
    credit_note_number: str | None = Field(default=None, alias="CreditNoteNumber")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    date: XeroDate | None = Field(default=None, alias="Date")
    total: Money | None = Field(default=None, alias="Total")


class AppliedPrepayment(XeroModel):
    prepayment_id: str | None = Field(default=None, alias="PrepaymentID")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    date: XeroDate | None = Field(default=None, alias="Date")
    total: Money | None = Field(default=None, alias="Total")


class AppliedOverpayment(XeroModel):
    overpayment_id: str | None = Field(default=None, alias="OverpaymentID")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    date: XeroDate | None = Field(default=None, alias="Date")
    total: Money | None = Field(default=None, alias="Total")


class Allocation(XeroModel):
    """Part of a credit note (or pre/overpayment) allocated to an invoice."""

    allocation_id: str | None = Field(default=None, alias="AllocationID")
    amount: Money | None = Field(default=None, alias="Amount")
    date: XeroDate | None = Field(default=None, alias="Date")
    invoice: InvoiceRef | None = Field(default=None, alias="Invoice")
    is_deleted: bool | None = Field(default=None, alias="IsDeleted")


# --- lines ---------------------------------------------------------------------------------------


class LineItemTracking(XeroModel):
    """One tracking category option on a line (at most two per line). Join on the ids: names of
    categories and options can be renamed after the document was written."""

    tracking_category_id: str | None = Field(default=None, alias="TrackingCategoryID")
    tracking_option_id: str | None = Field(default=None, alias="TrackingOptionID")
    name: str | None = Field(default=None, alias="Name")
    option: str | None = Field(default=None, alias="Option")


Tracking = LineItemTracking
"""Short name for :class:`LineItemTracking`."""


class LineItem(XeroModel):
    """A line of an invoice, credit note, bank transaction or purchase order."""

    line_item_id: str | None = Field(default=None, alias="LineItemID")
    description: str | None = Field(default=None, alias="Description")
    quantity: UnitDecimal | None = Field(default=None, alias="Quantity")
    unit_amount: UnitDecimal | None = Field(default=None, alias="UnitAmount")
    item_code: str | None = Field(default=None, alias="ItemCode")
    account_code: str | None = Field(default=None, alias="AccountCode")
    account_id: str | None = Field(default=None, alias="AccountID")
    tax_type: str | None = Field(default=None, alias="TaxType")
    tax_amount: Money | None = Field(default=None, alias="TaxAmount")
    line_amount: Money | None = Field(default=None, alias="LineAmount")
    discount_rate: Rate | None = Field(default=None, alias="DiscountRate")
    discount_amount: Money | None = Field(default=None, alias="DiscountAmount")
    tracking: XeroList[LineItemTracking] = Field(default_factory=list, alias="Tracking")


class ManualJournalLine(XeroModel):
    """A manual journal line: ``line_amount`` is positive for a debit, negative for a credit."""

    line_amount: Money | None = Field(default=None, alias="LineAmount")
    account_code: str | None = Field(default=None, alias="AccountCode")
    account_id: str | None = Field(default=None, alias="AccountID")
    description: str | None = Field(default=None, alias="Description")
    tax_type: str | None = Field(default=None, alias="TaxType")
    tax_amount: Money | None = Field(default=None, alias="TaxAmount")
    is_blank: bool | None = Field(default=None, alias="IsBlank")
    # The spec types these as TrackingCategory; the keys that matter are the same as a line's.
    tracking: XeroList[LineItemTracking] = Field(default_factory=list, alias="Tracking")


JournalLine = ManualJournalLine
"""Short name for :class:`ManualJournalLine`."""


# --- documents -----------------------------------------------------------------------------------


class Invoice(XeroModel):
    """A sales invoice (ACCREC) or bill (ACCPAY) from ``/Invoices``."""

    invoice_id: str = Field(alias="InvoiceID")
    type: InvoiceType = Field(alias="Type")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    invoice_number: str | None = Field(default=None, alias="InvoiceNumber")
    reference: str | None = Field(default=None, alias="Reference")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    due_date: XeroDate | None = Field(default=None, alias="DueDate")
    expected_payment_date: XeroDate | None = Field(default=None, alias="ExpectedPaymentDate")
    planned_payment_date: XeroDate | None = Field(default=None, alias="PlannedPaymentDate")
    fully_paid_on_date: XeroDate | None = Field(default=None, alias="FullyPaidOnDate")
    status: str | None = Field(default=None, alias="Status")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    total_discount: Money | None = Field(default=None, alias="TotalDiscount")
    amount_due: Money | None = Field(default=None, alias="AmountDue")
    amount_paid: Money | None = Field(default=None, alias="AmountPaid")
    amount_credited: Money | None = Field(default=None, alias="AmountCredited")
    cis_deduction: Money | None = Field(default=None, alias="CISDeduction")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    sent_to_contact: bool | None = Field(default=None, alias="SentToContact")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")
    is_discounted: bool | None = Field(default=None, alias="IsDiscounted")
    branding_theme_id: str | None = Field(default=None, alias="BrandingThemeID")
    repeating_invoice_id: str | None = Field(default=None, alias="RepeatingInvoiceID")
    url: str | None = Field(default=None, alias="Url")
    payments: XeroList[InvoicePayment] = Field(default_factory=list, alias="Payments")
    credit_notes: XeroList[AppliedCreditNote] = Field(default_factory=list, alias="CreditNotes")
    prepayments: XeroList[AppliedPrepayment] = Field(default_factory=list, alias="Prepayments")
    overpayments: XeroList[AppliedOverpayment] = Field(default_factory=list, alias="Overpayments")


class CreditNote(XeroModel):
    """A sales (ACCRECCREDIT) or purchase (ACCPAYCREDIT) credit note from ``/CreditNotes``."""

    credit_note_id: str = Field(alias="CreditNoteID")
    type: CreditNoteType = Field(alias="Type")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    credit_note_number: str | None = Field(default=None, alias="CreditNoteNumber")
    reference: str | None = Field(default=None, alias="Reference")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    due_date: XeroDate | None = Field(default=None, alias="DueDate")
    fully_paid_on_date: XeroDate | None = Field(default=None, alias="FullyPaidOnDate")
    status: str | None = Field(default=None, alias="Status")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    remaining_credit: Money | None = Field(default=None, alias="RemainingCredit")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    cis_deduction: Money | None = Field(default=None, alias="CISDeduction")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    sent_to_contact: bool | None = Field(default=None, alias="SentToContact")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")
    branding_theme_id: str | None = Field(default=None, alias="BrandingThemeID")
    allocations: XeroList[Allocation] = Field(default_factory=list, alias="Allocations")
    payments: XeroList[InvoicePayment] = Field(default_factory=list, alias="Payments")


OverpaymentType = Literal["RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT", "AROVERPAYMENT"]
PrepaymentType = Literal["RECEIVE-PREPAYMENT", "SPEND-PREPAYMENT", "ARPREPAYMENT", "APPREPAYMENT"]


class Overpayment(XeroModel):
    """Money received from a customer (or paid to a supplier) beyond what was owed, from
    ``/Overpayments``: ``remaining_credit`` still reduces what the contact owes (or is owed)
    until it is allocated to invoices or refunded."""

    overpayment_id: str = Field(alias="OverpaymentID")
    type: OverpaymentType = Field(alias="Type")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    status: str | None = Field(default=None, alias="Status")
    reference: str | None = Field(default=None, alias="Reference")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    remaining_credit: Money | None = Field(default=None, alias="RemainingCredit")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")
    allocations: XeroList[Allocation] = Field(default_factory=list, alias="Allocations")
    payments: XeroList[InvoicePayment] = Field(default_factory=list, alias="Payments")


class Prepayment(XeroModel):
    """A payment received (or made) before the invoice exists, from ``/Prepayments``; its lines
    carry the accounts it was coded to, ``remaining_credit`` what is not yet allocated."""

    prepayment_id: str = Field(alias="PrepaymentID")
    type: PrepaymentType = Field(alias="Type")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    status: str | None = Field(default=None, alias="Status")
    reference: str | None = Field(default=None, alias="Reference")
    invoice_number: str | None = Field(default=None, alias="InvoiceNumber")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    remaining_credit: Money | None = Field(default=None, alias="RemainingCredit")
    applied_amount: Money | None = Field(default=None, alias="AppliedAmount")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")
    allocations: XeroList[Allocation] = Field(default_factory=list, alias="Allocations")
    payments: XeroList[InvoicePayment] = Field(default_factory=list, alias="Payments")


class Payment(XeroModel):
    """A payment (or refund) against an invoice, credit note, prepayment or overpayment."""

    payment_id: str = Field(alias="PaymentID")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    date: XeroDate | None = Field(default=None, alias="Date")
    amount: Money | None = Field(default=None, alias="Amount")
    bank_amount: Money | None = Field(default=None, alias="BankAmount")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    reference: str | None = Field(default=None, alias="Reference")
    is_reconciled: bool | None = Field(default=None, alias="IsReconciled")
    status: str | None = Field(default=None, alias="Status")
    payment_type: PaymentType | None = Field(default=None, alias="PaymentType")
    account: AccountRef | None = Field(default=None, alias="Account")
    invoice: InvoiceRef | None = Field(default=None, alias="Invoice")
    credit_note: CreditNoteRef | None = Field(default=None, alias="CreditNote")
    prepayment: PrepaymentRef | None = Field(default=None, alias="Prepayment")
    overpayment: OverpaymentRef | None = Field(default=None, alias="Overpayment")
    batch_payment_id: str | None = Field(default=None, alias="BatchPaymentID")


class BankTransaction(XeroModel):
    """Spend/receive money (and transfers, pre/overpayments) from ``/BankTransactions``."""

    bank_transaction_id: str = Field(alias="BankTransactionID")
    type: BankTransactionType = Field(alias="Type")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    bank_account: AccountRef | None = Field(default=None, alias="BankAccount")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    reference: str | None = Field(default=None, alias="Reference")
    is_reconciled: bool | None = Field(default=None, alias="IsReconciled")
    status: str | None = Field(default=None, alias="Status")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    prepayment_id: str | None = Field(default=None, alias="PrepaymentID")
    overpayment_id: str | None = Field(default=None, alias="OverpaymentID")
    url: str | None = Field(default=None, alias="Url")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")


class ManualJournal(XeroModel):
    """A manual journal; its lines sum to zero when posted."""

    manual_journal_id: str = Field(alias="ManualJournalID")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    narration: str | None = Field(default=None, alias="Narration")
    date: XeroDate | None = Field(default=None, alias="Date")
    status: str | None = Field(default=None, alias="Status")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    journal_lines: XeroList[ManualJournalLine] = Field(default_factory=list, alias="JournalLines")
    show_on_cash_basis_reports: bool | None = Field(default=None, alias="ShowOnCashBasisReports")
    url: str | None = Field(default=None, alias="Url")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")


class PurchaseOrder(XeroModel):
    """A purchase order from ``/PurchaseOrders`` (not a ledger posting until billed)."""

    purchase_order_id: str = Field(alias="PurchaseOrderID")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    purchase_order_number: str | None = Field(default=None, alias="PurchaseOrderNumber")
    reference: str | None = Field(default=None, alias="Reference")
    contact: ContactRef | None = Field(default=None, alias="Contact")
    date: XeroDate | None = Field(default=None, alias="Date")
    delivery_date: XeroDate | None = Field(default=None, alias="DeliveryDate")
    expected_arrival_date: XeroDate | None = Field(default=None, alias="ExpectedArrivalDate")
    status: str | None = Field(default=None, alias="Status")
    line_amount_types: LineAmountTypes | None = Field(default=None, alias="LineAmountTypes")
    line_items: XeroList[LineItem] = Field(default_factory=list, alias="LineItems")
    sub_total: Money | None = Field(default=None, alias="SubTotal")
    total_tax: Money | None = Field(default=None, alias="TotalTax")
    total: Money | None = Field(default=None, alias="Total")
    total_discount: Money | None = Field(default=None, alias="TotalDiscount")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    currency_rate: Rate | None = Field(default=None, alias="CurrencyRate")
    sent_to_contact: bool | None = Field(default=None, alias="SentToContact")
    delivery_address: str | None = Field(default=None, alias="DeliveryAddress")
    attention_to: str | None = Field(default=None, alias="AttentionTo")
    telephone: str | None = Field(default=None, alias="Telephone")
    delivery_instructions: str | None = Field(default=None, alias="DeliveryInstructions")
    branding_theme_id: str | None = Field(default=None, alias="BrandingThemeID")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")


# --- contacts ------------------------------------------------------------------------------------


class Address(XeroModel):
    address_type: str | None = Field(default=None, alias="AddressType")
    address_line1: str | None = Field(default=None, alias="AddressLine1")
    address_line2: str | None = Field(default=None, alias="AddressLine2")
    address_line3: str | None = Field(default=None, alias="AddressLine3")
    address_line4: str | None = Field(default=None, alias="AddressLine4")
    city: str | None = Field(default=None, alias="City")
    region: str | None = Field(default=None, alias="Region")
    postal_code: str | None = Field(default=None, alias="PostalCode")
    country: str | None = Field(default=None, alias="Country")
    attention_to: str | None = Field(default=None, alias="AttentionTo")


class Phone(XeroModel):
    phone_type: str | None = Field(default=None, alias="PhoneType")
    phone_number: str | None = Field(default=None, alias="PhoneNumber")
    phone_area_code: str | None = Field(default=None, alias="PhoneAreaCode")
    phone_country_code: str | None = Field(default=None, alias="PhoneCountryCode")


class ContactGroupRef(XeroModel):
    contact_group_id: str | None = Field(default=None, alias="ContactGroupID")
    name: str | None = Field(default=None, alias="Name")
    status: str | None = Field(default=None, alias="Status")


class OutstandingOverdue(XeroModel):
    outstanding: Money | None = Field(default=None, alias="Outstanding")
    overdue: Money | None = Field(default=None, alias="Overdue")


class ContactBalances(XeroModel):
    """Raw AR/AP balances in the contact's currency (not converted to base currency)."""

    accounts_receivable: OutstandingOverdue | None = Field(default=None, alias="AccountsReceivable")
    accounts_payable: OutstandingOverdue | None = Field(default=None, alias="AccountsPayable")


class Contact(XeroModel):
    """A customer and/or supplier. ``merged_to_contact_id`` points at the survivor of a merge."""

    contact_id: str = Field(alias="ContactID")
    updated_date_utc: UtcDatetime = Field(alias="UpdatedDateUTC")
    name: str | None = Field(default=None, alias="Name")
    contact_status: str | None = Field(default=None, alias="ContactStatus")
    contact_number: str | None = Field(default=None, alias="ContactNumber")
    account_number: str | None = Field(default=None, alias="AccountNumber")
    first_name: str | None = Field(default=None, alias="FirstName")
    last_name: str | None = Field(default=None, alias="LastName")
    company_number: str | None = Field(default=None, alias="CompanyNumber")
    email_address: str | None = Field(default=None, alias="EmailAddress")
    tax_number: str | None = Field(default=None, alias="TaxNumber")
    accounts_receivable_tax_type: str | None = Field(
        default=None, alias="AccountsReceivableTaxType"
    )
    accounts_payable_tax_type: str | None = Field(default=None, alias="AccountsPayableTaxType")
    is_supplier: bool | None = Field(default=None, alias="IsSupplier")
    is_customer: bool | None = Field(default=None, alias="IsCustomer")
    default_currency: str | None = Field(default=None, alias="DefaultCurrency")
    merged_to_contact_id: str | None = Field(default=None, alias="MergedToContactID")
    sales_default_account_code: str | None = Field(default=None, alias="SalesDefaultAccountCode")
    purchases_default_account_code: str | None = Field(
        default=None, alias="PurchasesDefaultAccountCode"
    )
    website: str | None = Field(default=None, alias="Website")
    discount: Rate | None = Field(default=None, alias="Discount")
    balances: ContactBalances | None = Field(default=None, alias="Balances")
    addresses: XeroList[Address] = Field(default_factory=list, alias="Addresses")
    phones: XeroList[Phone] = Field(default_factory=list, alias="Phones")
    contact_groups: XeroList[ContactGroupRef] = Field(default_factory=list, alias="ContactGroups")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")


# --- settings ------------------------------------------------------------------------------------


class Account(XeroModel):
    """A chart-of-accounts entry. ``type``/``class_`` stay ``str`` (Xero has added types)."""

    account_id: str = Field(alias="AccountID")
    updated_date_utc: UtcDatetime | None = Field(default=None, alias="UpdatedDateUTC")
    code: str | None = Field(default=None, alias="Code")
    name: str | None = Field(default=None, alias="Name")
    type: str | None = Field(default=None, alias="Type")
    class_: str | None = Field(default=None, alias="Class")
    status: str | None = Field(default=None, alias="Status")
    description: str | None = Field(default=None, alias="Description")
    tax_type: str | None = Field(default=None, alias="TaxType")
    currency_code: str | None = Field(default=None, alias="CurrencyCode")
    bank_account_number: str | None = Field(default=None, alias="BankAccountNumber")
    bank_account_type: str | None = Field(default=None, alias="BankAccountType")
    system_account: str | None = Field(default=None, alias="SystemAccount")
    reporting_code: str | None = Field(default=None, alias="ReportingCode")
    reporting_code_name: str | None = Field(default=None, alias="ReportingCodeName")
    enable_payments_to_account: bool | None = Field(default=None, alias="EnablePaymentsToAccount")
    show_in_expense_claims: bool | None = Field(default=None, alias="ShowInExpenseClaims")
    add_to_watchlist: bool | None = Field(default=None, alias="AddToWatchlist")
    has_attachments: bool | None = Field(default=None, alias="HasAttachments")


class TrackingOption(XeroModel):
    """An option of a tracking category. ``IsDeleted``/``IsArchived``/``IsActive`` are sent by
    Xero though the spec's TrackingOption schema does not declare them."""

    tracking_option_id: str = Field(alias="TrackingOptionID")
    name: str | None = Field(default=None, alias="Name")
    status: str | None = Field(default=None, alias="Status")
    is_deleted: bool | None = Field(default=None, alias="IsDeleted")
    is_archived: bool | None = Field(default=None, alias="IsArchived")
    is_active: bool | None = Field(default=None, alias="IsActive")


class TrackingCategory(XeroModel):
    """A tracking category (no UpdatedDateUTC: re-read in full every sync)."""

    tracking_category_id: str = Field(alias="TrackingCategoryID")
    name: str | None = Field(default=None, alias="Name")
    status: str | None = Field(default=None, alias="Status")
    options: XeroList[TrackingOption] = Field(default_factory=list, alias="Options")


class TaxComponent(XeroModel):
    name: str | None = Field(default=None, alias="Name")
    rate: Rate | None = Field(default=None, alias="Rate")
    is_compound: bool | None = Field(default=None, alias="IsCompound")
    is_non_recoverable: bool | None = Field(default=None, alias="IsNonRecoverable")


class TaxRate(XeroModel):
    """A tax rate, keyed by its ``TaxType`` code (what lines carry). No UpdatedDateUTC."""

    tax_type: str = Field(alias="TaxType")
    name: str | None = Field(default=None, alias="Name")
    status: str | None = Field(default=None, alias="Status")
    report_tax_type: str | None = Field(default=None, alias="ReportTaxType")
    display_tax_rate: Rate | None = Field(default=None, alias="DisplayTaxRate")
    effective_rate: Rate | None = Field(default=None, alias="EffectiveRate")
    tax_components: XeroList[TaxComponent] = Field(default_factory=list, alias="TaxComponents")
    can_apply_to_assets: bool | None = Field(default=None, alias="CanApplyToAssets")
    can_apply_to_equity: bool | None = Field(default=None, alias="CanApplyToEquity")
    can_apply_to_expenses: bool | None = Field(default=None, alias="CanApplyToExpenses")
    can_apply_to_liabilities: bool | None = Field(default=None, alias="CanApplyToLiabilities")
    can_apply_to_revenue: bool | None = Field(default=None, alias="CanApplyToRevenue")


class Currency(XeroModel):
    """A currency enabled in the organisation. No UpdatedDateUTC."""

    code: str = Field(alias="Code")
    description: str | None = Field(default=None, alias="Description")


class Organisation(XeroModel):
    """The tenant's organisation: base currency, financial year and time zone."""

    organisation_id: str = Field(alias="OrganisationID")
    name: str | None = Field(default=None, alias="Name")
    legal_name: str | None = Field(default=None, alias="LegalName")
    short_code: str | None = Field(default=None, alias="ShortCode")
    version: str | None = Field(default=None, alias="Version")
    organisation_type: str | None = Field(default=None, alias="OrganisationType")
    organisation_status: str | None = Field(default=None, alias="OrganisationStatus")
    base_currency: str | None = Field(default=None, alias="BaseCurrency")
    country_code: str | None = Field(default=None, alias="CountryCode")
    timezone: str | None = Field(default=None, alias="Timezone")
    is_demo_company: bool | None = Field(default=None, alias="IsDemoCompany")
    pays_tax: bool | None = Field(default=None, alias="PaysTax")
    financial_year_end_day: int | None = Field(default=None, alias="FinancialYearEndDay")
    financial_year_end_month: int | None = Field(default=None, alias="FinancialYearEndMonth")
    sales_tax_basis: str | None = Field(default=None, alias="SalesTaxBasis")
    sales_tax_period: str | None = Field(default=None, alias="SalesTaxPeriod")
    default_sales_tax: str | None = Field(default=None, alias="DefaultSalesTax")
    default_purchases_tax: str | None = Field(default=None, alias="DefaultPurchasesTax")
    period_lock_date: XeroDate | None = Field(default=None, alias="PeriodLockDate")
    end_of_year_lock_date: XeroDate | None = Field(default=None, alias="EndOfYearLockDate")
    created_date_utc: UtcDatetime | None = Field(default=None, alias="CreatedDateUTC")
    class_: str | None = Field(default=None, alias="Class")
    edition: str | None = Field(default=None, alias="Edition")
    line_of_business: str | None = Field(default=None, alias="LineOfBusiness")
    registration_number: str | None = Field(default=None, alias="RegistrationNumber")
    tax_number: str | None = Field(default=None, alias="TaxNumber")

    def zone(self) -> ZoneInfo:
        """The organisation's IANA zone, for business dates; ValueError if Timezone is missing
        or not one of Xero's values (a wrong zone would shift dates silently)."""
        if self.timezone is None:
            raise ValueError(f"organisation {self.organisation_id} has no Timezone")
        return xero_timezone_to_iana(self.timezone)


# --- batch parsing -------------------------------------------------------------------------------

_MAX_INPUT_REPR = 60
_MAX_ERRORS = 5


@dataclass(frozen=True)
class RejectedRecord:
    """A record that failed validation: kept raw so it can be archived, inspected or replayed.

    ``raw`` is the record as given (``{"value": item}`` when the item was not a JSON object).
    """

    record_id: str | None
    reason: str
    raw: dict[str, Any]


_M = TypeVar("_M", bound=XeroModel)


@dataclass(frozen=True)
class DQNote:
    """A data-quality note on an accepted record: an amount read as the value it was meant to be.

    ``record`` is the position of the record in :attr:`ParseResult.records`; ``field`` is Xero's
    JSON path (``LineItems.0.UnitAmount``); ``received`` the value as sent, ``read_as`` the value
    kept."""

    record: int
    record_id: str | None
    field: str
    received: str
    read_as: Decimal

    @property
    def text(self) -> str:
        return f"{self.field}: {self.received} read as {self.read_as} (binary-float noise)"


@dataclass
class ParseResult(Generic[_M]):
    """The records of a batch that validated, and the ones that did not (in input order), with
    the data-quality notes of the validated ones."""

    records: list[_M] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    notes: list[DQNote] = field(default_factory=list)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def _reason(error: ValidationError) -> str:
    """One line per problem, located by Xero's JSON path, e.g. ``LineItems.0.LineAmount: ...``."""
    errors = error.errors(include_url=False)
    parts = []
    for item in errors[:_MAX_ERRORS]:
        where = ".".join(str(part) for part in item["loc"]) or "record"
        if item["type"] == "missing":
            parts.append(f"{where}: required field missing")
        else:
            parts.append(f"{where}: {item['msg']} (got {_short(item.get('input'))})")
    if len(errors) > _MAX_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _record_id(raw: Mapping[str, Any], id_field: str) -> str | None:
    value = raw.get(id_field)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _near_exact(value: object, places: int) -> Decimal | None:
    """The ``places``-dp value ``value`` is within :data:`FLOAT_NOISE` of, else None."""
    if isinstance(value, float):
        exact = Decimal(repr(value))
    elif isinstance(value, Decimal):
        exact = value
    elif isinstance(value, str):
        try:
            exact = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not exact.is_finite():
        return None
    try:
        rounded = exact.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    except InvalidOperation:  # too many digits for the context
        return None
    return rounded if abs(exact - rounded) <= FLOAT_NOISE else None


def _with_value(node: Any, path: tuple[Any, ...], value: Decimal) -> Any | None:
    """A copy of ``node`` with ``value`` at pydantic's error location ``path`` (copying only
    along the path); None if the path cannot be followed. List indexes count the items the
    model kept (``null`` items are dropped by :data:`XeroList`)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict) and isinstance(head, str) and head in node:
        inner = _with_value(node[head], rest, value)
        return None if inner is None else {**node, head: inner}
    if isinstance(node, list) and isinstance(head, int):
        positions = [i for i, item in enumerate(node) if item is not None]
        if not 0 <= head < len(positions):
            return None
        inner = _with_value(node[positions[head]], rest, value)
        if inner is None:
            return None
        copy = list(node)
        copy[positions[head]] = inner
        return copy
    return None


def _denoised(
    item: dict[str, Any], error: ValidationError
) -> tuple[dict[str, Any], list[tuple[str, str, Decimal]]] | None:
    """``item`` with every too-precise amount that is float noise replaced by its exact value,
    and (path, received, exact) for each; None when no amount is float noise."""
    fixed: Any = item
    changes: list[tuple[str, str, Decimal]] = []
    for problem in error.errors(include_url=False):
        if problem["type"] != "decimal_max_places":
            continue
        places = int((problem.get("ctx") or {}).get("decimal_places", 2))
        exact = _near_exact(problem.get("input"), places)
        if exact is None:
            continue
        replaced = _with_value(fixed, tuple(problem["loc"]), exact)
        if replaced is None:
            continue
        fixed = replaced
        where = ".".join(str(part) for part in problem["loc"])
        received = problem.get("input")
        shown = str(received) if isinstance(received, float | Decimal) else _short(received)
        changes.append((where, shown, exact))
    return (fixed, changes) if changes else None


def parse_records(model: type[_M], raw: Iterable[Any], id_field: str) -> ParseResult[_M]:
    """Validate the records of one endpoint as ``model``; a bad record is reported, never fatal
    to the batch.

    Each rejected record keeps its id (the value of ``id_field``, None when absent), a readable
    reason and the raw dict. An amount off its 2-dp (unit amounts: 4-dp) value by float noise
    only is read as that value and noted in ``notes``; the raw dict is left as received. Pass a
    list rather than a lazy generator: the cyclic GC is paused while ``raw`` is consumed. The
    entity registry (``xero_tableau.entities``) knows each endpoint's model and id field.
    """
    validate = model.model_validate
    result: ParseResult[Any] = ParseResult()
    records, rejected, notes = result.records, result.rejected, result.notes
    # Validation allocates millions of small acyclic objects (models, Decimals, lists); with the
    # cyclic GC running, each generation-2 pass rescans the whole input batch, which more than
    # doubles the time of a 10,000-invoice page set. Nothing here creates cycles, so pause it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for item in raw:
            if not isinstance(item, dict):
                reason = f"not a JSON object: {_short(item)}"
                rejected.append(RejectedRecord(None, reason, {"value": item}))
                continue
            try:
                records.append(validate(item))
            except ValidationError as error:
                denoised = _denoised(item, error)
                if denoised is not None:
                    fixed, changes = denoised
                    try:
                        records.append(validate(fixed))
                    except ValidationError as remaining:
                        error = remaining  # a real problem besides the noise: that is the reason
                    else:
                        record_id = _record_id(item, id_field)
                        at = len(records) - 1
                        notes.extend(DQNote(at, record_id, *change) for change in changes)
                        continue
                rejected.append(RejectedRecord(_record_id(item, id_field), _reason(error), item))
    finally:
        if gc_was_enabled:
            gc.enable()
    return result
