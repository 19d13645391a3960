"""The published contract: every fact and dimension table sent to Tableau, column by column.

This module is the single source of truth for the normalized tables. :mod:`normalize` casts its
output to these schemas, the .hyper writer maps the Arrow types to Hyper SQL types, and
``docs/schema.md`` is rendered from here by :func:`render_schema_markdown` (a test keeps the file
and the render identical, so the documentation can never drift from what is published).

Type rules: money ``decimal128(18, 2)`` (Hyper ``NUMERIC(18,2)``), quantities and unit amounts
``decimal128(18, 4)`` (Xero's ``unitdp=4``), exchange rates ``decimal128(18, 6)`` (Xero's own
maximum for ``CurrencyRate``), instants ``timestamp[ms, UTC]``, dates ``date32``. Never a float.

This package must never import dagster.
"""

from dataclasses import dataclass, field, replace

import pyarrow as pa

__all__ = [
    "DATE",
    "FLAG",
    "INSTANT",
    "INT",
    "MONEY",
    "PROVENANCE_COLUMNS",
    "RATE",
    "RULES",
    "TABLES",
    "TEXT",
    "UNIT",
    "ColumnSpec",
    "TableSpec",
    "arrow_schema",
    "hyper_sql_type",
    "render_schema_markdown",
]

MONEY = pa.decimal128(18, 2)
UNIT = pa.decimal128(18, 4)
RATE = pa.decimal128(18, 6)
INSTANT = pa.timestamp("ms", tz="UTC")
DATE = pa.date32()
TEXT = pa.string()
FLAG = pa.bool_()
INT = pa.int32()


@dataclass(frozen=True)
class ColumnSpec:
    """One published column. ``nullable=False`` is a promise the .hyper writer may turn into
    ``NOT NULL``; normalize guarantees it."""

    name: str
    type: pa.DataType
    description: str
    key: bool = False
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One published table: its grain in words, its columns in published order and its key."""

    name: str
    description: str
    grain: str
    columns: list[ColumnSpec] = field(default_factory=list)
    key: tuple[str, ...] = ()
    document: tuple[str, ...] = ()
    """The columns naming one document: the rows change detection fingerprints together and an
    incremental publish replaces as a whole. Empty: the key without ``line_number``."""
    summary: bool = False
    """A table that summarises records shown in full elsewhere (one row per invoice beside its
    lines, bank balances from payments and bank transactions): its rows do not show every value
    that counts as its records' content, so the provenance of a row may change while its other
    values stay. Change detection then counts the provenance columns as well (Provenance rule)."""

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column (KeyError if the table has none of that name)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of a table, nullability included, in published column order."""
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in spec.columns])


def hyper_sql_type(data_type: pa.DataType) -> str:
    """The Hyper SQL type a column is published as (what docs/schema.md shows)."""
    if pa.types.is_decimal(data_type):
        return f"NUMERIC({data_type.precision},{data_type.scale})"  # type: ignore[attr-defined]
    if pa.types.is_timestamp(data_type):
        return "TIMESTAMP WITH TIME ZONE"
    if pa.types.is_date32(data_type):
        return "DATE"
    if pa.types.is_string(data_type):
        return "TEXT"
    if pa.types.is_boolean(data_type):
        return "BOOLEAN"
    if pa.types.is_int32(data_type):
        return "INTEGER"
    if pa.types.is_int64(data_type):
        return "BIGINT"
    raise ValueError(f"no Hyper type for Arrow type {data_type}")


# --- reusable column blocks -----------------------------------------------------------------------


def _c(
    name: str, type_: pa.DataType, description: str, *, key: bool = False, nullable: bool = True
) -> ColumnSpec:
    return ColumnSpec(name, type_, description, key=key, nullable=nullable and not key)


def _tenant() -> list[ColumnSpec]:
    return [
        _c("tenant_id", TEXT, "Xero tenant (organisation) id the row belongs to.", key=True),
        _c(
            "organisation_name",
            TEXT,
            "The organisation's current name (Organisation.Name), so rows of several "
            "organisations can be told apart by name.",
        ),
    ]


#: The provenance columns every table ends with (see the Provenance rule). They describe the
#: read that last changed a row's content, and change detection ignores them.
PROVENANCE_COLUMNS = ("synced_at_utc", "sync_source", "dagster_run_id", "source_event_at_utc")


def _provenance() -> list[ColumnSpec]:
    return [
        _c(
            "synced_at_utc",
            INSTANT,
            "When the connector read, from Xero, the content this row shows: the read that last "
            "changed it (a later read that found the same content leaves it). Null only for "
            "reference rows read before provenance was recorded.",
        ),
        _c(
            "sync_source",
            TEXT,
            "How that read was started: webhook, poll, sweep, sync or backfill (see the "
            "Provenance rule). Null for content read before provenance was recorded.",
        ),
        _c(
            "dagster_run_id",
            TEXT,
            "The Dagster run that made that read; null for a read made outside Dagster or "
            "before provenance was recorded.",
        ),
        _c(
            "source_event_at_utc",
            INSTANT,
            "Time of the Xero webhook event that triggered that read (the latest event for the "
            "record in the run's batch); null when no webhook event named the record.",
        ),
    ]


def _with_provenance(spec: TableSpec) -> TableSpec:
    return replace(spec, columns=[*spec.columns, *_provenance()])


def _line_ids(record: str, line_id: str | None) -> list[ColumnSpec]:
    out = [
        _c(
            "line_number",
            INT,
            f"0-based position of the line in the {record}'s line list, as Xero returns it.",
            key=True,
        )
    ]
    if line_id is not None:
        out.append(_c(line_id, TEXT, "Xero's id of the line (LineItemID)."))
    return out


def _version() -> list[ColumnSpec]:
    return [
        _c(
            "updated_at_utc",
            INSTANT,
            "Xero UpdatedDateUTC of the record version published (the latest one synced).",
            nullable=False,
        ),
        _c(
            "updated_date_local",
            DATE,
            "Organisation-local calendar date of updated_at_utc (Organisation.Timezone).",
            nullable=False,
        ),
        _c(
            "fetched_at_utc",
            INSTANT,
            "When the connector last read this version from Xero. Change detection ignores "
            "it, so an incremental publish sends it only with a changed row: for when the "
            "content was read, use synced_at_utc.",
            nullable=False,
        ),
    ]


def _status(values: str) -> list[ColumnSpec]:
    return [
        _c("status", TEXT, f"Xero status: {values}."),
        _c("is_voided", FLAG, "status = VOIDED.", nullable=False),
        _c("is_deleted", FLAG, "status = DELETED.", nullable=False),
    ]


def _document_date(what: str) -> ColumnSpec:
    return _c(
        "document_date",
        DATE,
        f"{what} (Xero Date: the business date, a UTC calendar date as Xero encodes it; null "
        "when Xero sends /Date(0)/, as it does on some voided documents).",
    )


