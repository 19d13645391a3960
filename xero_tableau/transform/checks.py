"""Data checks on the normalized tables: pure functions, and :data:`TABLE_CHECKS`, the one list of
which check runs on which table and how severe its failure is (the asset checks are declared from
it and run from it).

Each returns a ``CheckOutcome`` with the offending ids (a sample), so a failure in the UI says
which documents to look at, not just that something is off. An ``ERROR`` check that fails blocks
the tenant's publish (a wrong number must not reach Tableau); a ``WARN`` check only reports.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as _compute

from xero_tableau.transform.schema import TABLES

# pyarrow.compute's kernels are generated at import time, so type checkers cannot see them.
pc: Any = _compute

SAMPLE = 20

Severity = Literal["ERROR", "WARN"]
ERROR: Severity = "ERROR"
"""A wrong number (duplicated or foreign rows, money that does not add up, lines on no account):
the tenant's tables are not published until it passes."""
WARN: Severity = "WARN"
"""Every amount is right, a label or a slice is incomplete: reported, published anyway."""

# fact table -> (record id column, raw entity whose documents carry SubTotal)
SUBTOTAL_FACTS = {
    "fct_invoice_lines": ("invoice_id", "Invoices"),
    "fct_credit_note_lines": ("credit_note_id", "CreditNotes"),
    "fct_bank_transaction_lines": ("bank_transaction_id", "BankTransactions"),
    "fct_purchase_order_lines": ("purchase_order_id", "PurchaseOrders"),
}


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    failures: int
    description: str
    sample: list[str] = field(default_factory=list)


def _outcome(bad: Sequence[str], ok_text: str, bad_text: str) -> CheckOutcome:
    if not bad:
        return CheckOutcome(True, 0, ok_text)
    return CheckOutcome(False, len(bad), bad_text.format(n=len(bad)), list(bad[:SAMPLE]))


def _record_column(table_name: str) -> str:
    return TABLES[table_name].key[1]


def unique_keys(table_name: str, table: pa.Table) -> CheckOutcome:
    key = list(TABLES[table_name].key)
    counts = table.group_by(key).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts["count_all"], 1))
    bad = ["/".join(str(row[k]) for k in key[1:]) for row in dupes.select(key).to_pylist()]
    return _outcome(bad, f"{table.num_rows} rows, keys unique", "{n} duplicated key(s)")


def single_tenant(table_name: str, table: pa.Table, tenant_id: str) -> CheckOutcome:
    others = table.filter(pc.not_equal(table["tenant_id"], tenant_id))
    bad = sorted({str(t) for t in others["tenant_id"].to_pylist()})
    return _outcome(bad, f"only tenant {tenant_id}", "{n} other tenant id(s) present")


def known_accounts(table_name: str, table: pa.Table) -> CheckOutcome:
    """Lines whose account code does not resolve to an account of the tenant's chart."""
    if "account_code" not in table.column_names:
        return CheckOutcome(True, 0, "no account column")
    unresolved = pc.and_(pc.is_valid(table["account_code"]), pc.is_null(table["account_name"]))
    rows = table.filter(unresolved)
    record = _record_column(table_name)
    bad = [f"{r[record]} (account {r['account_code']})" for r in rows.to_pylist()]
    return _outcome(bad, "every account code is in the chart", "{n} line(s) with unknown accounts")


def known_tracking_options(table_name: str, table: pa.Table) -> CheckOutcome:
    """Lines whose tracking option id is not an option of the tenant's tracking categories."""
    record = _record_column(table_name)
    bad: list[str] = []
    for slot in (1, 2):
        option_id = table[f"tracking{slot}_option_id"]
        unresolved = pc.and_(
            pc.is_valid(option_id), pc.is_null(table[f"tracking{slot}_option_name"])
        )
        for row in table.filter(unresolved).to_pylist():
            bad.append(f"{row[record]} (option {row[f'tracking{slot}_option_id']})")
    return _outcome(bad, "every tracking option is known", "{n} unknown tracking option use(s)")


def tracking_categories_in_columns(table: pa.Table) -> CheckOutcome:
    """Categories of dim_tracking_options whose slot has no columns in the facts (slot 3 and up:
    a category created once both columns were taken); their options are on no fact row."""
    beyond = table.filter(pc.fill_null(pc.greater(table["slot"], 2), True))
    seen: dict[str, str] = {}
    for row in beyond.select(["category_id", "category_name", "slot"]).to_pylist():
        seen.setdefault(row["category_id"], f"{row['category_name']} (slot {row['slot']})")
    bad = [seen[k] for k in sorted(seen)]
    return _outcome(
        bad,
        "every tracking category has its tracking1/tracking2 columns",
        "{n} tracking category/categories without tracking1/tracking2 columns",
    )


