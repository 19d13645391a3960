"""The webhook sensor, from a bookkeeper's edit in the sandbox to the raw lake.

Edits go through the sandbox's writer, which fires signed webhooks over real HTTP to our receiver
(``build_receiver`` served by uvicorn); the receiver queues them in the state DB. The sensor is
evaluated with ``build_sensor_context`` on a real instance, and each run it asks for is executed
as a real in-process Dagster run with the request's tags. Xero calls are counted by the sandbox.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pytest

from xero_tableau import raw_lake
from xero_tableau.asset_names import WEBHOOK_BATCH_TAG, raw_path
from xero_tableau.definitions import defs as load_definitions
from xero_tableau.defs.schedules import xero_webhook_safety_poll
from xero_tableau.defs.webhooks import WEBHOOK_SENSOR
from xero_tableau.entities import ENTITIES
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.server import ServedApp
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.sync import sync_all
from xero_tableau.webhooks.receiver import WEBHOOK_PATH, build_receiver
from xero_tableau.webhooks.tick import backoff
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    materialize,
    sandbox_with_callback,
    settings_env,
)

DATA = GeneratorConfig(tenants=2, invoice_lines=600, history_days=30)


@dataclass
class World:
    sandbox: CallbackSandbox
    settings: Settings
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    queue: EventQueue
    tenants: list[str]
    receiver_url: str
    cursor: str | None = None
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def writer(self) -> SandboxWriter:
        return SandboxWriter(self.sandbox.sandbox)

    def flush(self) -> None:
        assert self.sandbox.sandbox.webhooks.flush(30), "the sandbox did not deliver its webhooks"

    def tick(self) -> list[dg.RunRequest]:
        """One sensor evaluation, as the daemon does it (the cursor carried over)."""
        sensor = self.definitions.resolve_sensor_def(WEBHOOK_SENSOR)
        # A context manager: the resources nest (the Xero resource holds the state resource).
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=dict(self.definitions.resources or {}),
        ) as context:
            result = sensor(context)
        if isinstance(result, dg.SkipReason):
            return []
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor or self.cursor
        return list(result.run_requests or [])

    def execute(self, request: dg.RunRequest, ok: bool = True) -> dg.ExecuteInProcessResult:
        """Run a request as the daemon would launch it: its assets, its tags."""
        result = materialize(
            self.definitions,
            self.instance,
            list(request.asset_selection or []),
            tags=request.tags,
            raise_on_error=False,
        )
        assert result.success is ok, f"run for {request.run_key} success={result.success}"
        self.runs.append(result)
        return result

    def drain(self, limit: int = 20) -> list[dg.RunRequest]:
        """Tick and run what is asked for until the sensor has nothing left to ask."""
        executed: list[dg.RunRequest] = []
        for _ in range(limit):
            requests = self.tick()
            if not requests:
                return executed
            for request in requests:
                self.execute(request)
                executed.append(request)
        raise AssertionError("the sensor kept asking for runs")

    def calls(self, tenant: str, endpoint: str) -> int:
        return self.sandbox.sandbox.calls.get(f"{tenant} {endpoint}", 0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox = sandbox_with_callback(
        XeroSandboxConfig(webhook_batch_seconds=0.2, webhook_duplicate_rate=0.2), DATA
    )
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
            sync_all(settings, instance, definitions, lambda _line: None)
            yield World(
                sandbox,
                settings,
                instance,
                definitions,
                EventQueue(engine),
                sorted(sandbox.sandbox.dataset.tenants),
                receiver.base_url + WEBHOOK_PATH,
            )
    finally:
        receiver.stop()
        engine.dispose()
        patch.undo()
        sandbox.stop()


def _invoice_ids(world: World, tenant: str) -> list[str]:
    invoices = world.sandbox.sandbox.dataset.tenants[tenant].collections["Invoices"].values()
    return sorted(i["InvoiceID"] for i in invoices if i.get("Status") not in ("VOIDED", "DELETED"))


def _contact_ids(world: World, tenant: str) -> list[str]:
    contacts = world.sandbox.sandbox.dataset.tenants[tenant].collections["Contacts"].values()
    return sorted(c["ContactID"] for c in contacts)


def _lake_today(world: World, tenant: str, endpoint: str) -> dict[str, dict]:
    today = datetime.now(UTC).date()
    records = raw_lake.read_day_records(world.settings.lake_dir, tenant, endpoint, today)
    id_field = "InvoiceID" if endpoint == "Invoices" else "ContactID"
    return {r[id_field]: r for r in records}


def _status(world: World, run_key: str) -> set[str]:
    return {e.status for e in world.queue.of_run(run_key)}


def test_sensor_requests_runs_holds_busy_entities_and_settles(world: World) -> None:
    world.drain()
    tenant = world.tenants[0]
    today = datetime.now(UTC).date()
    first, second = _invoice_ids(world, tenant)[:2]
    world.writer.update(tenant, "Invoices", first, {"Reference": "webhook edit one"})
    world.flush()

    (r1,) = world.tick()
    assert r1.asset_selection == [dg.AssetKey(raw_path(ENTITIES["Invoices"]))]
    assert r1.run_key and r1.run_key.startswith(f"webhook-{tenant}-invoices-")
    assert r1.tags[WEBHOOK_BATCH_TAG] == r1.run_key
    assert r1.tags["dagster/asset_partition_range_end"] == f"{today}|{tenant}"
    assert r1.tags["xero/purpose"] == "webhook"
    covered = world.queue.of_run(r1.run_key)
    assert [e.resource_id for e in covered] == [first.lower()]
    assert {e.status for e in covered} == {"requested"}
    assert world.cursor == str(max(e.id for e in covered))

    # More changes while the invoice run has not run yet (the daemon lost it, say).
    world.writer.update(tenant, "Invoices", second, {"Reference": "webhook edit two"})
    contact = _contact_ids(world, tenant)[0]
    world.writer.update(tenant, "Contacts", contact, {"EmailAddress": "ap@example.com"})
    world.flush()
    requests = {r.run_key: r for r in world.tick()}
    # The invoice run is asked for again under the same key (Dagster starts a key once); the
    # second invoice waits for it (one run in flight per tenant and entity); contacts go ahead.
    assert r1.run_key in requests
    assert requests[r1.run_key].tags == r1.tags
    (r2,) = [r for key, r in requests.items() if key != r1.run_key]
    assert r2.asset_selection == [dg.AssetKey(raw_path(ENTITIES["Contacts"]))]
    assert world.queue.pending()[0].resource_id == second.lower()

    world.execute(r1)
    assert _lake_today(world, tenant, "Invoices")[first]["Reference"] == "webhook edit one"
    requests = {r.run_key: r for r in world.tick()}
    assert _status(world, r1.run_key) == {"done"}
    assert {e.run_id for e in world.queue.of_run(r1.run_key)} == {world.runs[-1].run_id}
    assert r2.run_key in requests  # still not run
    (r3,) = [r for key, r in requests.items() if key != r2.run_key]
    assert [e.resource_id for e in world.queue.of_run(r3.run_key or "")] == [second.lower()]

    world.execute(r2)
    world.execute(r3)
    assert world.tick() == []
    assert world.queue.counts()["pending"] == world.queue.counts()["requested"] == 0
    assert _lake_today(world, tenant, "Invoices")[second]["Reference"] == "webhook edit two"
    assert _lake_today(world, tenant, "Contacts")[contact]["EmailAddress"] == "ap@example.com"


def test_a_burst_of_1000_events_is_a_handful_of_runs_and_few_calls(world: World) -> None:
    world.drain()
    tenant = world.tenants[1]
    invoices = _invoice_ids(world, tenant)
    contacts = _contact_ids(world, tenant)
    before = {e: world.calls(tenant, e) for e in ("Invoices", "Contacts")}
    runs_before = len(world.runs)
    edits = 0
    in_flight: list[dg.RunRequest] = []
    # Half the burst, a tick (the runs start), the other half while they are in flight.
    for round_ in range(2):
        for i in range(350):
            world.writer.update(
                tenant, "Invoices", invoices[i % len(invoices)], {"Reference": f"b{round_}-{i}"}
            )
        for i in range(150):
            contact = contacts[i % len(contacts)]
            world.writer.update(tenant, "Contacts", contact, {"EmailAddress": f"b{round_}-{i}@x"})
        edits += 500
        world.flush()
        if round_ == 0:
            in_flight = world.tick()
            assert len(in_flight) == 2
    assert edits == 1000
    stored = world.queue.counts()
    assert stored["pending"] + stored["requested"] >= 1000  # every event kept, none doubled
    for request in in_flight:
        world.execute(request)
    world.drain()

    runs = len(world.runs) - runs_before
    assert runs <= 4, runs
    for endpoint in ("Invoices", "Contacts"):
        assert world.calls(tenant, endpoint) - before[endpoint] <= 3
    # Every record ends in the lake as Xero has it now.
    data = world.sandbox.sandbox.dataset.tenants[tenant].collections
    lake = _lake_today(world, tenant, "Invoices")
    for invoice_id in invoices[:350]:
        assert lake[invoice_id]["Reference"] == data["Invoices"][invoice_id]["Reference"]
    lake = _lake_today(world, tenant, "Contacts")
    for contact_id in contacts[: min(150, len(contacts))]:
        assert lake[contact_id]["EmailAddress"] == data["Contacts"][contact_id]["EmailAddress"]
    assert world.queue.counts()["pending"] == world.queue.counts()["requested"] == 0


def test_events_of_a_failed_run_are_retried_after_the_backoff(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.drain()
    monkeypatch.setenv("XT_WEBHOOK_RETRY_SECONDS", "1")
    monkeypatch.setattr(world, "definitions", load_definitions())  # read when they load
    tenant = world.tenants[0]
    invoice = _invoice_ids(world, tenant)[5]
    world.writer.update(tenant, "Invoices", invoice, {"Reference": "after a failure"})
    world.flush()
    (first,) = world.tick()
    world.sandbox.sandbox.faults.fail_next = [400]  # Xero refuses the read
    failed = world.execute(first, ok=False)

    assert world.tick() == []  # backoff: not retried at once
    (event,) = world.queue.of_run(first.run_key or "")
    assert (event.status, event.attempts, event.run_id) == ("pending", 1, failed.run_id)
    deadline = datetime.now(UTC).timestamp() + 10
    retried: list[dg.RunRequest] = []
    while not retried and datetime.now(UTC).timestamp() < deadline:
        retried = world.tick()
    (second,) = retried
    assert second.run_key != first.run_key and (second.run_key or "").endswith("-a1")
    assert [e.id for e in world.queue.of_run(second.run_key or "")] == [event.id]
    world.execute(second)
    assert world.tick() == []
    assert _status(world, second.run_key or "") == {"done"}
    assert _lake_today(world, tenant, "Invoices")[invoice]["Reference"] == "after a failure"


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff(30, 0).total_seconds() == 30
    assert backoff(30, 3).total_seconds() == 240
    assert backoff(30, 50).total_seconds() == 3600
    assert backoff(0, 5).total_seconds() == 0


def test_few_changes_on_a_busy_day_are_read_by_id(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.drain()
    tenant = world.tenants[1]
    held_before = _lake_today(world, tenant, "Invoices")
    assert len(held_before) > 20
    # A page of 10: the day's window now costs several calls, two ids cost one.
    monkeypatch.setenv("XERO_PAGE_SIZE", "10")
    monkeypatch.setattr(world, "definitions", load_definitions())  # read when they load
    targets = _invoice_ids(world, tenant)[-2:]
    for invoice in targets:
        world.writer.update(tenant, "Invoices", invoice, {"Reference": "by id"})
    world.flush()
    before = world.calls(tenant, "Invoices")
    (request,) = world.drain()
    assert request.asset_selection == [dg.AssetKey(raw_path(ENTITIES["Invoices"]))]
    materialization = world.runs[-1].asset_materializations_for_node(
        world.runs[-1].all_node_events[0].node_name or ""
    )
    metadata = materialization[0].metadata
    assert metadata["read_mode"].value == "ids"
    assert world.calls(tenant, "Invoices") - before == 1
    held_after = _lake_today(world, tenant, "Invoices")
    # The day keeps every record it had; the two changed ones are replaced, none doubled.
    assert set(held_after) == set(held_before) | set(targets)
    for invoice in targets:
        assert held_after[invoice]["Reference"] == "by id"
    untouched = next(i for i in held_before if i not in targets)
    assert held_after[untouched] == held_before[untouched]


def test_a_change_whose_webhook_never_came_is_read_by_the_safety_poll(world: World) -> None:
    world.drain()
    webhooks = world.sandbox.sandbox.webhooks
    (subscription,) = webhooks.subscriptions()
    webhooks.unsubscribe(subscription.id)  # as when Xero disables a failing subscription
    try:
        tenant = world.tenants[0]
        invoice = _invoice_ids(world, tenant)[7]
        world.writer.update(tenant, "Invoices", invoice, {"Reference": "no webhook came"})
        assert world.tick() == []
        context = dg.build_schedule_context(
            instance=world.instance, scheduled_execution_time=datetime.now(UTC)
        )
        requests = xero_webhook_safety_poll(context)
        assert isinstance(requests, list)
        (request,) = [r for r in requests if r.tags["xero/tenant"] == tenant]
        assert dg.AssetKey(raw_path(ENTITIES["Invoices"])) in (request.asset_selection or [])
        world.execute(request)
        assert _lake_today(world, tenant, "Invoices")[invoice]["Reference"] == "no webhook came"
    finally:
        assert webhooks.subscribe(world.receiver_url, DEMO_WEBHOOK_KEY).status == "OK"


def test_a_tick_whose_result_was_lost_asks_for_the_same_run_again(world: World) -> None:
    """The daemon dies after the sensor marked events requested but before it stored the cursor
    or launched the run: the next tick (old cursor) asks for the same run key, nothing twice."""
    world.drain()
    tenant = world.tenants[1]
    invoice = _invoice_ids(world, tenant)[3]
    world.writer.update(tenant, "Invoices", invoice, {"Reference": "tick lost"})
    world.flush()
    before = world.cursor
    (lost,) = world.tick()
    world.cursor = before  # the tick's result never reached the daemon's storage
    (again,) = world.tick()
    assert again.run_key == lost.run_key and again.tags == lost.tags
    assert len(world.queue.of_run(lost.run_key or "")) == 1
    world.execute(again)
    assert world.tick() == []
    assert _status(world, lost.run_key or "") == {"done"}
    assert _lake_today(world, tenant, "Invoices")[invoice]["Reference"] == "tick lost"
