"""Provenance on every published row: which Xero read produced the content a row shows.

First on generated Xero records, through the raw lake and normalize: a re-read keeps the
provenance of content it finds unchanged and stamps its own on what changed (a property over
random edits); every value that counts as content shows in the published rows (otherwise the
incremental publish, which ignores provenance, and a full replace would disagree); partitions and
snapshots written before provenance existed still read.

Then end to end: the Xero sandbox, its webhooks over HTTP into the receiver, the sensor and real
Dagster runs of the raw, reference and table assets. Each step's tables are "published" with the
incremental publish's own change detection (``transform.changes``), and the last test compares
what that left with a full replace of the same lake, provenance included.
"""

import copy
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xero_tableau import raw_lake
from xero_tableau.asset_names import PURPOSE_TAG, SYNC_SOURCES, day_range_tags, sync_source
from xero_tableau.definitions import defs as load_definitions
from xero_tableau.defs.schedules import ALL_RAW, POLLED, WEBHOOKED
from xero_tableau.defs.table_assets import TABLE_KEYS
from xero_tableau.defs.webhooks import WEBHOOK_SENSOR
from xero_tableau.entities import TRANSACTIONAL, parse_records, transactional
from xero_tableau.raw_layouts import PROVENANCE
from xero_tableau.raw_sync import record_day as _record_day
from xero_tableau.raw_sync import write_reference_snapshot
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY
from xero_tableau.sandbox.dataset import TenantData
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.sandbox.server import ServedApp
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store import lake
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.sync import REFERENCE_KEYS, sync_all
from xero_tableau.transform.changes import (
    DocumentChanges,
    diff_documents,
    document_fingerprints,
    document_key,
)
from xero_tableau.transform.normalize import Reference, normalize, tracking_slots
from xero_tableau.transform.provenance import (
    FILLED_WHEN_NULL,
    carry_provenance,
    content_columns,
)
from xero_tableau.transform.raw import FlatBatch, ReadProvenance, flatten
from xero_tableau.transform.schema import PROVENANCE_COLUMNS, TABLES
from xero_tableau.webhooks.receiver import WEBHOOK_PATH, build_receiver
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    materialize,
    sandbox_with_callback,
    settings_env,
)

CONFIG = GeneratorConfig(
    seed=11, tenants=1, invoice_lines=300, as_of=date(2026, 2, 28), history_days=240
)
READ_1 = datetime(2026, 3, 1, 6, 0, 0, 250000, tzinfo=UTC)
READ_2 = READ_1 + timedelta(hours=1)
FIRST = ReadProvenance("poll", "run-1")
SECOND = ReadProvenance("sweep", "run-2")


def record_day(record: dict) -> date:
    """The lake day of a record the sandbox made (always datable)."""
    day = _record_day(record)
    assert day is not None
    return day


@pytest.fixture(scope="module")
def tenant() -> TenantData:
    return next(iter(generate(CONFIG).tenants.values()))


def _reference(tenant: TenantData, **reads: Any) -> Reference:
    return Reference(
        organisation=tenant.organisation,
        accounts=list(tenant.collections["Accounts"].values()),
        tracking_categories=list(tenant.collections["TrackingCategories"].values()),
        **reads,
    )


def _busiest_day(tenant: TenantData, entity: str) -> list[dict[str, Any]]:
    """The records of ``entity`` on the UTC day of UpdatedDateUTC that has the most of them."""
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for record in tenant.collections[entity].values():
        by_day[record_day(record)].append(record)
    return max(by_day.values(), key=len)


def _provenance(table: pa.Table, column: str) -> dict[str, tuple]:
    """Record id -> its provenance, from a documents or published table."""
    names = list(PROVENANCE)
    return {
        row[column]: tuple(row[name] for name in names)
        for row in table.select([column, *names]).to_pylist()
    }


# --- the mapping of run purposes --------------------------------------------------------------


def test_every_run_purpose_maps_to_one_of_five_sources() -> None:
    assert set(SYNC_SOURCES.values()) == {"webhook", "poll", "sweep", "sync", "backfill"}
    purposes = ["webhook", "poll", "safety-poll", "sweep-recent", "sweep-history", "sync"]
    assert [sync_source(p) for p in purposes] == [
        "webhook",
        "poll",
        "poll",
        "sweep",
        "sweep",
        "sync",
    ]
    assert sync_source(None) == sync_source("backfill") == sync_source("by-hand") == "backfill"


