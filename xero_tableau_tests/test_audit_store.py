"""The audit trail tables and query, on SQLite and on the session's PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.entities import PUBLISHED_TABLES
from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.store.audit import format_trail, record_published, record_versions, trail
from xero_tableau.store.db import (
    connect,
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