def _contact() -> list[ColumnSpec]:
    return [
        _c("contact_id", TEXT, "Xero ContactID of the document's contact."),
        _c(
            "contact_name",
            TEXT,
            "Contact's current name (dim_contacts), else the name on the document.",
        ),
    ]


def _line_detail() -> list[ColumnSpec]:
    return [
        _c("description", TEXT, "Line description."),
        _c("item_code", TEXT, "Inventory item code, if any."),
        _c("quantity", UNIT, "Quantity (4 decimal places, unitdp=4)."),
        _c("unit_amount", UNIT, "Unit price in document currency (4 decimal places, unitdp=4)."),
        _c("tax_type", TEXT, "Xero TaxType code of the line (e.g. OUTPUT2, INPUT2, NONE)."),
    ]


def _account(what: str = "the line's account") -> list[ColumnSpec]:
    return [
        _c(
            "account_id",
            TEXT,
            f"Xero AccountID of {what} (from the record, else resolved from the code).",
        ),
        _c("account_code", TEXT, f"Account code of {what} (chart of accounts)."),
        _c("account_name", TEXT, "Account name from dim_accounts; null if the account is unknown."),
        _c("account_type", TEXT, "Account Type from dim_accounts (REVENUE, OVERHEADS, BANK ...)."),
        _c("account_class", TEXT, "Account Class from dim_accounts (ASSET, EQUITY, EXPENSE ...)."),
    ]


def _tracking(null_note: str = "") -> list[ColumnSpec]:
    out = []
    for slot in (1, 2):
        note = null_note or f"of the line's tracking element in slot {slot} (see slot rule)"
        out += [
            _c(
                f"tracking{slot}_category_id",
                TEXT,
                f"TrackingCategoryID {note}.",
            ),
            _c(
                f"tracking{slot}_category_name",
                TEXT,
                f"Current category name (dim_tracking_options) {note}.",
            ),
            _c(f"tracking{slot}_option_id", TEXT, f"TrackingOptionID {note}."),
            _c(
                f"tracking{slot}_option_name",
                TEXT,
                f"Current option name (dim_tracking_options) {note}; null if the id is unknown.",
            ),
        ]
    return out


def _currency(fixed_base: bool = False) -> list[ColumnSpec]:
    if fixed_base:
        return [
            _c("currency_code", TEXT, "Always the organisation's base currency."),
            _c("base_currency_code", TEXT, "Organisation base currency (Organisation)."),
            _c("currency_rate", RATE, "Always 1: manual journals are in base currency."),
        ]
    return [
        _c("currency_code", TEXT, "Document currency (ISO 4217)."),
        _c("base_currency_code", TEXT, "Organisation base currency (Organisation)."),
        _c(
            "currency_rate",
            RATE,
            "Xero CurrencyRate: units of document currency per 1 unit of base currency "
            "(1 for base-currency documents).",
        ),
    ]


def _amounts(with_line_amount: bool = True, line_note: str = "") -> list[ColumnSpec]:
    out = []
    if with_line_amount:
        out.append(
            _c(
                "line_amount",
                MONEY,
                "Xero LineAmount as given (includes tax when line_amount_types = Inclusive)"
                + line_note
                + ".",
            )
        )
    out += [
        _c("net_amount", MONEY, "Amount excluding tax, document currency" + line_note + "."),
        _c("tax_amount", MONEY, "Tax amount (Xero TaxAmount), document currency" + line_note + "."),
        _c(
            "gross_amount",
            MONEY,
            "Amount including tax = net_amount + tax_amount, document currency" + line_note + ".",
        ),
        _c("net_amount_base", MONEY, "net_amount / currency_rate, rounded to cents (base rule)."),
        _c("tax_amount_base", MONEY, "tax_amount / currency_rate, rounded to cents (base rule)."),
        _c(
            "gross_amount_base",
            MONEY,
            "gross_amount / currency_rate, rounded to cents (base rule).",
        ),
    ]
    return out


# --- the tables -----------------------------------------------------------------------------------

_INVOICE_STATUSES = "DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED, DELETED"

_FCT_INVOICE_LINES = TableSpec(
    name="fct_invoice_lines",
    description=(
        "Sales invoices (ACCREC) and supplier bills (ACCPAY) from /Invoices, one row per line "
        "item, with header fields repeated so dashboards slice without joins."
    ),
    grain="one row per line item of the latest version of each invoice or bill",
    columns=[
        *_tenant(),
        _c("invoice_id", TEXT, "Xero InvoiceID.", key=True),
        *_line_ids("invoice", "line_item_id"),
        *_version(),
        *_status(_INVOICE_STATUSES),
        _c("invoice_type", TEXT, "Xero Type: ACCREC (sales invoice) or ACCPAY (bill)."),
        _c(
            "document_kind",
            TEXT,
            "invoice (ACCREC) or bill (ACCPAY).",
            nullable=False,
        ),
        _c("invoice_number", TEXT, "InvoiceNumber (unique for ACCREC only)."),
        _c("reference", TEXT, "Reference."),
        _document_date("Invoice date"),
        _c("due_date", DATE, "Due date (UTC calendar date as Xero encodes it)."),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how line_amount treats tax."),
        *_contact(),
        *_line_detail(),
        *_account(),
        *_tracking(),
        *_currency(),
        *_amounts(),
    ],
    key=("tenant_id", "invoice_id", "line_number"),
)

_FCT_CREDIT_NOTE_LINES = TableSpec(
    name="fct_credit_note_lines",
    description=(
        "Sales (ACCRECCREDIT) and purchase (ACCPAYCREDIT) credit notes from /CreditNotes, one row "
        "per line item. Amounts are positive as Xero gives them: a credit note reduces revenue "
        "(sales_credit) or expense (purchase_credit), so subtract it in measures."
    ),
    grain="one row per line item of the latest version of each credit note",
    columns=[
        *_tenant(),
        _c("credit_note_id", TEXT, "Xero CreditNoteID.", key=True),
        *_line_ids("credit note", "line_item_id"),
        *_version(),
        *_status(_INVOICE_STATUSES),
        _c("credit_note_type", TEXT, "Xero Type: ACCRECCREDIT or ACCPAYCREDIT."),
        _c(
            "document_kind",
            TEXT,
            "sales_credit (ACCRECCREDIT) or purchase_credit (ACCPAYCREDIT).",
            nullable=False,
        ),
        _c("credit_note_number", TEXT, "CreditNoteNumber."),
        _c("reference", TEXT, "Reference."),
        _document_date("Credit note date"),
        _c("due_date", DATE, "Due date, if any."),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how line_amount treats tax."),
        *_contact(),
        *_line_detail(),
        *_account(),
        *_tracking(),
        *_currency(),
        *_amounts(),
    ],
    key=("tenant_id", "credit_note_id", "line_number"),
)

_FCT_PAYMENTS = TableSpec(
    name="fct_payments",
    description=(
        "Payments and refunds from /Payments, one row per payment (payments have no lines). "
        "The account columns are the bank account the money moved through. Tracking columns "
        "exist so every fact has the same slicing columns, but are always null: Xero does not "
        "track payments."
    ),
    grain="one row per payment (latest version)",
    columns=[
        *_tenant(),
        _c("payment_id", TEXT, "Xero PaymentID.", key=True),
        *_version(),
        *_status("AUTHORISED or DELETED"),
        _c(
            "payment_type",
            TEXT,
            "Xero PaymentType (ACCRECPAYMENT, ACCPAYPAYMENT, ARCREDITPAYMENT, ...).",
        ),
        _document_date("Payment date"),
        _c("reference", TEXT, "Reference."),
        _c("is_reconciled", FLAG, "Reconciled against a bank statement line."),
        _c(
            "invoice_id",
            TEXT,
            "InvoiceID paid (on ARCREDITPAYMENT/APCREDITPAYMENT Xero puts the credit note here).",
        ),
        _c("invoice_number", TEXT, "Number of the invoice paid."),
        _c("invoice_type", TEXT, "Type of the document paid (ACCREC, ACCPAY, ACCRECCREDIT ...)."),
        _c("credit_note_id", TEXT, "CreditNoteID when the payment refunds a credit note."),
        _c("credit_note_number", TEXT, "Number of that credit note."),
        _c("prepayment_id", TEXT, "PrepaymentID when the payment applies to a prepayment."),
        _c("overpayment_id", TEXT, "OverpaymentID when the payment applies to an overpayment."),
        _c("batch_payment_id", TEXT, "BatchPaymentID when part of a batch payment."),
        *_contact(),
        *_account("the payment's bank account"),
        *_tracking("(always null: payments carry no tracking)"),
        *_currency(),
        _c("amount", MONEY, "Amount in the paid document's currency (currency_code)."),
        _c("bank_amount", MONEY, "Amount in the bank account's currency."),
        _c("amount_base", MONEY, "amount / currency_rate, rounded to cents (base rule)."),
    ],
    key=("tenant_id", "payment_id"),
)

_FCT_BANK_TRANSACTION_LINES = TableSpec(
    name="fct_bank_transaction_lines",
    description=(
        "Spend and receive money (incl. transfers, pre- and overpayments) from /BankTransactions, "
        "one row per line item."
    ),
    grain="one row per line item of the latest version of each bank transaction",
    columns=[
        *_tenant(),
        _c("bank_transaction_id", TEXT, "Xero BankTransactionID.", key=True),
        *_line_ids("bank transaction", "line_item_id"),
        *_version(),
        *_status("AUTHORISED, DELETED or VOIDED"),
        _c(
            "bank_transaction_type",
            TEXT,
            "Xero Type: RECEIVE, SPEND, RECEIVE-TRANSFER, SPEND-PREPAYMENT ...",
        ),
        _document_date("Transaction date"),
        _c("reference", TEXT, "Reference."),
        _c("is_reconciled", FLAG, "Reconciled against a bank statement line."),
        _c("bank_account_id", TEXT, "AccountID of the bank account."),
        _c("bank_account_code", TEXT, "Account code of the bank account."),
        _c("bank_account_name", TEXT, "Name of the bank account (dim_accounts, else as sent)."),
        _c(
            "overpayment_id",
            TEXT,
            "Xero OverpaymentID on a RECEIVE-/SPEND-OVERPAYMENT: the overpayment this is the cash "
            "of (fct_overpayments; see the Cash of overpayments and prepayments rule).",
        ),
        _c(
            "prepayment_id",
            TEXT,
            "Xero PrepaymentID on a RECEIVE-/SPEND-PREPAYMENT: the prepayment this is the cash "
            "of (fct_prepayments).",
        ),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how line_amount treats tax."),
        *_contact(),
        *_line_detail(),
        *_account(),
        *_tracking(),
        *_currency(),
        *_amounts(),
        _c(
            "signed_net_amount_base",
            MONEY,
            "net_amount_base signed by direction: + for RECEIVE* types (money in), - for SPEND* "
            "types (money out).",
        ),
    ],
    key=("tenant_id", "bank_transaction_id", "line_number"),
)

_FCT_MANUAL_JOURNAL_LINES = TableSpec(
    name="fct_manual_journal_lines",
    description=(
        "Manual journals from /ManualJournals, one row per journal line. Amounts are signed as "
        "Xero gives them: + debit, - credit; a posted journal's lines sum to zero. Journals are "
        "in base currency."
    ),
    grain="one row per journal line of the latest version of each manual journal",
    columns=[
        *_tenant(),
        _c("manual_journal_id", TEXT, "Xero ManualJournalID.", key=True),
        *_line_ids("journal", None),
        *_version(),
        *_status("DRAFT, POSTED, VOIDED, DELETED or ARCHIVED"),
        _c("narration", TEXT, "Journal narration."),
        _document_date("Journal date"),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how line_amount treats tax."),
        _c("description", TEXT, "Line description."),
        _c("tax_type", TEXT, "Xero TaxType code of the line."),
        *_account(),
        *_tracking(),
        *_currency(fixed_base=True),
        *_amounts(line_note=", signed (+ debit, - credit)"),
    ],
    key=("tenant_id", "manual_journal_id", "line_number"),
)

_FCT_PURCHASE_ORDER_LINES = TableSpec(
    name="fct_purchase_order_lines",
    description=(
        "Purchase orders from /PurchaseOrders, one row per line item. Orders are commitments, "
        "not ledger postings: the bill that follows appears in fct_invoice_lines."
    ),
    grain="one row per line item of the latest version of each purchase order",
    columns=[
        *_tenant(),
        _c("purchase_order_id", TEXT, "Xero PurchaseOrderID.", key=True),
        *_line_ids("purchase order", "line_item_id"),
        *_version(),
        *_status("DRAFT, SUBMITTED, AUTHORISED, BILLED or DELETED"),
        _c("purchase_order_number", TEXT, "PurchaseOrderNumber."),
        _c("reference", TEXT, "Reference."),
        _document_date("Order date"),
        _c("delivery_date", DATE, "Delivery date, if any."),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how line_amount treats tax."),
        *_contact(),
        *_line_detail(),
        *_account(),
        *_tracking(),
        *_currency(),
        *_amounts(),
    ],
    key=("tenant_id", "purchase_order_id", "line_number"),
)


def _credit_columns(record: str, id_column: str, xero_id: str, xero_type: str) -> list[ColumnSpec]:
    """The document-grain columns fct_overpayments and fct_prepayments share (between the
    document's own columns and the money)."""
    return [
        *_tenant(),
        _c(id_column, TEXT, f"Xero {xero_id}.", key=True),
        *_version(),
        *_status("AUTHORISED, PAID (no credit left) or VOIDED"),
        _c(
            f"{record}_type",
            TEXT,
            f"Xero Type: RECEIVE-{xero_type} (from a customer) or SPEND-{xero_type} (to a "
            "supplier).",
        ),
        _c(
            "document_kind",
            TEXT,
            "received (RECEIVE-*: money received from a customer) or paid (SPEND-*: money paid "
            "to a supplier).",
            nullable=False,
        ),
    ]


