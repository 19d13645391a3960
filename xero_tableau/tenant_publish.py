"""Publish one tenant's tables to its Tableau site: what the extracts asset calls when
``TABLEAU_SERVER_URL`` is set.

``replace`` mode overwrites every table's full extract; ``incremental`` mode sends the documents
changed since the last successful publish under a batch id derived from their content. A failed
publish leaves the published fingerprints where they were: nothing dropped, nothing doubled. Two
tenants never share a data source. It lives at the top level: ``tableau/`` imports none of what it
composes.
"""

import dataclasses
import hashlib
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
    mode: str  # "replace", "create", "update", "unchanged"
    documents_sent: int = 0
    outcome: PublishOutcome | None = None
    error: str | None = None


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
            result.tables.append(entry)
            log(
                f"{table} -> {route.site or 'Default'}/{route.project}/{name}: {entry.mode}"
                + (f" ({entry.documents_sent} documents)" if entry.documents_sent else "")
                + (f" FAILED: {entry.error}" if entry.error else "")
            )
    return result


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


def publish_table_replace(
    target: PublishTarget, table: str, current_parquet: Path, full_hyper: Path
) -> TablePublish:
    """Overwrite the table's data source with its full extract."""
    name = target.route.datasource_name(table)
    fingerprints = changes.document_fingerprints(table, pq.read_table(current_parquet))
    batch_id = f"{name}:replace:{_content_digest(target.tenant_id, name, fingerprints)}"
    _register(target, batch_id, table, name)
    try:
        outcome = target.publisher.publish_replace(full_hyper, name, target.route.project)
    except PublishFailed as exc:
        _record_replace(target, batch_id, name, exc.outcome)
        raise
    _record_replace(target, batch_id, name, outcome)
    lake.write_parquet(target.fingerprints_path(table), fingerprints)
    sent = fingerprints.num_rows
    return TablePublish(table, name, "replace", documents_sent=sent, outcome=outcome)


def publish_table_incremental(
    target: PublishTarget, table: str, current_parquet: Path, full_hyper: Path
) -> TablePublish:
    """Send the documents that changed since the last successful publish (or create it)."""
    name = target.route.datasource_name(table)
    current = pq.read_table(current_parquet)
    fingerprints_path = target.fingerprints_path(table)
    previous = pq.read_table(fingerprints_path) if fingerprints_path.exists() else None
    exists = target.publisher.find_datasource(name, target.route.project) is not None
    diff = changes.diff_documents(table, previous if exists else None, current)
    sent = diff.upserted_ids
    if exists and sent.num_rows == 0:
        return TablePublish(table, name, "unchanged")
    payload_rows = changes.rows_for(current, sent) if exists else current
    staging = target.state / "staging"
    payload_parquet = staging / f"{table}.payload.parquet"
    lake.write_parquet(payload_parquet, payload_rows)
    payload_hyper = staging / f"{table}.payload.hyper"
    target.writer.write_table(payload_parquet, payload_hyper, table, schema=current.schema)
    digest = _content_digest(
        target.tenant_id, name, changes.rows_for(diff.current_fingerprints, sent)
    )
    batch_id = f"{name}:{digest}"
    _register(target, batch_id, table, name)
    try:
        outcome = target.publisher.publish_incremental(
            payload_hyper,
            name,
            target.route.project,
            table,
            TABLES[table].key[1],
            batch_id,
            full_hyper_path=full_hyper,
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
    lake.write_parquet(fingerprints_path, diff.current_fingerprints)
    return TablePublish(
        table, name, "update" if exists else "create", documents_sent=sent.num_rows, outcome=outcome
    )


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


def _content_digest(tenant_id: str, name: str, rows: pa.Table) -> str:
    """Deterministic from what is sent: the same changes give the same batch id."""
    digest = hashlib.sha256(f"{tenant_id}|{name}".encode())
    for row in sorted(map(repr, rows.to_pylist())):
        digest.update(row.encode())
    return digest.hexdigest()[:32]
