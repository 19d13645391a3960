"""The state-DB publish ledger (``xero_tableau.publish_ledger``) on SQLite and PostgreSQL.

It must behave as the in-memory ledger the publisher was written against (one scenario runs on
both and must give the same records), survive a new engine (another process), never downgrade a
succeeded batch, and list what a later run must resend."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.store.db import connect, tableau_publish_batches
from xero_tableau.tableau.outcome import (
    BatchRecord,
    InMemoryPublishLedger,
    PublishLedger,
    PublishOutcome,
)
from xero_tableau_tests.conftest import fresh_state_db

TENANT = "8c5d4f0e-6f47-4c8e-9a43-1d2b3c4d5e6f"
OTHER = "1f0e2d3c-4b5a-4697-8877-665544332211"
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state DB: a temporary SQLite file, or the test PostgreSQL with the table emptied."""
    return fresh_state_db(request, tmp_path, request.param, tableau_publish_batches.name)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = connect(url)
    yield engine
    engine.dispose()


def record(batch_id: str = "b1", status: str = "pending", **kw: object) -> BatchRecord:
    base: dict[str, object] = {
        "batch_id": batch_id,
        "request_id": f"xt-{batch_id}-abc",
        "datasource_name": "Invoice lines",
        "status": status,
        "updated_at": T0,
    }
    base.update(kw)
    return BatchRecord(**base)  # type: ignore[arg-type]


def scenario(ledger: PublishLedger) -> list[BatchRecord | None]:
    """What the publisher does to a ledger: pending, a confirmed failure, a retry that
    succeeds, another batch, an unfinished attempt with other data."""
    seen: list[BatchRecord | None] = [ledger.get("b1")]
    ledger.put(record("b1"))
    seen.append(ledger.get("b1"))
    ledger.put(record("b1", "failed", job_id="j1", finish_code=1, notes=("boom", "x"), failures=1))
    seen.append(ledger.get("b1"))
    ledger.put(record("b1", "pending", failures=1, updated_at=T0 + timedelta(seconds=1)))
    ledger.put(record("b1", "succeeded", job_id="j2", finish_code=0, failures=1))
    seen.append(ledger.get("b1"))
    ledger.put(record("b2", request_id="xt-b2-old"))
    ledger.put(record("b2", request_id="xt-b2-new"))
    seen += [ledger.get("b2"), ledger.get("never")]
    return seen


def test_same_records_as_the_in_memory_ledger(engine: Engine) -> None:
    expected = scenario(InMemoryPublishLedger())
    got = scenario(DbPublishLedger(engine))
    assert got == expected
    assert got[3] is not None and got[3].status == "succeeded" and got[3].failures == 1
    assert got[2] is not None and got[2].notes == ("boom", "x") and got[2].updated_at == T0


def test_records_survive_a_new_engine(engine: Engine, url: str) -> None:
    DbPublishLedger(engine).put(record("b1", "failed", finish_code=2, failures=3))
    other = connect(url)
    try:
        again = DbPublishLedger(other).get("b1")
    finally:
        other.dispose()
    assert again is not None
    assert (again.status, again.failures, again.finish_code) == ("failed", 3, 2)


def test_succeeded_is_final(engine: Engine) -> None:
    ledger = DbPublishLedger(engine)
    ledger.put(record("b1", "succeeded", job_id="j1", finish_code=0))
    ledger.put(record("b1", "pending"))
    ledger.put(record("b1", "failed", finish_code=1, failures=1))
    kept = ledger.get("b1")
    assert kept is not None and (kept.status, kept.job_id) == ("succeeded", "j1")


def test_register_pending_and_history(engine: Engine) -> None:
    clock = iter(T0 + timedelta(minutes=i) for i in range(100))
    ledger = DbPublishLedger(engine, clock=lambda: next(clock))
    for batch in ("b1", "b2", "b3"):
        ledger.register(
            batch,
            tenant_id=TENANT,
            table_name="fct_invoice_lines",
            datasource_name="Invoice lines",
            site="acme",
            project="Finance",
        )
    ledger.register("o1", tenant_id=OTHER, table_name="dim_accounts", datasource_name="Accounts")
    assert ledger.get("b1") is None  # registered, never attempted
    ledger.put(record("b1", "succeeded", updated_at=T0 + timedelta(hours=1)))
    ledger.put(
        record("b2", "failed", finish_code=1, failures=1, updated_at=T0 + timedelta(hours=2))
    )
    pending = ledger.pending_batches(TENANT)
    assert [(e.batch_id, e.status, e.sent) for e in pending] == [
        ("b2", "failed", True),
        ("b3", "pending", False),
    ]
    assert pending[0].site == "acme" and pending[0].table_name == "fct_invoice_lines"
    assert [e.batch_id for e in ledger.history(TENANT)] == ["b2", "b1", "b3"]
    assert [e.batch_id for e in ledger.history(TENANT, limit=1)] == ["b2"]
    assert [e.batch_id for e in ledger.pending_batches(OTHER)] == ["o1"]
    with pytest.raises(ValueError, match="must not be reused"):
        ledger.register(
            "b1", tenant_id=TENANT, table_name="fct_payments", datasource_name="Payments"
        )


def test_attempts_and_outcome_are_recorded(engine: Engine) -> None:
    ledger = DbPublishLedger(engine)
    ledger.put(record("b1"))
    ledger.put(record("b1", "failed", finish_code=1, failures=1))
    ledger.put(record("b1", failures=1))
    ledger.register(
        "b1", tenant_id=TENANT, table_name="fct_invoice_lines", datasource_name="Invoice lines"
    )
    outcome = PublishOutcome(
        mode="incremental",
        site="acme",
        project="Finance",
        datasource_name="Invoice lines",
        datasource_id="ds",
        job_id="j3",
        finish_code=0,
        succeeded=True,
        duration_seconds=1.5,
        batch_id="b1",
        rows_sent=42,
    )
    ledger.record_outcome(outcome)
    entry = ledger.entry("b1")
    assert entry is not None
    assert (entry.attempt, entry.failures, entry.tenant_id) == (2, 1, TENANT)
    assert (entry.mode, entry.rows_sent, entry.duration_s, entry.site) == (
        "incremental",
        42,
        1.5,
        "acme",
    )
    assert entry.created_at.tzinfo is not None


def test_two_writers_share_one_row(engine: Engine, url: str) -> None:
    """Several engines (as separate processes have) write the same batch at once: no error,
    one row, and the success is what remains."""
    engines = [connect(url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def work(index: int) -> None:
        ledger = DbPublishLedger(engines[index])
        try:
            barrier.wait()
            for i in range(10):
                ledger.register(
                    "b1",
                    tenant_id=TENANT,
                    table_name="fct_invoice_lines",
                    datasource_name="Invoice lines",
                )
                ledger.put(record("b1"))
                if index == 0 and i == 5:
                    ledger.put(record("b1", "succeeded", job_id="j1", finish_code=0))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in engines:
        other.dispose()
    assert errors == []
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(tableau_publish_batches)).scalar()
            == 1
        )
    final = DbPublishLedger(engine).get("b1")
    assert final is not None and final.status == "succeeded"
