"""Property: whatever sequence of table states is published (documents added, changed, lines
removed, documents removed, a state that returns to an earlier one, lines read again, a switch to
replace mode and back), the Tableau sandbox's data source equals the last state, row for row.

Small examples (at most four invoices of at most three lines, five publishes) against one
sandbox; each example publishes to a data source of its own.
"""

import itertools
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.store import db
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau_tests.publish_harness import Harness, Line

INVOICES = ["INV-1", "INV-2", "INV-3", "INV-4"]
_line = st.tuples(
    st.sampled_from([Decimal("1.00"), Decimal("-2.50"), Decimal("0.01")]),
    st.sampled_from(["Acme", "Bolt"]),
)
#: A table state: invoice -> its lines (amount, contact name); an absent invoice has no rows.
_state = st.dictionaries(st.sampled_from(INVOICES), st.lists(_line, min_size=1, max_size=3))
#: One publish: a new state or the index of an earlier one (mod the states so far), whether the
#: lines were read again (fetched_at_utc moves), and the publish mode.
_step = st.tuples(
    st.one_of(_state, st.integers(0, 8)),
    st.booleans(),
    st.sampled_from(["incremental", "incremental", "incremental", "replace"]),
)
_examples = itertools.count()
_A1, _B1 = (Decimal("1.00"), "Acme"), (Decimal("-2.50"), "Bolt")
_ACME = {"INV-1": [_A1, _A1], "INV-2": [_A1]}
_BOLT = {"INV-1": [_B1, _A1], "INV-2": [_B1]}


def lines_of(state: dict[str, list[tuple[Decimal, str]]]) -> list[Line]:
    return sorted(
        (invoice, number, amount, contact)
        for invoice, lines in state.items()
        for number, (amount, contact) in enumerate(lines, start=1)
    )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningTableauSandbox, HyperWriter, Engine, Path]]:
    root = tmp_path_factory.mktemp("properties")
    tableau = start_tableau_sandbox(TableauSandboxConfig(storage_dir=root / "tableau"))
    engine = db.connect(f"sqlite:///{root / 'state.db'}")
    try:
        with HyperWriter() as writer:
            yield tableau, writer, engine, root
    finally:
        engine.dispose()
        tableau.stop()


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    # Each example publishes for real: no "explain" phase, which would re-run many of them.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(_step, min_size=2, max_size=5))
# A line and a whole document removed:
@example(steps=[(_ACME, False, "incremental"), ({"INV-1": [_A1]}, False, "incremental")])
# A contact renamed back and forth, the lines read again each time (a state that comes back):
@example(steps=[(s, True, "incremental") for s in (_ACME, _BOLT, 0, 1, 0)])
# Replace mode, then incremental with a removal:
@example(
    steps=[(_ACME, False, "incremental"), (_BOLT, False, "replace"), ({}, False, "incremental")]
)
def test_the_data_source_always_equals_the_last_state(
    world: tuple[RunningTableauSandbox, HyperWriter, Engine, Path],
    steps: list[tuple[dict[str, list[tuple[Decimal, str]]] | int, bool, str]],
) -> None:
    tableau, writer, engine, root = world
    n = next(_examples)
    work = Path(tempfile.mkdtemp(prefix=f"ex{n}-", dir=root))
    harness = Harness(tableau, writer, engine, work, prefix=f"ex{n}_")
    history: list[list[Line]] = []
    with harness.publisher() as publisher:
        for target, reread, mode in steps:
            lines = history[target % len(history)] if isinstance(target, int) and history else None
            if lines is None:
                lines = lines_of(target) if isinstance(target, dict) else []
            history.append(lines)
            entry = harness.publish(lines, mode=mode, reread=reread, publisher=publisher)
            assert entry.error is None
            assert harness.stored() == lines, (steps, entry)
        again = harness.publish(history[-1], publisher=publisher)
    assert again.mode == "unchanged"
    assert harness.stored() == history[-1]