def _credit_money(record: str) -> list[ColumnSpec]:
    return [
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how the lines treat tax."),
        *_currency(),
        _c("net_amount", MONEY, f"Xero SubTotal: the {record} excluding tax, document currency."),
        _c("tax_amount", MONEY, "Xero TotalTax, document currency."),
        _c(
            "gross_amount",
            MONEY,
            f"Xero Total: the whole {record} including tax, document currency.",
        ),
        _c(
            "allocated_amount",
            MONEY,
            f"Sum of the {record}'s live (not deleted) allocations to invoices, document "
            "currency: the part of the credit already used to reduce invoices' AmountDue.",
        ),
        _c(
            "allocation_count",
            INT,
            "Number of live (not deleted) allocations to invoices.",
            nullable=False,
        ),
        _c(
            "remaining_credit",
            MONEY,
            "Xero RemainingCredit, document currency: the credit not yet allocated to invoices "
            "or refunded, which still reduces what the contact owes (received) or what is owed "
            "to the contact (paid). gross_amount - allocated_amount unless part was refunded "
            "(refunds are payments in fct_payments); 0 once fully used. A voided record's "
            "credit is void whatever this says: filter on is_voided.",
        ),
        _c(
            "net_amount_base",
            MONEY,
            "net_amount / currency_rate, rounded to cents (base rule).",
        ),
        _c(
            "tax_amount_base",
            MONEY,
            "tax_amount / currency_rate, rounded to cents (base rule).",
        ),
        _c(
            "gross_amount_base",
            MONEY,
            "gross_amount / currency_rate, rounded to cents (base rule).",
        ),
        _c(
            "remaining_credit_base",
            MONEY,
            "remaining_credit / currency_rate, rounded to cents (base rule).",
        ),
    ]


_FCT_OVERPAYMENTS = TableSpec(
    name="fct_overpayments",
    description=(
        "Overpayments from /Overpayments, one row per overpayment: money a customer paid (or the "
        "organisation paid a supplier) beyond what was owed. It is credit of the contact: "
        "allocating it to invoices (bills) of the same contact and currency reduces their "
        "AmountDue (and raises their AmountCredited) by the amount allocated, and "
        "remaining_credit is what is left. Overpayments are not coded to accounts or tracking "
        "here: their lines are not published."
    ),
    grain="one row per overpayment (latest version)",
    columns=[
        *_credit_columns("overpayment", "overpayment_id", "OverpaymentID", "OVERPAYMENT"),
        _document_date("Overpayment date"),
        _c("reference", TEXT, "Reference."),
        *_contact(),
        *_credit_money("overpayment"),
    ],
    key=("tenant_id", "overpayment_id"),
)

_FCT_PREPAYMENTS = TableSpec(
    name="fct_prepayments",
    description=(
        "Prepayments from /Prepayments, one row per prepayment: a deposit received from a "
        "customer (or paid to a supplier) before the invoice (bill) exists. It is credit of the "
        "contact: allocating it to invoices of the same contact and currency reduces their "
        "AmountDue (and raises their AmountCredited) by the amount allocated, and "
        "remaining_credit is what is left. Prepayments are not coded to accounts or tracking "
        "here: their lines are not published."
    ),
    grain="one row per prepayment (latest version)",
    columns=[
        *_credit_columns("prepayment", "prepayment_id", "PrepaymentID", "PREPAYMENT"),
        _document_date("Prepayment date"),
        _c("reference", TEXT, "Reference."),
        _c(
            "invoice_number",
            TEXT,
            "InvoiceNumber of the prepayment, when Xero gives one (received prepayments).",
        ),
        *_contact(),
        *_credit_money("prepayment"),
    ],
    key=("tenant_id", "prepayment_id"),
)


def _base_of(names: tuple[str, ...]) -> list[ColumnSpec]:
    return [
        _c(f"{name}_base", MONEY, f"{name} / currency_rate, rounded to cents (base rule).")
        for name in names
    ]


_DOCUMENT_TOTALS = [
    _c("net_amount", MONEY, "Xero SubTotal: the document excluding tax, document currency."),
    _c("tax_amount", MONEY, "Xero TotalTax, document currency."),
    _c("gross_amount", MONEY, "Xero Total: the document including tax, document currency."),
]

_FCT_INVOICES = TableSpec(
    name="fct_invoices",
    description=(
        "Sales invoices (ACCREC) and supplier bills (ACCPAY) from /Invoices, one row per "
        "document: Xero's totals and what is still owed (amount_due, with amount_paid and "
        "amount_credited), for receivables and payables by contact, due date and age (see the "
        "Outstanding and aged rule). The lines of the same invoices are fct_invoice_lines. "
        "Voided and deleted documents stay, flagged, as in the line tables."
    ),
    grain="one row per invoice or bill (latest version)",
    columns=[
        *_tenant(),
        _c("invoice_id", TEXT, "Xero InvoiceID.", key=True),
        *_version(),
        *_status(_INVOICE_STATUSES),
        _c("invoice_type", TEXT, "Xero Type: ACCREC (sales invoice) or ACCPAY (bill)."),
        _c(
            "document_kind",
            TEXT,
            "invoice (ACCREC: owed to the organisation) or bill (ACCPAY: owed by it).",
            nullable=False,
        ),
        _c("invoice_number", TEXT, "InvoiceNumber (unique for ACCREC only)."),
        _c("reference", TEXT, "Reference."),
        *_contact(),
        _document_date("Invoice date"),
        _c("due_date", DATE, "Due date (UTC calendar date as Xero encodes it)."),
        _c(
            "fully_paid_on_date",
            DATE,
            "Xero FullyPaidOnDate: the date of the payment or credit that settled the document; "
            "null until it is PAID.",
        ),
        _c(
            "expected_payment_date",
            DATE,
            "Xero ExpectedPaymentDate: when the customer said they would pay (sales invoices); "
            "null when none was entered, and for invoices read before this column existed "
            "until they are read again.",
        ),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how the lines treat tax."),
        *_currency(),
        *_DOCUMENT_TOTALS,
        _c(
            "amount_due",
            MONEY,
            "Xero AmountDue, document currency: what is still owed on the document = "
            "gross_amount - amount_paid - amount_credited. Owed only while status is "
            "AUTHORISED (a DRAFT or SUBMITTED document is not yet owed, a VOIDED or DELETED "
            "one no longer is, whatever this says).",
        ),
        _c(
            "amount_paid",
            MONEY,
            "Xero AmountPaid: the sum of the payments on the document (fct_payments), document "
            "currency.",
        ),
        _c(
            "amount_credited",
            MONEY,
            "Xero AmountCredited: credit notes, overpayments and prepayments allocated to the "
            "document, document currency.",
        ),
        *_base_of(
            (
                "net_amount",
                "tax_amount",
                "gross_amount",
                "amount_due",
                "amount_paid",
                "amount_credited",
            )
        ),
    ],
    key=("tenant_id", "invoice_id"),
    summary=True,
)

