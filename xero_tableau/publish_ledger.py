"""The Tableau publish ledger in the state DB: incremental batches survive the process.

:class:`DbPublishLedger` keeps the records of the in-memory ledger in ``tableau_publish_batches``.
A succeeded batch is final, and a no-op for every later run and every other process; a batch id
reused for different data is refused; nothing pending is dropped. Every write is one atomic
upsert, never a read-then-write, so two processes may share the ledger. It lives at the top level
because ``store/`` never imports ``tableau/``.

This package must never import dagster.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.store.db import as_utc, insert_or_ignore
from xero_tableau.store.db import tableau_publish_batches as batches
from xero_tableau.tableau.outcome import BatchRecord, PublishOutcome

__all__ = ["DbPublishLedger", "LedgerEntry"]

Status = Literal["pending", "succeeded", "failed"]
_UNSENT = ""  # request_id of a registered batch that was never attempted
#: Columns a later ``put`` of the same batch overwrites (``attempt`` is incremented instead).
_UPDATED_ON_PUT = (
    "datasource_name",
    "request_id",
    "status",
    "job_id",
    "finish_code",
    "notes",
    "failures",
    "updated_at",
)


@dataclass(frozen=True)
class LedgerEntry:
    """One row of ``tableau_publish_batches``: the batch record plus where it goes and what it
    cost. ``attempt`` counts the times the batch was started (put as pending)."""

    batch_id: str
    tenant_id: str | None
    table_name: str | None
    datasource_name: str
    site: str | None
    project: str | None
    mode: str | None
    request_id: str
    attempt: int
    failures: int
    status: Status
    job_id: str | None
    finish_code: int | None
    notes: tuple[str, ...]
    rows_sent: int | None
    duration_s: float | None
    created_at: datetime
    updated_at: datetime

    @property
    def sent(self) -> bool:
        """False for a batch only registered: nothing was sent to Tableau yet."""
        return self.request_id != _UNSENT

    @property
    def record(self) -> BatchRecord:
        """The publisher's view of this row."""
        return BatchRecord(
            batch_id=self.batch_id,
            request_id=self.request_id,
            datasource_name=self.datasource_name,
            status=self.status,
            job_id=self.job_id,
            finish_code=self.finish_code,
            notes=self.notes,
            failures=self.failures,
            updated_at=self.updated_at,
        )


class DbPublishLedger:
    """A :class:`~xero_tableau.tableau.outcome.PublishLedger` on the state DB (SQLite or
    PostgreSQL), safe for several processes. Pass it as ``TableauPublisher(ledger=...)``."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        """``engine`` from :func:`xero_tableau.store.db.connect` (which creates the table);
        ``clock`` (UTC-aware) is injectable for tests."""
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        insert_or_ignore(engine, batches)  # refuses any other database at once

    # ------------------------------------------------------------------ PublishLedger

    def get(self, batch_id: str) -> BatchRecord | None:
        """The batch's last record, or None if it was never attempted (a batch only
        :meth:`register`-ed counts as never attempted)."""
        entry = self.entry(batch_id)
        return entry.record if entry is not None and entry.sent else None

    def put(self, record: BatchRecord) -> None:
        """Store the batch's record (one atomic upsert), keeping the context given by
        :meth:`register`. A ``succeeded`` row is never downgraded (see the module docstring)."""
        now = self._clock()
        started = 1 if record.status == "pending" else 0
        values = {
            "batch_id": record.batch_id,
            "datasource_name": record.datasource_name,
            "request_id": record.request_id,
            "status": record.status,
            "job_id": record.job_id,
            "finish_code": record.finish_code,
            "notes": json.dumps(list(record.notes)),
            "failures": record.failures,
            "attempt": started,
            "created_at": now,
            "updated_at": record.updated_at,
        }
        stmt = insert_or_ignore(self.engine, batches).values(**values)
        excluded = stmt.excluded
        update = {name: excluded[name] for name in _UPDATED_ON_PUT}
        update["attempt"] = batches.c.attempt + started
        stmt = stmt.on_conflict_do_update(
            index_elements=[batches.c.batch_id],
            set_=update,
            where=sa.or_(batches.c.status != "succeeded", excluded.status == "succeeded"),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # ------------------------------------------------------------------ context and outcomes

    def register(
        self,
        batch_id: str,
        *,
        tenant_id: str,
        table_name: str,
        datasource_name: str,
        site: str | None = None,
        project: str | None = None,
    ) -> LedgerEntry:
        """Record a batch as pending *before* anything is sent, with what it belongs to, so a
        crash before the first job still leaves it in :meth:`pending_batches`. Idempotent;
        raises ValueError if the batch id is already used for another tenant, table or data
        source (batch ids must never be reused)."""
        now = self._clock()
        stmt = (
            insert_or_ignore(self.engine, batches)
            .values(
                batch_id=batch_id,
                tenant_id=tenant_id,
                table_name=table_name,
                datasource_name=datasource_name,
                site=site,
                project=project,
                request_id=_UNSENT,
                attempt=0,
                failures=0,
                status="pending",
                notes="[]",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[batches.c.batch_id])
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            # Fill context a bare put() left empty (the publisher may have run first).
            conn.execute(
                sa.update(batches)
                .where(batches.c.batch_id == batch_id, batches.c.tenant_id.is_(None))
                .values(tenant_id=tenant_id, table_name=table_name, site=site, project=project)
            )
            row = conn.execute(sa.select(batches).where(batches.c.batch_id == batch_id)).one()
        entry = _entry(row._mapping)
        theirs = (entry.tenant_id, entry.table_name, entry.datasource_name)
        if theirs != (tenant_id, table_name, datasource_name):
            raise ValueError(
                f"batch {batch_id!r} already belongs to tenant {entry.tenant_id}, table "
                f"{entry.table_name}, data source {entry.datasource_name!r}; batch ids must not "
                "be reused"
            )
        return entry

    def record_outcome(self, outcome: PublishOutcome) -> None:
        """Add what the publisher measured (mode, rows sent, duration, job) to the outcome's
        batch; call it after ``publish_incremental`` returned or raised ``PublishFailed``."""
        if outcome.batch_id is None:
            raise ValueError("the outcome names no batch")
        values: dict[str, Any] = {
            "mode": outcome.mode,
            "duration_s": outcome.duration_seconds,
            "updated_at": self._clock(),
        }
        if outcome.rows_sent is not None:
            values["rows_sent"] = outcome.rows_sent
        if outcome.site:
            values["site"] = outcome.site
        if outcome.project:
            values["project"] = outcome.project
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(batches).where(batches.c.batch_id == outcome.batch_id).values(**values)
            )

    # ------------------------------------------------------------------ queries

    def entry(self, batch_id: str) -> LedgerEntry | None:
        """The whole row of one batch (registered or attempted), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(batches).where(batches.c.batch_id == batch_id)).first()
        return None if row is None else _entry(row._mapping)

    def pending_batches(self, tenant_id: str) -> list[LedgerEntry]:
        """The tenant's batches not yet published (pending or failed), oldest first: what the
        next run must resend, under the same batch id, before anything newer."""
        query = (
            sa.select(batches)
            .where(batches.c.tenant_id == tenant_id, batches.c.status != "succeeded")
            .order_by(batches.c.created_at, batches.c.batch_id)
        )
        with self.engine.connect() as conn:
            return [_entry(row._mapping) for row in conn.execute(query)]

    def history(self, tenant_id: str, limit: int = 50) -> list[LedgerEntry]:
        """The tenant's most recently updated batches, newest first (for metadata, audits)."""
        query = (
            sa.select(batches)
            .where(batches.c.tenant_id == tenant_id)
            .order_by(batches.c.updated_at.desc(), batches.c.batch_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_entry(row._mapping) for row in conn.execute(query)]


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        batch_id=row["batch_id"],
        tenant_id=row["tenant_id"],
        table_name=row["table_name"],
        datasource_name=row["datasource_name"],
        site=row["site"],
        project=row["project"],
        mode=row["mode"],
        request_id=row["request_id"],
        attempt=row["attempt"],
        failures=row["failures"],
        status=cast(Status, row["status"]),
        job_id=row["job_id"],
        finish_code=row["finish_code"],
        notes=tuple(json.loads(row["notes"] or "[]")),
        rows_sent=row["rows_sent"],
        duration_s=row["duration_s"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
    )
