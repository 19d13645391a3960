"""Publishing through the asset graph: Xero sandbox -> Dagster -> Tableau sandbox (real TSC).

After each step the data source stored by the Tableau sandbox is read back with tableauhyperapi
and compared with the normalized table the lake holds: same rows, same sums.
"""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from xero_tableau.asset_names import day_range_tags
from xero_tableau.definitions import defs as load_definitions
from xero_tableau.defs.table_assets import TABLE_KEYS
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.settings import Settings
from xero_tableau.store import lake
from xero_tableau.sync import EXTRACTS_KEY, RAW_KEYS, sync_all
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tenant_publish import route_for
from xero_tableau_tests.xero_harness import (
    connected_settings,
    materialize,
    sandbox_with_callback,
    settings_env,
)

DATA = GeneratorConfig(tenants=2, invoice_lines=600, history_days=20)
FACT = "fct_invoice_lines"


def _tableau_env(tableau: RunningTableauSandbox, **extra: str) -> dict[str, str]:
    from xero_tableau.sandbox.credentials import tableau_env

    return {**tableau_env(tableau.base_url), **extra}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    sandbox = sandbox_with_callback(data=DATA)
    tableau = start_tableau_sandbox(
        TableauSandboxConfig(storage_dir=tmp_path_factory.mktemp("tableau"))
    )
    home = tmp_path_factory.mktemp("home")
    settings, _ = connected_settings(sandbox, home, **_tableau_env(tableau))
    patch = pytest.MonkeyPatch()
    for key, value in {**settings_env(settings), **_tableau_env(tableau)}.items():
        patch.setenv(key, value)
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
        definitions = load_definitions()
        summaries = sync_all(Settings.from_env(), instance, definitions, lambda _line: None)
        yield sandbox, tableau, instance, definitions, summaries
    patch.undo()
    tableau.stop()
    sandbox.stop()


def _published(tableau: RunningTableauSandbox, settings: Settings, tenant: str, table: str):
    route = route_for(settings, tenant)
    path = tableau.sandbox.datasource_path(route.site, route.datasource_name(table), route.project)
    with HyperWriter() as writer:
        return writer.read_table(Path(path), table)


def _lake(settings: Settings, tenant: str, table: str):
    return pq.read_table(lake.tenant_dir(settings.lake_dir, tenant) / "tables" / f"{table}.parquet")


def _same(published, local) -> None:
    drop = ["fetched_at_utc"]
    a = published.drop_columns([c for c in drop if c in published.column_names])
    b = local.drop_columns([c for c in drop if c in local.column_names])
    assert a.num_rows == b.num_rows
    assert sorted(map(repr, a.to_pylist())) == sorted(map(repr, b.to_pylist()))


def _resync(world: tuple, tenant: str) -> dg.ExecuteInProcessResult:
    """Re-read yesterday and today of ``tenant``; rebuild, extract and publish its tables, with
    the settings the environment holds now (the resources read it when the definitions load)."""
    sandbox, _tableau, instance, _definitions, _ = world
    definitions = load_definitions()
    today = sandbox.sandbox.clock.now().date()
    tags = day_range_tags(tenant, today - timedelta(days=1), today)
    assert materialize(definitions, instance, RAW_KEYS, tags=tags).success
    return materialize(
        definitions,
        instance,
        [*TABLE_KEYS.values(), EXTRACTS_KEY],
        partition_key=tenant,
        raise_on_error=False,
    )


def test_first_publish_creates_every_data_source_equal_to_the_lake(world: tuple) -> None:
    sandbox, tableau, _instance, _defs, summaries = world
    settings = Settings.from_env()
    assert all(s.published for s in summaries)
    for tenant in sandbox.sandbox.dataset.tenants:
        for table in TABLE_KEYS:
            _same(_published(tableau, settings, tenant, table), _lake(settings, tenant, table))