_FCT_CREDIT_NOTES = TableSpec(
    name="fct_credit_notes",
    description=(
        "Sales (ACCRECCREDIT) and purchase (ACCPAYCREDIT) credit notes from /CreditNotes, one "
        "row per document: Xero's totals, what was allocated to invoices and the credit left "
        "(remaining_credit), which still reduces what the contact owes (sales credit) or what "
        "is owed to the contact (purchase credit). The lines are fct_credit_note_lines. "
        "Voided and deleted credit notes stay, flagged, as in the line tables."
    ),
    grain="one row per credit note (latest version)",
    columns=[
        *_tenant(),
        _c("credit_note_id", TEXT, "Xero CreditNoteID.", key=True),
        *_version(),
        *_status(_INVOICE_STATUSES),
        _c("credit_note_type", TEXT, "Xero Type: ACCRECCREDIT or ACCPAYCREDIT."),
        _c(
            "document_kind",
            TEXT,
            "sales_credit (ACCRECCREDIT: credit given to a customer) or purchase_credit "
            "(ACCPAYCREDIT: credit received from a supplier).",
            nullable=False,
        ),
        _c("credit_note_number", TEXT, "CreditNoteNumber."),
        _c("reference", TEXT, "Reference."),
        *_contact(),
        _document_date("Credit note date"),
        _c("due_date", DATE, "Due date, if any (UTC calendar date as Xero encodes it)."),
        _c(
            "fully_paid_on_date",
            DATE,
            "Xero FullyPaidOnDate: when the last of the credit was allocated or refunded; null "
            "until it is PAID.",
        ),
        _c("line_amount_types", TEXT, "Exclusive, Inclusive or NoTax: how the lines treat tax."),
        *_currency(),
        *_DOCUMENT_TOTALS,
        _c(
            "allocated_amount",
            MONEY,
            "Sum of the credit note's live (not deleted) allocations to invoices, document "
            "currency: the part of the credit already used to reduce invoices' AmountDue "
            "(their AmountCredited). Null for credit notes read before this column existed, "
            "until they are read again.",
        ),
        _c(
            "allocation_count",
            INT,
            "Number of live (not deleted) allocations to invoices (0 for credit notes read "
            "before this column existed, until they are read again).",
            nullable=False,
        ),
        _c(
            "remaining_credit",
            MONEY,
            "Xero RemainingCredit, document currency: the credit not yet allocated to invoices "
            "or refunded (refunds are payments in fct_payments). Credit only while status is "
            "AUTHORISED (PAID: none left; a DRAFT or SUBMITTED note is not yet credit, a VOIDED "
            "or DELETED one no longer is, whatever this says).",
        ),
        *_base_of(("net_amount", "tax_amount", "gross_amount", "remaining_credit")),
    ],
    key=("tenant_id", "credit_note_id"),
    summary=True,
)

_MONEY_NOTE = "in the bank account's currency (currency_code)"
_BASE_NOTE = (
    "in base currency: each document's bank-side amount converted at its own rate (base rule), "
    "summed; null from the first document without a usable rate"
)

_FCT_BANK_BALANCES = TableSpec(
    name="fct_bank_balances",
    description=(
        "Daily balance of every bank account (Account Type BANK: bank, credit card, PayPal) "
        "computed from the documents the connector reads: payments and refunds into and out "
        "of the account (fct_payments) and its bank transactions of every type "
        "(fct_bank_transaction_lines: spend and receive money, over- and prepayments received "
        "or paid, the two sides of transfers as Xero lists them). One row per account and day, "
        "with no gaps, from the day of the account's first movement to the tenant's sync date "
        "(or the latest movement, if later), so a cash chart has no holes. Not visible in "
        "documents, hence NOT included: opening (conversion) balances entered in Xero, and "
        "/BankTransfers, which the connector does not read (see the Bank balances rule)."
    ),
    grain="one row per bank account and organisation-local calendar day",
    columns=[
        *_tenant(),
        _c("bank_account_id", TEXT, "Xero AccountID of the bank account.", key=True),
        _c(
            "balance_date",
            DATE,
            "The day: the document date of the movements counted on it (Xero Date, the "
            "organisation's business date; see the Bank balances rule).",
            key=True,
        ),
        _c("bank_account_code", TEXT, "Account code of the bank account (dim_accounts)."),
        _c("bank_account_name", TEXT, "Name of the bank account (dim_accounts)."),
        _c(
            "bank_account_type",
            TEXT,
            "Xero BankAccountType: BANK, CREDITCARD or PAYPAL (dim_accounts).",
        ),
        _c(
            "currency_code",
            TEXT,
            "The bank account's currency (dim_accounts, else the base currency).",
        ),
        _c("base_currency_code", TEXT, "Organisation base currency (Organisation)."),
        _c(
            "opening_balance",
            MONEY,
            f"Balance at the start of the day, {_MONEY_NOTE}: the previous day's "
            "closing_balance, 0 on the account's first day (conversion balances excluded).",
        ),
        _c(
            "money_in",
            MONEY,
            f"Sum of the day's movements into the account, {_MONEY_NOTE} (receipts, customer "
            "payments, refunds from suppliers).",
        ),
        _c(
            "money_out",
            MONEY,
            f"Sum of the day's movements out of the account, {_MONEY_NOTE}, as a positive "
            "amount (spending, bill payments, refunds to customers).",
        ),
        _c(
            "closing_balance",
            MONEY,
            f"Balance at the end of the day, {_MONEY_NOTE}: opening_balance + money_in - "
            "money_out.",
        ),
        _c(
            "movement_count",
            INT,
            "Number of documents dated that day that moved money in or out of the account.",
            nullable=False,
        ),
        _c("opening_balance_base", MONEY, f"opening_balance {_BASE_NOTE}."),
        _c("money_in_base", MONEY, f"money_in {_BASE_NOTE}."),
        _c("money_out_base", MONEY, f"money_out {_BASE_NOTE}."),
        _c("closing_balance_base", MONEY, f"closing_balance {_BASE_NOTE}."),
    ],
    key=("tenant_id", "bank_account_id", "balance_date"),
    document=("tenant_id", "bank_account_id"),
    summary=True,
)


