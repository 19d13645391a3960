"""The state DB: SQLAlchemy Core tables, SQLite by default, PostgreSQL by URL (``XT_DATABASE_URL``).

One module declares every table so the schema can be read in one place. ``connect`` creates the
tables that are missing (the schema only grows; a migration tool can come when it first changes).
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

metadata = sa.MetaData()

# The Xero token set, encrypted (Fernet). ``version`` is bumped by every write. A process that
# wants to refresh first claims the row (``refresh_owner`` until ``refresh_claim_until``) with a
# compare-and-swap on the version it read, so two processes never both spend one refresh token; a
# claim left by a crashed process lapses, and the next one retries the same refresh token inside
# Xero's 30-minute grace window.
xero_tokens = sa.Table(
    "xero_tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("token_set", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("refresh_owner", sa.String(64), nullable=True),
    sa.Column("refresh_claim_until", sa.Float, nullable=True),
)

# Tenants seen in Xero's /connections; ``active`` false once disconnected.
xero_tenants = sa.Table(
    "xero_tenants",
    metadata,
    sa.Column("tenant_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("tenant_type", sa.String(32), nullable=False),
    sa.Column("connection_id", sa.String(36), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)


def normalize_url(url: str) -> str:
    """``postgresql://`` means the psycopg2 driver dagster-postgres already installs (SQLAlchemy
    2.1 would otherwise look for psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while a writer commits; NORMAL sync is durable across crashes of the
    # process (not of the OS) and halves the cost of the limiter's short write transactions.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the state DB, as aware UTC: SQLite hands them back naive, and
    every one was written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def insert_or_ignore(engine: Engine, table: sa.Table) -> Any:
    """An INSERT for ``table`` that can ``.on_conflict_do_nothing(...)``: both SQLite and
    PostgreSQL spell it that way, through their own dialect's insert."""
    name = engine.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"XT_DATABASE_URL: the state DB must be SQLite or PostgreSQL, not {name}")


def connect(url: str) -> Engine:
    """An engine for ``url`` with every table created; SQLite folders are made as needed."""
    url = normalize_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    # First the one migration that changes a key, then the columns that only get added (in
    # that order: adding content_digest first would make the key migration think it was done).
    _migrate_record_versions(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer release declares to tables an older one created (the
    schema only grows, so that is the whole migration)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"the state DB table {table.name} lacks the column {column.name}, which "
                    "cannot be added to existing rows (it is not nullable)"
                )
            kind = column.type.compile(dialect=engine.dialect)
            exists = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
            statement = f'ALTER TABLE {table.name} ADD COLUMN{exists} "{column.name}" {kind}'
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(statement))
            except OperationalError:
                # Another process added it first (SQLite has no IF NOT EXISTS for columns).
                now = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
                if column.name not in now:
                    raise


def _migrate_record_versions(engine: Engine) -> None:
    """Give a ``xero_record_versions`` made before ``content_digest`` existed the column and
    the key that includes it (the old key, without it, would drop an undated edit). Rows kept
    have no digest. Done once, under a write lock, by whichever process connects first."""
    table = xero_record_versions
    # Decided on the key, not the column: a column added without the key (by a build that only
    # added missing columns) must still get the key.
    if _has_content_key(sa.inspect(engine)):
        return
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"LOCK TABLE {table.name} IN ACCESS EXCLUSIVE MODE")
            if _has_content_key(sa.inspect(conn)):
                return
            conn.exec_driver_sql(
                f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS content_digest VARCHAR(16)"
            )
            conn.exec_driver_sql(
                f"ALTER TABLE {table.name} DROP CONSTRAINT IF EXISTS uq_xero_record_versions"
            )
            # Spelled out, not AddConstraint(key): that marks the table's own constraint as
            # created separately, and a later CreateTable in this process would leave it out.
            key = _versions_key()
            columns = ", ".join(key.columns.keys())
            conn.exec_driver_sql(
                f"ALTER TABLE {table.name} ADD CONSTRAINT {key.name} UNIQUE ({columns})"
            )
        return
    # SQLite cannot drop a table's constraint: rebuild the table in one transaction.
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        isolation = dbapi.isolation_level
        dbapi.isolation_level = None  # we issue BEGIN and COMMIT ourselves
        cursor = dbapi.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            present = [row[1] for row in cursor.execute(f"PRAGMA table_info({table.name})")]
            unique = [r[1] for r in cursor.execute(f"PRAGMA index_list({table.name})") if r[2]]
            if any(
                "content_digest" in [c[2] for c in cursor.execute(f"PRAGMA index_info('{name}')")]
                for name in unique
            ):
                cursor.execute("COMMIT")
                return
            legacy = f"{table.name}_legacy"
            for index in table.indexes:
                cursor.execute(f"DROP INDEX IF EXISTS {index.name}")
            cursor.execute(f"ALTER TABLE {table.name} RENAME TO {legacy}")
            cursor.execute(str(sa.schema.CreateTable(table).compile(dialect=engine.dialect)))
            for index in table.indexes:
                cursor.execute(str(sa.schema.CreateIndex(index).compile(dialect=engine.dialect)))
            kept = ", ".join(present)
            cursor.execute(f"INSERT INTO {table.name} ({kept}) SELECT {kept} FROM {legacy}")
            cursor.execute(f"DROP TABLE {legacy}")
            cursor.execute("COMMIT")
        except BaseException:
            if dbapi.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            dbapi.isolation_level = isolation
    finally:
        raw.close()


