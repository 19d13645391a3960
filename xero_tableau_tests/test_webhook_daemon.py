"""End to end through the real Dagster daemon: an edit in Xero reaches the published data source.

The sandbox's bookkeeper edits an invoice; its webhook is POSTed (signed) to our receiver, which
queues it; the daemon (a real ``dagster-daemon run`` subprocess) ticks the webhook sensor, launches
the raw run, then the automation sensor launches the tables and extracts run, which publishes to
the Tableau sandbox incrementally. The test reads the row back from the published .hyper.
"""

import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pytest

from xero_tableau.cli import main, run_sync
from xero_tableau.devstack import LiveStack, start_live_stack
from xero_tableau.entities import PUBLISHED_TABLES
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store.audit import trail
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.tenant_publish import route_for

DATA = GeneratorConfig(tenants=1, invoice_lines=300, history_days=20)
TABLE = "fct_invoice_lines"
WAIT_S = 240


def _published_references(stack: LiveStack, tenant: str, invoice: str) -> list[tuple]:
    route = route_for(Settings.from_env(), tenant)
    sql = (
        f'SELECT DISTINCT "reference", "status" FROM "ds"."Extract"."{TABLE}" '
        f"WHERE \"invoice_id\" = '{invoice}'"
    )
    return stack.tableau.sandbox.query(route.site, route.datasource_name(TABLE), sql, route.project)


def _daemon_log(stack: LiveStack) -> str:
    path = stack.home / "logs" / "dagster-daemon.log"
    return path.read_text(errors="replace")[-6000:] if path.exists() else "(no daemon log)"


def test_a_webhook_reaches_the_published_hyper_through_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = start_live_stack(
        tmp_path / "home", data=DATA, xero_config=XeroSandboxConfig(webhook_batch_seconds=0.5)
    )
    try:
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        assert run_sync(Settings.from_env()) == 0
        (tenant,) = stack.tenants
        invoices = stack.xero.sandbox.dataset.tenants[tenant].collections["Invoices"].values()
        invoice = next(
            i["InvoiceID"] for i in invoices if i["Status"] == "AUTHORISED" and i["LineItems"]
        )
        status = next(i["Status"] for i in invoices if i["InvoiceID"] == invoice)
        assert _published_references(stack, tenant, invoice) != [("live from a webhook", status)]

        stack.start_dagster("daemon")
        edited_at = time.monotonic()
        SandboxWriter(stack.xero.sandbox).update(
            tenant, "Invoices", invoice, {"Reference": "live from a webhook"}
        )
        seen: list[tuple] = []
        while time.monotonic() - edited_at < WAIT_S:
            seen = _published_references(stack, tenant, invoice)
            if seen == [("live from a webhook", status)]:
                break
            assert stack.dagster is not None and stack.dagster.poll() is None, _daemon_log(stack)
            time.sleep(1)
        assert seen == [("live from a webhook", status)], _daemon_log(stack)

        # The event is done, covered by a webhook run that succeeded, recorded in the instance.
        (event,) = EventQueue(stack.engine).history(invoice)
        assert event.status == "done" and event.run_id
        instance = dg.DagsterInstance.get()
        run = instance.get_run_by_id(event.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["xero/purpose"] == "webhook"
        assert run.tags["dagster/sensor_name"] == "xero_webhook_events"
        followers: Sequence[dg.DagsterRun] = []
        deadline = time.monotonic() + 60  # the row is readable before the run records success
        while not followers and time.monotonic() < deadline:
            followers = instance.get_runs(
                filters=dg.RunsFilter(
                    tags={"dagster/sensor_name": "xero_automation", "dagster/partition": tenant},
                    statuses=[dg.DagsterRunStatus.SUCCESS],
                )
            )
            time.sleep(0.5)
        assert followers, "no automation run rebuilt and published the tenant's tables"
        assert followers[0].asset_selection and dg.AssetKey(["tableau", "extracts"]) in (
            followers[0].asset_selection
        )

        # The audit trail links it all: the version the sync read, the version the webhook run
        # read, the event, and the Tableau jobs that carried each into the data source.
        found = trail(stack.engine, invoice, PUBLISHED_TABLES)
        purposes = [(v.purpose, v.run_id) for v in found.versions]
        assert purposes[0][0] == "sync" and purposes[-1] == ("webhook", event.run_id)
        carried = [p for p in found.publishes if p.table_name == TABLE]
        assert [p.mode for p in carried][:1] == ["create"]
        latest = carried[-1]
        assert latest.version_updated_at == found.versions[-1].updated_at_utc
        assert latest.status == "succeeded" and latest.finish_code == 0 and latest.job_id
        capsys.readouterr()
        assert main(["audit", invoice]) == 0
        printed = capsys.readouterr().out
        assert f"run {event.run_id} (webhook, read by window)" in printed
        assert f"job {latest.job_id} finish code 0" in printed
    finally:
        stack.stop()