_DIM_ACCOUNTS = TableSpec(
    name="dim_accounts",
    description="The chart of accounts (/Accounts), archived accounts included.",
    grain="one row per account",
    columns=[
        *_tenant(),
        _c("account_id", TEXT, "Xero AccountID.", key=True),
        _c("account_code", TEXT, "Account code (may be null for some bank accounts)."),
        _c("account_name", TEXT, "Account name."),
        _c("account_type", TEXT, "Xero Type (BANK, REVENUE, OVERHEADS, CURRLIAB ...)."),
        _c("account_class", TEXT, "Xero Class (ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE)."),
        _c("status", TEXT, "ACTIVE, ARCHIVED or DELETED."),
        _c("is_archived", FLAG, "status = ARCHIVED.", nullable=False),
        _c("tax_type", TEXT, "Default TaxType of the account."),
        _c("bank_account_type", TEXT, "BANK, CREDITCARD or PAYPAL for bank accounts."),
        _c("currency_code", TEXT, "Currency of a bank account."),
        _c("reporting_code", TEXT, "Xero reporting code (e.g. EXP.ADV)."),
        _c("system_account", TEXT, "System account role (DEBTORS, CREDITORS, GST ...), if any."),
        _c("updated_at_utc", INSTANT, "Xero UpdatedDateUTC of the account, when Xero sends it."),
    ],
    key=("tenant_id", "account_id"),
)

_DIM_TRACKING_OPTIONS = TableSpec(
    name="dim_tracking_options",
    description=(
        "Tracking options (cost centres) with their categories (/TrackingCategories), archived "
        "and deleted ones included so old lines still resolve."
    ),
    grain="one row per tracking option",
    columns=[
        *_tenant(),
        _c("option_id", TEXT, "Xero TrackingOptionID.", key=True),
        _c("option_name", TEXT, "Option name."),
        _c("status", TEXT, "Option status (ACTIVE, ARCHIVED, DELETED)."),
        _c("is_archived", FLAG, "Option is archived.", nullable=False),
        _c("is_deleted", FLAG, "Option is deleted.", nullable=False),
        _c("category_id", TEXT, "Xero TrackingCategoryID."),
        _c("category_name", TEXT, "Category name."),
        _c("category_status", TEXT, "Category status (ACTIVE, ARCHIVED, DELETED)."),
        _c(
            "slot",
            INT,
            "Tracking slot of the category, given once and kept: 1 and 2 are the facts' "
            "tracking1_*/tracking2_* columns, 3 and up have no columns (see slot rule).",
        ),
    ],
    key=("tenant_id", "option_id"),
)

_DIM_CONTACTS = TableSpec(
    name="dim_contacts",
    description="Customers and suppliers (/Contacts), archived ones included.",
    grain="one row per contact (latest version)",
    columns=[
        *_tenant(),
        _c("contact_id", TEXT, "Xero ContactID.", key=True),
        _c("contact_name", TEXT, "Contact name."),
        _c("status", TEXT, "ContactStatus: ACTIVE, ARCHIVED or GDPRREQUEST."),
        _c("is_archived", FLAG, "status = ARCHIVED.", nullable=False),
        _c("is_customer", FLAG, "Xero IsCustomer (has sales documents)."),
        _c("is_supplier", FLAG, "Xero IsSupplier (has purchase documents)."),
        _c("email_address", TEXT, "Email address."),
        _c("default_currency", TEXT, "Default currency, when not the base currency."),
        _c("contact_number", TEXT, "ContactNumber (external system id), if any."),
        _c("account_number", TEXT, "AccountNumber, if any."),
        _c("tax_number", TEXT, "Tax number (GST/VAT/ABN), if any."),
        _c(
            "merged_to_contact_id",
            TEXT,
            "ContactID this contact was merged into, if it was.",
        ),
        *_version(),
    ],
    key=("tenant_id", "contact_id"),
)

TABLES: dict[str, TableSpec] = {
    spec.name: _with_provenance(spec)
    for spec in (
        _FCT_INVOICE_LINES,
        _FCT_PAYMENTS,
        _FCT_BANK_TRANSACTION_LINES,
        _FCT_CREDIT_NOTE_LINES,
        _FCT_MANUAL_JOURNAL_LINES,
        _FCT_PURCHASE_ORDER_LINES,
        _FCT_OVERPAYMENTS,
        _FCT_PREPAYMENTS,
        _FCT_INVOICES,
        _FCT_CREDIT_NOTES,
        _FCT_BANK_BALANCES,
        _DIM_ACCOUNTS,
        _DIM_TRACKING_OPTIONS,
        _DIM_CONTACTS,
    )
}
"""Published table name -> spec, in publishing order (facts, then dimensions)."""