def test_incremental_publish_after_edits_voids_and_new_documents(world: tuple) -> None:
    sandbox, tableau, _instance, _defs, _ = world
    settings = Settings.from_env()
    tenant = sorted(sandbox.sandbox.dataset.tenants)[0]
    data = sandbox.sandbox.dataset.tenants[tenant]
    writer = SandboxWriter(sandbox.sandbox)
    authorised = [
        i
        for i in data.collections["Invoices"].values()
        # voidable: Xero (and the sandbox) refuse to void an invoice with payments or credit
        if i["Status"] == "AUTHORISED" and not i.get("Payments") and not i.get("AmountCredited")
    ]
    contact = next(iter(data.collections["Contacts"].values()))
    account = next(a for a in data.collections["Accounts"].values() if a.get("Type") == "REVENUE")
    with sandbox.sandbox.dataset.lock:
        writer.void(tenant, "Invoices", authorised[0]["InvoiceID"])
        writer.update(tenant, "Invoices", authorised[1]["InvoiceID"], {"Reference": "edited"})
        created = writer.create(
            tenant,
            "Invoices",
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": contact["ContactID"]},
                "LineItems": [
                    {"Description": "Workshop", "Quantity": 3, "UnitAmount": 450.5,
                     "AccountCode": account["Code"]}
                ],
            },
        )  # fmt: skip
    before = tableau.sandbox.requests_log.copy()
    result = _resync(world, tenant)
    assert result.success
    published = _published(tableau, settings, tenant, FACT)
    _same(published, _lake(settings, tenant, FACT))
    rows = {r["invoice_id"]: r for r in published.to_pylist()}
    assert rows[authorised[0]["InvoiceID"]]["is_voided"] is True
    assert rows[authorised[1]["InvoiceID"]]["reference"] == "edited"
    assert created["InvoiceID"] in rows
    # incremental: update_hyper_data, no full re-publish of the invoice lines
    jobs = result.get_asset_materialization_events()[-1].materialization.metadata["tableau/jobs"]
    modes = {j["table"]: j["mode"] for j in jobs.value}  # type: ignore[union-attr]
    assert modes[FACT] == "update"
    assert modes["dim_accounts"] == "unchanged"
    patches = sum(n for k, n in tableau.sandbox.requests_log.items() if k.startswith("PATCH"))
    assert patches > sum(n for k, n in before.items() if k.startswith("PATCH"))


def test_a_failed_job_is_sent_again_by_the_next_run_without_doubling(world: tuple) -> None:
    sandbox, tableau, _instance, _defs, _ = world
    settings = Settings.from_env()
    tenant = sorted(sandbox.sandbox.dataset.tenants)[1]
    data = sandbox.sandbox.dataset.tenants[tenant]
    invoice = next(i for i in data.collections["Invoices"].values() if i["Status"] == "AUTHORISED")
    with sandbox.sandbox.dataset.lock:
        SandboxWriter(sandbox.sandbox).update(
            tenant, "Invoices", invoice["InvoiceID"], {"Reference": "retry me"}
        )
    tableau.sandbox.faults.fail_next_jobs = 1
    failed = _resync(world, tenant)
    assert not failed.success
    retried = _resync(world, tenant)
    assert retried.success
    published = _published(tableau, settings, tenant, FACT)
    _same(published, _lake(settings, tenant, FACT))
    refs = [
        r["reference"] for r in published.to_pylist() if r["invoice_id"] == invoice["InvoiceID"]
    ]
    assert refs and set(refs) == {"retry me"}
    assert len(refs) == len(invoice["LineItems"])


def test_two_tenants_routed_to_two_sites_never_see_each_others_rows(
    world: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, tableau, _instance, _defs, _ = world
    first, second = sorted(sandbox.sandbox.dataset.tenants)
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "tenants:\n"
        f"  '{first}': {{site: '', project: Xero, datasource_prefix: 'NZ_'}}\n"
        f"  '{second}': {{site: finance, project: Xero, datasource_prefix: 'UK_'}}\n"
    )
    monkeypatch.setenv("XT_ROUTING_FILE", str(routing))
    for tenant in (first, second):
        assert _resync(world, tenant).success
    settings = Settings.from_env()
    for tenant in (first, second):
        published = _published(tableau, settings, tenant, FACT)
        assert set(published.column("tenant_id").to_pylist()) == {tenant}
        _same(published, _lake(settings, tenant, FACT))
    assert route_for(settings, first).site != route_for(settings, second).site


def test_a_project_without_publish_rights_fails_before_any_data_moves(
    world: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, tableau, _instance, _defs, _ = world
    tenant = sorted(sandbox.sandbox.dataset.tenants)[0]
    monkeypatch.setenv("TABLEAU_PROJECT", "Restricted")
    monkeypatch.delenv("XT_ROUTING_FILE", raising=False)
    before = dict(tableau.sandbox.requests_log)
    result = _resync(world, tenant)
    assert not result.success
    after = tableau.sandbox.requests_log
    data_moving = ("PATCH ", "POST /sites/{site}/datasources", "POST /sites/{site}/fileUploads")
    moved = [k for k, n in after.items() if n != before.get(k, 0) and k.startswith(data_moving)]
    assert moved == []


def test_replace_mode_overwrites_with_the_full_extract(
    world: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, tableau, _instance, _defs, _ = world
    tenant = sorted(sandbox.sandbox.dataset.tenants)[1]
    monkeypatch.delenv("XT_ROUTING_FILE", raising=False)
    monkeypatch.setenv("TABLEAU_PUBLISH_MODE", "replace")
    before = dict(tableau.sandbox.requests_log)
    result = _resync(world, tenant)
    assert result.success
    jobs = result.get_asset_materialization_events()[-1].materialization.metadata["tableau/jobs"]
    assert {j["mode"] for j in jobs.value} == {"replace"}  # type: ignore[union-attr]
    settings = Settings.from_env()
    for table in TABLE_KEYS:
        _same(_published(tableau, settings, tenant, table), _lake(settings, tenant, table))
    after = tableau.sandbox.requests_log
    assert after["POST /sites/{site}/datasources"] > before.get("POST /sites/{site}/datasources", 0)
