"""``tenant_publish`` against the Tableau sandbox (real TSC over HTTP): what an incremental publish
sends (removals included), batch ids across generations, crash windows, replace <-> incremental,
and one table's failure never stopping the others.

Every test reads the published data source back from the sandbox's storage and compares it with
the last table state, row for row.
"""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine

from xero_tableau.sandbox.credentials import tableau_env
from xero_tableau.sandbox.tableau_app import RunningTableauSandbox
from xero_tableau.settings import Settings
from xero_tableau.store import db, lake
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.outcome import PublishTimeout
from xero_tableau.tenant_publish import publish_tenant, route_for
from xero_tableau.transform.schema import TABLES, arrow_schema
from xero_tableau_tests.conftest import StartTableau
from xero_tableau_tests.publish_harness import Harness, Line

D = Decimal
# INV-1 has two lines, INV-2 one, INV-3 one.
S0: list[Line] = [
    ("INV-1", 1, D("100.10"), "Acme"),
    ("INV-1", 2, D("-0.05"), "Acme"),
    ("INV-2", 1, D("2500.00"), "Bolt"),
    ("INV-3", 1, D("0.01"), "Bolt"),
]


GENERATION_KEY = b"xt_publish_generation"


def generation(fingerprints: Path) -> int | None:
    """The publish generation a fingerprints file carries (None: it carries none)."""
    value = (pq.read_schema(fingerprints).metadata or {}).get(GENERATION_KEY)
    return None if value is None else int(value)


def renamed(lines: list[Line], contact: str, new: str) -> list[Line]:
    """Every line of ``contact``'s invoices with the contact renamed (Xero does not bump the
    invoices' UpdatedDateUTC for that)."""
    return [(i, n, a, new if c == contact else c) for i, n, a, c in lines]


@pytest.fixture(scope="module")
def writer() -> Iterator[HyperWriter]:
    with HyperWriter() as hyper:
        yield hyper


@pytest.fixture
def tableau(start: StartTableau) -> RunningTableauSandbox:
    return start()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.connect(f"sqlite:///{tmp_path / 'state.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def harness(
    tableau: RunningTableauSandbox, writer: HyperWriter, engine: Engine, tmp_path: Path
) -> Harness:
    return Harness(tableau, writer, engine, tmp_path / "work")


# ------------------------------------------------------------------------------ removals


def test_removed_documents_are_deleted_with_the_changes_in_one_request(harness: Harness) -> None:
    assert harness.publish(S0).mode == "create"
    assert harness.stored() == sorted(S0)
    # INV-1 loses a line and changes, INV-3 is gone (a voided draft losing its lines, a
    # quarantined newest version), INV-4 is new.
    state: list[Line] = [
        ("INV-1", 1, D("99.99"), "Acme"),
        ("INV-2", 1, D("2500.00"), "Bolt"),
        ("INV-4", 1, D("12.34"), "Crux"),
    ]
    before = harness.updates()
    entry = harness.publish(state)
    assert harness.stored() == sorted(state)
    assert harness.updates() == before + 1  # deletions ride in the same update_hyper_data
    assert entry.mode == "update" and entry.error is None
    assert entry.documents_sent == 2 and entry.documents_removed == 1
    assert entry.outcome is not None and entry.outcome.rows_sent == 2


def test_a_batch_of_removals_only_is_still_sent(harness: Harness) -> None:
    harness.publish(S0)
    state = [line for line in S0 if line[0] != "INV-2"]
    entry = harness.publish(state)
    assert harness.stored() == sorted(state)
    assert entry.mode == "update" and entry.documents_removed == 1 and entry.documents_sent == 0
    emptied = harness.publish([])  # every document gone
    assert harness.stored() == []
    assert emptied.documents_removed == 2
    assert harness.publish(S0).documents_sent == 3  # and back
    assert harness.stored() == sorted(S0)


# ------------------------------------------------------------------------------ generations


