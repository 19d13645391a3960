"""Which documents changed since the last publish, by content fingerprint.

Each document (the table's key without ``line_number``; for a dimension, and a fact with one row
per document, the row's key; the spec's ``document`` where it names one, such as a bank account
of fct_bank_balances) gets a 64-bit fingerprint of every published value of every one of
its rows, independent of row and column order. A document is changed when its fingerprint differs
from the one stored at the last successful publish. A schema change marks every document changed,
which is the safe direction (a full re-send).

This package must never import dagster.
"""

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute
from pandas.util import hash_array as pandas_hash_array

from xero_tableau.transform.schema import PROVENANCE_COLUMNS, TABLES

# pyarrow.compute builds its functions at import time; the stubs do not list them.
pc: Any = pa_compute
#: pandas keyed SipHash of an object array (its stubs type the re-export as ``object``).
hash_array: Any = pandas_hash_array

__all__ = [
    "FINGERPRINT",
    "DocumentChanges",
    "diff_documents",
    "document_fingerprints",
    "document_key",
    "ignored_columns",
    "rows_for",
]

#: The fingerprint column of :func:`document_fingerprints`' result.
FINGERPRINT = "fingerprint"
# Columns that change on a re-read without the content changing: fetched_at_utc, and the
# provenance, which by construction changes only together with the content (schema.py)...
_DEFAULT_IGNORE = ("fetched_at_utc", *PROVENANCE_COLUMNS)
# ... except in a summary table, whose rows do not show all of their records' content: there a
# changed provenance is a change (TableSpec.summary).
_SUMMARY_IGNORE = ("fetched_at_utc",)
_NULL_TAG = np.uint64(0x6E756C6C5F746167)  # "null_tag": what a null contributes before mixing
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_SEP = "\x1f"
_SAMPLE = 4096  # rows sampled to choose how a string column is hashed
#: Columns hashed at once: Arrow and NumPy release the GIL for most of the work.
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection with full avalanche), in place on a uint64 array."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def _seed(name: str) -> np.uint64:
    """A stable per-column constant (Python's ``hash`` is salted per process; this is not)."""
    return np.uint64(
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    )


def document_key(table_name: str) -> tuple[str, ...]:
    """The columns naming one document of a published table: the spec's ``document`` if it
    names one, else its key without ``line_number`` (``("tenant_id", "invoice_id")``; a
    dimension's whole key)."""
    try:
        spec = TABLES[table_name]
    except KeyError:
        raise KeyError(f"unknown published table {table_name!r}") from None
    if spec.document:
        return spec.document
    return tuple(column for column in spec.key if column != "line_number")


def ignored_columns(table_name: str) -> tuple[str, ...]:
    """The columns change detection ignores by default: ``fetched_at_utc`` and, except in a
    summary table (``TableSpec.summary``), the provenance columns."""
    return _SUMMARY_IGNORE if TABLES[table_name].summary else _DEFAULT_IGNORE


# --------------------------------------------------------------------------- column hashing


def _validity(arr: pa.Array) -> np.ndarray | None:
    """A bool mask of valid slots, or None when the array has no nulls (the common case)."""
    if arr.null_count == 0:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _hash_strings(arr: pa.Array) -> np.ndarray:
    """SipHash of each string (nulls are masked by the caller).

    A column with few distinct values (status, currency, account code) is dictionary-encoded
    by Arrow and each distinct value hashed once; a mostly-unique one (line ids, descriptions)
    is hashed directly, since encoding it would cost more than it saves. A sample decides."""
    sample = arr.slice(0, _SAMPLE)
    distinct = pc.count_distinct(sample, mode="all").as_py() or 0
    if len(sample) and distinct > len(sample) // 4:
        values = arr.to_numpy(zero_copy_only=False)
        if arr.null_count:
            values = np.where(arr.is_valid().to_numpy(zero_copy_only=False), values, "")
        return hash_array(values, categorize=False).astype(np.uint64, copy=False)
    encoded = pc.dictionary_encode(arr)
    assert isinstance(encoded, pa.DictionaryArray)
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    if len(values) == 0:  # every slot null
        return np.full(len(arr), _NULL_TAG, dtype=np.uint64)
    hashes = hash_array(values, categorize=False).astype(np.uint64, copy=False)
    return hashes[encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)]