def test_every_table_has_organisation_name_and_ends_with_provenance() -> None:
    for spec in TABLES.values():
        assert spec.names[:2] == ["tenant_id", "organisation_name"], spec.name
        assert tuple(spec.names[-4:]) == PROVENANCE_COLUMNS, spec.name
    assert PROVENANCE_COLUMNS == PROVENANCE  # the lake and the published side name them alike


# --- re-reads on the raw lake -----------------------------------------------------------------

_INVISIBLE = (
    "same",
    "reordered",
    "contact_name",
    "tracking_order",
    "third_tracking_category",
    "unpublished",
)
_THIRD_CATEGORY = {
    "TrackingCategoryID": "00000000-0000-0000-0000-0000000000c3",
    "TrackingOptionID": "00000000-0000-0000-0000-0000000000d3",
    "Name": "Project",
    "Option": "Alpha",
}
_VISIBLE = ("reference", "description", "quantity", "account_code", "added_line", "dropped_line")


def _edit(record: dict[str, Any], how: str, codes: list[str]) -> None:
    """Change one invoice the way ``how`` says (a change that shows in its published rows, or
    one that cannot)."""
    lines = record["LineItems"]
    if how == "contact_name":
        record["Contact"]["Name"] = f"{record['Contact'].get('Name')} (trading as)"
    elif how == "tracking_order":
        for line in lines:
            line["Tracking"] = list(reversed(line.get("Tracking") or []))
    elif how == "third_tracking_category":  # a category beyond slot 2 shows on no column
        line = next((x for x in lines if len(x.get("Tracking") or []) < 2), None)
        if line is not None:
            line["Tracking"] = [*(line.get("Tracking") or []), dict(_THIRD_CATEGORY)]
    elif how == "unpublished":
        record["SentToContact"] = not record.get("SentToContact")
        record["HasAttachments"] = not record.get("HasAttachments")
    elif how == "reference":
        record["Reference"] = f"{record.get('Reference') or ''} (edited)"
    elif how == "description":
        lines[0]["Description"] = f"{lines[0].get('Description') or ''} (edited)"
    elif how == "quantity":
        lines[0]["Quantity"] = float(Decimal(str(lines[0].get("Quantity", 1))) + 1)
    elif how == "account_code":
        lines[0]["AccountCode"] = next(c for c in codes if c != lines[0].get("AccountCode"))
    elif how == "added_line":
        lines.append(
            {**copy.deepcopy(lines[0]), "LineItemID": "00000000-0000-0000-0000-0000000000aa"}
        )
    elif how == "dropped_line":
        lines.pop()


@dataclass(frozen=True)
class InvoiceDay:
    """A day of invoices to read twice, the account codes an edit may use, and what normalize
    needs to publish them (the organisation's reference data and tracking slots)."""

    tenant_id: str
    records: list[dict[str, Any]]
    codes: list[str]
    reference: Reference
    slots: dict[str, int]

    def published(self, batch: FlatBatch) -> tuple[dict[str, int], dict[str, tuple]]:
        """Per invoice of ``batch`` once normalized: the fingerprint of its published rows
        (provenance ignored, as the incremental publish ignores it) and its provenance."""
        raw = {"Invoices": (batch.documents, batch.lines)}
        table = normalize(self.tenant_id, raw, self.reference, self.slots)["fct_invoice_lines"]
        prints = document_fingerprints("fct_invoice_lines", table)
        ids = prints.column("invoice_id").to_pylist()
        return dict(zip(ids, prints.column("fingerprint").to_pylist(), strict=True)), _provenance(
            table, "invoice_id"
        )

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return f"InvoiceDay({len(self.records)} invoices)"


