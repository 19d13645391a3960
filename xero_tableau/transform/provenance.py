"""Provenance: which Xero read produced the content each published row shows.

Every stored record version carries the read that produced it (``raw_layouts.PROVENANCE``:
``synced_at_utc``, ``sync_source``, ``dagster_run_id``, ``source_event_at_utc``), and every
published row carries its record's (transform/schema.py). A re-read that finds the same content
keeps the earlier read's provenance: a row names the read that last CHANGED it, not the latest
read. That is what the incremental publish can follow: its fingerprints ignore these columns
(``transform/changes.py``), so they may change only together with a published value, or a full
replace of the same lake would show other provenance than the incremental publish left.

"Same content" is therefore judged on values that always show in the published row of the
record's own table (its ``published_table``; the summary tables count provenance in their change
detection instead, and what only they show, ``normalize.SUMMARY_COLUMNS``, is not compared):

- transactional records (:func:`carry_provenance`, when a day partition is rewritten): the
  values normalize publishes as stored (:func:`content_columns`), compared with the version of
  the same record the partition held. A value normalize uses only as a fallback
  (``FALLBACK_ONLY``) does not count; one it fills in when null (``FILLED_WHEN_NULL``) counts
  only when it changes between two values; a line's tracking elements do not count (whether one
  shows depends on the tenant's tracking slots, not on the record; and Xero dates every edit of
  them with a new UpdatedDateUTC, which counts). A change that does not show in any published
  row never changes the provenance; a published change that no compared value explains (a
  renamed contact, say) keeps it, which is safe: the row is re-sent with the provenance it
  already had.
- reference snapshots (:func:`reference_reads`): the published dimension row itself, built
  by normalize from the old and the new snapshot and compared by fingerprint.

A version stored before provenance existed counts as read at its ``fetched_at_utc`` by an
unknown source, and a reference row read then has no provenance at all: carried like any other.

No dagster here.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute

from xero_tableau.raw_layouts import PROVENANCE
from xero_tableau.transform.changes import FINGERPRINT, document_fingerprints
from xero_tableau.transform.normalize import (
    NORMALIZE_COLUMNS,
    REFERENCE_TABLES,
    SUMMARY_COLUMNS,
    reference_dimension,
)
from xero_tableau.transform.raw import FlatBatch, ReadProvenance
from xero_tableau.transform.schema import PROVENANCE_COLUMNS

# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute

__all__ = [
    "FALLBACK_ONLY",
    "FILLED_WHEN_NULL",
    "carry_provenance",
    "content_columns",
    "read_json",
    "reference_reads",
]

#: Raw columns normalize publishes only where a dimension has nothing (a document's contact
#: name, a bank account's name): a change in them need not show, so it is no change of content.
FALLBACK_ONLY = frozenset({"contact_name", "bank_account_name"})
#: Raw columns normalize publishes as they are, but fills in when null (from dim_accounts, the
#: base currency, 1, 0): a change between two values shows, one to or from null need not.
FILLED_WHEN_NULL = frozenset(
    {
        "account_id",
        "account_code",
        "bank_account_id",
        "bank_account_code",
        "currency_code",
        "invoice_currency_code",
        "currency_rate",
        "tax_amount",
        "allocations",
    }
)
#: A line's tracking elements: an element shows only if its category holds tracking slot 1 or 2
#: (``normalize.tracking_slots``, kept per tenant outside the lake), so no change in them is
#: sure to show. An edit of a line's tracking comes with a new UpdatedDateUTC anyway.
_TRACKING = tuple(
    f"tracking_{slot}_{part}" for slot in "ab" for part in ("category_id", "option_id")
)
# Identity, position and the read itself: never content.
_NOT_CONTENT = frozenset(
    {"id", "document_id", "document_row", "line_number", "fetched_at_utc", *PROVENANCE}
)


def content_columns(entity: str) -> tuple[list[str], list[str]]:
    """The document and line columns whose values, compared one by one, decide whether a
    re-read of ``entity`` found new content."""
    documents, lines = NORMALIZE_COLUMNS[entity]
    skip = _NOT_CONTENT | FALLBACK_ONLY | SUMMARY_COLUMNS.get(entity, frozenset())
    return (
        [c for c in documents if c not in skip],
        [c for c in lines or [] if c not in skip and c not in _TRACKING],
    )


def _combine(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _bools(array: Any) -> np.ndarray:
    return np.asarray(_combine(array).to_numpy(zero_copy_only=False), dtype=bool)


def _unchanged(new: Any, old: Any, filled: bool) -> np.ndarray:
    """Per row: the value did not change (for a ``filled`` column: not between two values)."""
    equal = pc.equal(new, old)
    if filled:
        return _bools(pc.fill_null(equal, True))
    both_null = pc.and_(pc.is_null(new), pc.is_null(old))
    return _bools(pc.or_(pc.fill_null(equal, False), both_null))


def _ints(column: Any) -> np.ndarray:
    return np.asarray(_combine(column).to_numpy(zero_copy_only=False), dtype=np.int64)


def _lines_unchanged(
    new: pa.Table, old: pa.Table | None, at: np.ndarray, old_documents: int, columns: Sequence[str]
) -> np.ndarray:
    """Per new document: its lines are those of old document ``at`` (-1: none) of the
    ``old_documents``, line by line (same line numbers, same compared values)."""
    n = len(at)
    new_row, new_number = _ints(new.column("document_row")), _ints(new.column("line_number"))
    new_count = np.bincount(new_row, minlength=n)
    if old is None:
        return (at >= 0) & (new_count == 0)
    old_row, old_number = _ints(old.column("document_row")), _ints(old.column("line_number"))
    old_count = np.bincount(old_row, minlength=old_documents)
    same = (at >= 0) & (new_count == np.where(at >= 0, old_count[np.maximum(at, 0)], -1))
    if not new.num_rows:
        return same
    if not old.num_rows:
        return same & (new_count == 0)
    # each new line's counterpart: the old line of the old document with the same number
    width = int(max(new_number.max(), old_number.max())) + 1
    old_key = old_row * width + old_number
    order = np.argsort(old_key, kind="stable")
    sorted_key = old_key[order]
    parent = at[new_row]
    new_key = np.where(parent >= 0, parent * width + new_number, -1)
    position = np.minimum(np.searchsorted(sorted_key, new_key), len(sorted_key) - 1)
    matched = (parent >= 0) & (sorted_key[position] == new_key)
    counterpart = old.take(pa.array(np.where(matched, order[position], 0)))
    line_same = matched
    for name in columns:
        line_same &= _unchanged(
            new.column(name), counterpart.column(name), name in FILLED_WHEN_NULL
        )
    changed = np.bincount(new_row[~line_same], minlength=n) > 0
    return same & ~changed


def carry_provenance(
    entity: str, batch: FlatBatch, previous: tuple[pa.Table, pa.Table | None] | None
) -> FlatBatch:
    """``batch`` (a day of ``entity`` just read) with the provenance of ``previous`` (what the
    partition held: documents and lines, as ``raw_lake.read_day_tables`` gives them) kept for
    every record whose content the read found unchanged."""
    documents = batch.documents
    if previous is None or documents.num_rows == 0 or previous[0].num_rows == 0:
        return batch
    old_documents, old_lines = previous
    found = pc.index_in(documents.column("id"), value_set=_combine(old_documents.column("id")))
    at = np.asarray(_combine(pc.fill_null(found, -1)).to_numpy(zero_copy_only=False), np.int64)
    same = at >= 0
    if not same.any():
        return batch
    old = old_documents.take(pa.array(np.maximum(at, 0)))
    document_columns, line_columns = content_columns(entity)
    for name in document_columns:
        same &= _unchanged(documents.column(name), old.column(name), name in FILLED_WHEN_NULL)
    if batch.lines is not None:
        same &= _lines_unchanged(
            batch.lines, old_lines, np.where(same, at, -1), old_documents.num_rows, line_columns
        )
    if not same.any():
        return batch
    mask = pa.array(same)
    kept = {
        "synced_at_utc": pc.coalesce(old.column("synced_at_utc"), old.column("fetched_at_utc")),
        **{name: old.column(name) for name in PROVENANCE if name != "synced_at_utc"},
    }
    for name, before in kept.items():
        index = documents.schema.get_field_index(name)
        now = _combine(documents.column(index))
        value = pc.if_else(mask, _combine(before).cast(now.type), now)
        documents = documents.set_column(index, documents.schema.field(index), value)
    return FlatBatch(documents, batch.lines, batch.rejected, batch.notes)


# --- reference snapshots ---------------------------------------------------------------------

_UNKNOWN: dict[str, Any] = dict.fromkeys(PROVENANCE_COLUMNS)


def read_json(read: ReadProvenance, read_at: datetime) -> dict[str, Any]:
    """One read's provenance as stored with a reference snapshot (instants in ISO 8601)."""
    return {
        "synced_at_utc": read_at.isoformat(),
        "sync_source": read.source,
        "dagster_run_id": read.run_id,
        "source_event_at_utc": None,  # Xero sends no webhooks for reference entities
    }


