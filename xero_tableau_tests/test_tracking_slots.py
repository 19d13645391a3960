"""Tracking columns keep their meaning: a category's slot (tracking1_* or tracking2_*) is given
once per tenant, kept in the state DB, and never moves or goes to another category, whatever
happens to the categories in Xero (rename, archive, restore, delete, new ones).

The property test drives random histories of a tenant's categories through the real persistence
(SQLite state DB, reopened now and then as after a restart); the lake tests build real tables with
``tenant_tables.build_tenant_tables`` from a generated organisation.
"""

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xero_tableau import raw_lake
from xero_tableau.entities import parse_records
from xero_tableau.sandbox.generator import generate
from xero_tableau.store import db, lake
from xero_tableau.store.tracking_slots import assign_slots, load_slots
from xero_tableau.tenant_tables import build_tenant_tables, failed_checks
from xero_tableau.transform.normalize import Reference, normalize, tracking_slots
from xero_tableau_tests.conftest import fresh_state_db
from xero_tableau_tests.test_transform import (
    CONFIG,
    TRANSACTIONAL_ENTITIES,
    as_raw,
    invoice_record,
    minimal_reference,
    records,
    write_entity,
    write_reference,
)

TENANT = "tenant-a"

# --- the rule, on random histories ----------------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["create", "rename", "archive", "restore", "delete", "use", "restart"]),
        st.integers(0, 7),  # which category
        st.integers(0, 5),  # a name, or how a deletion shows
    ),
    max_size=30,
)


class XeroCategories:
    """A tenant's tracking categories as Xero keeps them: at most two ACTIVE at once; a deleted
    one is either listed with Status DELETED or not listed any more, but stays on its lines."""

    def __init__(self) -> None:
        self.listed: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.on_lines: set[str] = set()

    def active(self) -> int:
        return sum(1 for c in self.listed.values() if c["Status"] == "ACTIVE")

    def apply(self, op: str, pick: int, value: int) -> None:
        if op == "create":
            if self.active() < 2:
                category_id = f"cat-{len(self.created):02d}"
                self.created.append(category_id)
                self.listed[category_id] = {
                    "TrackingCategoryID": category_id,
                    "Name": f"Name {value}",
                    "Status": "ACTIVE",
                    "Options": [],
                }
            return
        alive = [c for c in self.created if c in self.listed]
        if not alive:
            return
        category = self.listed[alive[pick % len(alive)]]
        status = category["Status"]
        if op == "rename":
            category["Name"] = f"Name {value}"
        elif op == "archive" and status == "ACTIVE":
            category["Status"] = "ARCHIVED"
        elif op == "restore" and status == "ARCHIVED" and self.active() < 2:
            category["Status"] = "ACTIVE"
        elif op == "delete" and status != "DELETED":
            if value % 2:
                del self.listed[category["TrackingCategoryID"]]
            else:
                category["Status"] = "DELETED"
        elif op == "use" and status == "ACTIVE":
            self.on_lines.add(category["TrackingCategoryID"])


@given(OPERATIONS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_category_keeps_its_slot_whatever_happens_to_it(operations: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/state.db"
        engine = db.connect(url)
        xero = XeroCategories()
        given_so_far: dict[str, int] = {}
        try:
            for op, pick, value in operations:
                if op == "restart":
                    engine.dispose()
                    engine = db.connect(url)
                    assert load_slots(engine, TENANT) == given_so_far
                    continue
                xero.apply(op, pick, value)
                categories = parse_records("TrackingCategories", list(xero.listed.values()))
                on_lines = sorted(xero.on_lines)
                slots = assign_slots(
                    engine,
                    TENANT,
                    lambda known, c=categories.records, lines=on_lines: tracking_slots(
                        c, known, lines
                    ),
                )
                # once given, a slot stays with its category
                assert {k: slots[k] for k in given_so_far} == given_so_far
                # every category Xero lists or a line names has one, and no two share one
                assert set(xero.listed) | xero.on_lines <= set(slots)
                assert len(set(slots.values())) == len(slots)
                # a new category takes the lowest slot no category ever held: never a reused one
                held = len(given_so_far)
                new = sorted(slots[k] for k in slots if k not in given_so_far)
                assert new == list(range(held + 1, held + 1 + len(new)))
                given_so_far = slots
            # the first two categories ever created hold the two columns for good
            assert [given_so_far.get(c) for c in xero.created[:2]] == [1, 2][: len(xero.created)]
        finally:
            engine.dispose()


def test_several_new_categories_are_ordered_active_first_then_by_name() -> None:
    listed = parse_records(
        "TrackingCategories",
        [
            {"TrackingCategoryID": "c-z", "Name": "zone", "Status": "ACTIVE", "Options": []},
            {"TrackingCategoryID": "c-a", "Name": "Area", "Status": "ARCHIVED", "Options": []},
            {"TrackingCategoryID": "c-d", "Name": "Dept", "Status": "ACTIVE", "Options": []},
        ],
    ).records
    assert tracking_slots(listed, {}, ["c-gone", "c-d"]) == {
        "c-d": 1,
        "c-z": 2,
        "c-a": 3,
        "c-gone": 4,
    }
    # given slots stay, even for a category no longer listed; new ones never take theirs
    assert tracking_slots(listed[:1], {"c-old": 1, "c-d": 2}, []) == {
        "c-old": 1,
        "c-d": 2,
        "c-z": 3,
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_giving_slots_at_once_agree(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_state_db(request, tmp_path, backend, "xero_tracking_slots")
    engine, other = db.connect(url), db.connect(url)
    listed = parse_records(
        "TrackingCategories",
        [{"TrackingCategoryID": "c-mine", "Name": "Mine", "Status": "ACTIVE", "Options": []}],
    ).records
    calls = []

    def decide(known: Any) -> dict[str, int]:
        if not calls:
            # another process gives slot 1 to its category between our read and our write
            assign_slots(other, TENANT, lambda k: tracking_slots([], k, ["c-theirs"]))
        calls.append(dict(known))
        return tracking_slots(listed, known, [])

    try:
        slots = assign_slots(engine, TENANT, decide)
        assert slots == {"c-theirs": 1, "c-mine": 2}
        assert calls == [{}, {"c-theirs": 1}]  # decided again on what the other one wrote
        assert load_slots(other, TENANT) == slots
    finally:
        engine.dispose()
        other.dispose()


# --- in the tables --------------------------------------------------------------------------------


def _category(category_id: str, name: str, status: str, options: list[tuple[str, str]]) -> dict:
    return {
        "TrackingCategoryID": category_id,
        "Name": name,
        "Status": status,
        "Options": [{"TrackingOptionID": o, "Name": n, "Status": "ACTIVE"} for o, n in options],
    }


def _element(category: dict, option: int = 0) -> dict:
    chosen = category["Options"][option]
    return {
        "TrackingCategoryID": category["TrackingCategoryID"],
        "TrackingOptionID": chosen["TrackingOptionID"],
        "Name": category["Name"],
        "Option": chosen["Name"],
    }


def _columns(table: pa.Table) -> list[tuple]:
    names = ["tracking1_category_id", "tracking1_option_id", "tracking2_category_id"]
    return [tuple(row.values()) for row in table.select(names).to_pylist()]


def test_archiving_renaming_and_a_third_category_move_no_column() -> None:
    region = _category("cat-r", "Region", "ACTIVE", [("opt-n", "North")])
    service = _category("cat-s", "Service Line", "ACTIVE", [("opt-a", "Advisory")])
    doc = invoice_record("inv", "10.00", lines=2)
    doc["LineItems"][0]["Tracking"] = [_element(service), _element(region)]
    doc["LineItems"][1]["Tracking"] = [_element(region)]
    raw = {"Invoices": as_raw("Invoices", [doc])}

    def build(categories: list[dict], slots: dict[str, int]) -> dict[str, pa.Table]:
        reference = Reference(
            organisation=minimal_reference().organisation,
            accounts=minimal_reference().accounts,
            tracking_categories=categories,
        )
        return normalize("t", raw, reference, slots)

    first = build([region, service], {})
    assert _columns(first["fct_invoice_lines"]) == [
        ("cat-r", "opt-n", "cat-s"),
        ("cat-r", "opt-n", None),
    ]
    slots = {"cat-r": 1, "cat-s": 2}
    # Region archived, Service renamed to sort first, a new Project takes the free active place
    project = _category("cat-p", "Project", "ACTIVE", [("opt-x", "X")])
    later = build(
        [
            {**region, "Status": "ARCHIVED"},
            {**service, "Name": "A Service"},
            project,
        ],
        slots,
    )
    assert _columns(later["fct_invoice_lines"]) == _columns(first["fct_invoice_lines"])
    dim = {(r["category_id"], r["slot"]) for r in later["dim_tracking_options"].to_pylist()}
    assert dim == {("cat-r", 1), ("cat-s", 2), ("cat-p", 3)}
    # a line of Project (slot 3, no columns) and Service: Project is on no column
    doc2 = invoice_record("inv2", "5.00", lines=1)
    doc2["LineItems"][0]["Tracking"] = [_element(project), _element(service)]
    raw["Invoices"] = as_raw("Invoices", [doc, doc2])
    lines = build([region, service, project], {**slots, "cat-p": 3})["fct_invoice_lines"]
    assert _columns(lines)[-1] == (None, None, "cat-s")


@pytest.fixture
def tenant_lake(tmp_path: Path) -> tuple[Path, str, list[dict]]:
    """One generated organisation's raw lake (as the raw assets write it)."""
    dataset = generate(dataclasses.replace(CONFIG, tenants=1, invoice_lines=300))
    (tenant_id, tenant), *_ = dataset.tenants.items()
    write_reference(tmp_path / "lake", tenant)
    for entity in TRANSACTIONAL_ENTITIES:
        write_entity(tmp_path / "lake", tenant_id, entity, records(tenant, entity))
    return tmp_path / "lake", tenant_id, records(tenant, "TrackingCategories")


def test_slots_survive_a_restart_and_a_rebuild_from_scratch_gives_the_same_tables(
    tenant_lake: tuple[Path, str, list[dict]], tmp_path: Path
) -> None:
    lake_dir, tenant_id, categories = tenant_lake
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = db.connect(url)
    first = build_tenant_tables(lake_dir, tenant_id, engine)
    by_name = {c["Name"]: c for c in categories}
    assert set(first.tracking_slots.values()) == {1, 2}
    slot_of_region = first.tracking_slots[by_name["Region"]["TrackingCategoryID"]]
    facts = {t.name: t.table for t in first.tables}["fct_invoice_lines"]
    engine.dispose()  # a new process from here on

    # Region archived (it sorted first by name), Service Line renamed, then Region deleted and
    # no longer listed: the columns never move.
    changed = [
        {**by_name["Region"], "Status": "ARCHIVED"},
        {**by_name["Service Line"], "Name": "Alpha Services"},
    ]
    raw_lake.write_reference(lake_dir, tenant_id, "TrackingCategories", changed)
    engine = db.connect(url)
    second = build_tenant_tables(lake_dir, tenant_id, engine)
    assert second.tracking_slots == first.tracking_slots
    second_facts = {t.name: t.table for t in second.tables}["fct_invoice_lines"]
    assert _columns(second_facts) == _columns(facts)
    region_rows = [
        r
        for r in second_facts.to_pylist()
        if r[f"tracking{slot_of_region}_category_id"] == by_name["Region"]["TrackingCategoryID"]
    ]
    assert region_rows
    raw_lake.write_reference(lake_dir, tenant_id, "TrackingCategories", changed[1:])
    third = build_tenant_tables(lake_dir, tenant_id, engine)
    assert third.tracking_slots == first.tracking_slots
    third_facts = {t.name: t.table for t in third.tables}["fct_invoice_lines"]
    assert _columns(third_facts) == _columns(facts)
    assert not third.blocked  # names of a deleted category are unknown: a warning, no more
    assert {f.check for f in failed_checks(lake_dir, tenant_id)} == {"known_tracking_options"}

    # from scratch: no tables on disk, same persisted slots -> identical tables
    shutil.rmtree(lake.tenant_dir(lake_dir, tenant_id) / "tables")
    rebuilt = build_tenant_tables(lake_dir, tenant_id, engine)
    assert [t.name for t in rebuilt.tables] == [t.name for t in third.tables]
    for before, after in zip(third.tables, rebuilt.tables, strict=True):
        assert after.table.equals(before.table), before.name
    engine.dispose()