@pytest.fixture(scope="module")
def invoice_day(tenant: TenantData) -> InvoiceDay:
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for record in tenant.collections["Invoices"].values():
        by_day[record_day(record)].append(record)
    day = max(by_day.values(), key=lambda rs: sum(len(r["LineItems"]) >= 2 for r in rs))
    assert sum(len(r["LineItems"]) >= 2 for r in day) >= 2
    codes = sorted(a["Code"] for a in tenant.collections["Accounts"].values() if a.get("Code"))
    reference = _reference(tenant)
    categories = parse_records("TrackingCategories", list(reference.tracking_categories)).records
    slots = tracking_slots(categories)
    assert sorted(slots.values())[:2] == [1, 2]  # so a new category gets slot 3: no column
    return InvoiceDay(tenant.tenant_id, day, codes, reference, slots)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_reread_keeps_the_provenance_of_what_it_finds_unchanged(
    invoice_day: InvoiceDay, data: st.DataObject
) -> None:
    """Read a day of invoices, then read it again after one edit: every record the second read
    finds unchanged keeps the first read's provenance; an edit that shows in the published rows
    gives the edited record the second read's. And the contract with the incremental publish,
    checked on the published rows themselves: an invoice whose rows did not change (but for
    provenance) kept its provenance."""
    day = invoice_day.records
    first = flatten("Invoices", day, READ_1, FIRST)
    how = data.draw(st.sampled_from(_INVISIBLE + _VISIBLE), label="edit")
    candidates = [r for r in day if how != "dropped_line" or len(r["LineItems"]) >= 2]
    target = data.draw(st.sampled_from([r["InvoiceID"] for r in candidates]), label="invoice")
    again = copy.deepcopy(day)
    codes = invoice_day.codes
    _edit(next(r for r in again if r["InvoiceID"] == target), how, codes)
    if how == "reordered":
        again.reverse()
    second = carry_provenance(
        "Invoices",
        flatten("Invoices", again, READ_2, SECOND),
        (first.documents, first.lines),
    )
    assert not second.rejected
    kept: tuple[Any, ...] = (READ_1, "poll", "run-1", None)
    new: tuple[Any, ...] = (READ_2, "sweep", "run-2", None)
    expected = {r["InvoiceID"]: kept for r in day}
    if how in _VISIBLE:
        expected[target] = new
    assert _provenance(second.documents, "id") == expected
    # what the lake says about the read itself is still the latest read
    assert set(second.documents.column("fetched_at_utc").to_pylist()) == {READ_2}
    prints_before, provenance_before = invoice_day.published(first)
    prints_after, provenance_after = invoice_day.published(second)
    for invoice, fingerprint in prints_after.items():
        if prints_before.get(invoice) == fingerprint:
            assert provenance_after[invoice] == provenance_before[invoice], (how, invoice)


def test_a_webhook_read_stamps_the_event_of_each_record_it_names(tenant: TenantData) -> None:
    day = _busiest_day(tenant, "Invoices")
    named = day[0]["InvoiceID"]
    event_at = READ_1 - timedelta(seconds=3)
    read = ReadProvenance("webhook", "run-w", {named.lower(): event_at})
    documents = flatten("Invoices", day, READ_1, read).documents
    provenance = _provenance(documents, "id")
    assert provenance.pop(named) == (READ_1, "webhook", "run-w", event_at)
    assert set(provenance.values()) == {(READ_1, "webhook", "run-w", None)}


def test_partitions_written_before_provenance_still_read_and_keep_their_read(
    tmp_path: Path, tenant: TenantData
) -> None:
    """An upgraded lake: a day written without the provenance columns reads them as null,
    normalize counts its fetched_at_utc as the read, and a re-read of the same content keeps it."""
    records = _busiest_day(tenant, "Invoices")
    day = record_day(records[0])
    tid = tenant.tenant_id
    batch = flatten("Invoices", records, READ_1, FIRST)
    raw_lake.write_day_partition(tmp_path, tid, "Invoices", day, batch, records)
    documents_file = raw_lake.partition_dir(tmp_path, tid, "Invoices", day) / "documents.parquet"
    legacy = pq.read_table(documents_file).drop_columns(list(PROVENANCE))
    pq.write_table(legacy, documents_file)

    documents, lines = raw_lake.read_entity(tmp_path, tid, "Invoices")
    for name in PROVENANCE:
        assert documents.column(name).null_count == documents.num_rows
    fact = normalize(tid, {"Invoices": (documents, lines)}, _reference(tenant))["fct_invoice_lines"]
    assert set(fact.column("synced_at_utc").to_pylist()) == {READ_1}
    assert set(fact.column("sync_source").to_pylist()) == {None}

    previous = raw_lake.read_day_tables(tmp_path, tid, "Invoices", day)
    assert previous is not None
    again = carry_provenance("Invoices", flatten("Invoices", records, READ_2, SECOND), previous)
    assert set(_provenance(again.documents, "id").values()) == {(READ_1, None, None, None)}