RULES: list[tuple[str, str]] = [
    (
        "Latest version",
        "Raw records are stored per tenant and UTC day of UpdatedDateUTC; a record that changed "
        "moves to a later day but its older copy may still sit in an earlier day's partition. "
        "Every table keeps exactly one version per record id: the highest updated_at_utc, then "
        "the latest fetched_at_utc; a line table takes the lines of that version only.",
    ),
    (
        "Void and delete",
        "Xero never hard-deletes documents: voided and deleted ones stay, with is_voided "
        "(status VOIDED) or is_deleted (status DELETED) set and their amounts unchanged. Filter "
        "them out of financial measures (e.g. `NOT is_voided AND NOT is_deleted`, and for "
        "invoices usually also status not in DRAFT, SUBMITTED).",
    ),
    (
        "Amounts",
        "net_amount is the amount excluding tax: line_amount - tax_amount when "
        "line_amount_types is Inclusive, else line_amount. gross_amount = net_amount + "
        "tax_amount. A missing tax_amount counts as 0. For invoices, credit notes and bank "
        "transactions the line net amounts of a document sum to its SubTotal.",
    ),
    (
        "Base currency",
        "Every *_base column is the document-currency amount divided by currency_rate (Xero's "
        "units of document currency per 1 base unit), rounded to cents half away from zero "
        "(Python ROUND_HALF_UP), row by row. So base amounts of lines may differ by a cent from "
        "Xero's own conversion of the document total. currency_rate is 1 for base-currency "
        "documents; when Xero sends no rate for a foreign-currency document the base amounts "
        "are null.",
    ),
    (
        "Signs",
        "Amounts keep Xero's signs: invoices, bills, credit notes, payments, purchase orders, "
        "bank transactions, overpayments and prepayments are positive; manual journal lines are "
        "+ debit, - credit. "
        "fct_bank_transaction_lines.signed_net_amount_base is + for RECEIVE* and - for SPEND* "
        "types.",
    ),
    (
        "Credit: overpayments and prepayments",
        "An overpayment or prepayment is money received from a customer (document_kind "
        "received) or paid to a supplier (paid) that is credit of the contact until it is used. "
        "Allocating it to an invoice or bill of the same contact and currency reduces that "
        "document's AmountDue and raises its AmountCredited by the allocated amount; "
        "allocated_amount is the sum of the live allocations and remaining_credit (Xero "
        "RemainingCredit) what is left: it still reduces what the customer owes, or what the "
        "organisation owes the supplier, until allocated or refunded. So outstanding credit is "
        "the sum of remaining_credit_base over rows that are not voided. Which invoices the "
        "credit went to is not published, only allocated_amount and allocation_count.",
    ),
    (
        "Cash of overpayments and prepayments",
        "Xero lists the money of every overpayment and prepayment in /BankTransactions, as a "
        "bank transaction of Type RECEIVE-OVERPAYMENT, SPEND-OVERPAYMENT, RECEIVE-PREPAYMENT "
        "or SPEND-PREPAYMENT on the bank account the money went through (the documents "
        "themselves name none), linked to its document by overpayment_id or prepayment_id "
        "(the row of fct_overpayments or fct_prepayments it is; voiding one voids the other). "
        "Those rows of fct_bank_transaction_lines are cash, not income or expense: an "
        "overpayment's single line is on the Accounts Receivable or Payable control account, "
        "and a prepayment's lines are on the income or expense accounts of what it pays for, "
        "which the invoice or bill it is allocated to counts again in fct_invoice_lines. So "
        "income and expense from bank transactions are the lines with bank_transaction_type "
        "RECEIVE or SPEND (transfers are neither), while cash is the lines of every type, as "
        "fct_bank_balances counts it. The same money is the gross_amount of fct_overpayments "
        "and fct_prepayments: never add those to cash taken from fct_bank_transaction_lines, "
        "fct_payments or fct_bank_balances. (Xero's general ledger keeps an unallocated "
        "prepayment on the accounts of its lines until it is allocated; a P&L that must match "
        "Xero's to the cent comes from the general ledger, not from documents.)",
    ),
    (
        "Tracking slots",
        "A line has up to two tracking elements (category + option); Xero allows two active "
        "tracking categories. Each category of a tenant is given a slot once, the first time it "
        "is seen (listed by Xero, or on a line), and keeps it for good: renamed, archived, "
        "restored or deleted, its options stay in the same columns across all history "
        "(tracking1_* for slot 1, tracking2_* for slot 2), whatever order Xero lists a line's "
        "elements in. A new category takes the lowest slot no category ever held; several new "
        "at once are ordered ACTIVE first, then by name (case-insensitive, then id), then the "
        "ids seen only on lines. A slot is never given to another category, not even after a "
        "deletion: a category created once slots 1 and 2 are taken (say after one of the first "
        "two was archived or deleted) gets slot 3 or more, which has no columns, so its "
        "elements are on no fact row (dim_tracking_options lists it with its slot and the "
        "tracking_categories_in_columns check warns). The slots are kept in the state DB "
        "(table xero_tracking_slots), so every sync path and a rebuild from scratch give the "
        "same columns. Names come from dim_tracking_options (current names; an unknown id "
        "leaves the name null).",
    ),
    (
        "Provenance",
        "Every row ends with the Xero read that produced its content: synced_at_utc, "
        "sync_source, dagster_run_id and source_event_at_utc. sync_source is the raw run's "
        "xero/purpose tag in five names: webhook (webhook), poll (poll, safety-poll; and a "
        "reference snapshot refreshed by its automation), sweep (sweep-recent, sweep-history), "
        "sync (`xero-tableau sync`) and backfill (backfill, a run without the tag such as one "
        "launched by hand, and any other value). A re-read that finds the same content keeps the "
        "provenance of the earlier read, so these columns name the read that last changed the "
        "row, never a later one that found nothing new. Change detection ignores them (a row is "
        "re-sent only when its content changes), and a full replace from the same lake shows the "
        "same values as the incremental publish. Same content means: for a fact or dim_contacts, "
        "the same values normalize publishes as stored (a value used only as a fallback, such as "
        "the contact name on a document, does not count, nor does a value arriving where "
        "normalize had filled one in, nor a line's tracking, which shows only for the "
        "categories in slots 1 and 2 and which Xero never edits without a new UpdatedDateUTC); "
        "for "
        "dim_accounts and dim_tracking_options, the same published row. A row whose content "
        "changes through another table (a renamed contact, account or organisation) shows the "
        "new value with the provenance of its own last change. Content read before provenance "
        "was recorded shows its fetched_at_utc as synced_at_utc (facts and dim_contacts) and "
        "nulls otherwise. The summary tables follow their records: a row of fct_invoices or "
        "fct_credit_notes carries its document's provenance (the same as its lines'), a row of "
        "fct_bank_balances the latest read among the movements the balance includes (those "
        "dated on or before its day; ties by the latest source_event_at_utc). Their rows do "
        "not show every value of their records (a line's account, a bank transaction's "
        "reference), so their change detection counts the provenance too: a row whose "
        "provenance changed is re-sent. A value only they show (amount_due, remaining_credit, "
        "a bank transaction's total) is not compared when a record is re-read: changed "
        "without a new UpdatedDateUTC, it is published with the provenance the row had.",
    ),
    (
        "Dates",
        "Instants (updated_at_utc, fetched_at_utc, synced_at_utc, source_event_at_utc) are "
        "UTC. Xero's date-only fields (document_date, due_date, delivery_date, "
        "fully_paid_on_date, expected_payment_date, and balance_date, which is a document "
        "date) are business dates as Xero encodes them (the UTC calendar date). "
        "updated_date_local is the "
        "calendar date of updated_at_utc in the organisation's time zone "
        "(Organisation.Timezone).",
    ),
    (
        "Accounts and contacts",
        "A line's account resolves by its AccountID when present, else by its account code; "
        "account name, type and class are the current ones from dim_accounts. contact_name is "
        "the contact's current name, else the name on the document.",
    ),
    (
        "Outstanding and aged",
        "fct_invoices carries each invoice's and bill's Xero AmountDue (amount_due = "
        "gross_amount - amount_paid - amount_credited), so receivables and payables need no "
        "join. A document is owed only while its status is AUTHORISED: DRAFT and SUBMITTED "
        "are not approved yet, PAID has nothing due, VOIDED and DELETED stay in the table "
        "(flagged, as in the line tables) with their amounts as Xero gives them and must be "
        "left out. Aged receivables are one Tableau calculated field on fct_invoices, "
        "`IF [status] = 'AUTHORISED' AND [document_kind] = 'invoice' THEN (IF "
        "DATEDIFF('day', [due_date], TODAY()) <= 0 THEN 'Current' ELSEIF DATEDIFF('day', "
        "[due_date], TODAY()) <= 30 THEN '1-30' ELSEIF DATEDIFF('day', [due_date], TODAY()) <= "
        "60 THEN '31-60' ELSEIF DATEDIFF('day', [due_date], TODAY()) <= 90 THEN '61-90' ELSE "
        "'90+' END) END`, used as a dimension with SUM([amount_due_base]) (or amount_due "
        "filtered to one currency_code); aged payables are the same with [document_kind] = "
        "'bill'. TODAY() is the viewer's date: ages are as of the day the dashboard is read, "
        "while the amounts are as of the tenant's last sync.",
    ),
    (
        "What a contact owes",
        "Credit of a contact reduces what it owes: credit notes (fct_credit_notes), "
        "overpayments and prepayments (fct_overpayments, fct_prepayments) keep their unused "
        "credit in remaining_credit until it is allocated to invoices (which lowers their "
        "amount_due) or refunded. So, per contact_id, in base currency: a customer owes "
        "SUM(fct_invoices.amount_due_base where document_kind = invoice and status = "
        "AUTHORISED) - SUM(fct_credit_notes.remaining_credit_base where document_kind = "
        "sales_credit and status = AUTHORISED) - SUM(fct_overpayments.remaining_credit_base + "
        "fct_prepayments.remaining_credit_base where document_kind = received and status = "
        "AUTHORISED); the organisation owes a supplier the same with bill, purchase_credit and "
        "paid. (An over- or prepayment with no credit left is PAID, a voided one VOIDED: "
        "status = AUTHORISED keeps exactly those with credit.) Per currency, use the "
        "document-currency columns filtered to one currency_code. A negative result is credit "
        "in the contact's favour.",
    ),
    (
        "Bank balances",
        "fct_bank_balances is built from movements: one per live document that moved money "
        "into or out of a bank account (an account of Type BANK in dim_accounts). Payments "
        "(status AUTHORISED; Xero BankAmount, in the account's currency; a payment to an "
        "account that is not a bank account moves no balance): in for ACCRECPAYMENT, "
        "APCREDITPAYMENT, APOVERPAYMENTPAYMENT and APPREPAYMENTPAYMENT (customers paying, "
        "suppliers refunding), out for ACCPAYPAYMENT, ARCREDITPAYMENT, AROVERPAYMENTPAYMENT and "
        "ARPREPAYMENTPAYMENT. Bank transactions (status AUTHORISED; Xero Total, in the "
        "transaction's currency, which is the account's except for an overpayment Xero lets "
        "be raised in another: then Total / currency_rate into or out of a base-currency "
        "account, and no movement for a foreign-currency account, there being no rate between "
        "two foreign currencies): in for RECEIVE, RECEIVE-OVERPAYMENT, RECEIVE-PREPAYMENT and "
        "RECEIVE-TRANSFER, out for the SPEND types; so the cash of overpayments and "
        "prepayments counts once, from their bank transactions (fct_overpayments and "
        "fct_prepayments are not read). Voided and deleted documents move nothing, "
        "nor does a document without a date. A day is the document's date (Xero Date, the "
        "business date the organisation gave it in its own calendar; not when it was entered "
        "or synced), so a balance is the bank account's position by transaction date, as "
        "Xero's Account Transactions report shows it. Days are dense: every day from the "
        "account's first movement to the tenant's sync date (the organisation-local date of "
        "the latest read of its records), or to the latest movement if one is dated later, "
        "has a row, with opening_balance = the previous day's closing_balance and "
        "closing_balance = opening_balance + money_in - money_out. Base amounts convert each "
        "movement at its document's own rate (amount / currency_rate, base rule: the "
        "historical rate, never revalued; Xero's bank revaluations are journals) and are null "
        "on and after the first day with a movement that has no usable rate. Known gaps: "
        "opening (conversion) balances entered in Xero are in no document, so every balance "
        "starts at 0 on the account's first movement and differs from Xero's by that constant "
        "(the general ledger, /Journals, shows them); /BankTransfers is not read, so a "
        "transfer counts only as far as Xero lists its two sides in /BankTransactions as "
        "SPEND-TRANSFER and RECEIVE-TRANSFER (a transfer it leaves out is missing from both "
        "accounts' balances, though not from their sum when they share a currency).",
    ),
]
"""The rules every table follows, rendered into docs/schema.md."""


