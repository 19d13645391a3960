"""The audit trail tables and query, on SQLite and on the session's PostgreSQL."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from xero_tableau.entities import PUBLISHED_TABLES
from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.store.audit import (
    content_digest,
    format_trail,
    record_published,
    record_versions,
    trail,
)
from xero_tableau.store.db import (
    connect,
    normalize_url,
    tableau_publish_batches,
    tableau_published_documents,
    xero_record_versions,
    xero_webhook_events,
)
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.tableau.outcome import BatchRecord
from xero_tableau_tests.conftest import fresh_state_db

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
INVOICE = "9d1e6ea4-6b35-4e5c-9d3b-3b7f1ad6b001"
OTHER = "9d1e6ea4-6b35-4e5c-9d3b-3b7f1ad6b002"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    tables = (
        xero_record_versions,
        tableau_published_documents,
        tableau_publish_batches,
        xero_webhook_events,
    )
    url = fresh_state_db(request, tmp_path, request.param, *(t.name for t in tables))
    engine = connect(url)
    yield engine
    engine.dispose()


def _documents(*versions: tuple[str, datetime, str]) -> pa.Table:
    return pa.table(
        {
            "id": [v[0] for v in versions],
            "updated_at_utc": [v[1] for v in versions],
            "fetched_at_utc": [v[1] + timedelta(seconds=5) for v in versions],
            "status": [v[2] for v in versions],
        }
    )


def _batch(ledger: DbPublishLedger, batch_id: str, table: str, job: str) -> None:
    ledger.register(
        batch_id,
        tenant_id=TENANT,
        table_name=table,
        datasource_name=f"xero_{table}",
        site="finance",
        project="Xero",
    )
    ledger.put(BatchRecord(batch_id, batch_id, f"xero_{table}", "succeeded", job, 0))


def test_versions_webhooks_and_publishes_of_one_record(engine: Engine) -> None:
    first = _documents((INVOICE, T0, "AUTHORISED"), (OTHER, T0, "DRAFT"))
    record_versions(
        engine, TENANT, "Invoices", first, run_id="r1", purpose="sync", read_mode="window"
    )
    # The sweep reads the same version again: its first sighting stays.
    record_versions(
        engine, TENANT, "Invoices", first, run_id="r9", purpose="sweep-recent", read_mode="window"
    )
    edited = _documents((INVOICE.upper(), T0 + timedelta(hours=1), "VOIDED"))
    record_versions(
        engine, TENANT, "Invoices", edited, run_id="r2", purpose="webhook", read_mode="ids"
    )

    queue = EventQueue(engine)
    event = {
        "resourceId": INVOICE,
        "eventDateUtc": (T0 + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": TENANT,
    }
    queue.add_batch([event], T0 + timedelta(hours=1, seconds=2), {TENANT})
    (pending,) = queue.pending()
    queue.request([pending.id], "key", T0 + timedelta(hours=1, seconds=5))
    queue.succeeded("key", "r2", T0 + timedelta(hours=1, seconds=9))

    ledger = DbPublishLedger(engine)
    _batch(ledger, "xero_fct_invoice_lines:aaa", "fct_invoice_lines", "job-1")
    lines = pa.table(
        {
            "tenant_id": [TENANT] * 3,
            "invoice_id": [INVOICE, INVOICE, OTHER],
            "line_number": [1, 2, 1],
            "updated_at_utc": [T0 + timedelta(hours=1)] * 2 + [T0],
        }
    )
    record_published(
        engine, "xero_fct_invoice_lines:aaa", TENANT, "fct_invoice_lines", "invoice_id", lines
    )
    with engine.connect() as conn:  # one row per document, not per line
        carried = conn.execute(sa.select(tableau_published_documents.c.document_id)).scalars()
        assert sorted(carried) == sorted([INVOICE, OTHER])
    _batch(ledger, "xero_fct_invoice_lines:replace:bbb", "fct_invoice_lines", "job-2")
    _batch(ledger, "xero_fct_payments:replace:ccc", "fct_payments", "job-3")  # another table

    found = trail(engine, INVOICE.upper(), PUBLISHED_TABLES)
    assert found.found
    assert [(v.status, v.run_id, v.purpose, v.read_mode) for v in found.versions] == [
        ("AUTHORISED", "r1", "sync", "window"),
        ("VOIDED", "r2", "webhook", "ids"),
    ]
    assert [(e.event_type, e.status, e.run_id) for e in found.events] == [("UPDATE", "done", "r2")]
    assert [(p.job_id, p.finish_code, p.version_updated_at) for p in found.publishes] == [
        ("job-1", 0, T0 + timedelta(hours=1)),
        ("job-2", 0, None),
    ]
    text = format_trail(found)
    for needle in ("VOIDED", "webhook", "read by ids", "job job-1", "every document (replace)"):
        assert needle in text
    assert "job-3" not in text

    nothing = trail(engine, "00000000-0000-0000-0000-000000000000", PUBLISHED_TABLES)
    assert not nothing.found and "nothing recorded" in format_trail(nothing)


def _with_content(*versions: tuple[str, datetime, str]) -> pa.Table:
    """Documents whose third column is content besides the status (a line's account code)."""
    return pa.table(
        {
            "id": [v[0] for v in versions],
            "updated_at_utc": [v[1] for v in versions],
            "fetched_at_utc": [datetime.now(UTC) for _ in versions],
            "status": ["AUTHORISED" for _ in versions],
            "account_codes": [v[2] for v in versions],
        }
    )


def test_an_edit_xero_did_not_date_is_a_version_and_a_re_read_is_not(engine: Engine) -> None:
    """Keyed on UpdatedDateUTC alone, an account recoded without a new UpdatedDateUTC left no
    trace. Without the raw records, the documents' own columns are the content."""
    note = {"engine": engine, "tenant_id": TENANT, "entity": "Invoices", "read_mode": "window"}
    record_versions(
        documents=_with_content((INVOICE, T0, "200")), run_id="r1", purpose="sync", **note
    )
    record_versions(
        documents=_with_content((INVOICE, T0, "200")), run_id="r2", purpose="sweep-recent", **note
    )
    record_versions(
        documents=_with_content((INVOICE, T0, "310")), run_id="r3", purpose="sweep-history", **note
    )
    found = trail(engine, INVOICE, PUBLISHED_TABLES)
    assert [(v.updated_at_utc, v.run_id, v.purpose) for v in found.versions] == [
        (T0, "r1", "sync"),
        (T0, "r3", "sweep-history"),
    ]
    digests = [v.content_digest or "" for v in found.versions]
    assert all(digests) and digests[0] != digests[1]
    text = format_trail(found)
    assert f"content {digests[1][:8]}" in text and "sweep-history" in text


@settings(max_examples=40, deadline=None)
@given(
    record=st.dictionaries(
        st.sampled_from(["Reference", "Total", "AccountCode", "Status", "LineItems"]),
        st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False)),
        min_size=1,
    ),
    edit=st.sampled_from(["Reference", "Total", "AccountCode", "Status", "LineItems"]),
)
def test_content_digests_follow_the_content_not_the_key_order(record: dict, edit: str) -> None:
    reordered = dict(reversed(list(record.items())))
    assert content_digest(reordered) == content_digest(record)
    changed = {**record, edit: ["changed", record.get(edit)]}
    assert content_digest(changed) != content_digest(record)