def _other(value: Any, data_type: pa.DataType) -> Any:
    """A different value of the same type (a value where there was none)."""
    if pa.types.is_string(data_type):
        return f"{value}-changed" if value is not None else "changed"
    if pa.types.is_boolean(data_type):
        return not value
    if pa.types.is_integer(data_type):
        return (value or 0) + 1
    if pa.types.is_decimal(data_type):
        step = Decimal(1).scaleb(-data_type.scale)  # type: ignore[attr-defined]
        return (value or Decimal(0)) + step
    if pa.types.is_date32(data_type):
        return (value or date(2026, 1, 1)) + timedelta(days=1)
    if pa.types.is_timestamp(data_type):
        return (value or READ_1) + timedelta(milliseconds=1)
    raise AssertionError(f"no other value for {data_type}")


def _with_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    index = table.schema.get_field_index(column)
    values = table.column(index).to_pylist()
    values[row] = value
    field_ = table.schema.field(index)
    return table.set_column(index, field_, pa.array(values, field_.type))


def _row_to_edit(table: pa.Table, column: str, need_value: bool) -> int | None:
    values = table.column(column).to_pylist()
    with_value = [i for i, v in enumerate(values) if v is not None]
    if with_value:
        return with_value[0]
    return None if need_value or not values else 0


@pytest.mark.parametrize("entity", [e.endpoint for e in TRANSACTIONAL])
def test_every_value_that_counts_as_content_shows_in_the_published_rows(
    tenant: TenantData, entity: str
) -> None:
    """The other half of the contract: if a re-read finds a different value in a column that
    counts as content (``content_columns``), the record gets the new read's provenance, so some
    published value must change with it, or the incremental publish (which ignores provenance)
    and a full replace would disagree. A column that is only a fallback or is filled in must be
    classified as such in transform/provenance.py."""
    table = transactional(entity).published_table
    assert table is not None
    records = list(tenant.collections[entity].values())
    assert records, f"the generated organisation has no {entity}"
    batch = flatten(entity, records, READ_1, FIRST)
    contacts = flatten("Contacts", list(tenant.collections["Contacts"].values()), READ_1).documents
    reference = _reference(tenant)

    def published(documents: pa.Table, lines: pa.Table | None) -> pa.Table:
        raw = {"Contacts": (contacts, None), entity: (documents, lines)}
        return normalize(tenant.tenant_id, raw, reference)[table]

    before = document_fingerprints(table, published(batch.documents, batch.lines))
    document_columns, line_columns = content_columns(entity)
    edits: list[tuple[str, str, bool]] = [
        *(("documents", c, c in FILLED_WHEN_NULL) for c in document_columns),
        *(("lines", c, c in FILLED_WHEN_NULL) for c in line_columns),
    ]
    for part, column, filled in edits:
        source = batch.documents if part == "documents" else batch.lines
        assert source is not None
        row = _row_to_edit(source, column, need_value=filled)
        if row is None:
            continue  # nothing to change between two values in this dataset
        value = source.column(column)[row].as_py()
        changed = [_other(value, source.schema.field(column).type)]
        if value is not None and not filled and source.schema.field(column).nullable:
            changed.append(None)
        for new in changed:
            edited = _with_value(source, column, row, new)
            after = (
                published(edited, batch.lines)
                if part == "documents"
                else published(batch.documents, edited)
            )
            diff = diff_documents(table, before, after)
            assert not diff.is_empty, f"{entity}.{column}: {value!r} -> {new!r} does not show"


# --- reference snapshots ----------------------------------------------------------------------


