"""Switched-off entities, the catch-up after a gap and the sweep of old history, end to end.

Real HTTP against the Xero sandbox (records changed through its admin API), real Dagster runs on
a temporary instance, the tables read back from the lake, the audit trail from the state DB.
"""

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from xero_tableau import raw_lake
from xero_tableau.asset_names import day_range_tags
from xero_tableau.definitions import defs as load_definitions
from xero_tableau.defs.schedules import xero_sweep
from xero_tableau.defs.table_assets import TABLE_KEYS
from xero_tableau.entities import PUBLISHED_TABLES
from xero_tableau.sandbox.dataset import ms_date, utc_string
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.settings import Settings
from xero_tableau.store import db, lake, watermarks
from xero_tableau.store.audit import trail
from xero_tableau.sync import RAW_KEYS, sync_all
from xero_tableau.tenant_tables import build_tenant_tables
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    materialize,
    sandbox_with_callback,
    settings_env,
)

DATA = GeneratorConfig(tenants=1, invoice_lines=500, history_days=120)
# The first test carries the module's full sync (its fixture): on a busy machine that alone can
# take most of the default 10 minutes.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    sandbox = sandbox_with_callback(data=DATA)
    home = tmp_path_factory.mktemp("home")
    settings, _tenants = connected_settings(sandbox, home)
    patch = pytest.MonkeyPatch()
    for key, value in settings_env(settings).items():
        patch.setenv(key, value)
    patch.delenv("XT_DISABLED_ENTITIES", raising=False)
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
        sync_all(settings, instance, load_definitions(), lambda _line: None)
        yield sandbox, settings, instance
    patch.undo()
    sandbox.stop()


def _table(settings: Settings, tenant: str, name: str) -> pa.Table:
    return pq.read_table(lake.tenant_dir(settings.lake_dir, tenant) / "tables" / f"{name}.parquet")


def _run(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    tenant: str,
    *,
    tables: bool = True,
) -> dg.ExecuteInProcessResult:
    """A raw run with ``tags`` (a poll, a sweep), then (a run of) the tenant's tables."""
    raw = materialize(definitions, instance, RAW_KEYS, tags=tags)
    assert raw.success
    if tables:
        built = materialize(definitions, instance, list(TABLE_KEYS.values()), partition_key=tenant)
        assert built.success
    return raw


def _rebuild(settings: Settings, tenant: str) -> None:
    """The tenant's tables as its tables asset builds them (all entities switched on)."""
    engine = db.connect(settings.database_url)
    try:
        build_tenant_tables(settings.lake_dir, tenant, engine)
    finally:
        engine.dispose()


def _admin(sandbox: CallbackSandbox, path: str, body: dict | None = None) -> dict:
    response = httpx.post(f"{sandbox.base_url}/sandbox/admin/{path}", json=body or {})
    assert response.status_code == 200, response.text
    return response.json()


def _backdate(sandbox: CallbackSandbox, tenant_id: str, endpoint: str, record: dict, at: datetime):
    """Move a change the admin API just made back to ``at``: as if it had been made then."""
    ms = int(at.timestamp() * 1000)
    with sandbox.sandbox.dataset.lock:
        tenant = sandbox.sandbox.dataset.tenant(tenant_id)
        assert tenant is not None
        stored = tenant.collections[endpoint][record[f"{endpoint[:-1]}ID"]]
        stored["UpdatedDateUTC"] = ms_date(ms)
        if "UpdatedDateUTCString" in stored:
            stored["UpdatedDateUTCString"] = utc_string(ms)
        tenant.put(endpoint, stored)


def _day(record: dict) -> date:
    return datetime.fromtimestamp(int(record["UpdatedDateUTC"][6:19]) / 1000, UTC).date()


def _tenant(world: tuple) -> str:
    sandbox, _settings, _instance = world
    return sorted(sandbox.sandbox.dataset.tenants)[0]


