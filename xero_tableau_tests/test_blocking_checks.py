"""Failed ERROR data checks block the publish: in a Dagster run, in the automation, and in
``xero-tableau sync``; the other tenants are published all the same.

Two sandbox organisations; through the Xero sandbox's admin API (real HTTP) one invoice of the
first gets a SubTotal its lines do not add up to, so its ``lines_sum_to_subtotal`` check (ERROR)
fails. Everything runs for real: the CLI's sync on a Dagster instance at DAGSTER_HOME, the Tableau
sandbox receiving the publishes, the automation evaluated on that instance.
"""

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import dagster as dg
import httpx
import pytest

from xero_tableau.asset_names import day_range_tags
from xero_tableau.cli import run_sync
from xero_tableau.definitions import defs as load_definitions
from xero_tableau.defs.table_assets import TABLE_KEYS
from xero_tableau.sandbox.credentials import tableau_env
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.settings import Settings
from xero_tableau.sync import EXTRACTS_KEY, RAW_KEYS
from xero_tableau.tenant_publish import route_for
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    materialize,
    sandbox_with_callback,
    settings_env,
)

DATA = GeneratorConfig(tenants=2, invoice_lines=300, history_days=15)
CHECK = "lines_sum_to_subtotal"


@dataclass
class World:
    sandbox: CallbackSandbox
    tableau: RunningTableauSandbox
    bad: str  # the tenant whose invoice is out of balance
    good: str
    invoice: dict  # the invoice, as the admin API returned it after the edit
    status: int  # what `xero-tableau sync` returned
    output: str  # and what it printed


def _admin(sandbox: CallbackSandbox, tenant: str, invoice_id: str, changes: dict) -> dict:
    url = f"{sandbox.base_url}/sandbox/admin/tenants/{tenant}/Invoices/{invoice_id}"
    response = httpx.patch(url, json=changes, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox = sandbox_with_callback(data=DATA)
    tableau = start_tableau_sandbox(
        TableauSandboxConfig(storage_dir=tmp_path_factory.mktemp("tableau"))
    )
    home = tmp_path_factory.mktemp("home")
    settings, _ = connected_settings(sandbox, home, **tableau_env(tableau.base_url))
    patch = pytest.MonkeyPatch()
    env = {
        **settings_env(settings),
        **tableau_env(tableau.base_url),
        "DAGSTER_HOME": str(tmp_path_factory.mktemp("dagster")),
    }
    for key, value in env.items():
        patch.setenv(key, value)
    bad, good = sorted(sandbox.sandbox.dataset.tenants)
    invoice = next(
        i
        for i in sandbox.sandbox.dataset.tenants[bad].collections["Invoices"].values()
        if i["Status"] == "AUTHORISED" and i.get("LineItems")
    )
    wrong = float(Decimal(str(invoice["SubTotal"])) + 100)
    edited = _admin(sandbox, bad, invoice["InvoiceID"], {"SubTotal": wrong})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = run_sync(Settings.from_env())
    yield World(sandbox, tableau, bad, good, edited, status, out.getvalue())
    patch.undo()
    tableau.stop()
    sandbox.stop()


def _published_tables(world: World, tenant: str) -> set[str]:
    settings = Settings.from_env()
    route = route_for(settings, tenant)
    found = set()
    for table in TABLE_KEYS:
        try:
            world.tableau.sandbox.find_datasource(
                route.site, route.datasource_name(table), route.project
            )
        except KeyError:
            continue
        found.add(table)
    return found


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get()  # the one at DAGSTER_HOME, where the sync ran


def test_sync_publishes_the_healthy_tenant_only_and_says_why_not_the_other(world: World) -> None:
    assert world.status != 0, world.output
    assert _published_tables(world, world.good) == set(TABLE_KEYS)
    assert _published_tables(world, world.bad) == set()
    settings = Settings.from_env()
    assert not (settings.hyper_dir / world.bad).exists()  # not even the local extracts
    assert (settings.hyper_dir / world.good / "fct_invoice_lines.hyper").exists()
    name = world.sandbox.sandbox.dataset.tenants[world.bad].name
    reason = [line for line in world.output.splitlines() if CHECK in line]
    assert reason, world.output
    assert any(world.invoice["InvoiceID"] in line for line in reason), world.output
    assert "[ERROR]" in reason[0]
    assert f"NOT PUBLISHED: {name}" in world.output


def test_a_run_of_tables_and_extracts_stops_at_the_failed_check(world: World) -> None:
    definitions = load_definitions()
    with _instance() as instance:
        keys = [*TABLE_KEYS.values(), EXTRACTS_KEY]
        bad = materialize(
            definitions, instance, keys, partition_key=world.bad, raise_on_error=False
        )
        good = materialize(definitions, instance, keys, partition_key=world.good)
    assert not bad.success
    materialized = {e.asset_key for e in bad.get_asset_materialization_events()}
    assert EXTRACTS_KEY not in materialized
    assert set(TABLE_KEYS.values()) <= materialized  # the tables were built, to look at
    failed = [e for e in bad.get_asset_check_evaluations() if not e.passed]
    assert [(e.check_name, e.severity, e.blocking) for e in failed] == [
        (CHECK, dg.AssetCheckSeverity.ERROR, True)
    ]
    assert good.success
    assert EXTRACTS_KEY in {e.asset_key for e in good.get_asset_materialization_events()}


def test_the_automation_does_not_request_the_extracts_of_failed_tables(world: World) -> None:
    definitions = load_definitions()
    selection = dg.AssetSelection.assets(EXTRACTS_KEY)
    with _instance() as instance:
        first = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=selection
        )
        for tenant in (world.bad, world.good):
            materialize(
                definitions,
                instance,
                list(TABLE_KEYS.values()),
                partition_key=tenant,
                raise_on_error=False,
            )
        second = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, asset_selection=selection, cursor=first.cursor
        )
    assert set(second.get_requested_partitions(EXTRACTS_KEY)) == {world.good}


def test_a_run_of_the_extracts_alone_refuses_failed_tables(world: World) -> None:
    definitions = load_definitions()
    with _instance() as instance:
        result = materialize(
            definitions, instance, [EXTRACTS_KEY], partition_key=world.bad, raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and CHECK in failures[0].step_failure_data.error.message  # type: ignore[union-attr]
    assert _published_tables(world, world.bad) == set()


def test_once_the_data_is_fixed_the_tenant_is_published(world: World) -> None:
    # the last test of the module: the tenant is healthy afterwards
    lines = sum(Decimal(str(line["LineAmount"])) for line in world.invoice["LineItems"])
    if world.invoice.get("LineAmountTypes") == "Inclusive":
        lines -= sum(Decimal(str(line["TaxAmount"])) for line in world.invoice["LineItems"])
    _admin(world.sandbox, world.bad, world.invoice["InvoiceID"], {"SubTotal": float(lines)})
    today = world.sandbox.sandbox.clock.now().date()
    definitions = load_definitions()
    with _instance() as instance:
        tags = day_range_tags(world.bad, today - timedelta(days=1), today)
        assert materialize(definitions, instance, RAW_KEYS, tags=tags).success
        keys = [*TABLE_KEYS.values(), EXTRACTS_KEY]
        assert materialize(definitions, instance, keys, partition_key=world.bad).success
    assert _published_tables(world, world.bad) == set(TABLE_KEYS)