def test_reference_rows_keep_the_read_that_last_changed_them(
    tmp_path: Path, tenant: TenantData
) -> None:
    tid = tenant.tenant_id
    accounts = sorted(tenant.collections["Accounts"].values(), key=lambda a: a["AccountID"])
    categories = list(tenant.collections["TrackingCategories"].values())
    # a snapshot written before provenance existed: its rows' reads are unknown
    raw_lake.write_reference(tmp_path, tid, "Accounts", accounts)
    write_reference_snapshot(
        tmp_path, tid, "Accounts", accounts, run_id="r1", purpose="sync", read_at=READ_1
    )
    _, reads = raw_lake.read_reference_snapshot(tmp_path, tid, "Accounts")
    assert set(map(tuple, (r.values() for r in reads["rows"]["dim_accounts"].values()))) == {
        (None, None, None, None)
    }
    assert reads["read"]["dagster_run_id"] == "r1"

    renamed = copy.deepcopy(accounts)
    renamed[0]["Name"] = "Renamed account"
    renamed[1]["Description"] = "a description is not published"
    write_reference_snapshot(
        tmp_path, tid, "Accounts", renamed, run_id="r2", purpose="poll", read_at=READ_1
    )
    write_reference_snapshot(
        tmp_path, tid, "Accounts", renamed, run_id="r3", purpose="sweep-recent", read_at=READ_2
    )
    write_reference_snapshot(
        tmp_path, tid, "TrackingCategories", categories, run_id="r4", purpose=None, read_at=READ_2
    )

    records, account_reads = raw_lake.read_reference_snapshot(tmp_path, tid, "Accounts")
    assert records == renamed
    _, category_reads = raw_lake.read_reference_snapshot(tmp_path, tid, "TrackingCategories")
    reads = {**account_reads["rows"], **category_reads["rows"]}
    tables = normalize(tid, {}, Reference(tenant.organisation, renamed, categories, reads))
    dim = _provenance(tables["dim_accounts"], "account_id")
    assert dim.pop(accounts[0]["AccountID"]) == (READ_1, "poll", "r2", None)
    assert set(dim.values()) == {(None, None, None, None)}
    options = _provenance(tables["dim_tracking_options"], "option_id")
    assert options and set(options.values()) == {(READ_2, "backfill", "r4", None)}
    assert set(tables["dim_accounts"].column("organisation_name").to_pylist()) == {
        tenant.organisation["Name"]
    }


def test_change_detection_ignores_provenance_but_not_the_organisation_name(
    tenant: TenantData,
) -> None:
    records = list(tenant.collections["Payments"].values())
    documents = flatten("Payments", records, READ_1, FIRST).documents
    table = normalize(tenant.tenant_id, {"Payments": (documents, None)}, _reference(tenant))[
        "fct_payments"
    ]
    before = document_fingerprints("fct_payments", table)
    reread = table
    for name, value in zip(PROVENANCE_COLUMNS, (READ_2, "webhook", "run-9", READ_2), strict=True):
        reread = _with_value(reread, name, 0, value)
    assert diff_documents("fct_payments", before, reread).is_empty
    renamed = _with_value(table, "organisation_name", 0, "Another name")
    assert diff_documents("fct_payments", before, renamed).changed_ids.num_rows == 1


# --- end to end: sandbox, webhooks, Dagster --------------------------------------------------

DATA = GeneratorConfig(tenants=1, invoice_lines=300, history_days=20)


def _documents(name: str, table: pa.Table) -> dict[tuple, list[str]]:
    """A table's rows per document, as comparable text (but for fetched_at_utc, which the
    incremental publish never keeps up to date)."""
    key = document_key(name)
    out: dict[tuple, list[str]] = defaultdict(list)
    for row in table.to_pylist():
        row.pop("fetched_at_utc", None)
        out[tuple(row[k] for k in key)].append(repr(sorted(row.items())))
    return {k: sorted(v) for k, v in out.items()}


