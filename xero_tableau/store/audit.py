"""The audit trail: from a row in Tableau back to the Xero record version and what brought it.

Three sources in the state DB, joined by the Xero id when asked (``xero-tableau audit <id>``):

- ``xero_record_versions``: each version of a record (its ``UpdatedDateUTC`` and a digest of its
  content, so an edit Xero did not date is a version too) the first time a run wrote it to the
  lake, with the fetch time, the Dagster run, why it ran and how it read;
- ``xero_webhook_events``: every webhook event about the record, when it was received and which
  run covered it;
- ``tableau_publish_batches`` + ``tableau_published_documents``: each publish that carried the
  record's rows to Tableau (incremental batches list their documents; a replace carries them all),
  with the data source, Tableau job id, finish code and outcome.

No dagster here.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pa_compute
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import (
    as_utc,
    insert_or_ignore,
    tableau_publish_batches,
    tableau_published_documents,
    xero_record_versions,
    xero_webhook_events,
)

#: Rows per write transaction (about 0.3 s each on SQLite: bench/audit_trail.py; halved when
#: the key grew a content digest, so a transaction holds the writer lock no longer than before).
ROWS_PER_TRANSACTION = 10000

# pyarrow.compute builds its kernels at import time, so type checkers cannot see them.
pc: Any = pa_compute


def _insert_many(
    engine: Engine, table: sa.Table, rows: list[dict[str, Any]], key: list[str]
) -> None:
    """Insert ``rows``, skipping those already there, by executemany (multi-VALUES statements
    were 5x slower: compiling them), in transactions of :data:`ROWS_PER_TRANSACTION` so the
    webhook receiver and the rate limiter, which write to the same state DB, never wait long
    for SQLite's single writer lock (Xero wants a webhook answered within 5 s)."""
    if not rows:
        return
    statement = insert_or_ignore(engine, table).on_conflict_do_nothing(index_elements=key)
    for start in range(0, len(rows), ROWS_PER_TRANSACTION):
        with engine.begin() as conn:
            conn.execute(statement, rows[start : start + ROWS_PER_TRANSACTION])


def _digest(text: str) -> str:
    # 64 bits: it only tells apart the contents of one record's one UpdatedDateUTC
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def content_digest(record: Mapping[str, Any]) -> str:
    """A digest of a record's content as Xero sent it: the same JSON (in any key order) gives
    the same digest, any changed value a different one."""
    return _digest(
        json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    )


def _row_digests(documents: pa.Table) -> list[str]:
    """Digests of the documents' own columns (what is there without the raw records): the
    columns cast to text and joined by Arrow, or row by row where a column does not cast."""
    names = [n for n in documents.column_names if n != "fetched_at_utc"]
    try:
        parts = [pc.fill_null(pc.cast(documents.column(n), pa.string()), "\x00") for n in names]
        rows = pc.binary_join_element_wise(*parts, "\x1f").to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [content_digest(row) for row in documents.select(names).to_pylist()]
    return [_digest(row) for row in rows]


def record_versions(
    engine: Engine,
    tenant_id: str,
    entity: str,
    documents: pa.Table,
    *,
    run_id: str | None,
    purpose: str | None,
    read_mode: str | None,
    digests: Sequence[str] | None = None,
) -> None:
    """Note every record version in ``documents`` (a raw day batch: ``id``, ``updated_at_utc``,
    ``fetched_at_utc``, a status column); versions already noted keep their first sighting.

    A version is an ``UpdatedDateUTC`` with a content: ``digests`` (one per row, normally
    :func:`content_digest` of the raw record) tell apart two reads of one ``UpdatedDateUTC``
    whose content differs, the edits Xero does not date. Without them, the documents' own
    columns are digested."""
    if documents.num_rows == 0:
        return
    if digests is None:
        digests = _row_digests(documents)
    if len(digests) != documents.num_rows:
        raise ValueError(f"{len(digests)} digests for {documents.num_rows} documents")
    status_column = "status" if "status" in documents.column_names else "contact_status"
    statuses = (
        documents.column(status_column).to_pylist()
        if status_column in documents.column_names
        else [None] * documents.num_rows
    )
    rows = [
        {
            "tenant_id": tenant_id,
            "entity": entity,
            "xero_id": str(xero_id).lower(),
            "updated_at_utc": updated,
            "content_digest": digest,
            "status": status,
            "fetched_at": fetched,
            "run_id": run_id,
            "purpose": purpose,
            "read_mode": read_mode,
        }
        for xero_id, updated, digest, fetched, status in zip(
            documents.column("id").to_pylist(),
            documents.column("updated_at_utc").to_pylist(),
            digests,
            documents.column("fetched_at_utc").to_pylist(),
            statuses,
            strict=True,
        )
    ]
    key = ["tenant_id", "entity", "xero_id", "updated_at_utc", "content_digest"]
    _insert_many(engine, xero_record_versions, rows, key)


