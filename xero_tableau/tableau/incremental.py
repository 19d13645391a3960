"""Incremental mode: apply one batch of changed documents with ``update_hyper_data``.

A batch deletes the target rows of its changed documents and of the documents removed since the
last publish, then inserts the changed documents' current rows, in one request, so a document's
lines are replaced as a whole and a removed document disappears. Its ``request_id`` is
deterministic (batch id + SHA-256 of the payload's rows and deleted keys), so a retry can neither
double rows nor re-apply stale data, and the ledger makes a succeeded batch a no-op. Below REST
:data:`MIN_UPDATE_DATA_VERSION` an update is refused.

This package must never import dagster.
"""

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import tableauserverclient as TSC
from tableauhyperapi import (
    Connection,
    HyperException,
    Inserter,
    TableDefinition,
    TableName,
    escape_name,
)

from xero_tableau.tableau.hyper import EXTRACT_SCHEMA, HyperWriter
from xero_tableau.tableau.jobs import JobTracker
from xero_tableau.tableau.outcome import (
    BatchRecord,
    PublishError,
    PublishFailed,
    PublishLedger,
    PublishOutcome,
)
from xero_tableau.tableau.permissions import PublishPermissions
from xero_tableau.tableau.replace import ReplacePublisher
from xero_tableau.tableau.session import Meter, TableauSession, version_tuple

__all__ = [
    "MIN_UPDATE_DATA_VERSION",
    "IncrementalPublisher",
    "Payload",
    "PayloadBuilder",
    "content_sha256",
    "delete_insert_actions",
    "find_datasource",
    "incremental_request_id",
    "keys_table_name",
]

#: ``update_hyper_data`` needs this REST version in TSC (``@api("3.13")``).
MIN_UPDATE_DATA_VERSION = "3.13"
_KEYS_SUFFIX = "__changed_keys"


def incremental_request_id(
    batch_id: str, payload_sha256: str, datasource_name: str, actions: Sequence[Mapping[str, Any]]
) -> str:
    """The deterministic ``request_id`` of an update: the same batch, payload and actions give
    the same id, so a retry (ours, or a re-run of the asset) is executed once by Tableau.

    The data source name and actions are hashed too, so one batch id reused for two tables, or
    for different actions, never collides. Readable prefix, fixed length."""
    spec = json.dumps(
        {"batch": batch_id, "ds": datasource_name, "payload": payload_sha256, "actions": actions},
        sort_keys=True,
        separators=(",", ":"),
    )
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in batch_id)[:40]
    return f"xt-{safe}-{hashlib.sha256(spec.encode()).hexdigest()[:32]}"


def keys_table_name(table: str) -> str:
    """The payload table that lists the keys the ``delete`` action reads: the changed
    documents' and the removed documents'."""
    return f"{table}{_KEYS_SUFFIX}"


def delete_insert_actions(
    table: str, condition_columns: Sequence[str], *, schema: str = EXTRACT_SCHEMA
) -> list[dict[str, Any]]:
    """Delete every target row of a changed or removed document, then insert the payload's rows.

    The delete reads the keys table (only the condition's columns: Tableau rejects a delete
    source with columns its condition does not use); the insert copies the rows by name."""
    eqs = [{"op": "eq", "source-col": col, "target-col": col} for col in condition_columns]
    condition: dict[str, Any] = eqs[0] if len(eqs) == 1 else {"op": "and", "args": eqs}
    target = {"target-schema": schema, "target-table": table}
    return [
        {
            "action": "delete",
            "source-schema": schema,
            "source-table": keys_table_name(table),
            **target,
            "condition": condition,
        },
        {"action": "insert", "source-schema": schema, "source-table": table, **target},
    ]


def content_sha256(conn: Connection, table: TableName) -> tuple[str, int]:
    """SHA-256 of a table's columns (names, types) and rows in a canonical order, plus the row
    count. Meant for update payloads (changed documents only), which are small."""
    definition = conn.catalog.get_table_definition(table)
    digest = hashlib.sha256()
    for column in definition.columns:
        digest.update(f"{column.name.unescaped}\x1f{column.type}\x1e".encode())
    order = ", ".join(str(i) for i in range(1, len(definition.columns) + 1))
    rows = 0
    with conn.execute_query(f"SELECT * FROM {table} ORDER BY {order}") as result:
        for row in result:
            rows += 1
            digest.update(
                "\x1f".join("\x00" if v is None else str(v) for v in row).encode() + b"\x1e"
            )
    return digest.hexdigest(), rows