@dataclass
class Published:
    """What an incremental publish leaves in Tableau: after each build, the documents whose
    fingerprint changed are replaced, the removed ones dropped (``transform.changes``)."""

    rows: dict[str, dict[tuple, list[str]]] = field(default_factory=dict)
    prints: dict[str, pa.Table] = field(default_factory=dict)
    last: dict[str, DocumentChanges] = field(default_factory=dict)

    def publish(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            diff = diff_documents(name, self.prints.get(name), table)
            current = _documents(name, table)
            mine = self.rows.setdefault(name, {})
            for key in diff.upserted_ids.to_pylist():
                mine[tuple(key.values())] = current[tuple(key.values())]
            for key in diff.removed_ids.to_pylist():
                mine.pop(tuple(key.values()), None)
            self.prints[name] = diff.current_fingerprints
            self.last[name] = diff


@dataclass
class World:
    sandbox: CallbackSandbox
    settings: Settings
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    queue: EventQueue
    tenant: str
    sync_runs: list[str]
    published: Published = field(default_factory=Published)
    cursor: str | None = None

    @property
    def writer(self) -> SandboxWriter:
        return SandboxWriter(self.sandbox.sandbox)

    @property
    def data(self) -> TenantData:
        return self.sandbox.sandbox.dataset.tenants[self.tenant]

    def tables(self) -> dict[str, pa.Table]:
        folder = lake.tenant_dir(self.settings.lake_dir, self.tenant) / "tables"
        return {name: pq.read_table(folder / f"{name}.parquet") for name in TABLES}

    def build(self) -> dict[str, pa.Table]:
        """Rebuild the tables and publish them incrementally; what that leaves must equal a full
        replace of the same lake (the differential check, after every step)."""
        keys = list(TABLE_KEYS.values())
        result = materialize(self.definitions, self.instance, keys, partition_key=self.tenant)
        assert result.success
        tables = self.tables()
        self.published.publish(tables)
        for name, table in tables.items():
            assert self.published.rows[name] == _documents(name, table), name
        return tables

    def read(self, keys: list[dg.AssetKey], tags: dict[str, str], first: date | None = None) -> str:
        """A raw run of ``keys`` over ``first`` (default yesterday) .. today; its run id."""
        today = datetime.now(UTC).date()
        days = day_range_tags(self.tenant, first or today - timedelta(days=1), today)
        result = materialize(self.definitions, self.instance, keys, tags={**days, **tags})
        assert result.success
        return result.run_id

    def webhook_runs(self) -> list[tuple[dg.RunRequest, str]]:
        """Deliver the sandbox's webhooks, and run what the sensor asks for."""
        assert self.sandbox.sandbox.webhooks.flush(30), "the sandbox did not deliver its webhooks"
        sensor = self.definitions.resolve_sensor_def(WEBHOOK_SENSOR)
        done = []
        for _ in range(10):
            with dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursor,
                resources=dict(self.definitions.resources or {}),
            ) as context:
                result = sensor(context)
            if not isinstance(result, dg.SensorResult) or not result.run_requests:
                return done
            self.cursor = result.cursor or self.cursor
            for request in result.run_requests:
                run = materialize(
                    self.definitions,
                    self.instance,
                    list(request.asset_selection or []),
                    tags=request.tags,
                )
                assert run.success
                done.append((request, run.run_id))
        raise AssertionError("the sensor kept asking for runs")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox = sandbox_with_callback(XeroSandboxConfig(webhook_batch_seconds=0.2), DATA)
    home = tmp_path_factory.mktemp("home")
    settings, _tenants = connected_settings(sandbox, home)
    patch = pytest.MonkeyPatch()
    for key, value in settings_env(settings).items():
        patch.setenv(key, value)
    engine = connect(settings.database_url)
    receiver = ServedApp(build_receiver(engine, DEMO_WEBHOOK_KEY))
    receiver.start()
    try:
        subscription = sandbox.sandbox.webhooks.subscribe(
            receiver.base_url + WEBHOOK_PATH, DEMO_WEBHOOK_KEY
        )
        assert subscription.status == "OK"
        with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
            definitions = load_definitions()
            (summary,) = sync_all(settings, instance, definitions, lambda _line: None)
            world = World(
                sandbox,
                settings,
                instance,
                definitions,
                EventQueue(engine),
                summary.tenant_id,
                summary.runs,
            )
            world.published.publish(world.tables())
            yield world
    finally:
        receiver.stop()
        engine.dispose()
        patch.undo()
        sandbox.stop()


def _rows_of(table: pa.Table, column: str, value: str) -> list[dict[str, Any]]:
    return [row for row in table.to_pylist() if row[column] == value]


def _changed(world: World, name: str) -> set[str]:
    diff = world.published.last[name]
    return {row[document_key(name)[-1]] for row in diff.upserted_ids.to_pylist()}