def record_published(
    engine: Engine,
    batch_id: str,
    tenant_id: str,
    table_name: str,
    document_column: str,
    rows: pa.Table,
) -> None:
    """Note which documents (and which version: their latest ``updated_at_utc``) a publish batch
    carried. ``rows`` are the table rows the batch sent."""
    if rows.num_rows == 0:
        return
    if "updated_at_utc" in rows.column_names:
        grouped = rows.group_by(document_column).aggregate([("updated_at_utc", "max")])
        updated = grouped.column("updated_at_utc_max").to_pylist()
    else:
        grouped = rows.group_by(document_column).aggregate([])
        updated = [None] * grouped.num_rows
    documents = grouped.column(document_column).to_pylist()
    payload = [
        {
            "batch_id": batch_id,
            "tenant_id": tenant_id,
            "table_name": table_name,
            "document_id": str(document).lower(),
            "updated_at_utc": when,
        }
        for document, when in zip(documents, updated, strict=True)
        if document is not None
    ]
    _insert_many(engine, tableau_published_documents, payload, ["batch_id", "document_id"])


@dataclass(frozen=True)
class Version:
    tenant_id: str
    entity: str
    updated_at_utc: datetime
    content_digest: str | None  # None: noted before digests were kept
    status: str | None
    fetched_at: datetime
    run_id: str | None
    purpose: str | None
    read_mode: str | None


@dataclass(frozen=True)
class WebhookEvent:
    tenant_id: str
    category: str
    event_type: str
    event_time: datetime
    received_at: datetime
    status: str
    run_id: str | None


@dataclass(frozen=True)
class Publish:
    tenant_id: str
    table_name: str
    datasource: str
    site: str | None
    project: str | None
    mode: str | None  # the publisher's mode: replace, create, update
    batch_id: str
    job_id: str | None
    finish_code: int | None
    status: str
    at: datetime
    version_updated_at: datetime | None  # None for a replace: it carried the version of its time


@dataclass(frozen=True)
class Trail:
    xero_id: str
    versions: list[Version]
    events: list[WebhookEvent]
    publishes: list[Publish]

    @property
    def found(self) -> bool:
        return bool(self.versions or self.events or self.publishes)