def test_a_switched_off_entity_has_empty_tables_and_is_caught_up_when_on_again(
    world: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, settings, instance = world
    tenant_id = _tenant(world)
    tenant = sandbox.sandbox.dataset.tenants[tenant_id]
    today = sandbox.sandbox.clock.now().date()
    poll = day_range_tags(tenant_id, today - timedelta(days=1), today)
    assert _table(settings, tenant_id, "fct_credit_note_lines").num_rows > 0
    assert _table(settings, tenant_id, "fct_purchase_order_lines").num_rows > 0

    monkeypatch.setenv("XT_DISABLED_ENTITIES", "credit_notes,purchase_orders")
    _run(load_definitions(), instance, poll, tenant_id)
    # switched off: no rows, though the lake keeps the partitions for later
    assert _table(settings, tenant_id, "fct_credit_note_lines").num_rows == 0
    assert _table(settings, tenant_id, "fct_purchase_order_lines").num_rows == 0
    assert _table(settings, tenant_id, "fct_invoice_lines").num_rows > 0
    assert raw_lake.partition_days(settings.lake_dir, tenant_id, "CreditNotes")

    # Off for ten days (the watermark says so); four days ago a credit note's reference was
    # changed and a draft one deleted, which a poll of yesterday and today cannot see.
    engine = db.connect(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(db.xero_read_watermarks)
                .where(db.xero_read_watermarks.c.entity == "CreditNotes")
                .values(read_through=datetime.now(UTC) - timedelta(days=10))
            )
        notes = [
            c
            for c in tenant.collections["CreditNotes"].values()
            if _day(c) < today - timedelta(days=5)
        ]
        edited = next(c for c in notes if c["Status"] not in ("VOIDED", "DELETED"))
        drafts = [c for c in notes if c["Status"] in ("DRAFT", "SUBMITTED")]
        base = f"tenants/{tenant_id}/CreditNotes"
        response = httpx.patch(
            f"{sandbox.base_url}/sandbox/admin/{base}/{edited['CreditNoteID']}",
            json={"Reference": "changed while off"},
        )
        assert response.status_code == 200, response.text
        changed = [response.json()]
        changed += [_admin(sandbox, f"{base}/{d['CreditNoteID']}/delete") for d in drafts[:1]]
        four_days_ago = datetime.now(UTC) - timedelta(days=4)
        for record in changed:
            _backdate(sandbox, tenant_id, "CreditNotes", record, four_days_ago)

        monkeypatch.delenv("XT_DISABLED_ENTITIES")
        started = datetime.now(UTC)
        _run(load_definitions(), instance, poll, tenant_id, tables=False)
        _rebuild(settings, tenant_id)
        lines = _table(settings, tenant_id, "fct_credit_note_lines").to_pylist()
        by_note = {row["credit_note_id"]: row for row in lines}
        with_lines = {k for k, c in tenant.collections["CreditNotes"].items() if c.get("LineItems")}
        assert set(by_note) == with_lines
        assert by_note[edited["CreditNoteID"]]["reference"] == "changed while off"
        for draft in drafts[:1]:
            assert by_note[draft["CreditNoteID"]]["status"] == "DELETED"
        assert _table(settings, tenant_id, "fct_purchase_order_lines").num_rows > 0
        mark = watermarks.read_through(engine, tenant_id, "CreditNotes")
        assert mark is not None and mark >= started - timedelta(seconds=1)
    finally:
        engine.dispose()


def test_an_entity_never_read_is_read_from_the_organisations_creation(world: tuple) -> None:
    """Manual journals never read (no watermark, nothing in the lake): the first poll reads
    all of them, not only those changed yesterday or today."""
    sandbox, settings, instance = world
    tenant_id = _tenant(world)
    tenant = sandbox.sandbox.dataset.tenants[tenant_id]
    today = sandbox.sandbox.clock.now().date()
    engine = db.connect(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.delete(db.xero_read_watermarks).where(
                    db.xero_read_watermarks.c.entity == "ManualJournals"
                )
            )
    finally:
        engine.dispose()
    shutil.rmtree(raw_lake.entity_dir(settings.lake_dir, tenant_id, "ManualJournals"))
    older = [
        j
        for j in tenant.collections["ManualJournals"].values()
        if _day(j) < today - timedelta(days=1)
    ]
    assert older
    raw = _run(
        load_definitions(),
        instance,
        day_range_tags(tenant_id, today - timedelta(days=1), today),
        tenant_id,
        tables=False,
    )
    _rebuild(settings, tenant_id)
    journals = {
        row["manual_journal_id"]
        for row in _table(settings, tenant_id, "fct_manual_journal_lines").to_pylist()
    }
    with_lines = {
        j["ManualJournalID"]
        for j in tenant.collections["ManualJournals"].values()
        if j.get("JournalLines")
    }
    assert journals == with_lines
    windows = {
        str(m.materialization.metadata["window"].value)
        for m in raw.get_asset_materialization_events()
        if m.materialization.asset_key.path[-1] == "manual_journals"
    }
    created = raw_lake.history_start(settings.lake_dir, tenant_id)
    assert windows == {f"{tenant_id}: {created:%Y-%m-%d} .. {today:%Y-%m-%d}"}


def test_the_sweep_re_reads_a_two_month_old_bill_whose_account_was_recoded_and_audits_it(
    world: tuple,
) -> None:
    """Recoding a line's account does not bump UpdatedDateUTC: only a re-read of the bill's day
    sees it. Within the sweep's period some night's older slice holds that day; its read starts
    at the slice's first day (not at a watermark), finds the edit, and the audit trail keeps
    both contents of the one UpdatedDateUTC."""
    sandbox, settings, instance = world
    tenant_id = _tenant(world)
    tenant = sandbox.sandbox.dataset.tenants[tenant_id]
    today = sandbox.sandbox.clock.now().date()

    bill = min(
        (
            i
            for i in tenant.collections["Invoices"].values()
            if i["Type"] == "ACCPAY" and i.get("LineItems") and _day(i) <= today - timedelta(60)
        ),
        key=lambda i: abs((_day(i) - (today - timedelta(days=60))).days),
    )
    line = bill["LineItems"][0]
    new_code = next(
        a["Code"]
        for a in tenant.collections["Accounts"].values()
        if a.get("Code")
        and a["Code"] != line["AccountCode"]
        and a.get("Type") in ("EXPENSE", "OVERHEADS", "DIRECTCOSTS")
    )
    before = bill["UpdatedDateUTC"]
    _admin(
        sandbox,
        f"tenants/{tenant_id}/Invoices/{bill['InvoiceID']}/lines/{line['LineItemID']}/account-code",
        {"AccountCode": new_code},
    )
    assert tenant.collections["Invoices"][bill["InvoiceID"]]["UpdatedDateUTC"] == before

    definitions = load_definitions()
    resources = {"xero": (definitions.resources or {})["xero"]}
    slices = []
    for back in range(7):  # XT_SWEEP_PERIOD_DAYS
        night = datetime(today.year, today.month, today.day, 2, 30, tzinfo=UTC)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=night - timedelta(days=back),
            resources=resources,
        ) as context:
            requests = xero_sweep.evaluate_tick(context).run_requests or []
        slices += [r for r in requests if r.tags["xero/purpose"] == "sweep-history"]

    def days(request: dg.RunRequest) -> tuple[date, date]:
        start = request.tags["dagster/asset_partition_range_start"][:10]
        end = request.tags["dagster/asset_partition_range_end"][:10]
        return date.fromisoformat(start), date.fromisoformat(end)

    holding = [r for r in slices if days(r)[0] <= _day(bill) <= days(r)[1]]
    assert holding, [days(r) for r in slices]
    request = holding[0]
    raw = _run(definitions, instance, dict(request.tags), tenant_id, tables=False)
    _rebuild(settings, tenant_id)
    first, last = days(request)
    windows = {
        str(m.materialization.metadata["window"].value)
        for m in raw.get_asset_materialization_events()
    }
    assert windows == {f"{tenant_id}: {first:%Y-%m-%d} .. {last:%Y-%m-%d}"}

    codes = {
        row["account_code"]
        for row in _table(settings, tenant_id, "fct_invoice_lines").to_pylist()
        if row["line_item_id"] == line["LineItemID"]
    }
    assert codes == {new_code}
    engine = db.connect(settings.database_url)
    try:
        found = trail(engine, bill["InvoiceID"], PUBLISHED_TABLES)
    finally:
        engine.dispose()
    assert len({v.updated_at_utc for v in found.versions}) == 1
    assert [v.purpose for v in found.versions] == ["sync", "sweep-history"]
    assert len({v.content_digest for v in found.versions}) == 2
