"""Raw lake tables of one tenant -> the published fact and dimension tables (schema.TABLES).

Pure and vectorized: every step is Arrow compute or NumPy on whole columns, never a Python loop
over rows. Only the latest version of each document counts (highest ``updated_at_utc``, then the
latest ``fetched_at_utc``), with its own lines only; a line that does not align with its header
raises. Money is exact integer arithmetic on the decimal columns, rounded half away from zero and
written back as decimal128: never a float.

This package must never import dagster.
"""

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute

from xero_tableau.entities import TRANSACTIONAL, parse_records
from xero_tableau.raw_layouts import PROVENANCE
from xero_tableau.transform.balances import bank_balances
from xero_tableau.transform.raw import DOCUMENT_SCHEMAS, LINE_SCHEMAS, empty_batch
from xero_tableau.transform.schema import TABLES, TableSpec, arrow_schema
from xero_tableau.xero.models import Account, Organisation, TrackingCategory

# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute

__all__ = [
    "FACT_SOURCES",
    "NORMALIZE_COLUMNS",
    "REFERENCE_TABLES",
    "SUMMARY_COLUMNS",
    "Reference",
    "line_tracking_categories",
    "normalize",
    "reference_dimension",
    "tracking_slots",
]

FACT_SOURCES: dict[str, str] = {
    e.published_table: e.endpoint for e in TRANSACTIONAL if e.published_table
}
"""Published table -> the raw entity it is built from (dim_accounts and dim_tracking_options come
from the reference snapshots)."""

_HEAD = ["id", "updated_at_utc", "fetched_at_utc", *PROVENANCE]
_DOC = [*_HEAD, "status", "date"]
_PRICED = ["line_amount_types", "contact_id", "contact_name", "currency_code", "currency_rate"]
_CREDIT = [
    *_PRICED,
    "sub_total",
    "total_tax",
    "total",
    "remaining_credit",
    "allocated_amount",
    "allocations",
]
_LINE_IDS = ["document_id", "document_row", "line_number"]
_TRACKING_IDS = [
    f"tracking_{slot}_{part}" for slot in ("a", "b") for part in ("category_id", "option_id")
]
_LINE_ITEM = [
    *_LINE_IDS,
    "line_id",
    "description",
    "item_code",
    "quantity",
    "unit_amount",
    "account_id",
    "account_code",
    "tax_type",
    "tax_amount",
    "line_amount",
    *_TRACKING_IDS,
]
_TOTALS = ["sub_total", "total_tax", "total"]
#: Document columns only the summary tables show (fct_invoices, fct_credit_notes,
#: fct_bank_balances), never the entity's own table: a change in them without a new
#: UpdatedDateUTC is not a change of the record's content for provenance (schema.py, Provenance).
SUMMARY_COLUMNS: dict[str, frozenset[str]] = {
    "Invoices": frozenset(
        {
            "fully_paid_on_date",
            "expected_payment_date",
            *_TOTALS,
            "amount_due",
            "amount_paid",
            "amount_credited",
        }
    ),
    "CreditNotes": frozenset(
        {"fully_paid_on_date", *_TOTALS, "remaining_credit", "allocated_amount", "allocations"}
    ),
    "BankTransactions": frozenset({"total"}),
}
NORMALIZE_COLUMNS: dict[str, tuple[list[str], list[str] | None]] = {
    "Invoices": (
        [
            *_DOC,
            "type",
            "invoice_number",
            "reference",
            "due_date",
            *_PRICED,
            "fully_paid_on_date",
            "expected_payment_date",
            *_TOTALS,
            "amount_due",
            "amount_paid",
            "amount_credited",
        ],
        _LINE_ITEM,
    ),
    "CreditNotes": (
        [
            *_DOC,
            "type",
            "credit_note_number",
            "reference",
            "due_date",
            *_PRICED,
            "fully_paid_on_date",
            *_TOTALS,
            "remaining_credit",
            "allocated_amount",
            "allocations",
        ],
        _LINE_ITEM,
    ),
    "PurchaseOrders": (
        [*_DOC, "purchase_order_number", "reference", "delivery_date", *_PRICED],
        _LINE_ITEM,
    ),
    "BankTransactions": (
        [
            *_DOC,
            "type",
            "reference",
            "is_reconciled",
            "bank_account_id",
            "bank_account_code",
            "bank_account_name",
            "overpayment_id",
            "prepayment_id",
            *_PRICED,
            "total",
        ],
        _LINE_ITEM,
    ),
    "ManualJournals": (
        [*_DOC, "narration", "line_amount_types"],
        [
            *_LINE_IDS,
            "description",
            "account_id",
            "account_code",
            "tax_type",
            "tax_amount",
            "line_amount",
            *_TRACKING_IDS,
        ],
    ),
    "Payments": (
        [
            *_DOC,
            "payment_type",
            "reference",
            "is_reconciled",
            "amount",
            "bank_amount",
            "currency_rate",
            "account_id",
            "account_code",
            "invoice_id",
            "invoice_number",
            "invoice_type",
            "invoice_currency_code",
            "credit_note_id",
            "credit_note_number",
            "prepayment_id",
            "overpayment_id",
            "batch_payment_id",
            "contact_id",
            "contact_name",
        ],
        None,
    ),
    # Over- and prepayments are published one row per document: their allocation lines are
    # summarised in the documents (allocated_amount, allocations), so no line column is read.
    "Overpayments": ([*_DOC, "type", "reference", *_CREDIT], None),
    "Prepayments": ([*_DOC, "type", "reference", "invoice_number", *_CREDIT], None),
    "Contacts": (
        [
            *_HEAD,
            "name",
            "contact_status",
            "contact_number",
            "account_number",
            "email_address",
            "tax_number",
            "is_customer",
            "is_supplier",
            "default_currency",
            "merged_to_contact_id",
        ],
        None,
    ),
}
"""Entity -> (document columns, line columns) normalize reads: pass as ``read_entity(...,
columns=NORMALIZE_COLUMNS[entity])`` to decode and hold only those (full tables work too)."""

if sys.byteorder != "little":  # the decimal128 <-> int64 views below assume it
    raise ImportError("xero_tableau.transform.normalize needs a little-endian platform")

MONEY = pa.decimal128(18, 2)
UNIT = pa.decimal128(18, 4)
RATE = pa.decimal128(18, 6)
INSTANT = pa.timestamp("ms", tz="UTC")

_RATE_ONE = 1_000_000  # CurrencyRate 1 as an unscaled decimal128(18, 6)
_DECIMAL_LIMIT = 10**18  # |unscaled| bound of any decimal128(18, s)
_SAFE_CENTS = 4 * 10**12  # |cents| up to which 2*|cents|*10^6 + rate fits an int64


@dataclass(frozen=True)
class Reference:
    """A tenant's reference snapshots as raw Xero JSON (what ``read_reference`` returns).

    ``organisation`` gives the base currency, time zone and name; ``accounts`` and
    ``tracking_categories`` (with their options, archived ones included) feed dim_accounts and
    dim_tracking_options. Contacts come from the raw "Contacts" entity instead. ``reads`` is the
    provenance of those dimensions' rows (published table -> row key -> the ``PROVENANCE``
    values, instants in ISO 8601), as ``transform.provenance.reference_reads`` keeps it with
    each snapshot; a row without one gets nulls.
    """

    organisation: Mapping[str, Any]
    accounts: Sequence[Mapping[str, Any]] = field(default_factory=list)
    tracking_categories: Sequence[Mapping[str, Any]] = field(default_factory=list)
    reads: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)