def lines_sum_to_subtotal(table_name: str, table: pa.Table, documents: pa.Table) -> CheckOutcome:
    """sum(net_amount) of each document's lines equals the document's SubTotal (latest version)."""
    record, _entity = SUBTOTAL_FACTS[table_name]
    sums: dict[str, Decimal] = {}
    totals = table.group_by(record).aggregate([("net_amount", "sum")])
    for row in totals.to_pylist():
        sums[row[record]] = row["net_amount_sum"] or Decimal(0)
    latest: dict[str, tuple] = {}
    for row in documents.select(
        ["id", "updated_at_utc", "fetched_at_utc", "sub_total"]
    ).to_pylist():
        version = (row["updated_at_utc"], row["fetched_at_utc"])
        if row["id"] not in latest or version > latest[row["id"]][0]:
            latest[row["id"]] = (version, row["sub_total"])
    bad = [
        f"{doc_id} (lines {sums.get(doc_id, Decimal(0))} != SubTotal {subtotal})"
        for doc_id, (_version, subtotal) in sorted(latest.items())
        if subtotal is not None and sums.get(doc_id, Decimal(0)) != subtotal
    ]
    return _outcome(
        bad, f"{len(latest)} documents: lines sum to SubTotal", "{n} document(s) out of balance"
    )


def journals_balance(table: pa.Table) -> CheckOutcome:
    """Each manual journal's lines sum to zero (debits equal credits)."""
    sums = table.group_by("manual_journal_id").aggregate([("line_amount", "sum")])
    bad = [
        f"{row['manual_journal_id']} (sum {row['line_amount_sum']})"
        for row in sums.to_pylist()
        if row["line_amount_sum"] not in (None, Decimal(0))
    ]
    return _outcome(bad, f"{sums.num_rows} journals balance", "{n} journal(s) out of balance")


# --- which check runs on which table ------------------------------------------------------------


@dataclass(frozen=True)
class CheckInputs:
    """What a check may look at besides its table."""

    tenant_id: str
    documents: Mapping[str, pa.Table]  # raw entity -> its documents (latest and older versions)


@dataclass(frozen=True)
class TableCheck:
    name: str
    description: str
    applies_to: Callable[[str], bool]
    run: Callable[[str, pa.Table, CheckInputs], CheckOutcome]
    severity: Severity
    """ERROR blocks the tenant's publish when the check fails; WARN only reports."""
    columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Raw document columns the check reads, per entity (beyond what normalize reads)."""

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR


def _is_fact(name: str) -> bool:
    return name.startswith("fct_")


def _has_accounts(name: str) -> bool:
    return _is_fact(name) and "account_code" in TABLES[name].names


def _has_tracking(name: str) -> bool:
    """Facts whose lines carry Xero tracking. Payments carry none of their own: their tracking
    columns are always empty, so the check would say nothing."""
    if not _is_fact(name) or name == "fct_payments":
        return False
    return "tracking1_option_id" in {c.name for c in TABLES[name].columns}


def _subtotal_documents(name: str, table: pa.Table, inputs: CheckInputs) -> CheckOutcome:
    return lines_sum_to_subtotal(name, table, inputs.documents[SUBTOTAL_FACTS[name][1]])


TABLE_CHECKS: list[TableCheck] = [
    TableCheck(
        "unique_keys",
        "Keys are unique.",
        lambda _name: True,
        lambda name, table, _inputs: unique_keys(name, table),
        ERROR,
    ),
    TableCheck(
        "single_tenant",
        "No row of another tenant.",
        lambda _name: True,
        lambda name, table, inputs: single_tenant(name, table, inputs.tenant_id),
        ERROR,
    ),
    TableCheck(
        "known_accounts",
        "Every account code is in the chart.",
        _has_accounts,
        lambda name, table, _inputs: known_accounts(name, table),
        ERROR,
    ),
    TableCheck(
        "known_tracking_options",
        "Every tracking option is one of the tenant's.",
        _has_tracking,
        lambda name, table, _inputs: known_tracking_options(name, table),
        WARN,
    ),
    TableCheck(
        "tracking_categories_in_columns",
        "Every tracking category has tracking1/tracking2 columns in the facts.",
        lambda name: name == "dim_tracking_options",
        lambda _name, table, _inputs: tracking_categories_in_columns(table),
        WARN,
    ),
    TableCheck(
        "lines_sum_to_subtotal",
        "Each document's lines sum to its SubTotal.",
        lambda name: name in SUBTOTAL_FACTS,
        _subtotal_documents,
        ERROR,
        columns={entity: ["sub_total"] for _record, entity in SUBTOTAL_FACTS.values()},
    ),
    TableCheck(
        "journals_balance",
        "Each manual journal's lines sum to zero.",
        lambda name: name == "fct_manual_journal_lines",
        lambda _name, table, _inputs: journals_balance(table),
        ERROR,
    ),
]
"""Every data check with its severity; a table gets the checks whose ``applies_to`` holds. Why each
severity is what it is: docs/operations.md, "Data checks"."""


def checks_for(table_name: str) -> list[TableCheck]:
    return [check for check in TABLE_CHECKS if check.applies_to(table_name)]