def _hash_decimal128(arr: pa.Array) -> np.ndarray:
    """Both 64-bit words of each 128-bit unscaled value, read from the data buffer (converting
    to Python ``Decimal`` objects would cost a second per million values)."""
    data = arr.buffers()[1]
    assert data is not None
    words = np.frombuffer(data, dtype=np.uint64)[2 * arr.offset : 2 * (arr.offset + len(arr))]
    low = words[0::2].copy()
    high = words[1::2].copy()
    return _mix(low) + _mix(high ^ _GOLDEN)


def _hash_fixed(arr: pa.Array) -> np.ndarray:
    """The raw bits of a fixed-width value as uint64 (nulls are masked by the caller)."""
    typ = arr.type
    if pa.types.is_boolean(typ):
        return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint64)
    if pa.types.is_floating(typ):
        values = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        return (values + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    if pa.types.is_temporal(typ):
        width = typ.bit_width
        arr = arr.view(pa.int32() if width == 32 else pa.int64())
    filled = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
    return filled.astype(np.int64, copy=False).view(np.uint64)


def _hash_chunk(arr: pa.Array) -> np.ndarray:
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = arr.cast(typ.value_type)  # type: ignore[attr-defined]
        typ = arr.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ):
        hashed = _hash_strings(arr)
    elif pa.types.is_large_binary(typ) or pa.types.is_string_view(typ):
        hashed = _hash_strings(arr.cast(pa.large_string() if typ == pa.string_view() else typ))
    elif pa.types.is_decimal128(typ):
        hashed = _hash_decimal128(arr)
    elif (
        pa.types.is_integer(typ)
        or pa.types.is_temporal(typ)
        or pa.types.is_boolean(typ)
        or pa.types.is_floating(typ)
    ):
        hashed = _hash_fixed(arr)
    elif pa.types.is_null(typ):
        hashed = np.full(len(arr), _NULL_TAG, dtype=np.uint64)
    else:
        raise TypeError(f"cannot fingerprint a column of type {typ}")
    valid = _validity(arr)
    if valid is not None:
        hashed = np.where(valid, hashed, _NULL_TAG)
    return hashed


def _hash_column(column: pa.ChunkedArray) -> np.ndarray:
    """One uint64 per row of a column (a fresh, writable array)."""
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.uint64)
    parts = [_hash_chunk(chunk) for chunk in column.chunks]
    return np.concatenate(parts) if len(parts) > 1 else np.array(parts[0], dtype=np.uint64)


def _mixed_column(table: pa.Table, name: str) -> np.ndarray:
    hashed = _hash_column(table.column(name))
    hashed += _seed(name)
    return _mix(hashed)


def _row_hashes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    total = np.zeros(table.num_rows, dtype=np.uint64)
    names = sorted(columns)
    if _WORKERS == 1 or table.num_rows < 50_000:
        for name in names:
            total += _mixed_column(table, name)
    else:
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="xt-fingerprint") as pool:
            for mixed in pool.map(lambda name: _mixed_column(table, name), names):
                total += mixed
    return _mix(total)


# --------------------------------------------------------------------------- public API


def document_fingerprints(
    table_name: str, table: pa.Table, ignore: Sequence[str] | None = None
) -> pa.Table:
    """One row per document of ``table``: its key columns (:func:`document_key`) and a uint64
    ``fingerprint`` of all its rows' values except the ``ignore`` columns (by default
    :func:`ignored_columns`: ``fetched_at_utc``, which changes on every read without the data
    changing, and the provenance columns unless the table is a summary).

    Independent of row and column order; see the module docstring for the scheme. Sorted by
    key, so equal inputs give equal tables."""
    key = list(document_key(table_name))
    missing = [column for column in key if column not in table.column_names]
    if missing:
        raise ValueError(f"{table_name}: the table has no key column {missing}")
    skip = set(ignored_columns(table_name) if ignore is None else ignore)
    hashed_columns = [c for c in table.column_names if c not in skip]
    rows = pa.table(
        {
            **{column: table.column(column) for column in key},
            "_h": pa.array(_row_hashes(table, hashed_columns), pa.uint64()),
        }
    )
    grouped = rows.group_by(key, use_threads=True).aggregate([("_h", "sum"), ("_h", "count")])
    sums = grouped.column("_h_sum").to_numpy().astype(np.uint64, copy=True)
    counts = grouped.column("_h_count").to_numpy().astype(np.uint64)
    sums += counts * _GOLDEN
    result = pa.table(
        {
            **{column: grouped.column(column) for column in key},
            FINGERPRINT: pa.array(_mix(sums), pa.uint64()),
        }
    )
    return result.sort_by([(column, "ascending") for column in key])