# --- exact decimal arithmetic on unscaled integers ------------------------------------------------


@dataclass
class _Ints:
    """A decimal column as unscaled int64 values plus a validity mask (None: no nulls)."""

    values: np.ndarray
    valid: np.ndarray | None

    def filled(self, fill: int = 0) -> np.ndarray:
        if self.valid is None:
            return self.values
        return np.where(self.valid, self.values, fill)


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _valid_mask(array: pa.Array) -> np.ndarray | None:
    if array.null_count == 0:
        return None
    return pc.is_valid(array).to_numpy(zero_copy_only=False)


def _unscaled(column: pa.Array | pa.ChunkedArray) -> _Ints:
    """The unscaled integers of a decimal128 column (exact: |value| < 10^18 for precision 18)."""
    array = _combine(column)
    if not pa.types.is_decimal128(array.type):
        raise TypeError(f"expected decimal128, got {array.type}")
    n = len(array)
    if n == 0:
        return _Ints(np.zeros(0, np.int64), None)
    buffer = array.buffers()[1]
    assert buffer is not None
    words = np.frombuffer(buffer, dtype=np.int64, count=2 * (array.offset + n))
    # little-endian two's complement: the low word is the value when it fits an int64
    values = np.ascontiguousarray(words[2 * array.offset :: 2])
    return _Ints(values, _valid_mask(array))


def _decimal(ints: _Ints, data_type: pa.DataType) -> pa.Array:
    """A decimal128 array from unscaled int64 values (raises if a value exceeds the precision)."""
    values, valid = ints.values, ints.valid
    n = len(values)
    if n:
        checked = values if valid is None else values[valid]
        if checked.size and int(np.abs(checked).max()) >= _DECIMAL_LIMIT:
            raise OverflowError(f"amount exceeds {data_type}")
    words = np.empty(2 * n, np.int64)
    words[0::2] = values
    words[1::2] = values >> 63
    validity = None
    null_count = 0
    if valid is not None and not valid.all():
        validity = pa.array(valid, pa.bool_()).buffers()[1]
        null_count = int(n - np.count_nonzero(valid))
    return pa.Array.from_buffers(
        data_type, n, [validity, pa.py_buffer(words)], null_count=null_count
    )


