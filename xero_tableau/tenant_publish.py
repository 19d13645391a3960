"""Publish one tenant's tables to its Tableau site: what the extracts asset calls when
``TABLEAU_SERVER_URL`` is set.

``replace`` mode overwrites every table's full extract; ``incremental`` mode sends, in one
``update_hyper_data`` request, the documents changed, new and removed since the last successful
publish, under a batch id made of the data source's publish generation and the batch's content.
The fingerprints and the generation advance together, in one file, only after a success: nothing
dropped, nothing doubled, and a state that comes back is published again. One table's failure is
recorded and the next table is published. Two tenants never share a data source. It lives at the
top level: ``tableau/`` imports none of what it composes.
"""

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.settings import ConfigError, Settings
from xero_tableau.store import lake
from xero_tableau.store.audit import record_published
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.outcome import BatchRecord, PublishFailed, PublishOutcome
from xero_tableau.tableau.publish import TableauPublisher
from xero_tableau.tableau.routing import Route, load_routing
from xero_tableau.transform import changes
from xero_tableau.transform.schema import TABLES


@dataclass
class TablePublish:
    table: str
    datasource: str
    mode: str  # "replace", "create", "update", "unchanged", "failed"
    documents_sent: int = 0
    outcome: PublishOutcome | None = None
    error: str | None = None
    #: Documents the batch deleted from the data source (gone from the table since the last
    #: publish, or left uncertain by an unconfirmed batch).
    documents_removed: int = 0
    #: Seconds the fingerprint diff took (incremental mode).
    diff_seconds: float = 0.0


@dataclass
class TenantPublish:
    tenant_id: str
    site: str
    project: str
    tables: list[TablePublish] = field(default_factory=list)

    @property
    def failed(self) -> list[TablePublish]:
        return [t for t in self.tables if t.error]

    @property
    def rest_calls(self) -> int:
        return sum(t.outcome.rest_calls for t in self.tables if t.outcome)


def route_for(settings: Settings, tenant_id: str) -> Route:
    if not settings.tableau_server_url:
        raise ConfigError("TABLEAU_SERVER_URL is not set: extracts stay in the local folder")
    default = Route(
        site=settings.tableau_site,
        project=settings.tableau_project,
        datasource_prefix=f"xero_{tenant_id[:8]}_",
        server_url=settings.tableau_server_url,
    )
    return load_routing(settings.routing_file, default=default).route_for(tenant_id)


def _state_dir(settings: Settings, tenant_id: str, route: Route) -> Path:
    """Where the fingerprints of what was last published to ``route`` live."""
    where = f"{route.server_url}|{route.site}|{route.project}|{route.datasource_prefix}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return lake.tenant_dir(settings.lake_dir, tenant_id) / "published" / digest


def publish_tenant(
    settings: Settings,
    engine: Engine,
    tenant_id: str,
    writer: HyperWriter,
    log: Callable[[str], None],
) -> TenantPublish:
    """Publish every table of ``tenant_id`` (already written to the lake and to .hyper)."""
    route = route_for(settings, tenant_id)
    if not settings.tableau_pat_name or not settings.tableau_pat_secret:
        raise ConfigError("TABLEAU_PAT_NAME and TABLEAU_PAT_SECRET are needed to publish")
    tables_dir = lake.tenant_dir(settings.lake_dir, tenant_id) / "tables"
    hyper_dir = settings.hyper_dir / tenant_id
    state = _state_dir(settings, tenant_id, route)
    result = TenantPublish(tenant_id, route.site, route.project)
    ledger = DbPublishLedger(engine)
    with TableauPublisher(
        route.server_url or settings.tableau_server_url or "",
        settings.tableau_pat_name,
        settings.tableau_pat_secret,
        route.site,
        ledger=ledger,
        hyper=writer,
        work_dir=state / "staging",
    ) as publisher:
        publisher.check_can_publish(route.project)  # before any data moves
        target = PublishTarget(publisher, writer, ledger, tenant_id, route, state)
        for table in TABLES:
            name = route.datasource_name(table)
            full = hyper_dir / f"{table}.hyper"
            current = tables_dir / f"{table}.parquet"
            try:
                if settings.tableau_publish_mode == "replace":
                    entry = publish_table_replace(target, table, current, full)
                else:
                    entry = publish_table_incremental(target, table, current, full)
            except PublishFailed as exc:
                entry = TablePublish(table, name, "failed", outcome=exc.outcome, error=str(exc))
            except Exception as exc:  # one table's failure never stops the others
                # Nothing was confirmed, so its fingerprints stay put and the next run sends it
                # again; the caller sees it in ``result.failed`` and fails the run.
                entry = TablePublish(table, name, "failed", error=f"{type(exc).__name__}: {exc}")
            result.tables.append(entry)
            log(
                f"{table} -> {route.site or 'Default'}/{route.project}/{name}: {entry.mode}"
                + (f" ({entry.documents_sent} documents)" if entry.documents_sent else "")
                + (f" ({entry.documents_removed} removed)" if entry.documents_removed else "")
                + (f" FAILED: {entry.error}" if entry.error else "")
            )
    return result


#: Where a fingerprints file keeps its data source's publish generation (Arrow schema metadata).
GENERATION_KEY = b"xt_publish_generation"
#: Where an unconfirmed-batch file says whether it covers the whole data source.
_SCOPE_KEY = b"xt_unconfirmed_scope"


@dataclass(frozen=True)
class Published:
    """What was last confirmed published to a data source: the documents' fingerprints (None:
    nothing known) and the publish generation, which every confirmed publish advances by one."""

    fingerprints: pa.Table | None
    generation: int


@dataclass(frozen=True)
class Unconfirmed:
    """The last batch sent from generation ``generation`` whose success was never recorded:
    Tableau may hold its documents at either version. ``ids``: their keys; ``full``: the batch
    was a whole extract (a create or a replace)."""

    generation: int
    ids: pa.Table
    full: bool


def read_published(path: Path) -> Published:
    """The fingerprints file at ``path``; a file written before generations existed is
    generation 0."""
    if not path.exists():
        return Published(None, 0)
    table = pq.read_table(path)
    generation = int((table.schema.metadata or {}).get(GENERATION_KEY, b"0"))
    return Published(table, generation)


def write_published(path: Path, fingerprints: pa.Table, generation: int) -> None:
    """Fingerprints and generation in one atomic file write: they never disagree."""
    metadata = {**(fingerprints.schema.metadata or {}), GENERATION_KEY: str(generation).encode()}
    lake.write_parquet(path, fingerprints.replace_schema_metadata(metadata))


@dataclass(frozen=True)
class PublishTarget:
    """One tenant's publishing context: the signed-in publisher, its Hyper process, the ledger,
    the route and the folder holding the fingerprints of what was last published there."""

    publisher: TableauPublisher
    writer: HyperWriter
    ledger: DbPublishLedger
    tenant_id: str
    route: Route
    state: Path

    def fingerprints_path(self, table: str) -> Path:
        return self.state / f"{table}.fingerprints.parquet"

    def unconfirmed_path(self, table: str) -> Path:
        return self.state / f"{table}.unconfirmed.parquet"

    def published(self, table: str) -> Published:
        return read_published(self.fingerprints_path(table))

    def confirm(self, table: str, fingerprints: pa.Table, generation: int) -> None:
        """A publish succeeded: store what the data source now holds, then forget the
        unconfirmed batch (a crash between the two leaves a stale one, ignored by generation)."""
        write_published(self.fingerprints_path(table), fingerprints, generation)
        self.unconfirmed_path(table).unlink(missing_ok=True)

    def mark_unconfirmed(
        self, table: str, generation: int, ids: pa.Table, *, full: bool = False
    ) -> None:
        """Before a batch is sent: if its outcome is never recorded (a crash, a timeout), the
        next run sends its documents again whatever they are then."""
        metadata = {GENERATION_KEY: str(generation).encode(), _SCOPE_KEY: b"full" if full else b""}
        lake.write_parquet(self.unconfirmed_path(table), ids.replace_schema_metadata(metadata))

    def unconfirmed(self, table: str, generation: int) -> Unconfirmed | None:
        """The unconfirmed batch sent from ``generation``, or None (one from an older generation
        was confirmed after all, or superseded)."""
        path = self.unconfirmed_path(table)
        if not path.exists():
            return None
        ids = pq.read_table(path)
        metadata = ids.schema.metadata or {}
        if int(metadata.get(GENERATION_KEY, b"-1")) != generation:
            return None
        return Unconfirmed(
            generation, ids.replace_schema_metadata(None), metadata.get(_SCOPE_KEY) == b"full"
        )