@pytest.mark.parametrize("reread", [False, True], ids=["same-read", "re-read"])
def test_a_state_that_comes_back_is_published_again(harness: Harness, reread: bool) -> None:
    """Contact renamed Bolt -> Volt -> Bolt -> Volt: the fourth state has the same content as
    the second, and must still be sent. Re-read: the lines were fetched again in between (same
    fingerprints, other ``fetched_at_utc``), which used to raise PublishError on every run."""
    harness.publish(S0)
    a, b = renamed(S0, "Bolt", "Volt"), S0
    for state in (a, b, a, b, a):
        entry = harness.publish(state, reread=reread)
        assert harness.stored() == sorted(state)
        assert entry.mode == "update" and entry.documents_sent == 2, entry
    assert generation(harness.fingerprints) == 6


def test_old_fingerprints_without_a_generation_still_load(harness: Harness) -> None:
    harness.publish(S0)
    old = pq.read_table(harness.fingerprints)
    assert (old.schema.metadata or {})[GENERATION_KEY] == b"1"
    pq.write_table(old.replace_schema_metadata(None), harness.fingerprints)
    assert generation(harness.fingerprints) is None
    state = renamed(S0, "Acme", "Apex")
    entry = harness.publish(state)
    assert entry.mode == "update" and entry.documents_sent == 1
    assert harness.stored() == sorted(state)
    assert generation(harness.fingerprints) == 1  # a file without one is generation 0


# ------------------------------------------------------------------------------ crash windows


@pytest.mark.parametrize("reread", [False, True], ids=["same-read", "re-read"])
def test_success_without_fingerprints_written_is_a_noop_on_retry(
    harness: Harness, reread: bool
) -> None:
    """The update succeeded, then the run died before the fingerprints were written: the next
    run finds the batch succeeded in the ledger (same generation, same content) and sends
    nothing, even when the lines were read again in between."""
    harness.publish(S0)
    saved = harness.fingerprints.read_bytes()
    state = renamed(S0, "Bolt", "Volt")
    assert harness.publish(state).mode == "update"
    harness.fingerprints.write_bytes(saved)  # as if the run had died before writing them
    before = harness.updates()
    retry = harness.publish(state, reread=reread)
    assert retry.mode == "unchanged" and retry.error is None
    assert harness.updates() == before  # not sent twice
    assert harness.stored() == sorted(state)
    assert generation(harness.fingerprints) == 2
    assert harness.publish(state).mode == "unchanged"


def test_an_unconfirmed_batch_is_sent_again_when_the_data_went_back(harness: Harness) -> None:
    """The job timed out (Tableau applied it after all), then the data went back to what was
    last confirmed: the diff against the confirmed fingerprints is empty, yet Tableau holds the
    unconfirmed version, so its documents are sent again."""
    harness.publish(S0)
    state = renamed(S0, "Bolt", "Volt")
    harness.tableau.sandbox.config.job_delay = 3600.0
    with (
        harness.publisher(poll_timeout=1.0) as slow,
        pytest.raises(PublishTimeout),
    ):
        harness.publish(state, publisher=slow)
    harness.tableau.sandbox.config.job_delay = 0.0
    assert harness.stored() == sorted(state)  # applied, though never confirmed
    entry = harness.publish(S0)
    assert entry.mode == "update" and entry.documents_sent == 2
    assert harness.stored() == sorted(S0)
    assert harness.publish(S0).mode == "unchanged"


def test_missing_fingerprints_of_an_existing_data_source_publish_the_full_extract(
    harness: Harness,
) -> None:
    """Nothing known about what the data source holds: only the full extract makes it right
    (a diff against nothing would keep documents removed since)."""
    harness.publish(S0)
    harness.fingerprints.unlink()
    state = [line for line in S0 if line[0] != "INV-3"]
    entry = harness.publish(state)
    assert harness.stored() == sorted(state)
    assert entry.mode == "replace"
    assert harness.publish(state).mode == "unchanged"


# ------------------------------------------------------------------------------ replace mode