def test_a_sync_stamps_every_row_with_its_run(world: World) -> None:
    reference_run, raw_run = world.sync_runs[:2]
    tables = world.tables()
    name = world.data.organisation["Name"]
    for table_name, table in tables.items():
        assert table.num_rows, table_name
        assert set(table.column("organisation_name").to_pylist()) == {name}, table_name
        assert set(table.column("sync_source").to_pylist()) == {"sync"}, table_name
        assert table.column("synced_at_utc").null_count == 0, table_name
        assert table.column("source_event_at_utc").null_count == table.num_rows, table_name
        run = reference_run if table_name in ("dim_accounts", "dim_tracking_options") else raw_run
        assert set(table.column("dagster_run_id").to_pylist()) == {run}, table_name


def test_rereading_unchanged_content_changes_no_row_and_sends_nothing(world: World) -> None:
    before = world.tables()
    world.read(POLLED, {PURPOSE_TAG: "poll"})
    world.read(WEBHOOKED, {PURPOSE_TAG: "safety-poll"})
    world.read(
        ALL_RAW, {PURPOSE_TAG: "sweep-recent"}, first=datetime.now(UTC).date() - timedelta(7)
    )
    materialize(
        world.definitions,
        world.instance,
        REFERENCE_KEYS,
        partition_key=world.tenant,
        tags={"dagster/from_automation_condition": "true"},
    )
    after = world.build()
    for name in TABLES:
        assert _documents(name, after[name]) == _documents(name, before[name]), name
        assert world.published.last[name].is_empty, name


def test_a_polled_change_carries_the_poll(world: World) -> None:
    before = world.tables()["fct_bank_transaction_lines"]
    edited = next(
        b
        for b in world.data.collections["BankTransactions"].values()
        if b["Status"] == "AUTHORISED"
    )["BankTransactionID"]
    with world.sandbox.sandbox.dataset.lock:
        world.writer.update(world.tenant, "BankTransactions", edited, {"Reference": "polled edit"})
    run = world.read(POLLED, {PURPOSE_TAG: "poll"})
    after = world.build()["fct_bank_transaction_lines"]
    rows = _rows_of(after, "bank_transaction_id", edited)
    assert rows and {(r["reference"], r["sync_source"], r["dagster_run_id"]) for r in rows} == {
        ("polled edit", "poll", run)
    }
    assert {r["source_event_at_utc"] for r in rows} == {None}
    assert min(r["synced_at_utc"] for r in rows) > max(before.column("synced_at_utc").to_pylist())
    assert _changed(world, "fct_bank_transaction_lines") == {edited}
    # The balances that include the edited transaction name the poll's read (fct_bank_balances
    # counts provenance in its change detection): its bank account is re-sent, nothing else.
    record = next(
        b
        for b in world.data.collections["BankTransactions"].values()
        if b["BankTransactionID"] == edited
    )
    account = record["BankAccount"]["AccountID"]
    assert _changed(world, "fct_bank_balances") == {account}
    balances = _rows_of(world.tables()["fct_bank_balances"], "bank_account_id", account)
    day = rows[0]["document_date"]
    assert {
        (r["sync_source"], r["dagster_run_id"]) for r in balances if r["balance_date"] >= day
    } == {("poll", run)}
    assert "poll" not in {r["sync_source"] for r in balances if r["balance_date"] < day}
    others = [c for c in TABLES if c not in ("fct_bank_transaction_lines", "fct_bank_balances")]
    assert all(world.published.last[name].is_empty for name in others)


def test_a_webhook_read_carries_the_webhook_and_its_event_time(world: World) -> None:
    edited = next(
        i for i in world.data.collections["Invoices"].values() if i["Status"] == "AUTHORISED"
    )["InvoiceID"]
    with world.sandbox.sandbox.dataset.lock:
        world.writer.update(world.tenant, "Invoices", edited, {"Reference": "webhook edit"})
    ((request, run),) = world.webhook_runs()
    (event,) = world.queue.of_run(str(request.run_key))
    assert event.resource_id == edited.lower()
    tables = world.build()
    rows = _rows_of(tables["fct_invoice_lines"], "invoice_id", edited)
    expected_event = event.event_time.replace(
        microsecond=event.event_time.microsecond // 1000 * 1000
    )
    assert rows and {
        (r["reference"], r["sync_source"], r["dagster_run_id"], r["source_event_at_utc"])
        for r in rows
    } == {("webhook edit", "webhook", run, expected_event)}
    assert _changed(world, "fct_invoice_lines") == {edited}

    # the hourly safety poll re-reads the invoice: same content, so the webhook's read stays
    world.read(WEBHOOKED, {PURPOSE_TAG: "safety-poll"})
    again = world.build()
    assert _documents("fct_invoice_lines", again["fct_invoice_lines"]) == _documents(
        "fct_invoice_lines", tables["fct_invoice_lines"]
    )
    assert world.published.last["fct_invoice_lines"].is_empty


