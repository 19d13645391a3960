"""Raw Xero records -> the lake's columnar form: one documents table and one lines table per batch.

:func:`flatten` runs in the raw asset on one window of API results (a day partition), so it may
spend per-record Python: it validates every record with the pydantic models
(:func:`xero_tableau.xero.models.parse_records`), quarantines the ones that fail (with the id and
a readable reason) and lays the rest out in fixed Arrow schemas (:data:`DOCUMENT_SCHEMAS`,
:data:`LINE_SCHEMAS`). Fixed schemas are what let every day partition, empty or not, concatenate
into one table without type drift, so the normalize step can stay pure vectorized Arrow.

Layout choices the normalize step relies on:

- ``documents``: one row per record, columns ``id``, ``updated_at_utc``, ``fetched_at_utc`` first,
  then the header fields (money as ``decimal128(18, 2)``, ``CurrencyRate`` as ``decimal128(18,
  6)``, Xero's own maximum, dates as ``date32``). A record that appears twice in a batch (Xero's
  paging can return a record again when it changes mid-read) is kept once: its latest version.
- ``lines``: one row per line, ``document_id`` and ``document_row`` (the 0-based row of the parent
  in ``documents``) first, so the lines of a version are found with integer indexing instead of a
  string join; ``line_number`` is the 0-based position in Xero's list; ``line_id`` is Xero's
  LineItemID (null for manual journal lines, which have none). A line's tracking elements (at most
  two) are kept in Xero's order as ``tracking_a_*`` and ``tracking_b_*``; slot resolution by
  category happens in normalize, where the tenant's categories are known.
- ``/Date(0+0000)/`` (1970-01-01), which Xero puts in some voided documents' date fields, is
  stored as null: it means "no date", not the first of January 1970.

A record is rejected when the models reject it, when a line has more than two tracking elements,
or when a value does not fit the lake type (e.g. a CurrencyRate with more than 6 decimal places).

This package must never import dagster.
"""

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
    Payment,
    PurchaseOrder,
    RejectedRecord,
    XeroModel,
    parse_records,
)

__all__ = [
    "DOCUMENT_SCHEMAS",
    "LINED_ENTITIES",
    "LINE_SCHEMAS",
    "TRANSACTIONAL_ENTITIES",
    "FlatBatch",
    "empty_batch",
    "flatten",
]

MONEY = pa.decimal128(18, 2)
UNIT = pa.decimal128(18, 4)
RATE = pa.decimal128(18, 6)
INSTANT = pa.timestamp("ms", tz="UTC")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = _EPOCH.date()
_MS = timedelta(milliseconds=1)
_MAX_TRACKING = 2


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_DOC_HEAD = [
    _f("id", pa.string(), False),
    _f("updated_at_utc", INSTANT, False),
    _f("fetched_at_utc", INSTANT, False),
]
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

DOCUMENT_SCHEMAS: dict[str, pa.Schema] = {
    "Invoices": pa.schema(
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
    ),
    "CreditNotes": pa.schema(
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
            _f("sent_to_contact", pa.bool_()),
            _f("has_attachments", pa.bool_()),
        ]
    ),
    "Payments": pa.schema(
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
    ),
    "BankTransactions": pa.schema(
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
    ),
    "ManualJournals": pa.schema(
        [
            *_DOC_HEAD,
            _f("status", pa.string()),
            _f("narration", pa.string()),
            _f("date", pa.date32()),
            _f("line_amount_types", pa.string()),
            _f("show_on_cash_basis_reports", pa.bool_()),
            _f("has_attachments", pa.bool_()),
        ]
    ),
    "PurchaseOrders": pa.schema(
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
    ),
    "Contacts": pa.schema(
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
    ),
}
"""Entity -> Arrow schema of its documents table (one row per record)."""