def render_schema_markdown() -> str:
    """docs/schema.md, generated from :data:`TABLES` and :data:`RULES`."""
    out = [
        "# Published tables",
        "",
        "<!-- Generated from xero_tableau/transform/schema.py by render_schema_markdown(); a "
        "test fails when this file and the code differ. Edit the code, then regenerate with: "
        '.venv/bin/python -c "from xero_tableau.transform.schema import '
        "render_schema_markdown as r; open('docs/schema.md', 'w').write(r())\" -->",
        "",
        "Every table is published per tenant as its own Tableau data source (local output: "
        "`XT_HOME/hyper/<tenant_id>/<table>.hyper`, one table per file). Every row carries "
        "`tenant_id` with `organisation_name`, and the provenance of its content "
        "(`synced_at_utc`, `sync_source`, `dagster_run_id`, `source_event_at_utc`); every "
        "document fact row carries the Xero record id, `updated_at_utc`, status flags "
        "and amounts in document and base currency, and every line fact and fct_payments the "
        "account and both tracking slots, so dashboards slice by account and cost centre "
        "without joins. fct_invoices, fct_credit_notes, fct_overpayments and fct_prepayments "
        "have one row per document (what is owed and the credit left), and fct_bank_balances "
        "one row per bank account and day (balances in account and base currency). "
        "Money is exact: "
        "NUMERIC(18,2) (quantities and unit amounts NUMERIC(18,4), rates NUMERIC(18,6)), never "
        "floating point.",
        "",
        "## Rules",
        "",
    ]
    for title, text in RULES:
        out.append(f"- **{title}.** {text}")
    out.append("")
    out.append("## Tables")
    out.append("")
    for spec in TABLES.values():
        out.append(f"- [`{spec.name}`](#{spec.name}): {spec.grain}")
    for spec in TABLES.values():
        out += [
            "",
            f"## {spec.name}",
            "",
            spec.description,
            "",
            f"Grain: {spec.grain}. Key: ({', '.join(spec.key)}).",
            "",
            "| Column | Type | Key | Null | Meaning |",
            "|---|---|---|---|---|",
        ]
        for column in spec.columns:
            key = "yes" if column.key else ""
            null = "" if column.nullable else "not null"
            text = column.description.replace("|", "\\|")
            out.append(
                f"| `{column.name}` | {hyper_sql_type(column.type)} | {key} | {null} | {text} |"
            )
    out.append("")
    return "\n".join(out)


def _check() -> None:
    """Import-time sanity: keys are columns, names unique (a broken contract fails loudly)."""
    for spec in TABLES.values():
        names = spec.names
        if len(set(names)) != len(names):
            raise AssertionError(f"{spec.name}: duplicate column names")
        if tuple(c.name for c in spec.columns if c.key) != spec.key:
            raise AssertionError(f"{spec.name}: key {spec.key} does not match key columns")
        if spec.document and spec.key[: len(spec.document)] != spec.document:
            raise AssertionError(f"{spec.name}: document {spec.document} is not a key prefix")
        for column in spec.columns:
            hyper_sql_type(column.type)


_check()