def publish_table_replace(
    target: PublishTarget, table: str, current_parquet: Path, full_hyper: Path
) -> TablePublish:
    """Overwrite the table's data source with its full extract."""
    current = pq.read_table(current_parquet)
    return _publish_full(target, table, current, full_hyper, target.published(table))


def _publish_full(
    target: PublishTarget,
    table: str,
    current: pa.Table,
    full_hyper: Path,
    published: Published,
    diff_seconds: float = 0.0,
) -> TablePublish:
    """Overwrite the data source with the full extract, then store its fingerprints under the
    next generation, as an incremental publish does: a later incremental run diffs against
    exactly what the data source holds."""
    name = target.route.datasource_name(table)
    fingerprints = changes.document_fingerprints(table, current)
    generation = published.generation + 1
    digest = _content_digest(target.tenant_id, name, fingerprints)
    batch_id = f"{name}:replace:g{generation}:{digest}"
    _register(target, batch_id, table, name)
    key = list(changes.document_key(table))
    target.mark_unconfirmed(table, published.generation, fingerprints.select(key), full=True)
    try:
        outcome = target.publisher.publish_replace(full_hyper, name, target.route.project)
    except PublishFailed as exc:
        _record_replace(target, batch_id, name, exc.outcome)
        raise
    _record_replace(target, batch_id, name, outcome)
    target.confirm(table, fingerprints, generation)
    return TablePublish(
        table,
        name,
        "replace",
        documents_sent=fingerprints.num_rows,
        outcome=outcome,
        diff_seconds=diff_seconds,
    )


def publish_table_incremental(
    target: PublishTarget, table: str, current_parquet: Path, full_hyper: Path
) -> TablePublish:
    """Send the documents changed, new and removed since the last successful publish (or create
    the data source)."""
    name = target.route.datasource_name(table)
    current = pq.read_table(current_parquet)
    published = target.published(table)
    exists = target.publisher.find_datasource(name, target.route.project) is not None
    started = time.perf_counter()
    diff = changes.diff_documents(table, published.fingerprints if exists else None, current)
    diff_seconds = time.perf_counter() - started
    unconfirmed = target.unconfirmed(table, published.generation) if exists else None
    if exists and (published.fingerprints is None or (unconfirmed and unconfirmed.full)):
        # What the data source holds is unknown (no fingerprints, or a whole extract whose
        # outcome was never recorded): only the full extract makes it right, removals included.
        return _publish_full(target, table, current, full_hyper, published, diff_seconds)
    sent, removed = diff.upserted_ids, diff.removed_ids
    if unconfirmed is not None:
        sent, removed = _with_unconfirmed(sent, removed, unconfirmed.ids, diff)
    if exists and sent.num_rows == 0 and removed.num_rows == 0:
        return TablePublish(table, name, "unchanged", diff_seconds=diff_seconds)
    generation = published.generation + 1
    digest = _content_digest(
        target.tenant_id, name, changes.rows_for(diff.current_fingerprints, sent), removed
    )
    # The generation keeps a state that comes back (A -> B -> A) from reusing the batch id of
    # its first publish; within one generation a retry of the same content is the same batch.
    batch_id = f"{name}:g{generation}:{digest}"
    _register(target, batch_id, table, name)
    mode = "update" if exists else "create"
    done = target.ledger.get(batch_id)
    if exists and done is not None and done.status == "succeeded":
        # It succeeded but the run ended before the fingerprints were written: Tableau holds
        # these documents at these versions already.
        target.confirm(table, diff.current_fingerprints, generation)
        return TablePublish(table, name, "unchanged", diff_seconds=diff_seconds)
    payload_rows = changes.rows_for(current, sent) if exists else current
    staging = target.state / "staging"
    payload_parquet = staging / f"{table}.payload.parquet"
    lake.write_parquet(payload_parquet, payload_rows)
    payload_hyper = staging / f"{table}.payload.hyper"
    target.writer.write_table(payload_parquet, payload_hyper, table, schema=current.schema)
    target.mark_unconfirmed(
        table,
        published.generation,
        pa.concat_tables([sent, removed.cast(sent.schema)]),
        full=not exists,
    )
    try:
        outcome = target.publisher.publish_incremental(
            payload_hyper,
            name,
            target.route.project,
            table,
            TABLES[table].key[1],
            batch_id,
            full_hyper_path=full_hyper,
            removed_keys=removed if exists else None,
        )
    except PublishFailed as exc:
        target.ledger.record_outcome(exc.outcome)
        raise
    target.ledger.record_outcome(outcome)
    # The audit trail: which document versions this batch put in Tableau.
    document_column = next(c for c in sent.column_names if c != "tenant_id")
    record_published(
        target.ledger.engine, batch_id, target.tenant_id, table, document_column, payload_rows
    )
    # Only now: a failed batch must be found again by the next run's diff.
    target.confirm(table, diff.current_fingerprints, generation)
    return TablePublish(
        table,
        name,
        mode,
        documents_sent=sent.num_rows,
        outcome=outcome,
        documents_removed=removed.num_rows if exists else 0,
        diff_seconds=diff_seconds,
    )