def find_datasource(
    session: TableauSession, datasource_name: str, project_name: str
) -> TSC.DatasourceItem | None:
    """The data source of that name in that project, or None (several: a :class:`PublishError`)."""
    server = session.server
    found = session.call(
        lambda: list(server.datasources.filter(name=datasource_name, project_name=project_name))
    )
    exact = [d for d in found if d.name == datasource_name and d.project_name == project_name]
    if len(exact) > 1:
        raise PublishError(
            f"{len(exact)} data sources named {datasource_name!r} in project "
            f"{project_name!r} on site {session.site!r}; cannot tell which to update"
        )
    return exact[0] if exact else None


class PayloadBuilder:
    """Builds update payloads in a staging folder with a Hyper process.

    ``hyper``: a started writer (default: one started on first need and stopped by
    :meth:`close`). ``work_dir``: where payloads are staged (default: a temporary folder,
    removed by :meth:`close`)."""

    def __init__(self, hyper: HyperWriter | None, work_dir: Path | None) -> None:
        self._hyper = hyper
        self._own_hyper = False
        self._work_dir = work_dir
        self._own_work_dir: Path | None = None

    def close(self) -> None:
        """Stop an own Hyper process and drop an own staging folder."""
        if self._own_hyper and self._hyper is not None:
            self._hyper.close()
            self._hyper = None
            self._own_hyper = False
        if self._own_work_dir is not None:
            shutil.rmtree(self._own_work_dir, ignore_errors=True)
            self._own_work_dir = None

    def _hyper_writer(self) -> HyperWriter:
        if self._hyper is None:
            self._hyper = HyperWriter()
            self._hyper.start()
            self._own_hyper = True
        return self._hyper

    def _staging_dir(self) -> Path:
        if self._work_dir is not None:
            self._work_dir.mkdir(parents=True, exist_ok=True)
            return self._work_dir
        if self._own_work_dir is None:
            self._own_work_dir = Path(tempfile.mkdtemp(prefix="xt-publish-"))
        return self._own_work_dir

    def build(
        self,
        changed: Path,
        table: str,
        key_columns: Sequence[str],
        removed_keys: pa.Table | None = None,
    ) -> "Payload":
        """Copy the changed rows' file and add the keys table the ``delete`` action reads: the
        keys of the changed rows plus ``removed_keys`` (documents to delete with nothing to
        insert; a table holding ``key_columns``).

        The payload's SHA-256 covers its rows' *content* (:func:`content_sha256`), and the keys
        table's when documents are removed: two builds of the same rows are different bytes
        (Hyper files are not byte-reproducible), yet must give the same request id, and a batch
        that deletes other documents must not. A copy, so the caller's file is untouched."""
        if not changed.is_file():
            raise FileNotFoundError(f"changed-rows extract not found: {changed}")
        removed = _removed_rows(removed_keys, key_columns, changed)
        payload = self._staging_dir() / f"payload-{uuid.uuid4().hex}.hyper"
        shutil.copyfile(changed, payload)
        rows_table = TableName(EXTRACT_SCHEMA, table)
        keys_table = TableName(EXTRACT_SCHEMA, keys_table_name(table))
        cols = ", ".join(escape_name(c) for c in key_columns)
        try:
            with Connection(self._hyper_writer().process.endpoint, str(payload)) as conn:
                if not conn.catalog.has_table(rows_table):
                    raise PublishError(f"{changed} has no table {rows_table}")
                definition = conn.catalog.get_table_definition(rows_table)
                by_name = {c.name.unescaped: c for c in definition.columns}
                missing = [c for c in key_columns if c not in by_name]
                if missing:
                    raise PublishError(f"{changed}: table {rows_table} has no column {missing}")
                digest, rows = content_sha256(conn, rows_table)
                select = f"SELECT DISTINCT {cols} FROM {rows_table}"
                if removed:
                    removed_table = TableName(EXTRACT_SCHEMA, f"{keys_table_name(table)}__removed")
                    key_definitions = [
                        TableDefinition.Column(c, by_name[c].type, by_name[c].nullability)
                        for c in key_columns
                    ]
                    conn.catalog.create_table(TableDefinition(removed_table, key_definitions))
                    with Inserter(conn, removed_table) as inserter:
                        inserter.add_rows(removed)
                        inserter.execute()
                    conn.execute_command(
                        f"CREATE TABLE {keys_table} AS {select} "
                        f"UNION SELECT {cols} FROM {removed_table}"
                    )
                    conn.execute_command(f"DROP TABLE {removed_table}")
                    keys_digest, keys = content_sha256(conn, keys_table)
                    digest = hashlib.sha256(f"{digest}|{keys_digest}".encode()).hexdigest()
                else:
                    conn.execute_command(f"CREATE TABLE {keys_table} AS {select}")
                    count = conn.execute_scalar_query(f"SELECT COUNT(*) FROM {keys_table}")
                    keys = int(cast(int, count))
        except HyperException as exc:
            payload.unlink(missing_ok=True)
            raise PublishError(f"cannot build the update payload from {changed}: {exc}") from exc
        except BaseException:
            payload.unlink(missing_ok=True)
            raise
        return Payload(payload, rows, keys, len(removed), digest)