def _fingerprints(table_name: str, table: pa.Table) -> dict[str, int]:
    """Row id -> fingerprint of the published content of that dimension row."""
    ignore = ("fetched_at_utc", "organisation_name", *PROVENANCE_COLUMNS)
    prints = document_fingerprints(table_name, table, ignore=ignore)
    keys = prints.column(prints.column_names[-2]).to_pylist()
    return dict(zip(map(str, keys), prints.column(FINGERPRINT).to_pylist(), strict=True))


def reference_reads(
    entity: str,
    tenant_id: str,
    previous_records: Sequence[Mapping[str, Any]],
    previous_reads: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    read: ReadProvenance,
    read_at: datetime,
) -> dict[str, Any]:
    """What to keep with a new snapshot of ``entity`` (``raw_lake.write_reference``'s
    ``reads``): this read, and per row of the dimension it gives (``REFERENCE_TABLES``) the
    provenance of the read that last changed the row. ``previous_*`` are the snapshot it
    replaces and what was kept with it ({} when it was written before provenance existed)."""
    this = read_json(read, read_at)
    table = REFERENCE_TABLES.get(entity)
    if table is None:
        return {"read": this, "rows": {}}
    now = _fingerprints(table, reference_dimension(entity, tenant_id, records))
    before: dict[str, int] = {}
    if previous_records:
        before = _fingerprints(table, reference_dimension(entity, tenant_id, previous_records))
    kept = (previous_reads.get("rows") or {}).get(table) or {}
    rows = {
        key: (kept.get(key) or _UNKNOWN) if before.get(key) == fingerprint else this
        for key, fingerprint in now.items()
    }
    return {"read": this, "rows": {table: rows}}