def _has_content_key(inspector: Any) -> bool:
    """Whether ``xero_record_versions`` has a unique key that includes ``content_digest``."""
    return any(
        "content_digest" in key["column_names"]
        for key in inspector.get_unique_constraints(xero_record_versions.name)
    )


def _versions_key() -> sa.UniqueConstraint:
    return next(
        c
        for c in xero_record_versions.constraints
        if isinstance(c, sa.UniqueConstraint) and c.name == "uq_xero_record_versions_content"
    )


# Xero rate limiting shared by every process (``xero_tableau.rate_limits``); timestamps are
# float POSIX seconds from the limiter's clock. One row per call the limiter admitted: while the
# call is in flight ``lease_expires_at`` holds its concurrency slot (a crashed process's slot frees
# itself when it passes); at release the slot is cleared and ``called_at`` moves to the release
# time, the latest moment Xero can have counted the call. Rows older than a day are pruned.
xero_rate_calls = sa.Table(
    "xero_rate_calls",
    metadata,
    # SQLite autoincrements only an INTEGER primary key; PostgreSQL gets a BIGINT.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("called_at", sa.Double, nullable=False),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.Index("ix_xero_rate_calls_tenant_called_at", "tenant_id", "called_at"),
    sa.Index("ix_xero_rate_calls_called_at", "called_at"),
    sa.Index("ix_xero_rate_calls_lease_expires_at", "lease_expires_at"),
)

# A 429's Retry-After: nobody calls ``scope`` (a tenant id, or "__app__" for the app-wide minute)
# before ``blocked_until``; ``problem`` is Xero's X-Rate-Limit-Problem ("day" stops the run).
xero_rate_blocks = sa.Table(
    "xero_rate_blocks",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("blocked_until", sa.Double, nullable=False),
    sa.Column("problem", sa.String(32), nullable=True),
)

# What Xero last said was left of a budget ("day" or "minute" of a tenant, "appminute" of
# "__app__"), from the X-*Limit-Remaining headers. ``unseen`` is how many more calls Xero counted
# than this DB knows of (another app on the connection, calls before the DB existed); the limiter
# adds them to its own count until they must have left the window.
xero_rate_server_budget = sa.Table(
    "xero_rate_server_budget",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("budget", sa.String(16), primary_key=True),
    sa.Column("remaining", sa.Integer, nullable=False),
    sa.Column("unseen", sa.Integer, nullable=False),
    sa.Column("observed_at", sa.Double, nullable=False),
)