@dataclass(frozen=True)
class Payload:
    """A built update payload: its file, the rows it inserts, the document keys its ``delete``
    reads (changed and removed documents), how many of those are removals, and its content's
    SHA-256."""

    path: Path
    rows: int
    keys: int
    removed: int
    sha256: str


def _removed_rows(
    removed_keys: pa.Table | None, key_columns: Sequence[str], changed: Path
) -> list[list[Any]]:
    """``removed_keys`` as rows in ``key_columns`` order, distinct and sorted (no nulls)."""
    if removed_keys is None or removed_keys.num_rows == 0:
        return []
    missing = [c for c in key_columns if c not in removed_keys.column_names]
    if missing:
        raise PublishError(f"the removed keys for {changed} lack column(s) {missing}")
    columns = [removed_keys.column(c).to_pylist() for c in key_columns]
    if any(value is None for values in columns for value in values):
        raise PublishError(f"the removed keys for {changed} hold a null key")
    return [list(row) for row in sorted(set(zip(*columns, strict=True)))]


class IncrementalPublisher:
    """Applies batches of changed documents on one session, remembering them in a ledger."""

    def __init__(
        self,
        session: TableauSession,
        permissions: PublishPermissions,
        jobs: JobTracker,
        replace: ReplacePublisher,
        payloads: PayloadBuilder,
        ledger: PublishLedger | None,
    ) -> None:
        self.session = session
        self.permissions = permissions
        self.jobs = jobs
        self.replace = replace
        self.payloads = payloads
        self.ledger = ledger

    def publish(
        self,
        changed_hyper_path: Path,
        datasource_name: str,
        project: str,
        table: str,
        key_column: str,
        batch_id: str,
        *,
        full_hyper_path: Path | None = None,
        tenant_column: str | None = "tenant_id",
        removed_keys: pa.Table | None = None,
    ) -> PublishOutcome:
        """Apply one batch (see ``TableauPublisher.publish_incremental``)."""
        meter = self.session.meter()
        condition_columns = [c for c in (tenant_column, key_column) if c]
        actions = delete_insert_actions(table, condition_columns)
        # Built locally first: the request id hashes its *content*, and a missing table or
        # column fails here, before anything is sent.
        built = self.payloads.build(
            Path(changed_hyper_path), table, condition_columns, removed_keys
        )
        payload, rows, payload_sha = built.path, built.rows, built.sha256
        try:
            base_request_id = incremental_request_id(
                batch_id, payload_sha, datasource_name, actions
            )
            extra: dict[str, Any] = {"batch_id": batch_id, "request_id": base_request_id}
            previous = self._previous_attempt(batch_id, base_request_id)
            if previous is not None and previous.status == "succeeded":
                return self.jobs.outcome(
                    meter,
                    "noop",
                    project,
                    datasource_name,
                    job_id=previous.job_id,
                    finish_code=previous.finish_code,
                    succeeded=True,
                    notes=("batch already published",),
                    **extra,
                )
            failures = previous.failures if previous is not None else 0
            request_id = f"{base_request_id}-r{failures}" if failures else base_request_id
            extra["request_id"] = request_id

            project_item = self.permissions.check_can_publish(project)
            existing = find_datasource(self.session, datasource_name, project)
            if existing is None:
                return self._create(
                    full_hyper_path,
                    datasource_name,
                    project,
                    project_item,
                    meter,
                    batch_id,
                    base_request_id,
                )
            self._require_update_version()
            if built.keys == 0:  # nothing to insert and nothing to delete
                return self.jobs.outcome(
                    meter,
                    "noop",
                    project,
                    datasource_name,
                    datasource_id=existing.id,
                    succeeded=True,
                    notes=("no changed rows",),
                    rows_sent=0,
                    **extra,
                )
            if self.ledger is not None:
                self.ledger.put(
                    BatchRecord(
                        batch_id, base_request_id, datasource_name, "pending", failures=failures
                    )
                )
            server = self.session.server
            ds_id = existing.id or ""
            job = self.session.call(
                lambda: server.datasources.update_hyper_data(
                    ds_id,
                    request_id=request_id,
                    actions=cast(Sequence[Any], actions),
                    payload=str(payload),
                )
            )
        finally:
            payload.unlink(missing_ok=True)
        outcome = self.jobs.finish(
            job,
            meter,
            "incremental",
            project,
            datasource_name,
            existing.id,
            rows_sent=rows,
            **extra,
        )
        return self._settle(outcome, batch_id, base_request_id)

    def _previous_attempt(self, batch_id: str, base_request_id: str) -> BatchRecord | None:
        """The ledger's record of this batch with this data, or None to start afresh.

        Raises :class:`PublishError` if the batch id already succeeded with other data."""
        previous = self.ledger.get(batch_id) if self.ledger is not None else None
        if previous is None or previous.request_id == base_request_id:
            return previous
        if previous.status == "succeeded":
            raise PublishError(
                f"batch {batch_id!r} was already published with other data (request id "
                f"{previous.request_id}, now {base_request_id}); batch ids must not be "
                "reused for different data"
            )
        return None  # an unfinished attempt with other data: start afresh

    def _create(
        self,
        full_hyper_path: Path | None,
        datasource_name: str,
        project: str,
        project_item: TSC.ProjectItem,
        meter: Meter,
        batch_id: str,
        base_request_id: str,
    ) -> PublishOutcome:
        """The data source's first publish: the full extract (which holds the batch already)."""
        if full_hyper_path is None:
            raise PublishError(
                f"data source {datasource_name!r} does not exist in project {project!r} "
                f"on site {self.session.site!r}: pass full_hyper_path to create it"
            )
        outcome = self.replace.overwrite(
            Path(full_hyper_path),
            datasource_name,
            project_item,
            "create",
            meter,
            batch_id=batch_id,
            raise_on_failure=False,
        )
        return self._settle(outcome, batch_id, base_request_id)

    def _require_update_version(self) -> None:
        rest_version = self.session.rest_version
        if version_tuple(rest_version) < version_tuple(MIN_UPDATE_DATA_VERSION):
            raise PublishError(
                f"incremental publish needs Tableau REST API {MIN_UPDATE_DATA_VERSION}+ "
                f"(server speaks {rest_version}); use replace mode"
            )

    def _settle(self, outcome: PublishOutcome, batch_id: str, request_id: str) -> PublishOutcome:
        """Record the finished job in the ledger; raise :class:`PublishFailed` if it failed."""
        if self.ledger is not None:
            _record(self.ledger, outcome, batch_id, request_id)
        if not outcome.succeeded:
            raise PublishFailed(outcome)
        return outcome


def _record(ledger: PublishLedger, outcome: PublishOutcome, batch_id: str, request_id: str) -> None:
    """Store a finished job's batch state; a definite failure (code 1 or 2) counts once more."""
    previous = ledger.get(batch_id)
    failures = previous.failures if previous and previous.request_id == request_id else 0
    if outcome.finish_code in (1, 2):
        failures += 1
    ledger.put(
        BatchRecord(
            batch_id=batch_id,
            request_id=request_id,
            datasource_name=outcome.datasource_name,
            status="succeeded" if outcome.succeeded else "failed",
            job_id=outcome.job_id,
            finish_code=outcome.finish_code,
            notes=outcome.notes,
            failures=failures,
        )
    )