def test_a_silent_change_found_by_the_sweep_carries_the_sweep(world: World) -> None:
    """Xero changes a line's account code without bumping UpdatedDateUTC: only the sweep sees
    it, and the published rows name the sweep's read."""
    invoice = next(
        i
        for i in world.data.collections["Invoices"].values()
        if i["Status"] == "AUTHORISED" and i["LineItems"] and i.get("Reference") != "webhook edit"
    )
    line = invoice["LineItems"][0]
    codes = [
        a["Code"]
        for a in world.data.collections["Accounts"].values()
        if a.get("Code") and a.get("Type") == "REVENUE" and a["Code"] != line.get("AccountCode")
    ]
    with world.sandbox.sandbox.dataset.lock:
        world.writer.edit_line_account_code(
            world.tenant, "Invoices", invoice["InvoiceID"], line["LineItemID"], codes[0]
        )
    day = record_day(invoice)
    run = world.read(ALL_RAW, {PURPOSE_TAG: "sweep-history"}, first=day - timedelta(days=1))
    rows = _rows_of(world.build()["fct_invoice_lines"], "invoice_id", invoice["InvoiceID"])
    assert {(r["sync_source"], r["dagster_run_id"]) for r in rows} == {("sweep", run)}
    assert codes[0] in {r["account_code"] for r in rows}
    assert _changed(world, "fct_invoice_lines") == {invoice["InvoiceID"]}


def test_renames_in_the_reference_snapshots(world: World) -> None:
    """A renamed account: its dimension row names the refresh that read it. A renamed
    organisation: every row shows the new name (it is content) and keeps its provenance."""
    before = world.tables()
    account = sorted(world.data.collections["Accounts"].values(), key=lambda a: a["AccountID"])[0]
    with world.sandbox.sandbox.dataset.lock:
        world.writer.update(world.tenant, "Accounts", account["AccountID"], {"Name": "Renamed"})
        world.data.organisation["Name"] = "Renamed Organisation Ltd"
    refresh = materialize(
        world.definitions,
        world.instance,
        REFERENCE_KEYS,
        partition_key=world.tenant,
        tags={"dagster/from_automation_condition": "true"},
    )
    assert refresh.success
    after = world.build()
    dim = _provenance(after["dim_accounts"], "account_id")
    assert dim.pop(account["AccountID"])[1:] == ("poll", refresh.run_id, None)
    assert dim == {
        k: v
        for k, v in _provenance(before["dim_accounts"], "account_id").items()
        if k != account["AccountID"]
    }
    for name, table in after.items():
        assert set(table.column("organisation_name").to_pylist()) == {"Renamed Organisation Ltd"}
        if name != "dim_accounts":
            assert table.select(list(PROVENANCE)).equals(before[name].select(list(PROVENANCE)))
        diff = world.published.last[name]
        assert (
            diff.changed_ids.num_rows
            == table.select(list(document_key(name)))
            .group_by(list(document_key(name)))
            .aggregate([])
            .num_rows
        )


def test_the_incremental_publish_and_a_full_replace_agree(world: World) -> None:
    """Every build above checked it after its step (``World.build``); once more at the end, after
    a last round of re-reads: the incrementally published rows equal the rows a full replace of
    the same lake publishes, provenance included."""
    world.read(
        ALL_RAW, {PURPOSE_TAG: "sweep-recent"}, first=datetime.now(UTC).date() - timedelta(7)
    )
    tables = world.build()
    for name, table in tables.items():
        assert world.published.rows[name] == _documents(name, table), name