def trail(engine: Engine, xero_id: str, tables_of: Mapping[str, str]) -> Trail:
    """Everything the state DB knows about one Xero record, oldest first. ``tables_of`` maps
    each entity to the published table that carries its documents (from the entity registry)."""
    wanted = xero_id.strip().lower()
    v, e = xero_record_versions, xero_webhook_events
    b, d = tableau_publish_batches, tableau_published_documents
    with engine.connect() as conn:
        versions = _without_upgrade_repeats(
            [
                Version(
                    r.tenant_id,
                    r.entity,
                    as_utc(r.updated_at_utc),
                    r.content_digest,
                    r.status,
                    as_utc(r.fetched_at),
                    r.run_id,
                    r.purpose,
                    r.read_mode,
                )
                for r in conn.execute(
                    sa.select(v).where(v.c.xero_id == wanted).order_by(v.c.updated_at_utc, v.c.id)
                )
            ]
        )
        events = [
            WebhookEvent(
                r.tenant_id,
                r.category,
                r.event_type,
                as_utc(r.event_time),
                as_utc(r.received_at),
                r.status,
                r.run_id,
            )
            for r in conn.execute(
                sa.select(e).where(e.c.resource_id == wanted).order_by(e.c.event_time, e.c.id)
            )
        ]
        carried = conn.execute(
            sa.select(b, d.c.updated_at_utc.label("version_updated_at"))
            .join(d, d.c.batch_id == b.c.batch_id)
            .where(d.c.document_id == wanted)
        ).all()
        publishes = [
            _publish(r, as_utc(r.version_updated_at) if r.version_updated_at else None)
            for r in carried
        ]
        tenants = {x.tenant_id for x in versions}
        if versions:
            # A replace carries every document of its tables, so each one after the record was
            # first seen carried some version of it.
            first_seen = min(x.fetched_at for x in versions)
            tables = {tables_of[x.entity] for x in versions if x.entity in tables_of}
            replaced = conn.execute(
                sa.select(b).where(
                    b.c.tenant_id.in_(tenants),
                    b.c.table_name.in_(tables),
                    b.c.batch_id.like("%:replace:%"),
                    b.c.updated_at >= first_seen,
                )
            ).all()
            publishes += [_publish(r, None) for r in replaced]
    publishes.sort(key=lambda p: p.at)
    return Trail(wanted, versions, events, publishes)


def _without_upgrade_repeats(versions: list[Version]) -> list[Version]:
    """Drop the first digested sighting of a version noted before digests were kept (its
    content was not recorded then, so the first re-read is taken as the same version)."""
    undigested = {
        (x.tenant_id, x.entity, x.updated_at_utc) for x in versions if not x.content_digest
    }
    kept = []
    for x in versions:
        key = (x.tenant_id, x.entity, x.updated_at_utc)
        if x.content_digest and key in undigested:
            undigested.discard(key)
            continue
        kept.append(x)
    return kept


def _publish(row: Any, version_updated_at: datetime | None) -> Publish:
    return Publish(
        tenant_id=row.tenant_id or "",
        table_name=row.table_name or "",
        datasource=row.datasource_name,
        site=row.site,
        project=row.project,
        mode=row.mode,
        batch_id=row.batch_id,
        job_id=row.job_id,
        finish_code=row.finish_code,
        status=row.status,
        at=as_utc(row.updated_at),
        version_updated_at=version_updated_at,
    )


def _t(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z" if moment else "-"


def format_trail(found: Trail) -> str:
    """The trail as a controller reads it: versions, webhooks, publishes, each with its proof."""
    if not found.found:
        return f"{found.xero_id}: nothing recorded (not synced yet, or not a Xero id we read)"
    lines = [f"Audit trail of Xero record {found.xero_id}", ""]
    lines.append(f"Versions synced ({len(found.versions)}):")
    for x in found.versions:
        lines.append(
            f"  UpdatedDateUTC {_t(x.updated_at_utc)}  {x.entity} {x.status or ''}  "
            f"content {(x.content_digest or '-')[:8]}  "
            f"fetched {_t(x.fetched_at)}  run {x.run_id or '-'} ({x.purpose or '-'}, "
            f"read by {x.read_mode or '-'})  tenant {x.tenant_id}"
        )
    lines.append(f"Webhook events ({len(found.events)}):")
    for ev in found.events:
        lines.append(
            f"  {ev.category} {ev.event_type} at {_t(ev.event_time)}  received "
            f"{_t(ev.received_at)}  {ev.status}  run {ev.run_id or '-'}"
        )
    lines.append(f"Tableau publishes ({len(found.publishes)}):")
    for pub in found.publishes:
        version = (
            f"version {_t(pub.version_updated_at)}"
            if pub.version_updated_at
            else "every document (replace)"
        )
        lines.append(
            f"  {_t(pub.at)}  {pub.site or 'Default'}/{pub.project or '-'}/{pub.datasource} "
            f"({pub.table_name})  {pub.mode or '-'}  {version}  job {pub.job_id or '-'} "
            f"finish code {pub.finish_code if pub.finish_code is not None else '-'}  {pub.status}"
        )
    return "\n".join(lines)