@dataclass(frozen=True)
class DocumentChanges:
    """The outcome of :func:`diff_documents`. The ``*_ids`` tables hold the document key
    columns, sorted; ``current_fingerprints`` is what to store once the publish succeeded (not
    before: a failed publish must leave the old fingerprints, so the next run sends again)."""

    changed_ids: pa.Table
    new_ids: pa.Table
    removed_ids: pa.Table
    current_fingerprints: pa.Table

    @property
    def upserted_ids(self) -> pa.Table:
        """Changed and new documents: whose rows an incremental publish must (re)send."""
        return pa.concat_tables([self.changed_ids, self.new_ids]).sort_by(
            [(column, "ascending") for column in self.changed_ids.column_names]
        )

    @property
    def is_empty(self) -> bool:
        """Nothing changed, appeared or disappeared."""
        return not (self.changed_ids.num_rows or self.new_ids.num_rows or self.removed_ids.num_rows)


def diff_documents(
    table_name: str,
    previous_fingerprints: pa.Table | None,
    current: pa.Table,
    ignore: Sequence[str] | None = None,
) -> DocumentChanges:
    """Compare ``current`` (the table's rows now) with the fingerprints stored at the last
    publish (None or empty: every document is new).

    A document is *changed* when any non-ignored value of any of its rows differs, a row was
    added or removed; *new* when it has no previous fingerprint; *removed* when it had one and
    has no rows now."""
    key = list(document_key(table_name))
    now = document_fingerprints(table_name, current, ignore)
    empty_ids = now.select(key).slice(0, 0)
    if previous_fingerprints is None or previous_fingerprints.num_rows == 0:
        return DocumentChanges(empty_ids, now.select(key), empty_ids, now)
    missing = [c for c in [*key, FINGERPRINT] if c not in previous_fingerprints.column_names]
    if missing:
        raise ValueError(f"{table_name}: previous fingerprints lack column(s) {missing}")
    before = previous_fingerprints.select([*key, FINGERPRINT]).cast(now.schema)
    before = before.rename_columns([*key, "_before"])
    joined = now.join(before, keys=key, join_type="full outer", use_threads=True)
    after_fp, before_fp = joined.column(FINGERPRINT), joined.column("_before")
    order = [(column, "ascending") for column in key]

    def pick(mask: pa.ChunkedArray | pa.Array) -> pa.Table:
        return joined.filter(mask).select(key).sort_by(order)

    return DocumentChanges(
        changed_ids=pick(pc.and_(pc.not_equal(after_fp, before_fp), pc.is_valid(before_fp))),
        new_ids=pick(pc.and_(pc.is_null(before_fp), pc.is_valid(after_fp))),
        removed_ids=pick(pc.is_null(after_fp)),
        current_fingerprints=now,
    )


def _composite(table: pa.Table, columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """One comparable column for a (possibly multi-column) key."""
    if len(columns) == 1:
        return table.column(columns[0])
    parts = [pc.cast(table.column(column), pa.large_string()) for column in columns]
    return pc.binary_join_element_wise(*parts, pa.scalar(_SEP, pa.large_string()))


def rows_for(table: pa.Table, ids: pa.Table) -> pa.Table:
    """Every row of ``table`` whose document is listed in ``ids`` (a table of key columns, such
    as ``DocumentChanges.upserted_ids``), in ``table``'s row order."""
    columns = ids.column_names
    missing = [column for column in columns if column not in table.column_names]
    if missing:
        raise ValueError(f"the table has no key column {missing}")
    if ids.num_rows == 0 or table.num_rows == 0:
        return table.slice(0, 0)
    wanted = _composite(ids.cast(table.select(columns).schema), columns)
    mask = pc.is_in(_composite(table, columns), value_set=pa.chunked_array(wanted).combine_chunks())
    return table.filter(mask)
