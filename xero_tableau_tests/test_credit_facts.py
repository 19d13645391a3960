"""fct_overpayments and fct_prepayments end to end: sandbox records flattened into the raw lake per
UTC day, read back and normalized, then checked against figures computed independently from the
raw Xero JSON (``Decimal(str(x))``), the allocations stored in the lake and the invoice facts.

The dataset is a little larger than test_transform's (eight months of history) so that every
kind is present in each tenant: received and paid, allocated (in full, in part, to two invoices)
and not, foreign currency, voided.
"""

import copy
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from xero_tableau import raw_lake
from xero_tableau.sandbox.dataset import TenantData, ms_date
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.transform.changes import diff_documents, document_fingerprints, document_key
from xero_tableau.transform.checks import CheckInputs, checks_for
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
from xero_tableau.transform.raw import flatten
from xero_tableau.transform.schema import TABLES, arrow_schema
from xero_tableau.xero.dates import parse_xero_datetime
from xero_tableau_tests.test_transform import (
    FETCHED,
    Synced,
    base,
    dec,
    normalize_from_lake,
    sync_into_lake,
    write_entity,
    write_reference,
)

CONFIG = GeneratorConfig(
    seed=8, tenants=2, invoice_lines=2000, as_of=date(2026, 2, 28), history_days=240
)
# published table -> (raw entity, id field in Xero JSON, id column, Xero Type suffix)
CREDIT = {
    "fct_overpayments": ("Overpayments", "OverpaymentID", "overpayment_id", "OVERPAYMENT"),
    "fct_prepayments": ("Prepayments", "PrepaymentID", "prepayment_id", "PREPAYMENT"),
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Synced:
    return sync_into_lake(CONFIG, tmp_path_factory.mktemp("credit-lake"))


def records(tenant: TenantData, entity: str) -> list[dict[str, Any]]:
    return list(tenant.collections[entity].values())


def by_id(table: pa.Table, column: str) -> dict[str, dict[str, Any]]:
    out = {row[column]: row for row in table.to_pylist()}
    assert len(out) == table.num_rows, "one row per record"
    return out


def cases(synced: Synced) -> list[tuple[TenantData, str, dict[str, Any], dict[str, Any]]]:
    """(tenant, table, raw record, published row) of every generated over- and prepayment."""
    out = []
    for tenant_id, tenant in synced.tenants.items():
        for table, (entity, id_field, id_column, _) in CREDIT.items():
            rows = by_id(synced.tables[tenant_id][table], id_column)
            for record in records(tenant, entity):
                out.append((tenant, table, record, rows[record[id_field]]))
    return out


# --- shape ----------------------------------------------------------------------------------------


def test_one_row_per_record_in_the_declared_schema(synced: Synced) -> None:
    for tenant_id, tenant in synced.tenants.items():
        for table, (entity, id_field, id_column, _) in CREDIT.items():
            got = synced.tables[tenant_id][table]
            assert got.schema.equals(arrow_schema(TABLES[table])), table
            ids = got.column(id_column).to_pylist()
            assert sorted(ids) == sorted(r[id_field] for r in records(tenant, entity)), table
            assert set(got.column("tenant_id").to_pylist()) == {tenant_id}
            assert document_key(table) == ("tenant_id", id_column)


def test_the_dataset_exercises_every_kind(synced: Synced) -> None:
    """Guards the assertions below against passing vacuously on a thin dataset."""
    for tenant in synced.tenants.values():
        for entity in ("Overpayments", "Prepayments"):
            docs = records(tenant, entity)
            assert {d["Type"].split("-")[0] for d in docs} == {"RECEIVE", "SPEND"}, entity
            assert any(d["Status"] == "VOIDED" for d in docs), entity
            assert any(d["Allocations"] for d in docs), entity
            assert any(not d["Allocations"] and d["Status"] != "VOIDED" for d in docs), entity
    docs = [d for t in synced.tenants.values() for e in CREDIT.values() for d in records(t, e[0])]
    assert any(dec(d["CurrencyRate"]) != 1 for d in docs), "foreign currency"
    assert any(len(d["Allocations"]) > 1 for d in docs), "several allocations"
    assert any(d["Allocations"] and dec(d["RemainingCredit"]) > 0 for d in docs), "partial"


def test_header_columns_follow_the_record(synced: Synced) -> None:
    for tenant, table, doc, row in cases(synced):
        _, _, _, kind = CREDIT[table]
        contacts = {c["ContactID"]: c["Name"] for c in records(tenant, "Contacts")}
        assert row[f"{kind.lower()}_type"] == doc["Type"]
        direction = {f"RECEIVE-{kind}": "received", f"SPEND-{kind}": "paid"}[doc["Type"]]
        assert row["document_kind"] == direction
        assert row["status"] == doc["Status"]
        assert row["reference"] == doc["Reference"]
        assert row["contact_id"] == doc["Contact"]["ContactID"]
        assert row["contact_name"] == contacts[doc["Contact"]["ContactID"]]
        assert row["document_date"] == parse_xero_datetime(doc["Date"]).date()
        assert row["updated_at_utc"] == parse_xero_datetime(doc["UpdatedDateUTC"])
        assert row["fetched_at_utc"] == FETCHED
        assert row["line_amount_types"] == doc["LineAmountTypes"]
        assert row["currency_code"] == doc["CurrencyCode"]
        assert row["base_currency_code"] == tenant.organisation["BaseCurrency"]
        if table == "fct_prepayments":
            assert row["invoice_number"] == doc.get("InvoiceNumber")


def test_voided_records_are_flagged(synced: Synced) -> None:
    flagged = Counter()
    for _tenant, table, doc, row in cases(synced):
        assert row["is_voided"] == (doc["Status"] == "VOIDED")
        assert row["is_deleted"] is False
        flagged[table] += row["is_voided"]
    assert flagged["fct_overpayments"] and flagged["fct_prepayments"]


# --- money ----------------------------------------------------------------------------------------


def test_amounts_and_remaining_credit(synced: Synced) -> None:
    for _tenant, _table, doc, row in cases(synced):
        live = [a for a in doc["Allocations"] if not a.get("IsDeleted")]
        allocated = sum((dec(a["Amount"]) for a in live), Decimal(0))
        assert row["net_amount"] == dec(doc["SubTotal"])
        assert row["tax_amount"] == dec(doc["TotalTax"])
        assert row["gross_amount"] == dec(doc["Total"])
        assert row["allocated_amount"] == allocated
        assert row["allocation_count"] == len(live)
        assert row["remaining_credit"] == dec(doc["RemainingCredit"])
        if not row["is_voided"]:
            # the sandbox's rule (nothing is refunded there): what is not allocated is left
            assert row["remaining_credit"] == row["gross_amount"] - row["allocated_amount"]
            assert (row["status"] == "PAID") == (row["remaining_credit"] == 0)
        else:
            assert row["allocation_count"] == 0


def test_base_currency_amounts_follow_the_rate(synced: Synced) -> None:
    foreign = 0
    for _tenant, _table, doc, row in cases(synced):
        rate = doc["CurrencyRate"]
        assert row["currency_rate"] == dec(rate)
        assert row["net_amount_base"] == base(dec(doc["SubTotal"]), rate)
        assert row["tax_amount_base"] == base(dec(doc["TotalTax"]), rate)
        assert row["gross_amount_base"] == base(dec(doc["Total"]), rate)
        assert row["remaining_credit_base"] == base(dec(doc["RemainingCredit"]), rate)
        if dec(rate) != 1:
            foreign += 1
            assert row["currency_code"] != row["base_currency_code"]
            if row["gross_amount"]:
                assert row["gross_amount_base"] != row["gross_amount"]
    assert foreign


def test_allocations_point_to_invoices_of_the_same_contact_and_currency(synced: Synced) -> None:
    """The allocations stored in the lake (the latest version's) go to invoices published in
    fct_invoice_lines with the record's contact and currency, of the matching side (a customer's
    credit to sales invoices, a supplier's to bills), and add up to allocated_amount."""
    checked = 0
    for tenant_id in synced.tenants:
        invoices: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
        for line in synced.tables[tenant_id]["fct_invoice_lines"].to_pylist():
            invoices[line["invoice_id"]].add(
                (line["contact_id"], line["currency_code"], line["document_kind"])
            )
        for table, (entity, _, id_column, _) in CREDIT.items():
            rows = by_id(synced.tables[tenant_id][table], id_column)
            documents, lines = raw_lake.read_entity(synced.lake, tenant_id, entity)
            assert lines is not None
            sums: dict[str, Decimal] = defaultdict(Decimal)
            for line in lines.to_pylist():
                if line["is_deleted"]:
                    continue
                row = rows[line["document_id"]]
                side = {"received": "invoice", "paid": "bill"}[row["document_kind"]]
                expected = (row["contact_id"], row["currency_code"], side)
                assert invoices[line["invoice_id"]] == {expected}, (table, line)
                sums[line["document_id"]] += line["amount"]
                checked += 1
            assert documents.num_rows == len(rows), "one version each in this lake"
            for record_id, row in rows.items():
                assert row["allocated_amount"] == sums.get(record_id, Decimal(0)), record_id
    assert checked


def test_the_tables_pass_their_data_checks(synced: Synced) -> None:
    for tenant_id, tables in synced.tables.items():
        documents = {
            entity: raw_lake.read_entity(synced.lake, tenant_id, entity)[0]
            for entity in NORMALIZE_COLUMNS
        }
        inputs = CheckInputs(tenant_id, documents)
        for table in CREDIT:
            applied = checks_for(table)
            # No account or tracking column: the checks of those would say nothing.
            assert {c.name for c in applied} == {"unique_keys", "single_tenant"}
            for check in applied:
                outcome = check.run(table, tables[table], inputs)
                assert outcome.passed, (table, check.name, outcome)


# --- versions and fingerprints --------------------------------------------------------------------


def _later_version(doc: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    """``doc`` three days later with its remaining credit allocated to ``invoice``."""
    edited = copy.deepcopy(doc)
    updated = parse_xero_datetime(doc["UpdatedDateUTC"]) + timedelta(days=3)
    left = dec(doc["RemainingCredit"])
    edited["Allocations"].append(
        {
            "AllocationID": "alloc-later",
            "Amount": float(left),
            "Date": doc["Date"],
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
            },
        }
    )
    edited["RemainingCredit"] = 0.0
    edited["Status"] = "PAID"
    edited["UpdatedDateUTC"] = ms_date(int(updated.timestamp() * 1000))
    return edited


def test_each_credit_row_has_its_cash_in_bank_transaction_lines_and_it_is_not_income(
    synced: Synced,
) -> None:
    """Xero lists every overpayment's and prepayment's money in /BankTransactions: its lines in
    fct_bank_transaction_lines carry the id of the credit row (the Cash of overpayments and
    prepayments rule), add up to its gross amount, share its status, and a measure of income
    and expense over bank transaction lines (Types RECEIVE and SPEND) leaves them out, so an
    overpayment is never income and a prepayment is not counted again beside the invoice it
    pays."""
    linked = 0
    for tenant_id in synced.tenants:
        lines = synced.tables[tenant_id]["fct_bank_transaction_lines"].to_pylist()
        for table, (_entity, _id_field, id_column, kind) in CREDIT.items():
            other = "prepayment_id" if id_column == "overpayment_id" else "overpayment_id"
            cash: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for line in lines:
                is_cash = line["bank_transaction_type"] in (f"RECEIVE-{kind}", f"SPEND-{kind}")
                assert (line[id_column] is not None) == is_cash, line
                if is_cash:
                    assert line[other] is None
                    cash[line[id_column]].append(line)
            rows = by_id(synced.tables[tenant_id][table], id_column)
            assert set(cash) == set(rows), table
            for credit_id, row in rows.items():
                mine = cash[credit_id]
                assert len({line["bank_transaction_id"] for line in mine}) == 1
                assert (
                    sum((line["gross_amount"] for line in mine), Decimal(0))
                    == (row["gross_amount"])
                )
                assert {line["bank_transaction_type"] for line in mine} == {
                    row[f"{kind.lower()}_type"]
                }
                assert {line["is_voided"] for line in mine} == {row["is_voided"]}
                assert {line["contact_id"] for line in mine} == {row["contact_id"]}
                linked += 1
        income = [line for line in lines if line["bank_transaction_type"] in ("RECEIVE", "SPEND")]
        assert income and all(
            line["overpayment_id"] is None and line["prepayment_id"] is None for line in income
        )
        # an overpayment's line is on the control account, never an income or expense account
        for line in lines:
            if line["overpayment_id"] is not None:
                receive = line["bank_transaction_type"].startswith("RECEIVE")
                assert line["account_class"] == ("ASSET" if receive else "LIABILITY"), line
    assert linked >= 20


@pytest.mark.parametrize("table", list(CREDIT))
def test_a_record_edited_later_appears_once_in_its_latest_version(
    synced: Synced, table: str, tmp_path: Path
) -> None:
    entity, id_field, id_column, _ = CREDIT[table]
    tenant_id, tenant = next(iter(synced.tenants.items()))
    docs = records(tenant, entity)
    doc = next(d for d in docs if d["Status"] == "AUTHORISED" and dec(d["RemainingCredit"]) > 0)
    invoice = next(iter(tenant.collections["Invoices"].values()))
    edited = _later_version(doc, invoice)
    write_reference(tmp_path, tenant)
    write_entity(tmp_path, tenant_id, "Contacts", records(tenant, "Contacts"))
    write_entity(tmp_path, tenant_id, entity, docs)  # the first version among the others
    write_entity(tmp_path, tenant_id, entity, [edited])  # the later one, on a later day
    stored = raw_lake.read_entity(tmp_path, tenant_id, entity)[0].column("id").to_pylist()
    assert stored.count(doc[id_field]) == 2, "both versions sit in the lake"

    got = normalize_from_lake(tmp_path, tenant_id)[table]
    rows = by_id(got, id_column)
    assert len(rows) == len(docs)
    row = rows[doc[id_field]]
    assert row["updated_at_utc"] == parse_xero_datetime(edited["UpdatedDateUTC"])
    assert row["status"] == "PAID"
    assert row["remaining_credit"] == row["remaining_credit_base"] == 0
    assert row["allocation_count"] == len(doc["Allocations"]) + 1
    assert row["allocated_amount"] == dec(doc["Total"])

    # the incremental publish sees exactly that record as changed
    before = document_fingerprints(table, synced.tables[tenant_id][table])
    changes = diff_documents(table, before, got)
    assert changes.changed_ids.column(id_column).to_pylist() == [doc[id_field]]
    assert changes.new_ids.num_rows == changes.removed_ids.num_rows == 0


def test_a_foreign_record_without_a_rate_has_no_base_amounts() -> None:
    doc = {
        "OverpaymentID": "op-1",
        "Type": "SPEND-OVERPAYMENT",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1", "Name": "Supplier"},
        "Date": "/Date(1767225600000+0000)/",
        "LineAmountTypes": "NoTax",
        "SubTotal": 100.0,
        "TotalTax": 0.0,
        "Total": 100.0,
        "RemainingCredit": 60.0,
        "CurrencyCode": "USD",
        "Allocations": [
            {"Amount": 40.0, "Invoice": {"InvoiceID": "inv-1"}},
            {"Amount": 5.0, "IsDeleted": True, "Invoice": {"InvoiceID": "inv-2"}},
        ],
        "UpdatedDateUTC": "/Date(1767258000000+0000)/",
    }
    batch = flatten("Overpayments", [doc], FETCHED)
    assert not batch.rejected
    reference = Reference(
        organisation={
            "OrganisationID": "org",
            "BaseCurrency": "NZD",
            "Timezone": "NEWZEALANDSTANDARDTIME",
        }
    )
    out = normalize("t", {"Overpayments": (batch.documents, batch.lines)}, reference)
    (row,) = out["fct_overpayments"].to_pylist()
    assert row["document_kind"] == "paid"
    assert row["allocated_amount"] == Decimal("40.00")
    assert row["allocation_count"] == 1
    assert row["remaining_credit"] == Decimal("60.00")
    assert row["currency_rate"] is None
    assert row["gross_amount_base"] is None and row["remaining_credit_base"] is None
    assert out["fct_prepayments"].num_rows == 0
    assert out["fct_prepayments"].schema.equals(arrow_schema(TABLES["fct_prepayments"]))