def test_replace_then_incremental_continues_from_what_the_replace_published(
    harness: Harness,
) -> None:
    harness.publish(S0)  # incremental create: generation 1
    one = renamed(S0, "Bolt", "Volt")
    two = [line for line in one if line[0] != "INV-3"]
    for _ in range(2):
        replaced = harness.publish(one, mode="replace")
        assert replaced.mode == "replace" and harness.stored() == sorted(one)
        # Not everything again, and the removal of INV-3 is not missed.
        entry = harness.publish(two)
        assert harness.stored() == sorted(two)
        assert entry.mode == "update"
        assert (entry.documents_sent, entry.documents_removed) == (0, 1)
    assert generation(harness.fingerprints) == 5
    assert harness.publish(two).mode == "unchanged"


# ------------------------------------------------------------------------------ tenant


def test_one_tables_failure_never_stops_the_others(
    tableau: RunningTableauSandbox, writer: HyperWriter, tmp_path: Path
) -> None:
    tenant = "0f2c4e6a-1b3d-4f5a-8c7e-9d0b1a2c3e4f"
    settings = Settings.from_env(
        {"XT_HOME": str(tmp_path / "home"), **tableau_env(tableau.base_url)}
    )
    tables_dir = lake.tenant_dir(settings.lake_dir, tenant) / "tables"
    hyper_dir = settings.hyper_dir / tenant
    tables_dir.mkdir(parents=True)
    for name, spec in TABLES.items():
        schema = arrow_schema(spec)
        pq.write_table(schema.empty_table(), tables_dir / f"{name}.parquet")
        writer.write_table(tables_dir / f"{name}.parquet", hyper_dir / f"{name}.hyper", name)
    broken = next(iter(TABLES))
    (hyper_dir / f"{broken}.hyper").write_bytes(b"not a hyper file")  # Tableau answers 400
    engine = db.connect(settings.database_url)
    lines: list[str] = []
    try:
        result = publish_tenant(settings, engine, tenant, writer, lines.append)
    finally:
        engine.dispose()
    assert [t.table for t in result.tables] == list(TABLES)
    assert [t.table for t in result.failed] == [broken]
    failed = result.failed[0]
    assert failed.mode == "failed" and failed.error and "400" in failed.error
    assert any(line.startswith(f"{broken} ->") and "FAILED" in line for line in lines)
    route = route_for(settings, tenant)
    names = {ds.name for ds in tableau.sandbox.datasources.values()}
    assert names == {route.datasource_name(t) for t in TABLES if t != broken}
    assert all(t.mode == "create" for t in result.tables if t.table != broken)


def test_tables_after_an_unexpected_error_are_still_published(
    tableau: RunningTableauSandbox, writer: HyperWriter, tmp_path: Path
) -> None:
    """A table whose local files are unreadable (a bad payload): the error is recorded for it,
    with its reason, and the tables after it are published."""
    tenant = "5e4d3c2b-1a09-4f8e-a7d6-c5b4a3928170"
    settings = Settings.from_env(
        {"XT_HOME": str(tmp_path / "home"), **tableau_env(tableau.base_url)}
    )
    tables_dir = lake.tenant_dir(settings.lake_dir, tenant) / "tables"
    hyper_dir = settings.hyper_dir / tenant
    tables_dir.mkdir(parents=True)
    for name, spec in TABLES.items():
        pq.write_table(arrow_schema(spec).empty_table(), tables_dir / f"{name}.parquet")
        writer.write_table(tables_dir / f"{name}.parquet", hyper_dir / f"{name}.hyper", name)
    broken = list(TABLES)[1]
    (tables_dir / f"{broken}.parquet").write_bytes(b"PAR1 truncated")
    engine = db.connect(settings.database_url)
    try:
        result = publish_tenant(settings, engine, tenant, writer, lambda _line: None)
    finally:
        engine.dispose()
    assert [t.table for t in result.failed] == [broken]
    assert result.failed[0].error and result.failed[0].error.startswith("ArrowInvalid")
    assert len(tableau.sandbox.datasources) == len(TABLES) - 1


def test_fingerprints_file_holds_the_generation_beside_the_keys(harness: Harness) -> None:
    harness.publish(S0)
    table = pq.read_table(harness.fingerprints)
    assert table.column_names == ["tenant_id", "invoice_id", "fingerprint"]
    assert table.schema.field("fingerprint").type == pa.uint64()
    assert (table.schema.metadata or {})[GENERATION_KEY] == b"1"