_LINE_ITEM_SCHEMA = pa.schema(
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
_JOURNAL_LINE_SCHEMA = pa.schema(
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

LINE_SCHEMAS: dict[str, pa.Schema] = {
    "Invoices": _LINE_ITEM_SCHEMA,
    "CreditNotes": _LINE_ITEM_SCHEMA,
    "BankTransactions": _LINE_ITEM_SCHEMA,
    "PurchaseOrders": _LINE_ITEM_SCHEMA,
    "ManualJournals": _JOURNAL_LINE_SCHEMA,
}
"""Entity -> Arrow schema of its lines table; entities without lines (Payments, Contacts) are
absent."""

TRANSACTIONAL_ENTITIES: tuple[str, ...] = tuple(DOCUMENT_SCHEMAS)
"""The entities partitioned by tenant x UTC day of UpdatedDateUTC."""
LINED_ENTITIES: frozenset[str] = frozenset(LINE_SCHEMAS)


@dataclass
class FlatBatch:
    """One batch of records in lake form: documents, lines (None for unlined entities) and the
    records that were quarantined instead."""

    documents: pa.Table
    lines: pa.Table | None
    rejected: list[RejectedRecord] = field(default_factory=list)


def empty_batch(entity: str) -> FlatBatch:
    """A batch with no records, typed like any other (what an empty day flattens to)."""
    _check_entity(entity)
    line_schema = LINE_SCHEMAS.get(entity)
    return FlatBatch(
        DOCUMENT_SCHEMAS[entity].empty_table(),
        None if line_schema is None else line_schema.empty_table(),
        [],
    )


# --- per-entity row builders (header tuple, line tuples) ---------------------------------------


def _day(value: date | None) -> date | None:
    """Xero's /Date(0)/ placeholder (voided documents) means "no date"."""
    return None if value is None or value == _EPOCH_DATE else value


def _contact(ref: ContactRef | None) -> tuple[str | None, str | None]:
    return (None, None) if ref is None else (ref.contact_id, ref.name)


def _invoice(m: Invoice, _raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m.type,
        m.status,
        m.invoice_number,
        m.reference,
        *_contact(m.contact),
        _day(m.date),
        _day(m.due_date),
        _day(m.fully_paid_on_date),
        m.line_amount_types,
        m.currency_code,
        m.currency_rate,
        m.sub_total,
        m.total_tax,
        m.total,
        m.total_discount,
        m.amount_due,
        m.amount_paid,
        m.amount_credited,
        m.sent_to_contact,
        m.has_attachments,
    )


def _credit_note(m: CreditNote, _raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m.type,
        m.status,
        m.credit_note_number,
        m.reference,
        *_contact(m.contact),
        _day(m.date),
        _day(m.due_date),
        _day(m.fully_paid_on_date),
        m.line_amount_types,
        m.currency_code,
        m.currency_rate,
        m.sub_total,
        m.total_tax,
        m.total,
        m.remaining_credit,
        m.applied_amount,
        m.sent_to_contact,
        m.has_attachments,
    )


def _raw_contact(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """A payment's contact: Xero nests it in the Invoice stub, which the model does not keep."""
    stub = raw.get("Invoice")
    contact = stub.get("Contact") if isinstance(stub, dict) else None
    if not isinstance(contact, dict):
        return None, None
    cid, name = contact.get("ContactID"), contact.get("Name")
    return (cid if isinstance(cid, str) else None, name if isinstance(name, str) else None)


def _payment(m: Payment, raw: dict[str, Any]) -> tuple[Any, ...]:
    account, invoice, credit = m.account, m.invoice, m.credit_note
    return (
        m.payment_type,
        m.status,
        _day(m.date),
        m.reference,
        m.is_reconciled,
        m.amount,
        m.bank_amount,
        m.currency_rate,
        None if account is None else account.account_id,
        None if account is None else account.code,
        None if account is None else account.name,
        None if invoice is None else invoice.invoice_id,
        None if invoice is None else invoice.invoice_number,
        None if invoice is None else invoice.type,
        None if invoice is None else invoice.currency_code,
        None if credit is None else credit.credit_note_id,
        None if credit is None else credit.credit_note_number,
        None if m.prepayment is None else m.prepayment.prepayment_id,
        None if m.overpayment is None else m.overpayment.overpayment_id,
        m.batch_payment_id,
        *_raw_contact(raw),
    )


def _bank_transaction(m: BankTransaction, _raw: dict[str, Any]) -> tuple[Any, ...]:
    bank = m.bank_account
    return (
        m.type,
        m.status,
        m.reference,
        m.is_reconciled,
        None if bank is None else bank.account_id,
        None if bank is None else bank.code,
        None if bank is None else bank.name,
        *_contact(m.contact),
        _day(m.date),
        m.line_amount_types,
        m.currency_code,
        m.currency_rate,
        m.sub_total,
        m.total_tax,
        m.total,
        m.prepayment_id,
        m.overpayment_id,
        m.has_attachments,
    )


def _manual_journal(m: ManualJournal, _raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m.status,
        m.narration,
        _day(m.date),
        m.line_amount_types,
        m.show_on_cash_basis_reports,
        m.has_attachments,
    )


def _purchase_order(m: PurchaseOrder, _raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m.status,
        m.purchase_order_number,
        m.reference,
        *_contact(m.contact),
        _day(m.date),
        _day(m.delivery_date),
        _day(m.expected_arrival_date),
        m.line_amount_types,
        m.currency_code,
        m.currency_rate,
        m.sub_total,
        m.total_tax,
        m.total,
        m.total_discount,
        m.sent_to_contact,
        m.has_attachments,
    )


def _contact_record(m: Contact, _raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m.name,
        m.contact_status,
        m.contact_number,
        m.account_number,
        m.first_name,
        m.last_name,
        m.email_address,
        m.tax_number,
        m.is_customer,
        m.is_supplier,
        m.default_currency,
        m.merged_to_contact_id,
        m.sales_default_account_code,
        m.purchases_default_account_code,
    )


class _TooMuchTracking(ValueError):
    """A line with more than two tracking elements: Xero allows two, so the record is corrupt."""


_NO_TRACKING = (None,) * 8


def _tracking(line: LineItem | ManualJournalLine, where: str) -> tuple[Any, ...]:
    elements = line.tracking
    if not elements:
        return _NO_TRACKING
    if len(elements) > _MAX_TRACKING:
        raise _TooMuchTracking(
            f"{where}.Tracking: {len(elements)} tracking elements, Xero allows at most 2"
        )
    out: list[str | None] = []
    for element in elements:
        out += (
            element.tracking_category_id,
            element.name,
            element.tracking_option_id,
            element.option,
        )
    if len(elements) == 1:
        out += (None, None, None, None)
    return tuple(out)


def _line_items(m: Any, key: str) -> list[tuple[Any, ...]]:
    rows = []
    for number, line in enumerate(m.line_items):
        rows.append(
            (
                number,
                line.line_item_id,
                line.description,
                line.item_code,
                line.quantity,
                line.unit_amount,
                line.account_id,
                line.account_code,
                line.tax_type,
                line.tax_amount,
                line.line_amount,
                line.discount_rate,
                line.discount_amount,
                *_tracking(line, f"{key}.{number}"),
            )
        )
    return rows


def _journal_lines(m: ManualJournal, key: str) -> list[tuple[Any, ...]]:
    rows = []
    for number, line in enumerate(m.journal_lines):
        rows.append(
            (
                number,
                None,
                line.description,
                line.account_id,
                line.account_code,
                line.tax_type,
                line.tax_amount,
                line.line_amount,
                line.is_blank,
                *_tracking(line, f"{key}.{number}"),
            )
        )
    return rows


@dataclass(frozen=True)
class _Layout:
    header: Callable[[Any, dict[str, Any]], tuple[Any, ...]]
    lines: Callable[[Any, str], list[tuple[Any, ...]]] | None = None
    lines_key: str = ""


_LAYOUTS: dict[str, _Layout] = {
    "Invoices": _Layout(_invoice, _line_items, "LineItems"),
    "CreditNotes": _Layout(_credit_note, _line_items, "LineItems"),
    "Payments": _Layout(_payment),
    "BankTransactions": _Layout(_bank_transaction, _line_items, "LineItems"),
    "ManualJournals": _Layout(_manual_journal, _journal_lines, "JournalLines"),
    "PurchaseOrders": _Layout(_purchase_order, _line_items, "LineItems"),
    "Contacts": _Layout(_contact_record),
}


# --- flatten -------------------------------------------------------------------------------------


def _check_entity(entity: str) -> None:
    if entity not in DOCUMENT_SCHEMAS:
        known = ", ".join(DOCUMENT_SCHEMAS)
        raise ValueError(f"not a transactional Xero entity: {entity!r} (expected one of {known})")


def _epoch_ms(instant: datetime) -> int:
    """Whole UTC milliseconds (Xero's precision); finer parts are floored, never rounded up."""
    return (instant - _EPOCH) // _MS


def _updated(model: XeroModel) -> datetime:
    """UpdatedDateUTC of a transactional record (required on all of them)."""
    return model.__dict__["updated_date_utc"]


def _record_key(model: XeroModel) -> str:
    return str(getattr(model, _ID_ATTRS[type(model).__name__]))


_ID_ATTRS = {
    "Invoice": "invoice_id",
    "CreditNote": "credit_note_id",
    "Payment": "payment_id",
    "BankTransaction": "bank_transaction_id",
    "ManualJournal": "manual_journal_id",
    "PurchaseOrder": "purchase_order_id",
    "Contact": "contact_id",
}


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _table(
    schema: pa.Schema, head: list[pa.Array], rows: Sequence[tuple[Any, ...]], skip: int
) -> pa.Table:
    """Arrays for schema fields ``skip:`` from row tuples, after the already-built ``head``."""
    fields = list(schema)[skip:]
    columns = _columns(rows, len(fields))
    arrays = [*head]
    for f, values in zip(fields, columns, strict=True):
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _build(
    entity: str,
    kept: list[tuple[XeroModel, dict[str, Any], tuple[Any, ...], list[tuple[Any, ...]]]],
    fetched_ms: int,
) -> tuple[pa.Table, pa.Table | None]:
    """The documents and lines tables of validated records (raises if a value does not fit)."""
    doc_schema = DOCUMENT_SCHEMAS[entity]
    ids = [_record_key(model) for model, _, _, _ in kept]
    updated = [_epoch_ms(_updated(model)) for model, _, _, _ in kept]
    head = [
        pa.array(ids, pa.string()),
        pa.array(updated, pa.int64()).cast(INSTANT),
        pa.array([fetched_ms] * len(kept), pa.int64()).cast(INSTANT),
    ]
    documents = _table(doc_schema, head, [header for _, _, header, _ in kept], 3)
    line_schema = LINE_SCHEMAS.get(entity)
    if line_schema is None:
        return documents, None
    parents: list[str] = []
    rows_of: list[int] = []
    line_rows: list[tuple[Any, ...]] = []
    for row, (_, _, _, lines) in enumerate(kept):
        parents += [ids[row]] * len(lines)
        rows_of += [row] * len(lines)
        line_rows += lines
    line_head = [pa.array(parents, pa.string()), pa.array(rows_of, pa.int32())]
    return documents, _table(line_schema, line_head, line_rows, 2)


def _misfit(
    entity: str, item: tuple[XeroModel, dict[str, Any], tuple[Any, ...], list[tuple[Any, ...]]]
) -> str | None:
    """Why one validated record does not fit the lake schema (None if it does)."""
    _, _, header, lines = item
    fields = list(DOCUMENT_SCHEMAS[entity])[3:]
    problems = [(f, value) for f, value in zip(fields, header, strict=True)]
    line_schema = LINE_SCHEMAS.get(entity)
    if line_schema is not None:
        line_fields = list(line_schema)[2:]
        for line in lines:
            problems += [(f, value) for f, value in zip(line_fields, line, strict=True)]
    for f, value in problems:
        try:
            pa.array([value], type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as error:
            return f"{f.name}: {value!r} does not fit {f.type}: {error}"
    return None


def flatten(entity: str, records: list[dict[str, Any]], fetched_at: datetime) -> FlatBatch:
    """Validate one batch of raw Xero records of ``entity`` and lay it out in lake form.

    ``records`` are Xero JSON objects as received (floats or Decimals for money); ``fetched_at``
    is when they were read from the API (an aware datetime; stored to the millisecond). Records
    that fail validation are returned in ``rejected`` and left out of the tables; if an id occurs
    more than once, the version with the latest UpdatedDateUTC (then the later position) is kept.
    """
    _check_entity(entity)
    if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
        raise ValueError("fetched_at must be timezone-aware")
    # Row building allocates hundreds of thousands of small acyclic tuples next to the parsed
    # models; with the cyclic GC running, its full passes rescan them all and triple the time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _flatten(entity, records, fetched_at)
    finally:
        if gc_was_enabled:
            gc.enable()


def _flatten(entity: str, records: list[dict[str, Any]], fetched_at: datetime) -> FlatBatch:
    layout = _LAYOUTS[entity]
    parsed = parse_records(entity, records)
    rejected = list(parsed.rejected)
    rejected_raw = {id(item.raw) for item in parsed.rejected}
    raws = [r for r in records if isinstance(r, dict) and id(r) not in rejected_raw]
    if len(raws) != len(parsed.records):  # the same dict object twice, one copy rejected
        raise AssertionError("parse_records results do not line up with the input records")

    latest: dict[str, int] = {}
    kept: list[tuple[XeroModel, dict[str, Any], tuple[Any, ...], list[tuple[Any, ...]]]] = []
    for model, raw in zip(parsed.records, raws, strict=True):
        try:
            header = layout.header(model, raw)
            lines = [] if layout.lines is None else layout.lines(model, layout.lines_key)
        except _TooMuchTracking as error:
            rejected.append(RejectedRecord(_record_key(model), str(error), raw))
            continue
        key = _record_key(model)
        seen = latest.get(key)
        if seen is not None:
            if _updated(model) < _updated(kept[seen][0]):
                continue
            kept[seen] = (model, raw, header, lines)
            continue
        latest[key] = len(kept)
        kept.append((model, raw, header, lines))

    fetched_ms = _epoch_ms(fetched_at)
    try:
        documents, lines_table = _build(entity, kept, fetched_ms)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        # Some value does not fit its column (too many decimals, out of range): find the
        # records at fault, quarantine them, and build the rest.
        fitting = []
        for item in kept:
            reason = _misfit(entity, item)
            if reason is None:
                fitting.append(item)
            else:
                rejected.append(RejectedRecord(_record_key(item[0]), reason, item[1]))
        documents, lines_table = _build(entity, fitting, fetched_ms)
    return FlatBatch(documents, lines_table, rejected)
