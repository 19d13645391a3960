"""Raw Xero records -> the lake's columnar form: one documents table and one lines table per batch.

:func:`flatten` validates every record with the entity's model, quarantines the ones that fail
(with the id and a readable reason) and lays the rest out in the entity's fixed Arrow schemas
(:mod:`xero_tableau.raw_layouts`). A record that appears twice in a batch is kept once, in its
latest version; ``lines.document_row`` is the 0-based row of the parent in ``documents``. An
amount read through binary-float noise leaves a data-quality note (``FlatBatch.notes``).

This package must never import dagster.
"""

import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from xero_tableau.entities import TRANSACTIONAL, XeroEntity, transactional
from xero_tableau.raw_layouts import DOC_HEAD, INSTANT, RawLayout, Row, TooMuchTracking
from xero_tableau.xero.models import DQNote, ParseResult, RejectedRecord, XeroModel

__all__ = [
    "DOCUMENT_SCHEMAS",
    "LINE_SCHEMAS",
    "FlatBatch",
    "ReadProvenance",
    "empty_batch",
    "flatten",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_HEAD = len(DOC_HEAD)  # documents columns filled here, before the layout's own

DOCUMENT_SCHEMAS: dict[str, pa.Schema] = {e.endpoint: e.raw_layout.documents for e in TRANSACTIONAL}
"""Entity -> Arrow schema of its documents table (derived from the entity registry)."""
LINE_SCHEMAS: dict[str, pa.Schema] = {
    e.endpoint: e.raw_layout.lines for e in TRANSACTIONAL if e.raw_layout.lines is not None
}
"""Entity -> Arrow schema of its lines table; entities without lines are absent."""


@dataclass(frozen=True)
class ReadProvenance:
    """How a batch was read, stamped on every document of it: ``source`` is the published
    ``sync_source`` (``asset_names.sync_source``), ``run_id`` the Dagster run (None outside
    Dagster), ``event_times`` the webhook event time per record id (lower case) for a read a
    webhook triggered."""

    source: str | None = None
    run_id: str | None = None
    event_times: Mapping[str, datetime] = field(default_factory=dict)


@dataclass
class FlatBatch:
    """One batch of records in lake form: documents, lines (None for unlined entities), the
    records that were quarantined instead, and the data-quality notes of the records kept."""

    documents: pa.Table
    lines: pa.Table | None
    rejected: list[RejectedRecord] = field(default_factory=list)
    notes: list[DQNote] = field(default_factory=list)


def empty_batch(entity: str) -> FlatBatch:
    """A batch with no records, typed like any other (what an empty day flattens to)."""
    layout = transactional(entity).raw_layout
    return FlatBatch(
        layout.documents.empty_table(),
        None if layout.lines is None else layout.lines.empty_table(),
        [],
    )


# --- flatten -------------------------------------------------------------------------------------

_Kept = tuple[XeroModel, dict[str, Any], Row, list[Row]]


def _epoch_ms(instant: datetime) -> int:
    """Whole UTC milliseconds (Xero's precision); finer parts are floored, never rounded up."""
    return (instant - _EPOCH) // _MS


def _updated(model: XeroModel) -> datetime:
    """UpdatedDateUTC of a transactional record (required on all of them)."""
    return model.__dict__["updated_date_utc"]


def _record_key(spec: XeroEntity, raw: dict[str, Any]) -> str:
    return str(raw[spec.id_field])


def _check_names(schema: pa.Schema, skip: int, row: Row, what: str) -> None:
    expected = schema.names[skip:]
    if list(row) != expected:
        missing = sorted(set(expected) - set(row))
        extra = sorted(set(row) - set(expected))
        raise AssertionError(
            f"{what} row does not match its schema (missing {missing}, unexpected {extra}, "
            "or out of order)"
        )


def _table(schema: pa.Schema, head: list[pa.Array], rows: Sequence[Row], skip: int) -> pa.Table:
    """Arrays for schema fields ``skip:`` from named rows, after the already-built ``head``."""
    arrays = [*head]
    for f in list(schema)[skip:]:
        name = f.name
        arrays.append(pa.array([row[name] for row in rows], type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _build(
    spec: XeroEntity, kept: list[_Kept], fetched_ms: int, read: ReadProvenance
) -> tuple[pa.Table, pa.Table | None]:
    """The documents and lines tables of validated records (raises if a value does not fit)."""
    layout = spec.raw_layout
    ids = [_record_key(spec, raw) for _, raw, _, _ in kept]
    updated = [_epoch_ms(_updated(model)) for model, _, _, _ in kept]
    n = len(kept)
    read_at = pa.array([fetched_ms] * n, pa.int64()).cast(INSTANT)
    events = read.event_times
    head = [
        pa.array(ids, pa.string()),
        pa.array(updated, pa.int64()).cast(INSTANT),
        read_at,
        read_at,  # synced_at_utc: this read, until transform.provenance finds the content older
        pa.array([read.source] * n, pa.string()),
        pa.array([read.run_id] * n, pa.string()),
        pa.array([events.get(i.lower()) if events else None for i in ids], INSTANT),
    ]
    documents = _table(layout.documents, head, [header for _, _, header, _ in kept], _HEAD)
    if layout.lines is None:
        return documents, None
    parents: list[str] = []
    rows_of: list[int] = []
    line_rows: list[Row] = []
    for row, (_, _, _, lines) in enumerate(kept):
        parents += [ids[row]] * len(lines)
        rows_of += [row] * len(lines)
        line_rows += lines
    line_head = [pa.array(parents, pa.string()), pa.array(rows_of, pa.int32())]
    return documents, _table(layout.lines, line_head, line_rows, 2)


def _misfit(layout: RawLayout, item: _Kept) -> str | None:
    """Why one validated record does not fit the lake schema (None if it does)."""
    _, _, header, lines = item
    problems = [(f, header[f.name]) for f in list(layout.documents)[_HEAD:]]
    if layout.lines is not None:
        line_fields = list(layout.lines)[2:]
        for line in lines:
            problems += [(f, line[f.name]) for f in line_fields]
    for f, value in problems:
        try:
            pa.array([value], type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as error:
            return f"{f.name}: {value!r} does not fit {f.type}: {error}"
    return None


def flatten(
    entity: str,
    records: list[dict[str, Any]],
    fetched_at: datetime,
    read: ReadProvenance | None = None,
) -> FlatBatch:
    """Validate one batch of raw Xero records of ``entity`` and lay it out in lake form.

    ``records`` are Xero JSON objects as received (floats or Decimals for money); ``fetched_at``
    is when they were read from the API (an aware datetime; stored to the millisecond), and
    ``read`` how (stamped as each document's provenance, with ``synced_at_utc`` = ``fetched_at``;
    None: nothing known but the time). Records that fail validation are returned in ``rejected``
    and left out of the tables; if an id occurs more than once, the version with the latest
    UpdatedDateUTC (then the later position) is kept.
    """
    spec = transactional(entity)
    if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
        raise ValueError("fetched_at must be timezone-aware")
    # Row building allocates hundreds of thousands of small acyclic objects next to the parsed
    # models; with the cyclic GC running, its full passes rescan them all and triple the time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _flatten(spec, records, fetched_at, read or ReadProvenance())
    finally:
        if gc_was_enabled:
            gc.enable()


def _flatten(
    spec: XeroEntity, records: list[dict[str, Any]], fetched_at: datetime, read: ReadProvenance
) -> FlatBatch:
    layout = spec.raw_layout
    parsed = spec.parse(records)
    rejected = list(parsed.rejected)
    rejected_raw = {id(item.raw) for item in parsed.rejected}
    raws = [r for r in records if isinstance(r, dict) and id(r) not in rejected_raw]
    if len(raws) != len(parsed.records):  # the same dict object twice, one copy rejected
        raise AssertionError("parse_records results do not line up with the input records")

    latest: dict[str, int] = {}
    kept: list[_Kept] = []
    for model, raw in zip(parsed.records, raws, strict=True):
        key = _record_key(spec, raw)
        try:
            header = layout.header(model, raw)
            lines = [] if layout.line_rows is None else layout.line_rows(model, layout.lines_key)
        except TooMuchTracking as error:
            rejected.append(RejectedRecord(key, str(error), raw))
            continue
        if not kept:
            _check_names(layout.documents, _HEAD, header, f"{spec.endpoint} document")
        if lines and layout.lines is not None:
            _check_names(layout.lines, 2, lines[0], f"{spec.endpoint} line")
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
        documents, lines_table = _build(spec, kept, fetched_ms, read)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        # Some value does not fit its column (too many decimals, out of range): find the
        # records at fault, quarantine them, and build the rest.
        fitting = []
        for item in kept:
            reason = _misfit(layout, item)
            if reason is None:
                fitting.append(item)
            else:
                rejected.append(RejectedRecord(_record_key(spec, item[1]), reason, item[1]))
        kept = fitting
        documents, lines_table = _build(spec, kept, fetched_ms, read)
    return FlatBatch(documents, lines_table, rejected, _notes_of(parsed, kept))


def _notes_of(parsed: ParseResult[Any], kept: list[_Kept]) -> list[DQNote]:
    """The data-quality notes of the records kept (not of older versions or misfits)."""
    if not parsed.notes:
        return []
    kept_models = {id(model) for model, _, _, _ in kept}
    return [n for n in parsed.notes if id(parsed.records[n.record]) in kept_models]