# One row per incremental publish batch (``xero_tableau.store.publish_ledger``): the Tableau
# ``request_id`` it was sent under, its status and the job's finish code. ``batch_id`` is the
# primary key, so two processes publishing the same batch share one row (written by atomic
# upserts); a batch still ``pending`` or ``failed`` is resent by the next run.
tableau_publish_batches = sa.Table(
    "tableau_publish_batches",
    metadata,
    sa.Column("batch_id", sa.String(255), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=True),
    sa.Column("table_name", sa.String(128), nullable=True),
    sa.Column("datasource_name", sa.String(255), nullable=False),
    sa.Column("site", sa.String(255), nullable=True),
    sa.Column("project", sa.String(255), nullable=True),
    sa.Column("mode", sa.String(16), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("finish_code", sa.Integer, nullable=True),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("rows_sent", sa.BigInteger, nullable=True),
    sa.Column("duration_s", sa.Double, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "status IN ('pending', 'succeeded', 'failed')", name="ck_tableau_publish_batches_status"
    ),
    sa.Index("ix_tableau_publish_batches_tenant_status", "tenant_id", "status"),
    sa.Index("ix_tableau_publish_batches_tenant_updated_at", "tenant_id", "updated_at"),
)

# Xero webhook events as received (``xero_tableau.store.event_queue``), one row per distinct event.
# Xero delivers at least once and out of order, so ``dedupe_key`` (sha256 of tenant, category,
# type, resource and event time) is unique and a re-delivery inserts nothing. ``id`` only grows:
# the sensor that turns events into runs keeps it as its cursor. Events of a tenant not in
# ``xero_tenants`` are kept (``tenant_known`` false, status "ignored") so they can be explained.
# Life of an event: "pending" -> "requested" (``run_key`` names the Dagster run asked for it,
# ``requested_at`` when) -> "done" once that run succeeded (``run_id``, ``done_at``); a failed run
# puts it back to "pending" with ``attempts`` + 1 and ``not_before`` (the retry backoff).
xero_webhook_events = sa.Table(
    "xero_webhook_events",
    metadata,
    # SQLite autoincrements only an INTEGER primary key; PostgreSQL gets a BIGINT.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenant_known", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("run_key", sa.String(128), nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    # why an event is "ignored" (stranger tenant, event date out of bounds, planning failed)
    sa.Column("ignored_reason", sa.String(255), nullable=True),
    sa.CheckConstraint(
        "status IN ('pending', 'requested', 'done', 'ignored')",
        name="ck_xero_webhook_events_status",
    ),
    sa.Index("ix_xero_webhook_events_status_id", "status", "id"),
    sa.Index("ix_xero_webhook_events_run_key", "run_key"),
    sa.Index("ix_xero_webhook_events_resource", "resource_id"),
)

# The audit trail, Xero side: one row per version of a record a run wrote to the lake (the first
# run that saw that UpdatedDateUTC with that content: ``content_digest`` tells apart the edits
# Xero does not date, such as a line's account code), with the run, why it ran (``purpose``:
# webhook, poll, safety-poll, sweep-recent, sweep-history, sync, backfill) and how it read
# (``read_mode``: window or ids). ``xero_tableau.store.audit`` writes it and answers
# `xero-tableau audit <xero-id>`. Rows noted before the digest existed have none (NULL).
xero_record_versions = sa.Table(
    "xero_record_versions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("xero_id", sa.String(64), nullable=False),
    sa.Column("updated_at_utc", sa.DateTime(timezone=True), nullable=False),
    sa.Column("content_digest", sa.String(16), nullable=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("purpose", sa.String(32), nullable=True),
    sa.Column("read_mode", sa.String(16), nullable=True),
    sa.UniqueConstraint(
        "tenant_id",
        "entity",
        "xero_id",
        "updated_at_utc",
        "content_digest",
        name="uq_xero_record_versions_content",
    ),
    sa.Index("ix_xero_record_versions_xero_id", "xero_id"),
)

# How far each tenant's entity has been read (``xero_tableau.store.watermarks``): every change
# Xero made before ``read_through`` is in the raw lake. A read that reaches the present and
# starts at or before the previous mark moves it forward (never back); a run after a gap (an
# entity switched off, a stopped daemon) reads from it.
xero_read_watermarks = sa.Table(
    "xero_read_watermarks",
    metadata,
    sa.Column("tenant_id", sa.String(36), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("read_through", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The audit trail, Tableau side: which document versions an incremental (or creating) publish
# batch carried; a replace batch carries every document and is read from
# ``tableau_publish_batches`` alone.
tableau_published_documents = sa.Table(
    "tableau_published_documents",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("batch_id", sa.String(255), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("table_name", sa.String(128), nullable=False),
    sa.Column("document_id", sa.String(64), nullable=False),
    sa.Column("updated_at_utc", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("batch_id", "document_id", name="uq_tableau_published_documents"),
    sa.Index("ix_tableau_published_documents_document", "document_id"),
)

# Tracking slots (``xero_tableau.store.tracking_slots``): which tracking1_*/tracking2_* columns a
# tenant's tracking category fills. Given once, the first time the category is seen, and kept for
# good (renamed, archived or deleted): a slot number is never given to another category, so a
# published column means the same category across all history. Slots 1 and 2 have columns; a
# category seen once both were taken gets 3 or more (none). ``category_name`` is its name when the
# slot was given, for people reading this table; the published names are the current ones.
xero_tracking_slots = sa.Table(
    "xero_tracking_slots",
    metadata,
    sa.Column("tenant_id", sa.String(36), primary_key=True),
    sa.Column("category_id", sa.String(64), primary_key=True),
    sa.Column("slot", sa.Integer, nullable=False),
    sa.Column("category_name", sa.String(255), nullable=True),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "slot", name="uq_xero_tracking_slots_slot"),
)
