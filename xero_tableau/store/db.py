"""The state DB: SQLAlchemy Core tables, SQLite by default, PostgreSQL by URL (``XT_DATABASE_URL``).

One module declares every table so the schema can be read in one place. ``connect`` creates the
tables that are missing (the schema only grows; a migration tool can come when it first changes).
"""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

# The Xero token set, encrypted (Fernet). ``version`` is bumped by every write: a refresh commits
# only if the version it read is still current (compare-and-swap), so two processes never both
# spend one refresh token. ``previous_refresh`` keeps the token just spent, for Xero's 30-minute
# grace window should the new set be lost.
xero_tokens = sa.Table(
    "xero_tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("token_set", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
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


def connect(url: str) -> Engine:
    """An engine for ``url`` with every table created; SQLite folders are made as needed."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine
