"""Document fingerprints and diffs (``xero_tableau.transform.changes``) on small hand-made tables:
a change in any published column counts, ``fetched_at_utc`` and row order do not."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from xero_tableau.transform.changes import (
    diff_documents,
    document_fingerprints,
    document_key,
    rows_for,
)
from xero_tableau.transform.schema import TABLES, arrow_schema

T = "fct_invoice_lines"
TENANT = "t-1"


def lines(*overrides: dict[str, Any]) -> pa.Table:
    """Invoice lines: A has lines 0 and 1, B has line 0, each line overridable by index."""
    base: list[dict[str, Any]] = [
        {"invoice_id": "A", "line_number": 0, "account_code": "200", "line_amount": "10.00"},
        {"invoice_id": "A", "line_number": 1, "account_code": "400", "line_amount": "5.50"},
        {"invoice_id": "B", "line_number": 0, "account_code": "200", "line_amount": "7.00"},
    ]
    for row, extra in zip(base, overrides, strict=False):
        row.update(extra)
    schema = arrow_schema(TABLES[T])
    fetched = datetime(2025, 1, 1, tzinfo=UTC)
    data: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in base:
        full: dict[str, Any] = {
            "tenant_id": TENANT,
            "updated_at_utc": datetime(2024, 12, 1, tzinfo=UTC),
            "updated_date_local": date(2024, 12, 1),
            "fetched_at_utc": fetched,
            "document_kind": "invoice",
            **row,
        }
        full["line_amount"] = Decimal(full["line_amount"])
        for name in schema.names:
            data[name].append(full.get(name))
    return pa.table(data, schema=schema)


def ids(table: pa.Table) -> list[str]:
    return table.column("invoice_id").to_pylist()


def test_document_key() -> None:
    assert document_key(T) == ("tenant_id", "invoice_id")
    assert document_key("dim_accounts") == ("tenant_id", "account_id")
    with pytest.raises(KeyError):
        document_key("nope")


def test_changed_value_in_any_column_is_a_change() -> None:
    before = document_fingerprints(T, lines())
    assert before.column_names == ["tenant_id", "invoice_id", "fingerprint"]
    assert before.schema.field("fingerprint").type == pa.uint64()
    cases: list[dict[str, Any]] = [
        {"account_code": "201"},  # no updated_at change
        {"line_amount": "10.01"},
        {"description": "new text"},  # null -> value
        {"updated_at_utc": datetime(2024, 12, 2, tzinfo=UTC)},
        {"line_number": 5},
    ]
    for case in cases:
        changes = diff_documents(T, before, lines(case))
        assert ids(changes.changed_ids) == ["A"], case
        assert changes.new_ids.num_rows == changes.removed_ids.num_rows == 0


def test_values_swapped_between_lines_is_a_change() -> None:
    before = document_fingerprints(T, lines())
    swapped = lines({"account_code": "400"}, {"account_code": "200"})
    assert ids(diff_documents(T, before, swapped).changed_ids) == ["A"]


def test_only_fetched_at_or_row_order_is_no_change() -> None:
    current = lines()
    before = document_fingerprints(T, current)
    refetched = current.set_column(
        current.schema.get_field_index("fetched_at_utc"),
        "fetched_at_utc",
        pa.array([datetime(2025, 6, 1, tzinfo=UTC)] * 3, pa.timestamp("ms", tz="UTC")),
    )
    reordered = refetched.take([2, 1, 0]).select(list(reversed(refetched.column_names)))
    changes = diff_documents(T, before, reordered)
    assert changes.is_empty
    assert changes.current_fingerprints.equals(before)


def test_new_removed_and_added_line() -> None:
    current = lines()
    before = document_fingerprints(T, current.filter(pa.array([True, True, False])))
    extra = lines({}, {}, {"invoice_id": "A", "line_number": 2})
    previous_all = document_fingerprints(T, current)
    assert ids(diff_documents(T, before, current).new_ids) == ["B"]
    assert ids(diff_documents(T, previous_all, current.slice(0, 2)).removed_ids) == ["B"]
    added = diff_documents(T, before, extra)  # B gone, A gained line 2
    assert ids(added.changed_ids) == ["A"] and added.removed_ids.num_rows == 0
    duplicated = pa.concat_tables([current, current.slice(2, 1)])
    assert ids(diff_documents(T, previous_all, duplicated).changed_ids) == ["B"]


def test_empty_previous_means_all_new() -> None:
    current = lines()
    for previous in (None, document_fingerprints(T, current).slice(0, 0)):
        changes = diff_documents(T, previous, current)
        assert ids(changes.new_ids) == ["A", "B"]
        assert changes.changed_ids.num_rows == changes.removed_ids.num_rows == 0


def test_rows_for_selects_whole_documents() -> None:
    current = lines()
    changes = diff_documents(T, document_fingerprints(T, current), lines({"account_code": "9"}))
    selected = rows_for(current, changes.upserted_ids)
    assert ids(selected) == ["A", "A"]
    assert rows_for(current, changes.removed_ids).num_rows == 0


def test_dimension_document_is_the_row() -> None:
    table = pa.table(
        {
            "tenant_id": [TENANT, TENANT],
            "account_id": ["x", "y"],
            "account_code": ["200", "400"],
            "is_archived": [False, False],
        }
    )
    before = document_fingerprints("dim_accounts", table)
    assert before.num_rows == 2
    edited = table.set_column(2, "account_code", pa.array(["200", "401"]))
    changes = diff_documents("dim_accounts", before, edited)
    assert changes.changed_ids.column("account_id").to_pylist() == ["y"]
    archived = table.set_column(3, "is_archived", pa.array([True, False]))
    assert diff_documents("dim_accounts", before, archived).changed_ids.num_rows == 1


@pytest.mark.parametrize(
    ("table_name", "id_column"),
    [("fct_overpayments", "overpayment_id"), ("fct_prepayments", "prepayment_id")],
)
def test_credit_fact_document_is_the_row(table_name: str, id_column: str) -> None:
    """One row per over- or prepayment: the document is the row, and an allocation that only
    moves remaining_credit (or a later status) marks just that record changed."""
    assert document_key(table_name) == ("tenant_id", id_column)
    schema = arrow_schema(TABLES[table_name])
    updated = datetime(2025, 2, 1, tzinfo=UTC)

    def table(remaining: list[str], fetched: datetime) -> pa.Table:
        data: dict[str, list[Any]] = {name: [] for name in schema.names}
        for i, left in enumerate(remaining):
            row: dict[str, Any] = {
                "tenant_id": TENANT,
                id_column: f"p{i}",
                "updated_at_utc": updated,
                "updated_date_local": date(2025, 2, 1),
                "fetched_at_utc": fetched,
                "is_voided": False,
                "is_deleted": False,
                "document_kind": "received",
                "allocation_count": 0,
                "gross_amount": Decimal("100.00"),
                "remaining_credit": Decimal(left),
            }
            for name in schema.names:
                data[name].append(row.get(name))
        return pa.table(data, schema=schema)

    first = table(["100.00", "100.00"], datetime(2025, 2, 2, tzinfo=UTC))
    before = document_fingerprints(table_name, first)
    assert before.column_names == ["tenant_id", id_column, "fingerprint"]
    refetched = table(["100.00", "100.00"], datetime(2025, 3, 1, tzinfo=UTC))
    assert diff_documents(table_name, before, refetched).is_empty
    changes = diff_documents(table_name, before, table(["100.00", "40.00"], updated))
    assert changes.changed_ids.column(id_column).to_pylist() == ["p1"]
    assert changes.new_ids.num_rows == changes.removed_ids.num_rows == 0


def test_large_table_takes_the_threaded_path() -> None:
    """200,000 rows go through the threaded, vectorized path (past its 50,000-row threshold) and
    give a diff with nothing in it; its speed is measured by bench/tableau_publish.py."""
    n = 200_000
    rng = np.random.default_rng(7)
    table = pa.table(
        {
            "tenant_id": pa.array([TENANT] * n),
            "invoice_id": pa.array(rng.integers(0, n // 3, n).astype(str)),
            "line_number": pa.array(np.arange(n) % 3, pa.int32()),
            "account_code": pa.array(rng.integers(0, 50, n).astype(str)),
            "line_amount": pa.array(rng.integers(0, 10**6, n))
            .cast(pa.decimal128(38, 2))
            .cast(pa.decimal128(18, 2)),
        }
    )
    fingerprints = document_fingerprints(T, table)
    assert diff_documents(T, fingerprints, table).is_empty
