"""Read watermarks in the state DB, on SQLite and on the session's PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from xero_tableau.store import watermarks
from xero_tableau.store.db import connect, xero_read_watermarks
from xero_tableau_tests.conftest import fresh_state_db

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = fresh_state_db(request, tmp_path, request.param, xero_read_watermarks.name)
    engine = connect(url)
    yield engine
    engine.dispose()


def test_a_watermark_is_per_tenant_and_entity_and_only_moves_forward(engine: Engine) -> None:
    assert watermarks.read_through(engine, TENANT, "CreditNotes") is None
    watermarks.advance(engine, TENANT.upper(), "CreditNotes", T0, "r1")
    watermarks.advance(engine, TENANT, "CreditNotes", T0 - timedelta(hours=2), "r0")  # late
    assert watermarks.read_through(engine, TENANT, "CreditNotes") == T0
    watermarks.advance(engine, TENANT, "CreditNotes", T0 + timedelta(minutes=15), "r2")
    assert watermarks.read_through(engine, TENANT, "CreditNotes") == T0 + timedelta(minutes=15)
    assert watermarks.read_through(engine, TENANT, "Invoices") is None
    with pytest.raises(ValueError, match="timezone"):
        watermarks.advance(engine, TENANT, "Invoices", datetime(2026, 1, 1))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=-10_000, max_value=10_000), min_size=1, max_size=8))
def test_the_watermark_is_the_latest_of_any_order_of_reads(
    tmp_path_factory: pytest.TempPathFactory, offsets: list[int]
) -> None:
    folder = tmp_path_factory.mktemp("marks")
    engine = connect(f"sqlite:///{folder / 'state.db'}")
    try:
        for offset in offsets:
            watermarks.advance(engine, TENANT, "Payments", T0 + timedelta(seconds=offset))
        latest = T0 + timedelta(seconds=max(offsets))
        assert watermarks.read_through(engine, TENANT, "Payments") == latest
    finally:
        engine.dispose()