def _both_valid(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _to_base(amount: _Ints, rate: _Ints) -> _Ints:
    """amount / rate rounded half away from zero to the amount's scale; rate is unscaled at
    6 decimals. Null where either is null or the rate is not positive."""
    values, rates = amount.values, rate.values
    valid = _both_valid(amount.valid, rate.valid)
    positive = rates > 0
    if not positive.all():
        valid = _both_valid(valid, positive)
    out = values.copy()
    todo = rates != _RATE_ONE
    if valid is not None:
        todo &= valid
    if todo.any():
        cents = values[todo]
        micro = rates[todo]
        big = np.abs(cents) > _SAFE_CENTS
        safe_cents = np.where(big, 0, cents)
        quotient = (2 * np.abs(safe_cents) * _RATE_ONE + micro) // (2 * micro)
        result = np.where(safe_cents < 0, -quotient, quotient)
        if big.any():  # beyond int64-safe range: exact Decimal for those few values
            with localcontext(prec=60):  # room for every digit of cents * 10^6 / rate
                for i in np.flatnonzero(big):
                    exact = Decimal(int(cents[i])) * _RATE_ONE / Decimal(int(micro[i]))
                    result[i] = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        out[todo] = result
    return _Ints(out, valid)


# --- small helpers --------------------------------------------------------------------------------


def _lookup(values: pa.Array | pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """Position of each value in ``keys`` as int64, -1 where absent or null (a null never
    matches, e.g. a line without an account code never resolves to a code-less account)."""
    if len(keys) == 0 or len(values) == 0:
        return np.full(len(values), -1, np.int64)
    found = _combine(pc.index_in(values, value_set=keys, skip_nulls=True))
    return pc.fill_null(found, -1).to_numpy().astype(np.int64, copy=False)


def _take(values: pa.Array, index: np.ndarray) -> pa.Array:
    """values[index], null where index is -1 (a null appended to ``values`` stands in for the
    misses, so the gather needs no validity mask on the indices)."""
    if len(values) == 0:
        return pa.nulls(len(index), values.type)
    if index.size and index.min() < 0:
        values = pa.concat_arrays([values, pa.nulls(1, values.type)])
        index = np.where(index < 0, len(values) - 1, index)
    return values.take(pa.array(index.astype(np.int32, copy=False), pa.int32()))


def _coalesce(*arrays: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """First non-null; the first array itself when it has no nulls (no copy)."""
    if arrays[0].null_count == 0:
        return arrays[0]
    return pc.coalesce(*arrays)


def _flag(status: pa.Array | pa.ChunkedArray, value: str) -> pa.Array | pa.ChunkedArray:
    return pc.fill_null(pc.equal(status, pa.scalar(value)), False)


def _constant(value: Any, n: int, data_type: pa.DataType) -> pa.Array:
    """One value repeated n times (strings built from raw buffers: pa.repeat is ~10x slower)."""
    if value is None:
        return pa.nulls(n, data_type)
    if pa.types.is_string(data_type):
        data = str(value).encode()
        if n * len(data) < 2**31 - 1:
            offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(data))
            buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
            return pa.Array.from_buffers(pa.string(), n, buffers)
    return pa.repeat(pa.scalar(value, data_type), n)


def _map_values(
    column: pa.Array | pa.ChunkedArray, mapping: Mapping[str, str], data_type: pa.DataType
) -> pa.Array:
    keys = pa.array(list(mapping), pa.string())
    targets = pa.array(list(mapping.values()), data_type)
    return _take(targets, _lookup(column, keys))


def _local_date(instants: pa.Array | pa.ChunkedArray, zone: str) -> pa.Array | pa.ChunkedArray:
    """Calendar date of UTC instants in the organisation's zone."""
    local = pc.local_timestamp(instants.cast(pa.timestamp("ms", tz=zone)))
    return local.cast(pa.date32())


def _assemble(spec: TableSpec, columns: Mapping[str, Any], n: int) -> pa.Table:
    """The published table: columns in spec order, cast to the spec types, missing ones null."""
    schema = arrow_schema(spec)
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
            continue
        if len(value) != n:
            raise AssertionError(f"{spec.name}.{f.name}: {len(value)} values for {n} rows")
        if not value.type.equals(f.type):
            value = value.cast(f.type)
        arrays.append(value)
    return pa.Table.from_arrays(arrays, schema=schema)


# --- reference dimensions -------------------------------------------------------------------------


def tracking_slots(
    categories: Sequence[TrackingCategory],
    assigned: Mapping[str, int] | None = None,
    on_lines: Iterable[str | None] = (),
) -> dict[str, int]:
    """Category id -> its slot (1, 2, 3 ...), kept for good once given.

    ``assigned`` are the slots given before (the tenant's persisted map): each stays with its
    category whatever became of it (renamed, archived, deleted), and its number is never given
    to another. A category seen for the first time, in ``categories`` (what Xero lists) or only
    in ``on_lines`` (ids on raw lines Xero no longer lists), takes the lowest slot no category
    ever held; among several new ones the listed come first (ACTIVE first, then by name,
    case-insensitive, then id), then the line-only ones by id. Slots 1 and 2 are the facts'
    tracking1_*/tracking2_* columns; a category with a higher slot has none."""
    slots = dict(assigned or {})
    listed = {c.tracking_category_id: c for c in categories}
    new = [
        c.tracking_category_id
        for c in sorted(
            (c for c in listed.values() if c.tracking_category_id not in slots),
            key=lambda c: (
                c.status not in (None, "ACTIVE"),
                (c.name or "").casefold(),
                c.tracking_category_id,
            ),
        )
    ]
    new += sorted({cid for cid in on_lines if cid and cid not in slots and cid not in listed})
    taken = set(slots.values())
    slot = 1
    for category_id in new:
        while slot in taken:
            slot += 1
        slots[category_id] = slot
        taken.add(slot)
    return slots


def line_tracking_categories(raw: Mapping[str, tuple[pa.Table, pa.Table | None]]) -> list[str]:
    """Every tracking category id on the raw lines of ``raw`` (any version), sorted."""
    found: set[str] = set()
    for _documents, lines in raw.values():
        if lines is None:
            continue
        for name in ("tracking_a_category_id", "tracking_b_category_id"):
            if name in lines.column_names:
                found.update(v for v in pc.unique(lines.column(name)).to_pylist() if v)
    return sorted(found)


@dataclass
class _Context:
    """Everything about one tenant the entity builders share."""

    tenant_id: str
    base_currency: str | None
    zone: str
    accounts: pa.Table  # dim_accounts
    options: pa.Table  # dim_tracking_options
    category_ids: pa.Array  # every known category id
    category_names: pa.Array
    slots: dict[str, int]  # category id -> slot (1 and 2 have columns)
    contacts: pa.Table  # dim_contacts
    synced_on: date | None = None  # organisation-local date of the tenant's latest read


def _dim_accounts(tenant_id: str, accounts: Sequence[Account]) -> pa.Table:
    spec = TABLES["dim_accounts"]
    rows = {
        "account_id": [a.account_id for a in accounts],
        "account_code": [a.code for a in accounts],
        "account_name": [a.name for a in accounts],
        "account_type": [a.type for a in accounts],
        "account_class": [a.class_ for a in accounts],
        "status": [a.status for a in accounts],
        "is_archived": [a.status == "ARCHIVED" for a in accounts],
        "tax_type": [a.tax_type for a in accounts],
        "bank_account_type": [a.bank_account_type for a in accounts],
        "currency_code": [a.currency_code for a in accounts],
        "reporting_code": [a.reporting_code for a in accounts],
        "system_account": [a.system_account for a in accounts],
        "updated_at_utc": [a.updated_date_utc for a in accounts],
    }
    n = len(accounts)
    columns: dict[str, Any] = {"tenant_id": _constant(tenant_id, n, pa.string())}
    for name, values in rows.items():
        columns[name] = pa.array(values, spec.column(name).type)
    return _assemble(spec, columns, n)


def _dim_tracking(
    tenant_id: str, categories: Sequence[TrackingCategory], slots: Mapping[str, int]
) -> pa.Table:
    spec = TABLES["dim_tracking_options"]
    rows: list[tuple[Any, ...]] = []
    for category in categories:
        for option in category.options:
            status = option.status
            rows.append(
                (
                    option.tracking_option_id,
                    option.name,
                    status,
                    bool(option.is_archived) or status == "ARCHIVED",
                    bool(option.is_deleted) or status == "DELETED",
                    category.tracking_category_id,
                    category.name,
                    category.status,
                    slots.get(category.tracking_category_id),
                )
            )
    names = [
        "option_id",
        "option_name",
        "status",
        "is_archived",
        "is_deleted",
        "category_id",
        "category_name",
        "category_status",
        "slot",
    ]
    n = len(rows)
    columns: dict[str, Any] = {"tenant_id": _constant(tenant_id, n, pa.string())}
    for i, name in enumerate(names):
        columns[name] = pa.array([row[i] for row in rows], spec.column(name).type)
    return _assemble(spec, columns, n)


REFERENCE_TABLES: dict[str, str] = {
    "Accounts": "dim_accounts",
    "TrackingCategories": "dim_tracking_options",
}
"""Reference entity -> the dimension its snapshot gives."""


def reference_dimension(
    entity: str, tenant_id: str, records: Sequence[Mapping[str, Any]]
) -> pa.Table:
    """The dimension (``REFERENCE_TABLES``) a snapshot of ``entity`` gives, as normalize builds
    it, before the organisation's name and the provenance are added."""
    if entity == "Accounts":
        return _dim_accounts(tenant_id, parse_records("Accounts", list(records)).records)
    if entity == "TrackingCategories":
        categories = parse_records("TrackingCategories", list(records)).records
        return _dim_tracking(tenant_id, categories, tracking_slots(categories))
    raise ValueError(f"{entity} gives no published dimension")


def _with_reads(name: str, table: pa.Table, rows: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """A reference dimension with each row's provenance, found by the row's id."""
    keys = table.column(TABLES[name].key[-1]).to_pylist()
    found = [rows.get(str(key)) or {} for key in keys]
    for column in PROVENANCE:
        index = table.schema.get_field_index(column)
        field_ = table.schema.field(index)
        values = [row.get(column) for row in found]
        if pa.types.is_timestamp(field_.type):
            values = [None if v is None else datetime.fromisoformat(v) for v in values]
        table = table.set_column(index, field_, pa.array(values, field_.type))
    return table


def _with_organisation(table: pa.Table, name: str | None) -> pa.Table:
    """Every row carries the organisation's name beside its tenant id."""
    index = table.schema.get_field_index("organisation_name")
    field_ = table.schema.field(index)
    return table.set_column(index, field_, _constant(name, table.num_rows, field_.type))


# --- latest version -------------------------------------------------------------------------------


def _latest(documents: pa.Table) -> np.ndarray | None:
    """Mask of the winning row per id, or None when every id occurs once (nothing to drop)."""
    n = documents.num_rows
    if n == 0:
        return None
    ids = documents.column("id")
    if pc.count_distinct(ids).as_py() == n:
        return None
    keyed = pa.table(
        {
            "id": ids,
            "updated": documents.column("updated_at_utc"),
            "fetched": documents.column("fetched_at_utc"),
            "row": pa.array(np.arange(n, dtype=np.int64)),
        }
    )
    order = pc.sort_indices(
        keyed,
        sort_keys=[
            ("id", "ascending"),
            ("updated", "descending"),
            ("fetched", "descending"),
            ("row", "descending"),
        ],
    )
    sorted_ids = _combine(ids.take(order))
    first = np.ones(n, dtype=bool)
    if n > 1:
        same = pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, n - 1))
        first[1:] = ~same.to_numpy(zero_copy_only=False)
    keep = np.zeros(n, dtype=bool)
    keep[order.to_numpy()[first]] = True
    return keep


@dataclass
class _Versioned:
    """The latest documents of an entity, their lines, and each line's header row."""

    documents: pa.Table
    lines: pa.Table | None
    doc_row: np.ndarray | None  # per line: row in ``documents``
    take: pa.Array | None  # doc_row as an Arrow index array


def _versioned(entity: str, documents: pa.Table, lines: pa.Table | None) -> _Versioned:
    keep = _latest(documents)
    if keep is not None:
        documents = documents.filter(pa.array(keep))
    documents = documents.combine_chunks()
    if lines is None:
        return _Versioned(documents, None, None, None)
    doc_row = _combine(lines.column("document_row")).to_numpy(zero_copy_only=False)
    if keep is not None:
        if doc_row.size and (doc_row.min() < 0 or doc_row.max() >= len(keep)):
            raise ValueError(f"{entity}: lines.document_row out of range of the documents")
        line_keep = keep[doc_row]
        renumber = np.cumsum(keep, dtype=np.int64) - 1
        doc_row = renumber[doc_row[line_keep]]
        lines = lines.filter(pa.array(line_keep))
    assert lines is not None
    take = pa.array(doc_row.astype(np.int32, copy=False), pa.int32())
    n = len(doc_row)
    if n:
        if int(doc_row.min()) < 0 or int(doc_row.max()) >= documents.num_rows:
            raise ValueError(f"{entity}: lines.document_row out of range of the documents")
        # A line's own document_id must be the id of the row it points at. Checked wherever the
        # parent changes (first and last line of every run): that is where a shifted or
        # mis-stitched document_row shows, at a fraction of the cost of comparing every line.
        change = np.flatnonzero(doc_row[1:] != doc_row[:-1])
        probe = np.concatenate((np.array([0, n - 1]), change, change + 1))
        parents = documents.column("id").take(pa.array(doc_row[probe]))
        own = lines.column("document_id").take(pa.array(probe))
        if not pc.all(pc.equal(parents, own)).as_py():
            raise ValueError(
                f"{entity}: lines are not aligned with documents (document_row must index the "
                "documents table passed with them; read both with raw_lake.read_entity)"
            )
    return _Versioned(documents, lines, doc_row, take)


# --- shared column builders -----------------------------------------------------------------------


def _provenance(documents: pa.Table) -> dict[str, Any]:
    """The read that produced each document's content (``transform.provenance``). A version
    stored before provenance was recorded has only its fetched_at_utc: that is its read."""
    return {
        "synced_at_utc": _coalesce(
            documents.column("synced_at_utc"), documents.column("fetched_at_utc")
        ),
        "sync_source": documents.column("sync_source"),
        "dagster_run_id": documents.column("dagster_run_id"),
        "source_event_at_utc": documents.column("source_event_at_utc"),
    }


def _header(ctx: _Context, documents: pa.Table) -> dict[str, Any]:
    """Per-document columns every fact shares (before gathering them to lines)."""
    status = documents.column("status")
    return {
        "updated_at_utc": documents.column("updated_at_utc"),
        "updated_date_local": _local_date(documents.column("updated_at_utc"), ctx.zone),
        "fetched_at_utc": documents.column("fetched_at_utc"),
        "status": status,
        "is_voided": _flag(status, "VOIDED"),
        "is_deleted": _flag(status, "DELETED"),
        "document_date": documents.column("date"),
        **_provenance(documents),
    }


def _contact_columns(
    ctx: _Context, contact_id: pa.Array | pa.ChunkedArray, contact_name: pa.Array | pa.ChunkedArray
) -> dict[str, Any]:
    names = ctx.contacts.column("contact_name").combine_chunks()
    ids = ctx.contacts.column("contact_id").combine_chunks()
    current = _take(names, _lookup(contact_id, ids))
    return {"contact_id": contact_id, "contact_name": _coalesce(current, contact_name)}


def _rate(
    ctx: _Context, currency: pa.Array | pa.ChunkedArray, rate: pa.Array | pa.ChunkedArray
) -> pa.Array:
    """The rate used for base amounts: Xero's CurrencyRate, else 1 for a base-currency (or
    currency-less) document, else null (a foreign document without a rate)."""
    is_base = pc.fill_null(pc.equal(currency, pa.scalar(ctx.base_currency, pa.string())), False)
    no_currency = pc.is_null(currency)
    one = pa.scalar(Decimal(1), RATE)
    default = pc.if_else(pc.or_(is_base, no_currency), one, pa.scalar(None, RATE))
    return _combine(pc.coalesce(rate, default))


def _account_columns(
    ctx: _Context,
    account_id: pa.Array | pa.ChunkedArray,
    account_code: pa.Array | pa.ChunkedArray,
) -> dict[str, Any]:
    """Resolve accounts by id, else by code; names/type/class from dim_accounts."""
    dim = ctx.accounts
    dim_ids = dim.column("account_id").combine_chunks()
    index = _lookup(account_id, dim_ids)
    by_code = _lookup(account_code, dim.column("account_code").combine_chunks())
    index = np.where(index >= 0, index, by_code)
    return {
        "account_id": _coalesce(account_id, _take(dim_ids, index)),
        "account_code": _coalesce(
            account_code, _take(dim.column("account_code").combine_chunks(), index)
        ),
        "account_name": _take(dim.column("account_name").combine_chunks(), index),
        "account_type": _take(dim.column("account_type").combine_chunks(), index),
        "account_class": _take(dim.column("account_class").combine_chunks(), index),
    }


def _codes(
    columns: Sequence[pa.Array | pa.ChunkedArray], keys: pa.Array
) -> tuple[list[np.ndarray], pa.Array]:
    """Positions of each column's values in ``keys`` extended by the values it lacks (so an
    unknown id keeps its text), -1 for null; and the extended keys."""
    codes = [_lookup(column, keys) for column in columns]
    unknown = []
    for column, code in zip(columns, codes, strict=True):
        missing = code < 0
        if missing.any():
            found = pc.filter(column, pa.array(missing))
            unknown.append(_combine(pc.drop_null(found)))
    if not any(len(u) for u in unknown):
        return codes, keys
    extra = _combine(pc.unique(pa.chunked_array(unknown, keys.type)))
    keys = pa.concat_arrays([keys, extra])
    return [_lookup(column, keys) for column in columns], keys


def _tracking_columns(ctx: _Context, lines: pa.Table) -> dict[str, Any]:
    """tracking1_*/tracking2_*: each of a line's (up to two) elements goes to its category's
    slot; an element of a category whose slot is 3 or more (or unknown) is on no column.

    Works on integer codes into the (small) category and option dictionaries; the strings are
    only materialised once per output column, by a gather from those dictionaries."""
    (cat_a, cat_b), cat_keys = _codes(
        [lines.column("tracking_a_category_id"), lines.column("tracking_b_category_id")],
        ctx.category_ids,
    )
    (opt_a, opt_b), opt_keys = _codes(
        [lines.column("tracking_a_option_id"), lines.column("tracking_b_option_id")],
        ctx.options.column("option_id").combine_chunks(),
    )
    if not ((cat_a >= 0) | (opt_a >= 0) | (cat_b >= 0) | (opt_b >= 0)).any():
        return {}
    columns = {cid: slot - 1 for cid, slot in ctx.slots.items() if slot in (1, 2)}
    # column (0, 1, or -1: none) of every category key, plus -1 at the end for code -1
    slot_of = np.array(
        [columns.get(cid, -1) for cid in cat_keys.to_pylist()] + [-1], dtype=np.int64
    )
    has_a, has_b = (cat_a >= 0) | (opt_a >= 0), (cat_b >= 0) | (opt_b >= 0)
    # an element goes to its category's columns or nowhere: a slot never holds another category
    slot_a = np.where(has_a, slot_of[cat_a], -1)
    slot_b = np.where(has_b, slot_of[cat_b], -1)
    slot_b = np.where(slot_b != slot_a, slot_b, -1)

    cat_names = _take(ctx.category_names, _lookup(cat_keys, ctx.category_ids))
    option_names = ctx.options.column("option_name").combine_chunks()
    opt_names = _take(option_names, _lookup(opt_keys, ctx.options.column("option_id")))
    out: dict[str, Any] = {}
    for slot in (0, 1):
        from_a, from_b = slot_a == slot, slot_b == slot
        if not from_a.any() and not from_b.any():
            continue
        cat = np.where(from_a, cat_a, np.where(from_b, cat_b, -1))
        opt = np.where(from_a, opt_a, np.where(from_b, opt_b, -1))
        prefix = f"tracking{slot + 1}_"
        out[prefix + "category_id"] = _take(cat_keys, cat)
        out[prefix + "category_name"] = _take(cat_names, cat)
        out[prefix + "option_id"] = _take(opt_keys, opt)
        out[prefix + "option_name"] = _take(opt_names, opt)
    return out


def _amount_columns(
    lines: pa.Table, inclusive: np.ndarray, rate: _Ints, *, with_line_amount: bool = True
) -> tuple[dict[str, Any], _Ints]:
    """line/net/tax/gross amounts in document and base currency; returns net_base too."""
    line = _unscaled(lines.column("line_amount"))
    tax_ints = _unscaled(lines.column("tax_amount"))
    tax = _Ints(tax_ints.filled(0), None)  # a missing TaxAmount counts as 0
    net = _Ints(line.values - np.where(inclusive, tax.values, 0), line.valid)
    gross = _Ints(net.values + tax.values, line.valid)
    net_base = _to_base(net, rate)
    out: dict[str, Any] = {
        "net_amount": _decimal(net, MONEY),
        "tax_amount": _decimal(tax, MONEY),
        "gross_amount": _decimal(gross, MONEY),
        "net_amount_base": _decimal(net_base, MONEY),
        "tax_amount_base": _decimal(_to_base(tax, rate), MONEY),
        "gross_amount_base": _decimal(_to_base(gross, rate), MONEY),
    }
    if with_line_amount:
        out["line_amount"] = lines.column("line_amount")
    return out, net_base


def _gather(columns: Mapping[str, Any], take: pa.Array) -> dict[str, Any]:
    """Per-document columns repeated onto their lines."""
    return {name: _combine(value).take(take) for name, value in columns.items()}


def _lined_fact(
    ctx: _Context,
    spec: TableSpec,
    entity: str,
    versioned: _Versioned,
    header_extra: Callable[[pa.Table], dict[str, Any]],
    currency_from_document: bool = True,
) -> tuple[pa.Table, _Versioned, _Ints]:
    """The shared shape of every line fact; entity specifics come from ``header_extra``."""
    documents, lines, take = versioned.documents, versioned.lines, versioned.take
    assert lines is not None and take is not None and versioned.doc_row is not None
    n = lines.num_rows
    # Accounts and tracking only need the lines: they run on a second thread while this one
    # derives and gathers the header and computes the amounts (Arrow and NumPy kernels release
    # the GIL, so the two overlap on a multi-core machine).
    with ThreadPoolExecutor(max_workers=1) as pool:
        accounts = pool.submit(
            _account_columns, ctx, lines.column("account_id"), lines.column("account_code")
        )
        tracking = pool.submit(_tracking_columns, ctx, lines)
        head = _header(ctx, documents)
        head.update(header_extra(documents))
        if currency_from_document:
            currency = documents.column("currency_code")
            rate = _rate(ctx, currency, documents.column("currency_rate"))
            head["currency_code"] = currency
            head["currency_rate"] = rate
        else:
            rate = _constant(Decimal(1), documents.num_rows, RATE)
            head["currency_code"] = _constant(ctx.base_currency, documents.num_rows, pa.string())
            head["currency_rate"] = rate
        lat = documents.column("line_amount_types")
        head["line_amount_types"] = lat
        columns = _gather(head, take)
        doc_row = versioned.doc_row
        inclusive = _combine(_flag(lat, "Inclusive")).to_numpy(zero_copy_only=False)[doc_row]
        rate_ints = _unscaled(rate)
        line_rate = _Ints(
            rate_ints.values[doc_row],
            None if rate_ints.valid is None else rate_ints.valid[doc_row],
        )
        amounts, net_base = _amount_columns(lines, inclusive, line_rate)
        columns.update(amounts)
        columns["tenant_id"] = _constant(ctx.tenant_id, n, pa.string())
        columns["base_currency_code"] = _constant(ctx.base_currency, n, pa.string())
        columns.update(accounts.result())
        columns.update(tracking.result())
    columns[spec.key[1]] = lines.column("document_id")
    columns["line_number"] = lines.column("line_number")
    if "line_item_id" in spec.names:
        columns["line_item_id"] = lines.column("line_id")
    for name in ("description", "item_code", "quantity", "unit_amount", "tax_type"):
        if name in spec.names:
            columns[name] = lines.column(name)
    return _assemble(spec, columns, n), versioned, net_base


# --- the facts ------------------------------------------------------------------------------------


def _invoice_lines(ctx: _Context, versioned: _Versioned) -> pa.Table:
    def extra(docs: pa.Table) -> dict[str, Any]:
        return {
            "invoice_type": docs.column("type"),
            "document_kind": _map_values(
                docs.column("type"), {"ACCREC": "invoice", "ACCPAY": "bill"}, pa.string()
            ),
            "invoice_number": docs.column("invoice_number"),
            "reference": docs.column("reference"),
            "due_date": docs.column("due_date"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
        }

    spec = TABLES["fct_invoice_lines"]
    return _lined_fact(ctx, spec, "Invoices", versioned, extra)[0]


def _credit_note_lines(ctx: _Context, versioned: _Versioned) -> pa.Table:
    def extra(docs: pa.Table) -> dict[str, Any]:
        return {
            "credit_note_type": docs.column("type"),
            "document_kind": _map_values(
                docs.column("type"),
                {"ACCRECCREDIT": "sales_credit", "ACCPAYCREDIT": "purchase_credit"},
                pa.string(),
            ),
            "credit_note_number": docs.column("credit_note_number"),
            "reference": docs.column("reference"),
            "due_date": docs.column("due_date"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
        }

    spec = TABLES["fct_credit_note_lines"]
    return _lined_fact(ctx, spec, "CreditNotes", versioned, extra)[0]


def _purchase_order_lines(ctx: _Context, versioned: _Versioned) -> pa.Table:
    def extra(docs: pa.Table) -> dict[str, Any]:
        return {
            "purchase_order_number": docs.column("purchase_order_number"),
            "reference": docs.column("reference"),
            "delivery_date": docs.column("delivery_date"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
        }

    spec = TABLES["fct_purchase_order_lines"]
    return _lined_fact(ctx, spec, "PurchaseOrders", versioned, extra)[0]


def _bank_transaction_lines(ctx: _Context, versioned: _Versioned) -> pa.Table:
    def extra(docs: pa.Table) -> dict[str, Any]:
        bank = _account_columns(
            ctx, docs.column("bank_account_id"), docs.column("bank_account_code")
        )
        return {
            "bank_transaction_type": docs.column("type"),
            "reference": docs.column("reference"),
            "is_reconciled": docs.column("is_reconciled"),
            "bank_account_id": bank["account_id"],
            "bank_account_code": bank["account_code"],
            "bank_account_name": _coalesce(bank["account_name"], docs.column("bank_account_name")),
            "overpayment_id": docs.column("overpayment_id"),
            "prepayment_id": docs.column("prepayment_id"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
        }

    spec = TABLES["fct_bank_transaction_lines"]
    table, versioned, net_base = _lined_fact(ctx, spec, "BankTransactions", versioned, extra)
    assert versioned.doc_row is not None
    kind = _map_values(
        versioned.documents.column("type"),
        {
            t: t
            for t in ("RECEIVE", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "RECEIVE-TRANSFER")
        },
        pa.string(),
    )
    receive = pc.is_valid(kind).to_numpy(zero_copy_only=False)[versioned.doc_row]
    signed = _Ints(np.where(receive, net_base.values, -net_base.values), net_base.valid)
    index = table.schema.get_field_index("signed_net_amount_base")
    return table.set_column(index, table.schema.field(index), _decimal(signed, MONEY))


def _manual_journal_lines(ctx: _Context, versioned: _Versioned) -> pa.Table:
    def extra(docs: pa.Table) -> dict[str, Any]:
        return {"narration": docs.column("narration")}

    spec = TABLES["fct_manual_journal_lines"]
    return _lined_fact(ctx, spec, "ManualJournals", versioned, extra, currency_from_document=False)[
        0
    ]


def _payments(ctx: _Context, versioned: _Versioned) -> pa.Table:
    spec = TABLES["fct_payments"]
    docs = versioned.documents
    n = docs.num_rows
    columns = _header(ctx, docs)
    currency = docs.column("invoice_currency_code")
    rate = _rate(ctx, currency, docs.column("currency_rate"))
    amount = _unscaled(docs.column("amount"))
    columns.update(
        {
            "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
            "payment_id": docs.column("id"),
            "payment_type": docs.column("payment_type"),
            "reference": docs.column("reference"),
            "is_reconciled": docs.column("is_reconciled"),
            "invoice_id": docs.column("invoice_id"),
            "invoice_number": docs.column("invoice_number"),
            "invoice_type": docs.column("invoice_type"),
            "credit_note_id": docs.column("credit_note_id"),
            "credit_note_number": docs.column("credit_note_number"),
            "prepayment_id": docs.column("prepayment_id"),
            "overpayment_id": docs.column("overpayment_id"),
            "batch_payment_id": docs.column("batch_payment_id"),
            "currency_code": pc.coalesce(currency, _constant(ctx.base_currency, n, pa.string())),
            "base_currency_code": _constant(ctx.base_currency, n, pa.string()),
            "currency_rate": rate,
            "amount": docs.column("amount"),
            "bank_amount": docs.column("bank_amount"),
            "amount_base": _decimal(_to_base(amount, _unscaled(rate)), MONEY),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
            **_account_columns(ctx, docs.column("account_id"), docs.column("account_code")),
        }
    )
    return _assemble(spec, columns, n)


def _credit(ctx: _Context, versioned: _Versioned, table: str, record: str) -> pa.Table:
    """fct_overpayments / fct_prepayments: one row per document, amounts as Xero totals them."""
    spec = TABLES[table]
    docs = versioned.documents
    n = docs.num_rows
    columns = _header(ctx, docs)
    kind = record.upper()
    currency = docs.column("currency_code")
    rate = _rate(ctx, currency, docs.column("currency_rate"))
    rate_ints = _unscaled(rate)
    columns.update(
        {
            "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
            spec.key[1]: docs.column("id"),
            f"{record}_type": docs.column("type"),
            "document_kind": _map_values(
                docs.column("type"),
                {f"RECEIVE-{kind}": "received", f"SPEND-{kind}": "paid"},
                pa.string(),
            ),
            "reference": docs.column("reference"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
            "line_amount_types": docs.column("line_amount_types"),
            "currency_code": pc.coalesce(currency, _constant(ctx.base_currency, n, pa.string())),
            "base_currency_code": _constant(ctx.base_currency, n, pa.string()),
            "currency_rate": rate,
            "net_amount": docs.column("sub_total"),
            "tax_amount": docs.column("total_tax"),
            "gross_amount": docs.column("total"),
            "allocated_amount": docs.column("allocated_amount"),
            "allocation_count": pc.fill_null(docs.column("allocations"), 0),
            "remaining_credit": docs.column("remaining_credit"),
        }
    )
    if "invoice_number" in spec.names:
        columns["invoice_number"] = docs.column("invoice_number")
    for name, source in (
        ("net_amount_base", "sub_total"),
        ("tax_amount_base", "total_tax"),
        ("gross_amount_base", "total"),
        ("remaining_credit_base", "remaining_credit"),
    ):
        columns[name] = _decimal(_to_base(_unscaled(docs.column(source)), rate_ints), MONEY)
    return _assemble(spec, columns, n)


def _overpayments(ctx: _Context, versioned: _Versioned) -> pa.Table:
    return _credit(ctx, versioned, "fct_overpayments", "overpayment")


def _prepayments(ctx: _Context, versioned: _Versioned) -> pa.Table:
    return _credit(ctx, versioned, "fct_prepayments", "prepayment")


# --- the summary tables ---------------------------------------------------------------------------


def _document_money(
    docs: pa.Table, rate: pa.Array, money: Mapping[str, str], base: Sequence[str]
) -> dict[str, Any]:
    """Published money column -> the document column it is, plus ``<name>_base`` for ``base``."""
    columns: dict[str, Any] = {name: docs.column(source) for name, source in money.items()}
    rate_ints = _unscaled(rate)
    for name in base:
        amount = _unscaled(docs.column(money[name]))
        columns[f"{name}_base"] = _decimal(_to_base(amount, rate_ints), MONEY)
    return columns


def _invoices(ctx: _Context, versioned: _Versioned) -> pa.Table:
    """fct_invoices: one row per invoice or bill, Xero's totals and what is still owed."""
    spec = TABLES["fct_invoices"]
    docs = versioned.documents
    n = docs.num_rows
    columns = _header(ctx, docs)
    currency = docs.column("currency_code")
    rate = _rate(ctx, currency, docs.column("currency_rate"))
    money = {
        "net_amount": "sub_total",
        "tax_amount": "total_tax",
        "gross_amount": "total",
        "amount_due": "amount_due",
        "amount_paid": "amount_paid",
        "amount_credited": "amount_credited",
    }
    columns.update(
        {
            "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
            "invoice_id": docs.column("id"),
            "invoice_type": docs.column("type"),
            "document_kind": _map_values(
                docs.column("type"), {"ACCREC": "invoice", "ACCPAY": "bill"}, pa.string()
            ),
            "invoice_number": docs.column("invoice_number"),
            "reference": docs.column("reference"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
            "due_date": docs.column("due_date"),
            "fully_paid_on_date": docs.column("fully_paid_on_date"),
            "expected_payment_date": docs.column("expected_payment_date"),
            "line_amount_types": docs.column("line_amount_types"),
            "currency_code": currency,
            "base_currency_code": _constant(ctx.base_currency, n, pa.string()),
            "currency_rate": rate,
            **_document_money(docs, rate, money, list(money)),
        }
    )
    return _assemble(spec, columns, n)


def _credit_notes(ctx: _Context, versioned: _Versioned) -> pa.Table:
    """fct_credit_notes: one row per credit note, Xero's totals, allocations and credit left."""
    spec = TABLES["fct_credit_notes"]
    docs = versioned.documents
    n = docs.num_rows
    columns = _header(ctx, docs)
    currency = docs.column("currency_code")
    rate = _rate(ctx, currency, docs.column("currency_rate"))
    money = {
        "net_amount": "sub_total",
        "tax_amount": "total_tax",
        "gross_amount": "total",
        "allocated_amount": "allocated_amount",
        "remaining_credit": "remaining_credit",
    }
    columns.update(
        {
            "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
            "credit_note_id": docs.column("id"),
            "credit_note_type": docs.column("type"),
            "document_kind": _map_values(
                docs.column("type"),
                {"ACCRECCREDIT": "sales_credit", "ACCPAYCREDIT": "purchase_credit"},
                pa.string(),
            ),
            "credit_note_number": docs.column("credit_note_number"),
            "reference": docs.column("reference"),
            **_contact_columns(ctx, docs.column("contact_id"), docs.column("contact_name")),
            "due_date": docs.column("due_date"),
            "fully_paid_on_date": docs.column("fully_paid_on_date"),
            "line_amount_types": docs.column("line_amount_types"),
            "currency_code": currency,
            "base_currency_code": _constant(ctx.base_currency, n, pa.string()),
            "currency_rate": rate,
            "allocation_count": pc.fill_null(docs.column("allocations"), 0),
            **_document_money(
                docs, rate, money, ["net_amount", "tax_amount", "gross_amount", "remaining_credit"]
            ),
        }
    )
    return _assemble(spec, columns, n)


#: Payment types by direction of the money in the bank account (Xero PaymentType).
_PAYMENTS_IN = ("ACCRECPAYMENT", "APCREDITPAYMENT", "APOVERPAYMENTPAYMENT", "APPREPAYMENTPAYMENT")
_PAYMENTS_OUT = ("ACCPAYPAYMENT", "ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT")
_RECEIVE = ("RECEIVE", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "RECEIVE-TRANSFER")
_SPEND = ("SPEND", "SPEND-OVERPAYMENT", "SPEND-PREPAYMENT", "SPEND-TRANSFER")


def _direction(types: pa.Array | pa.ChunkedArray, into: Sequence[str], out: Sequence[str]) -> Any:
    """+1 for a type that brings money into the bank account, -1 for one that takes it out, 0
    for any other (no movement)."""
    sign = {**dict.fromkeys(into, "1"), **dict.fromkeys(out, "-1")}
    mapped = _map_values(types, sign, pa.string())
    return pc.fill_null(mapped.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)


def _movement_table(
    docs: pa.Table,
    keep: np.ndarray,
    account_id: Any,
    sign: np.ndarray,
    amount: _Ints,
    base: _Ints,
) -> pa.Table:
    """The movements (``balances.MOVEMENT_SCHEMA``) of the documents ``keep`` selects."""
    signed = np.where(sign < 0, -amount.values, amount.values)
    signed_base = np.where(sign < 0, -base.values, base.values)
    table = pa.table(
        {
            "bank_account_id": _combine(account_id),
            "date": docs.column("date"),
            "amount": _decimal(_Ints(signed, None), MONEY),
            "amount_base": _decimal(_Ints(signed_base, base.valid), MONEY),
            **_provenance(docs),
        }
    )
    return table.filter(pa.array(keep))


def _payment_movements(ctx: _Context, versioned: _Versioned) -> pa.Table:
    """Live payments into or out of a bank account (an account of Type BANK), in the account's
    currency (Xero BankAmount); base: that amount itself in a base-currency account, else
    converted at the payment's rate."""
    docs = versioned.documents
    account = _account_columns(ctx, docs.column("account_id"), docs.column("account_code"))
    bank_currency = _bank_currency(ctx, account["account_id"])
    currency = pc.coalesce(
        docs.column("invoice_currency_code"), pa.scalar(ctx.base_currency, pa.string())
    )
    rate = _unscaled(_rate(ctx, currency, docs.column("currency_rate")))
    amount = _unscaled(docs.column("amount"))
    base_amount = _to_base(amount, rate)
    bank_amount = _unscaled(docs.column("bank_amount"))
    same = _bools(pc.equal(currency, bank_currency))
    in_base = _bools(pc.equal(bank_currency, pa.scalar(ctx.base_currency, pa.string())))
    # Xero sends BankAmount; without it, the amount when it is in the account's currency, or
    # its base conversion for a base-currency account
    valid = _valid(bank_amount) | same & _valid(amount) | in_base & _valid(base_amount)
    values = np.where(
        _valid(bank_amount),
        bank_amount.values,
        np.where(same, amount.values, base_amount.values),
    )
    bank = _Ints(values, None if valid.all() else valid)
    converted = _to_base(bank, rate)
    base = _Ints(
        np.where(in_base, bank.values, converted.values),
        _both_valid(bank.valid, in_base | _valid(converted)),
    )
    sign = _direction(docs.column("payment_type"), _PAYMENTS_IN, _PAYMENTS_OUT)
    keep = (
        _bools(pc.equal(docs.column("status"), pa.scalar("AUTHORISED")))
        & _bools(pc.equal(account["account_type"], pa.scalar("BANK")))
        & _bools(pc.is_valid(docs.column("date")))
        & (sign != 0)
        & valid
    )
    return _movement_table(docs, keep, account["account_id"], sign, bank, base)


def _bank_transaction_movements(ctx: _Context, versioned: _Versioned) -> pa.Table:
    """Live bank transactions of every type: Xero Total, in the transaction's currency, which is
    the bank account's except for an overpayment (Xero lets one be raised in another currency,
    and gives no bank-side amount): then, into or out of a base-currency account, Total
    converted at the transaction's rate (a foreign account and another foreign currency have no
    rate between them: no movement). Base: Total converted at the transaction's rate."""
    docs = versioned.documents
    account = _account_columns(
        ctx, docs.column("bank_account_id"), docs.column("bank_account_code")
    )
    bank_currency = _bank_currency(ctx, account["account_id"])
    currency = docs.column("currency_code")
    rate = _unscaled(_rate(ctx, currency, docs.column("currency_rate")))
    total = _unscaled(docs.column("total"))
    base = _to_base(total, rate)
    # a transaction without a currency is in its account's
    same = _bools(pc.fill_null(pc.equal(currency, bank_currency), True))
    in_base = _bools(pc.equal(bank_currency, pa.scalar(ctx.base_currency, pa.string())))
    bank = _Ints(np.where(same, total.values, base.values), None)
    sign = _direction(docs.column("type"), _RECEIVE, _SPEND)
    keep = (
        _bools(pc.equal(docs.column("status"), pa.scalar("AUTHORISED")))
        & _bools(pc.is_valid(account["account_id"]))
        & _bools(pc.is_valid(docs.column("date")))
        & (sign != 0)
        & np.where(same, _valid(total), in_base & _valid(base))
    )
    return _movement_table(docs, keep, account["account_id"], sign, bank, base)


def _bank_currency(ctx: _Context, account_id: Any) -> Any:
    """The currency of each bank account: dim_accounts' CurrencyCode, else the base currency."""
    dim = ctx.accounts
    index = _lookup(account_id, dim.column("account_id").combine_chunks())
    currency = _take(dim.column("currency_code").combine_chunks(), index)
    return pc.coalesce(currency, pa.scalar(ctx.base_currency, pa.string()))


def _bools(mask: Any) -> np.ndarray:
    """A boolean mask as NumPy, null counting as False."""
    return np.asarray(
        _combine(pc.fill_null(mask, False)).to_numpy(zero_copy_only=False), dtype=bool
    )


def _valid(ints: _Ints) -> np.ndarray:
    return np.ones(len(ints.values), bool) if ints.valid is None else ints.valid


def _bank_balances(ctx: _Context, payments: _Versioned, transactions: _Versioned) -> pa.Table:
    """fct_bank_balances: ``balances.bank_balances`` over the movements of the documents, with
    each bank account's code, name, type and currency from dim_accounts."""
    spec = TABLES["fct_bank_balances"]
    movements = pa.concat_tables(
        [_payment_movements(ctx, payments), _bank_transaction_movements(ctx, transactions)]
    )
    balances = bank_balances(movements, ctx.synced_on)
    n = balances.num_rows
    dim = ctx.accounts
    index = _lookup(balances.column("bank_account_id"), dim.column("account_id").combine_chunks())
    columns: dict[str, Any] = {name: balances.column(name) for name in balances.column_names}
    columns.update(
        {
            "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
            "bank_account_code": _take(dim.column("account_code").combine_chunks(), index),
            "bank_account_name": _take(dim.column("account_name").combine_chunks(), index),
            "bank_account_type": _take(dim.column("bank_account_type").combine_chunks(), index),
            "currency_code": _bank_currency(ctx, balances.column("bank_account_id")),
            "base_currency_code": _constant(ctx.base_currency, n, pa.string()),
        }
    )
    return _assemble(spec, columns, n)


def _dim_contacts(ctx: _Context, versioned: _Versioned) -> pa.Table:
    spec = TABLES["dim_contacts"]
    docs = versioned.documents
    n = docs.num_rows
    status = docs.column("contact_status")
    columns: dict[str, Any] = {
        "tenant_id": _constant(ctx.tenant_id, n, pa.string()),
        "contact_id": docs.column("id"),
        "contact_name": docs.column("name"),
        "status": status,
        "is_archived": _flag(status, "ARCHIVED"),
        "is_customer": docs.column("is_customer"),
        "is_supplier": docs.column("is_supplier"),
        "email_address": docs.column("email_address"),
        "default_currency": docs.column("default_currency"),
        "contact_number": docs.column("contact_number"),
        "account_number": docs.column("account_number"),
        "tax_number": docs.column("tax_number"),
        "merged_to_contact_id": docs.column("merged_to_contact_id"),
        "updated_at_utc": docs.column("updated_at_utc"),
        "updated_date_local": _local_date(docs.column("updated_at_utc"), ctx.zone),
        "fetched_at_utc": docs.column("fetched_at_utc"),
        **_provenance(docs),
    }
    return _assemble(spec, columns, n)


_FACT_BUILDERS: dict[str, Callable[[_Context, _Versioned], pa.Table]] = {
    "fct_invoice_lines": _invoice_lines,
    "fct_payments": _payments,
    "fct_bank_transaction_lines": _bank_transaction_lines,
    "fct_credit_note_lines": _credit_note_lines,
    "fct_manual_journal_lines": _manual_journal_lines,
    "fct_purchase_order_lines": _purchase_order_lines,
    "fct_overpayments": _overpayments,
    "fct_prepayments": _prepayments,
}


# --- entry point ----------------------------------------------------------------------------------


def _sync_date(
    documents: Sequence[pa.Table], synced_through: datetime | None, zone: str
) -> date | None:
    """The organisation-local date of the tenant's latest read: ``synced_through`` (its read
    watermarks) or the latest ``fetched_at_utc`` of its records, whichever is later; None when
    neither is known (nothing read)."""
    latest = [synced_through] if synced_through is not None else []
    for table in documents:
        if table.num_rows:
            latest.append(pc.max(table.column("fetched_at_utc")).as_py())
    if not latest:
        return None
    moment = max(m.astimezone(UTC) for m in latest)
    return moment.astimezone(ZoneInfo(zone)).date()


def _conformed(table: pa.Table, schema: pa.Schema, names: list[str], what: str) -> pa.Table:
    """The columns normalize needs, in the lake types; extra columns are ignored."""
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    selected = table.select(names)
    wanted = pa.schema([schema.field(name) for name in names])
    return selected if selected.schema.equals(wanted) else selected.cast(wanted)


def _raw_of(
    raw: Mapping[str, tuple[pa.Table, pa.Table | None]], entity: str
) -> tuple[pa.Table, pa.Table | None]:
    """The raw tables of an entity, reduced to what normalize reads; empty when absent."""
    doc_names, line_names = NORMALIZE_COLUMNS[entity]
    if entity not in raw:
        batch = empty_batch(entity)
        documents, lines = batch.documents, batch.lines
    else:
        documents, lines = raw[entity]
    documents = _conformed(documents, DOCUMENT_SCHEMAS[entity], doc_names, f"{entity} documents")
    line_schema = LINE_SCHEMAS.get(entity)
    if line_schema is None or line_names is None:
        return documents, None
    if lines is None:
        raise ValueError(f"{entity}: lines table missing")
    return documents, _conformed(lines, line_schema, line_names, f"{entity} lines")


def normalize(
    tenant_id: str,
    raw: Mapping[str, tuple[pa.Table, pa.Table | None]],
    reference: Reference,
    slots: Mapping[str, int] | None = None,
    synced_through: datetime | None = None,
) -> dict[str, pa.Table]:
    """All published tables of one tenant, keyed by table name, each exactly in its schema.

    ``raw`` maps a transactional entity ("Invoices", ...) to ``(documents, lines)`` as returned
    by :func:`xero_tableau.raw_lake.read_entity` (entities absent from it give empty
    tables). ``reference`` carries the organisation, accounts and tracking categories; ``slots``
    the tenant's tracking slots given so far (:func:`tracking_slots`; the caller persists them).
    ``synced_through``: when the tenant's records were last read up to (its read watermarks),
    if known. The tenant's sync date, to which fct_bank_balances runs, is the
    organisation-local date of that or of the latest ``fetched_at_utc`` in ``raw``, whichever
    is later. Raises ValueError when the organisation has no usable time zone (dates would
    shift).
    """
    organisation = Organisation.model_validate(dict(reference.organisation))
    zone = organisation.zone().key
    accounts = parse_records("Accounts", list(reference.accounts)).records
    categories = parse_records("TrackingCategories", list(reference.tracking_categories)).records
    slots = tracking_slots(categories, slots, line_tracking_categories(raw))
    options = _dim_tracking(tenant_id, categories, slots)

    contacts_raw = _raw_of(raw, "Contacts")
    contacts_versioned = _versioned("Contacts", contacts_raw[0], None)
    ctx = _Context(
        tenant_id=tenant_id,
        base_currency=organisation.base_currency,
        zone=zone,
        accounts=_dim_accounts(tenant_id, accounts),
        options=options,
        category_ids=pa.array([c.tracking_category_id for c in categories], pa.string()),
        category_names=pa.array([c.name for c in categories], pa.string()),
        slots=slots,
        contacts=pa.table(
            {
                "contact_id": contacts_versioned.documents.column("id"),
                "contact_name": contacts_versioned.documents.column("name"),
            }
        ),
    )
    out: dict[str, pa.Table] = {}
    versions: dict[str, _Versioned] = {}
    for table, build in _FACT_BUILDERS.items():
        entity = FACT_SOURCES[table]
        documents, lines = _raw_of(raw, entity)
        versions[entity] = _versioned(entity, documents, lines)
        out[table] = build(ctx, versions[entity])
    read = [contacts_versioned.documents, *(v.documents for v in versions.values())]
    ctx.synced_on = _sync_date(read, synced_through, ctx.zone)
    out["fct_invoices"] = _invoices(ctx, versions["Invoices"])
    out["fct_credit_notes"] = _credit_notes(ctx, versions["CreditNotes"])
    out["fct_bank_balances"] = _bank_balances(
        ctx, versions["Payments"], versions["BankTransactions"]
    )
    out["dim_accounts"] = ctx.accounts
    out["dim_tracking_options"] = ctx.options
    for name in REFERENCE_TABLES.values():
        out[name] = _with_reads(name, out[name], reference.reads.get(name, {}))
    out["dim_contacts"] = _dim_contacts(ctx, contacts_versioned)
    return {name: _with_organisation(out[name], organisation.name) for name in TABLES}