def _with_unconfirmed(
    sent: pa.Table, removed: pa.Table, unconfirmed: pa.Table, diff: changes.DocumentChanges
) -> tuple[pa.Table, pa.Table]:
    """Add the documents of an unconfirmed batch: Tableau may hold them at the version that
    batch sent, so those still in the table are sent again and the others deleted."""
    key = sent.column_names
    ids = unconfirmed.select(key).cast(sent.schema)
    now = diff.current_fingerprints.select(key)
    present = ids.join(now, keys=key, join_type="left semi")
    gone = ids.join(now, keys=key, join_type="left anti")
    return _distinct(sent, present), _distinct(removed.cast(sent.schema), gone)


def _distinct(*tables: pa.Table) -> pa.Table:
    key = tables[0].column_names
    union = pa.concat_tables(tables).group_by(key, use_threads=False).aggregate([])
    return union.select(key).sort_by([(column, "ascending") for column in key])


def _record_replace(
    target: PublishTarget, batch_id: str, name: str, outcome: PublishOutcome
) -> None:
    """The publisher's ledger tracks incremental batches itself; a replace is recorded here."""
    target.ledger.put(
        BatchRecord(
            batch_id=batch_id,
            request_id=batch_id,
            datasource_name=name,
            status="succeeded" if outcome.succeeded else "failed",
            job_id=outcome.job_id,
            finish_code=outcome.finish_code,
            notes=tuple(outcome.notes),
        )
    )
    target.ledger.record_outcome(dataclasses.replace(outcome, batch_id=batch_id))


def _register(target: PublishTarget, batch_id: str, table: str, name: str) -> None:
    target.ledger.register(
        batch_id,
        tenant_id=target.tenant_id,
        table_name=table,
        datasource_name=name,
        site=target.route.site,
        project=target.route.project,
    )


def _content_digest(
    tenant_id: str, name: str, rows: pa.Table, removed: pa.Table | None = None
) -> str:
    """Deterministic from what is sent (the sent documents' fingerprints and the removed
    documents' keys): the same changes give the same digest."""
    digest = hashlib.sha256(f"{tenant_id}|{name}".encode())
    for row in sorted(map(repr, rows.to_pylist())):
        digest.update(row.encode())
    if removed is not None and removed.num_rows:
        digest.update(b"\x1eremoved\x1e")
        for row in sorted(map(repr, removed.to_pylist())):
            digest.update(row.encode())
    return digest.hexdigest()[:32]