def test_digests_of_the_raw_records_tell_versions_apart(engine: Engine) -> None:
    raw = {"InvoiceID": INVOICE, "LineItems": [{"AccountCode": "200", "LineAmount": 10.5}]}
    recoded = {"InvoiceID": INVOICE, "LineItems": [{"AccountCode": "310", "LineAmount": 10.5}]}
    documents = _documents((INVOICE, T0, "AUTHORISED"))
    for run, record in (("r1", raw), ("r2", dict(reversed(list(raw.items())))), ("r3", recoded)):
        record_versions(
            engine,
            TENANT,
            "Invoices",
            documents,
            run_id=run,
            purpose="sweep-history",
            read_mode="window",
            digests=[content_digest(record)],
        )
    found = trail(engine, INVOICE, PUBLISHED_TABLES)
    assert [v.run_id for v in found.versions] == ["r1", "r3"]
    with pytest.raises(ValueError, match="digests"):
        record_versions(
            engine,
            TENANT,
            "Invoices",
            documents,
            run_id="r4",
            purpose="sync",
            read_mode="window",
            digests=[],
        )


def _legacy_versions(metadata: sa.MetaData) -> sa.Table:
    """``xero_record_versions`` as it was before content digests."""
    return sa.Table(
        "xero_record_versions",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("xero_id", sa.String(64), nullable=False),
        sa.Column("updated_at_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(32), nullable=True),
        sa.Column("read_mode", sa.String(16), nullable=True),
        sa.UniqueConstraint(
            "tenant_id", "entity", "xero_id", "updated_at_utc", name="uq_xero_record_versions"
        ),
        sa.Index("ix_xero_record_versions_xero_id", "xero_id"),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migration must find the old table, not a new one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    server = sa.engine.make_url(normalize_url(request.getfixturevalue("postgres_url")))
    name = f"legacy_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def test_a_state_db_from_before_digests_is_migrated_and_keeps_its_history(
    legacy_url: str,
) -> None:
    old = sa.create_engine(normalize_url(legacy_url))
    legacy = _legacy_versions(sa.MetaData())
    legacy.metadata.create_all(old)
    with old.begin() as conn:
        conn.execute(
            legacy.insert(),
            {
                "tenant_id": TENANT,
                "entity": "Invoices",
                "xero_id": INVOICE,
                "updated_at_utc": T0,
                "status": "AUTHORISED",
                "fetched_at": T0 + timedelta(seconds=5),
                "run_id": "r0",
                "purpose": "sync",
                "read_mode": "window",
            },
        )
    old.dispose()
    engine = connect(legacy_url)
    connect(legacy_url).dispose()  # a second process connecting finds it done
    try:
        note = {"engine": engine, "tenant_id": TENANT, "entity": "Invoices", "read_mode": "window"}
        # the first re-read after the upgrade is the version already noted (its content unknown)
        record_versions(
            documents=_with_content((INVOICE, T0, "200")),
            run_id="r1",
            purpose="sweep-recent",
            **note,
        )
        found = trail(engine, INVOICE, PUBLISHED_TABLES)
        assert [(v.run_id, v.content_digest) for v in found.versions] == [("r0", None)]
        # an undated edit after that is a version of its own
        record_versions(
            documents=_with_content((INVOICE, T0, "310")),
            run_id="r2",
            purpose="sweep-history",
            **note,
        )
        found = trail(engine, INVOICE, PUBLISHED_TABLES)
        assert [v.run_id for v in found.versions] == ["r0", "r2"]
        with engine.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(xero_record_versions)).scalar()
                == 3
            )
    finally:
        engine.dispose()


def test_a_digest_column_without_the_content_key_still_gets_the_key(tmp_path) -> None:
    """A versions table that has the content_digest column but the old key (a column added on
    its own) is migrated to the content key, not taken as done."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    _legacy_versions(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE xero_record_versions ADD COLUMN content_digest VARCHAR(16)"
        )
    engine.dispose()
    migrated = connect(url)
    try:
        keys = sa.inspect(migrated).get_unique_constraints("xero_record_versions")
        assert any("content_digest" in key["column_names"] for key in keys), keys
    finally:
        migrated.dispose()
