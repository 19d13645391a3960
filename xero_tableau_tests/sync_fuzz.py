"""The harness of the differential stateful fuzzer (``test_stateful_sync.py``, ``make fuzz``).

The promise it checks: after any sequence of changes in Xero, every data source the incremental
path published equals, row for row and cent for cent, what a from-scratch replace of the same Xero
state publishes. Served once per session, on loopback:

- ``live``: the Xero sandbox the sync paths read and the changes are made in;
- ``shadow``: a second Xero sandbox holding what the sync paths were *obliged* to have read (below);
  the from-scratch replace reads it;
- the Tableau sandbox both publish to: the incremental path to project ``Xero``, the replace to
  project ``Replace``; both are read back through TSC's download;
- the webhook receiver the live sandbox delivers to (switched to each example's state DB).

Each example starts from freshly generated books (one small organisation), a fresh ``XT_HOME``
and an empty Tableau, so an example costs what its steps cost.

Obligations: a webhook-driven read sees only what its events name, the poll yesterday and today,
the sweep the days its schedule picks; a change nobody was obliged to read yet is no defect. So
the shadow takes a record's current version only when a read covered it (a window read over the
record's current UpdatedDateUTC day, or a read by its id), the reference entities when they are
re-read, everything on a full sync; an entity switched on again obliges its first read to catch up
on what changed since its last read (XT_DISABLED_ENTITIES' promise). Comparing after every sync
step is then exact: the shadow *is* the Xero state the published data must show.

The functions under "mirrors of the Dagster wiring" do what ``defs/`` does around the plain
functions (``raw_sync.sync_entity``, ``tenant_tables.build_tenant_tables``,
``tenant_publish.publish_tenant``, ``webhooks.tick.run_tick``); keep them in step with ``defs/``.
"""

import copy
import hashlib
import inspect
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import httpx
import pyarrow.parquet as pq
import tableauserverclient as TSC
from starlette.types import Receive, Scope, Send
from tableauhyperapi import Connection, escape_string_literal

from xero_tableau import raw_lake
from xero_tableau.asset_names import PURPOSE_TAG, XERO_TENANTS, raw_path
from xero_tableau.defs.resources import resources_from_env
from xero_tableau.defs.schedules import xero_poll, xero_sweep, xero_webhook_safety_poll
from xero_tableau.entities import REFERENCE, TRANSACTIONAL, transactional
from xero_tableau.raw_sync import RawRun, sync_entity
from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
    sandbox_env,
    tableau_env,
)
from xero_tableau.sandbox.dataset import TenantData, day_ms, ms_date, parse_ms_date, utc_string
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.sandbox.server import RunningXeroSandbox, ServedApp, free_port
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.sandbox.xero_app import XeroSandbox, XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store import db, lake
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.store.tenants import KnownTenant
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.publish import TableauPublisher
from xero_tableau.tenant_publish import TenantPublish, publish_tenant
from xero_tableau.tenant_tables import TenantTables, build_tenant_tables
from xero_tableau.transform.schema import TABLES
from xero_tableau.webhooks.receiver import build_receiver
from xero_tableau.webhooks.tick import RunState, run_tick
from xero_tableau.xero_connection import open_xero, record_tenants
from xero_tableau_tests.conftest import GENEROUS_LIMITS

#: Columns that legitimately differ between the incremental path and a from-scratch replace: when
#: a row's content was read, by which run and why (the provenance of a read, not Xero's data).
IGNORED_COLUMNS = frozenset(
    {"fetched_at_utc", "synced_at_utc", "dagster_run_id", "sync_source", "source_event_at_utc"}
)
#: The books of one example: a small organisation with a short history (about 20 invoices).
FUZZ_BOOKS = GeneratorConfig(seed=11, tenants=1, invoice_lines=40, history_days=21)
INCREMENTAL_PROJECT = "Xero"
REPLACE_PROJECT = "Replace"
API_VERSION = "3.24"
#: The client's rate-limit windows shrunk to nothing: the sandbox's limits are generous and the
#: fuzzer must not wait out a minute window every few steps.
WINDOW_SCALE = 1e-6
SYNC_KINDS = ("webhook", "poll", "sweep", "sync")

Row = dict[str, Any]
Tables = dict[str, list[Row]]


def utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Difference:
    """One way the published data differs from the from-scratch replace."""

    table: str
    kind: str  # "value", "missing row", "extra row", "publish", "unpublished"
    column: str = ""
    key: tuple = ()
    incremental: Any = None
    replace: Any = None

    @property
    def signature(self) -> tuple[str, str, str]:
        """What makes two differences the same defect, whatever the document."""
        return (self.table, self.kind, self.column)

    def describe(self) -> str:
        where = ", ".join(map(str, self.key))
        if self.kind == "value":
            return (
                f"{self.table} [{where}] column {self.column}: incremental "
                f"{self.incremental!r} != replace {self.replace!r}"
            )
        if self.kind == "missing row":
            return f"{self.table} [{where}]: row missing from the incremental data source"
        if self.kind == "extra row":
            return f"{self.table} [{where}]: row in the incremental data source only"
        return f"{self.table}: {self.kind}: {self.incremental}"


def comparable(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows without the ignored columns, sorted: what two data sources must agree on."""
    out = [{k: v for k, v in row.items() if k not in IGNORED_COLUMNS} for row in rows]
    return sorted(out, key=lambda row: [repr(row[k]) for k in sorted(row)])


def compare_tables(incremental: Tables, replace: Tables) -> list[Difference]:
    """Every difference, table by table, keyed by each table's key (document and line)."""
    found: list[Difference] = []
    for table in TABLES:
        key_columns = TABLES[table].key
        mine = comparable(incremental.get(table, []))
        theirs = comparable(replace.get(table, []))
        if mine == theirs:
            continue
        by_key_mine: dict[tuple, list[Row]] = defaultdict(list)
        by_key_theirs: dict[tuple, list[Row]] = defaultdict(list)
        for row in mine:
            by_key_mine[tuple(row.get(k) for k in key_columns)].append(row)
        for row in theirs:
            by_key_theirs[tuple(row.get(k) for k in key_columns)].append(row)
        for key in sorted(set(by_key_mine) | set(by_key_theirs), key=repr):
            a, b = by_key_mine.get(key, []), by_key_theirs.get(key, [])
            if a == b:
                continue
            if not a:
                found.append(Difference(table, "missing row", key=key, replace=b[0]))
            elif not b:
                found.append(Difference(table, "extra row", key=key, incremental=a[0]))
            elif len(a) != len(b):
                found.append(
                    Difference(
                        table, "value", "(row count)", key, incremental=len(a), replace=len(b)
                    )
                )
            else:
                for row_a, row_b in zip(a, b, strict=True):
                    for column in sorted(set(row_a) | set(row_b)):
                        if row_a.get(column) != row_b.get(column):
                            found.append(
                                Difference(
                                    table,
                                    "value",
                                    column,
                                    key,
                                    row_a.get(column),
                                    row_b.get(column),
                                )
                            )
    return found


# --------------------------------------------------------------------------- the session's servers


class SwitchableApp:
    """An ASGI app that forwards to whichever app is current (each example's receiver)."""

    def __init__(self) -> None:
        self.current: Callable[[Scope, Receive, Send], Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.current
        if app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)


@dataclass
class World:
    """Everything served once per session, plus the counters ``make fuzz`` prints."""

    root: Path
    live: RunningXeroSandbox
    shadow: RunningXeroSandbox
    tableau: RunningTableauSandbox
    receiver: ServedApp
    switch: SwitchableApp
    redirect: str
    hyper: HyperWriter
    instance: dg.DagsterInstance
    #: Every example starts at this instant on both sandboxes' clocks, from these books.
    start: datetime
    books: TenantData
    #: The state right after the first full sync (taken by the first example, restored by the
    #: others): the XT_HOME folder, the incremental data sources' files, what they hold.
    initial: "Snapshot | None" = None
    #: From-scratch replaces already made, by the digest of the shadow state they read; and the
    #: rows a replace publish of a table's content downloads back, by that content's digest.
    replaces: dict[str, "Tables | None"] = field(default_factory=dict)
    replaced_tables: dict[str, list[Row]] = field(default_factory=dict)
    examples: int = 0
    steps: int = 0
    checks: int = 0
    unpublishable: int = 0
    mismatches: int = 0
    #: Distinct differences (by signature) with the shortest step sequence that showed each.
    found: dict[tuple[str, str, str], tuple[list[str], str]] = field(default_factory=dict)
    #: When True (``make fuzz``), a mismatch is recorded and the example ends; when False
    #: (pytest), it fails the example so hypothesis shrinks it.
    collect: bool = False
    closing: ExitStack = field(default_factory=ExitStack)
    #: Seconds spent per phase (restore, each sync kind's reads, tables+publish, replace,
    #: download), for ``make fuzz`` to say where the time goes.
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[phase] += time.monotonic() - started

    def reset_clocks(self) -> None:
        self.live.sandbox.clock.reset(self.start)
        self.shadow.sandbox.clock.reset(self.start)

    def record(self, differences: list[Difference], steps: list[str]) -> None:
        self.mismatches += 1
        for difference in differences:
            known = self.found.get(difference.signature)
            if known is None or len(steps) < len(known[0]):
                self.found[difference.signature] = (list(steps), difference.describe())

    def summary(self) -> dict[str, int]:
        return {
            "examples": self.examples,
            "steps": self.steps,
            "checks": self.checks,
            "unpublishable": self.unpublishable,
            "mismatches": self.mismatches,
            "distinct": len(self.found),
        }


@dataclass
class Snapshot:
    home: Path
    datasources: dict[str, Path]  # data source name -> copy of its stored .hyper
    shadow: TenantData
    downloaded: Tables
    hyper_digests: dict[str, str]


def start_world(root: Path | None = None, *, collect: bool = False) -> World:
    """Serve everything on loopback. ``root`` (default: a folder in /dev/shm when there is one,
    so the lake's fsyncs cost nothing) holds every example's XT_HOME and the Tableau storage."""
    if root is None:
        shm = Path("/dev/shm")
        root = Path(tempfile.mkdtemp(prefix="xt-fuzz-", dir=shm if shm.is_dir() else None))
    redirect = f"http://localhost:{free_port()}/callback"
    config = XeroSandboxConfig(
        limits=GENEROUS_LIMITS, redirect_uris=(redirect,), webhook_batch_seconds=0.05
    )
    stack = ExitStack()
    try:
        live = _serve_xero(config)
        stack.callback(live.stop)
        shadow = _serve_xero(
            XeroSandboxConfig(limits=GENEROUS_LIMITS, redirect_uris=(redirect,)), webhooks=False
        )
        stack.callback(shadow.stop)
        tableau = start_tableau_sandbox(
            TableauSandboxConfig(
                storage_dir=root / "tableau",
                projects={INCREMENTAL_PROJECT: True, REPLACE_PROJECT: True, "Restricted": False},
            )
        )
        stack.callback(tableau.stop)
        switch = SwitchableApp()
        receiver = ServedApp(switch).start()
        stack.callback(receiver.stop)
        hyper = HyperWriter()
        hyper.start()
        stack.callback(hyper.close)
        (root / "dagster").mkdir(exist_ok=True)
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(root / "dagster")))
    except BaseException:
        stack.close()
        raise
    closing = stack.pop_all()
    # 09:00 UTC today: far from midnight, so the same steps always fall on the same days
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    books = generate(
        GeneratorConfig(
            seed=FUZZ_BOOKS.seed,
            tenants=1,
            invoice_lines=FUZZ_BOOKS.invoice_lines,
            history_days=FUZZ_BOOKS.history_days,
            as_of=start.date() - timedelta(days=1),  # nothing later than the clocks' start
        )
    )
    (tenant,) = books.tenants.values()
    _shorten_setup(tenant, start.date() - timedelta(days=FUZZ_BOOKS.history_days))
    world = World(
        root,
        live,
        shadow,
        tableau,
        receiver,
        switch,
        redirect,
        hyper,
        instance,
        start,
        tenant,
        collect=collect,
    )
    world.closing = closing
    # One subscription for the session, answered by a receiver on a scratch state DB until the
    # first example switches it to its own.
    scratch = db.connect(f"sqlite:///{root / 'receiver-bootstrap.db'}")
    switch.current = build_receiver(scratch, _webhook_key(), known_tenants=set)
    sub = live.sandbox.webhooks.subscribe(f"{receiver.base_url}/webhooks/xero", _webhook_key())
    if sub.status != "OK":
        stop_world(world)
        raise RuntimeError(f"the webhook receiver failed intent to receive: {sub.status}")
    return world


def _shorten_setup(tenant: TenantData, first_day: date) -> None:
    """Move the organisation's creation, and the accounts and contacts it set up before its
    history, to the first day of history: a full sync reads every day since the creation, and
    three months of empty days would only slow every example down."""
    created = day_ms(first_day)
    tenant.organisation["CreatedDateUTC"] = ms_date(created)
    for endpoint in list(tenant.collections):
        early = sorted(
            (updated, record_id)
            for record_id, (updated, _when) in tenant.instants[endpoint].items()
            if updated and updated <= created
        )
        for offset, (_updated, record_id) in enumerate(early, start=1):
            record = tenant.collections[endpoint][record_id]
            record["UpdatedDateUTC"] = ms_date(created + offset * 1000)
            if "UpdatedDateUTCString" in record:
                record["UpdatedDateUTCString"] = utc_string(created + offset * 1000)
            tenant.put(endpoint, record)


def stop_world(world: World) -> None:
    world.closing.close()
    shutil.rmtree(world.root, ignore_errors=True)


def _webhook_key() -> str:
    return sandbox_env("http://unused", Path("."))["XERO_WEBHOOK_KEY"]


def _serve_xero(config: XeroSandboxConfig, *, webhooks: bool = True) -> RunningXeroSandbox:
    """An emulated Xero with no tenant yet (each example puts its own books in)."""
    from xero_tableau.sandbox.dataset import SandboxDataset

    sandbox = XeroSandbox(SandboxDataset(), config)
    served = ServedApp(sandbox.app).start()
    sandbox.set_base_url(served.base_url)
    if webhooks:
        sandbox.webhooks.start()
    return RunningXeroSandbox(sandbox, served)


# --------------------------------------------------------------------------- one example


def fast_connect(settings: Settings) -> list[KnownTenant]:
    """``connect`` without the local callback server: the sandbox consents at once, so the code
    is read off the redirect's Location (the token exchange and store are the real ones)."""
    with open_xero(settings, window_scale=WINDOW_SCALE) as xero:
        url, state = xero.oauth.authorize_url()
        response = httpx.get(url, follow_redirects=False, timeout=30, trust_env=False)
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["state"] == [state], query
        xero.session.connect_with_code(query["code"][0])
        known = record_tenants(xero)
    return [t for t in known if t.active]


class Example:
    """One example: the books in both Xero sandboxes, both clocks at the world's start, a fresh
    XT_HOME; the first example makes the first full sync, the others restore its result."""

    def __init__(self, world: World) -> None:
        self.world = world
        world.examples += 1
        self.number = world.examples
        if world.collect and self.number % 25 == 0:
            print(f"fuzz progress: {json.dumps(world.summary())}", file=sys.stderr, flush=True)
        self.home = world.root / "home"
        self.oracle_home = world.root / "replace-home"
        self.disabled: set[str] = set()
        self.env: dict[str, str] = {}  # the incremental path's environment (settings)
        self.steps: list[str] = []
        # endpoint -> clock ms of its last read (the watermark a switched-on entity catches
        # up from), and the entities owed a catch-up read
        self.last_read_ms: dict[str, int] = {}
        self.catch_up: dict[str, int] = {}
        self.run_states: dict[str, RunState] = {}
        self.cursor = 0
        # what the incremental data sources hold (downloaded when a publish touched them) and
        # the content each table's .hyper was last written from
        self.downloaded: Tables = {}
        self.hyper_digests: dict[str, str] = {}
        self._stack = ExitStack()
        self.flush_webhooks()
        world.reset_clocks()
        books = copy.deepcopy(world.books)
        self.tenant_id = books.tenant_id
        live, shadow = world.live.sandbox.dataset, world.shadow.sandbox.dataset
        initial = world.initial
        with live.lock:
            live.tenants.clear()
            live.add(books)
        with shadow.lock:
            shadow.tenants.clear()
            shadow.add(copy.deepcopy(initial.shadow) if initial else _empty_like(books))
        if self.tenant_id not in world.instance.get_dynamic_partitions(XERO_TENANTS):
            world.instance.add_dynamic_partitions(XERO_TENANTS, [self.tenant_id])
        shutil.rmtree(self.home, ignore_errors=True)
        world.tableau.sandbox.forget_request_ids()  # a new history: no request seen before
        if initial is not None:
            shutil.copytree(initial.home, self.home)
            for name, stored in initial.datasources.items():
                path = world.tableau.sandbox.datasource_path(
                    TABLEAU_DEMO_SITE, name, INCREMENTAL_PROJECT
                )
                shutil.copyfile(stored, path)
            self.downloaded = copy.deepcopy(initial.downloaded)
            self.hyper_digests = dict(initial.hyper_digests)
        self.restored = initial is not None
        self.settings = self._settings(self.home, world.live.base_url, incremental=True)
        fast_connect(self.settings)  # a new grant; the stored tokens are replaced
        self.engine = db.connect(self.settings.database_url)
        self._stack.callback(self.engine.dispose)
        self.conn = self._stack.enter_context(open_xero(self.settings, window_scale=WINDOW_SCALE))
        world.switch.current = build_receiver(self.engine, _webhook_key())
        self.oracle_settings = self._settings(
            self.oracle_home, world.shadow.base_url, incremental=False
        )
        fast_connect(self.oracle_settings)

    def take_snapshot(self) -> None:
        """Keep the state after the first full sync for the next examples to start from."""
        folder = self.world.root / "initial"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        self.flush_webhooks()
        shutil.copytree(self.home, folder / "home")
        datasources = {}
        for table in TABLES:
            name = self.datasource_name(table)
            stored = self.world.tableau.sandbox.datasource_path(
                TABLEAU_DEMO_SITE, name, INCREMENTAL_PROJECT
            )
            datasources[name] = folder / f"{table}.hyper"
            shutil.copyfile(stored, datasources[name])
        self.world.initial = Snapshot(
            folder / "home",
            datasources,
            copy.deepcopy(self.shadow),
            copy.deepcopy(self.downloaded),
            dict(self.hyper_digests),
        )

    def datasource_name(self, table: str) -> str:
        return f"xero_{self.tenant_id[:8]}_{table}"

    # ------------------------------------------------------------------ set-up helpers

    def _settings(self, home: Path, xero_url: str, *, incremental: bool) -> Settings:
        env = sandbox_env(xero_url, home)
        env.update(tableau_env(self.world.tableau.base_url))
        env["XERO_REDIRECT_URI"] = self.world.redirect
        env["TABLEAU_PROJECT"] = INCREMENTAL_PROJECT if incremental else REPLACE_PROJECT
        env["TABLEAU_PUBLISH_MODE"] = "incremental" if incremental else "replace"
        env["XT_DISABLED_ENTITIES"] = ",".join(sorted(self.disabled))
        if incremental:
            self.env = env
        return Settings.from_env(env)

    def flush_webhooks(self) -> None:
        if not self.world.live.sandbox.webhooks.flush(30.0):
            raise RuntimeError("the sandbox could not deliver its webhooks within 30 s")

    def close(self) -> None:
        self.flush_webhooks()
        self.world.switch.current = None
        self._stack.close()

    @property
    def live(self) -> TenantData:
        return self.world.live.sandbox.dataset.tenants[self.tenant_id]

    @property
    def shadow(self) -> TenantData:
        return self.world.shadow.sandbox.dataset.tenants[self.tenant_id]

    def now(self) -> datetime:
        return self.world.live.sandbox.clock.now()

    def advance(self, seconds: float) -> None:
        """Both sandboxes' clocks move together (tokens, UpdatedDateUTC, "today")."""
        self.world.live.sandbox.clock.advance(seconds)
        self.world.shadow.sandbox.clock.advance(seconds)

    def set_disabled(self, disabled: set[str]) -> None:
        for endpoint in {e.endpoint for e in TRANSACTIONAL if e.asset_name in self.disabled}:
            if transactional(endpoint).asset_name not in disabled:
                # switched on again: its first read owes a catch-up from its last read
                self.catch_up[endpoint] = self.last_read_ms.get(endpoint, 0)
        self.disabled = set(disabled)
        self.settings = self._settings(self.home, self.world.live.base_url, incremental=True)
        self.oracle_settings = self._settings(
            self.oracle_home, self.world.shadow.base_url, incremental=False
        )

    # ------------------------------------------------------------------ obligations

    def cover(self, endpoint: str, *, days: Iterable[date] = (), ids: Iterable[str] = ()) -> None:
        """A read of ``endpoint`` over ``days`` (or of ``ids``) saw the current versions."""
        day_set, id_set = set(days), {i.lower() for i in ids}
        since = self.catch_up.pop(endpoint, None)
        self.last_read_ms[endpoint] = self.world.live.sandbox.clock.now_ms()
        live, shadow = self.live, self.shadow
        for record_id, (updated, _when) in list(live.instants[endpoint].items()):
            due = utc_day(updated) in day_set or record_id.lower() in id_set
            if since is not None and updated >= since - 1000:
                due = True
            if due:
                shadow.put(endpoint, copy.deepcopy(live.collections[endpoint][record_id]))

    def cover_reference(self) -> None:
        live, shadow = self.live, self.shadow
        shadow.organisation = copy.deepcopy(live.organisation)
        for entity in REFERENCE:
            if entity.endpoint == "Organisation":
                continue
            shadow.collections[entity.endpoint] = {}
            shadow.instants[entity.endpoint] = {}
            shadow._by_updated.pop(entity.endpoint, None)
            for record in live.collections[entity.endpoint].values():
                shadow.put(entity.endpoint, copy.deepcopy(record))

    # ------------------------------------------------------- mirrors of the Dagster wiring

    def raw_run(
        self,
        endpoint: str,
        days: list[date],
        purpose: str,
        batch: str | None = None,
    ) -> RawRun | None:
        """What ``defs/raw_assets.py`` runs for one entity over one tenant's days."""
        spec = transactional(endpoint)
        if spec.asset_name in self.settings.disabled_entities:
            return None  # switched off: nothing read (the raw asset returns at once)
        run = sync_entity(
            self.conn,
            self.settings.lake_dir,
            endpoint,
            {self.tenant_id: days},
            run_id=f"fuzz-{uuid.uuid4().hex[:12]}",
            purpose=purpose,
            webhook_batch=batch,
            page_size=self.settings.xero_page_size,
        )
        if batch is not None and run.modes == {"ids"}:
            changed = {e.resource_id for e in EventQueue(self.engine).of_run(batch)}
            self.cover(endpoint, ids=changed)
        else:
            self.cover(endpoint, days=_window_days(run, self.tenant_id) or days)
        return run

    def reference_run(self) -> None:
        """What the reference assets (``defs/reference_assets.py``) run, every 30 minutes."""
        for spec in REFERENCE:
            records = [r for page in self.conn.client.read_all(spec, self.tenant_id) for r in page]
            raw_lake.write_reference(self.settings.lake_dir, self.tenant_id, spec.endpoint, records)
        self.cover_reference()

    def webhook_runs(self) -> int:
        """Deliver the webhooks, then tick as ``defs/webhooks.py`` does and run what it asks,
        until every event is settled. Returns the runs made."""
        self.flush_webhooks()
        queue = EventQueue(self.engine)
        runs = 0
        for _ in range(20):
            result = run_tick(
                queue,
                cursor=self.cursor,
                tenants={self.tenant_id},
                run_of=self.run_states.get,
                now=datetime.now(UTC),
                retry_seconds=self.settings.webhook_retry_seconds,
            )
            self.cursor = result.next_cursor
            if not result.asks:
                return runs
            for ask in result.asks:
                days = _days(ask.first_day, ask.last_day)
                self.raw_run(ask.endpoint, days, "webhook", batch=ask.run_key)
                self.run_states[ask.run_key] = RunState(
                    f"fuzz-{ask.run_key}", "succeeded", "SUCCESS"
                )
                runs += 1
        raise RuntimeError("the webhook tick never settled")

    def scheduled_runs(self, schedules: Iterable[dg.ScheduleDefinition]) -> int:
        """Evaluate the schedules at the sandbox clock's now and run what they request."""
        runs = 0
        by_key = {tuple(raw_path(e)): e.endpoint for e in TRANSACTIONAL}
        for schedule in schedules:
            needed: set[str] = set(getattr(schedule, "required_resource_keys", None) or ())
            with _environment(self.env):  # the resources' secrets are EnvVars
                resources: dict[str, object] = {
                    k: v for k, v in resources_from_env(self.env).items() if k in needed
                }
                with dg.build_schedule_context(
                    instance=self.world.instance,
                    scheduled_execution_time=self.now(),
                    resources=resources or None,
                ) as context:
                    result = schedule(context)
            requests = result if isinstance(result, list) else []
            for request in requests:
                tags = request.tags
                first, tenant = tags["dagster/asset_partition_range_start"].split("|")
                last, _ = tags["dagster/asset_partition_range_end"].split("|")
                if tenant != self.tenant_id:
                    continue
                days = _days(date.fromisoformat(first), date.fromisoformat(last))
                keys = [tuple(k.path) for k in request.asset_selection or []]
                for entity in TRANSACTIONAL:  # registry order, as one run would
                    if tuple(raw_path(entity)) in keys:
                        self.raw_run(by_key[tuple(raw_path(entity))], days, tags[PURPOSE_TAG])
                runs += 1
        return runs

    def full_sync_runs(self) -> None:
        """What ``xero-tableau sync`` runs (``sync.sync_all``): reference snapshots, then every
        raw entity over every day from the organisation's creation to today."""
        self.reference_run()
        first, today = self.history_start(), self.now().date()
        days = _days(first, today)
        for entity in TRANSACTIONAL:
            self.raw_run(entity.endpoint, days, "sync")

    def history_start(self) -> date:
        organisation = raw_lake.read_reference(
            self.settings.lake_dir, self.tenant_id, "Organisation"
        )
        created = organisation[0]["CreatedDateUTC"]
        return (
            utc_day(parse_ms_date(created))
            if created.startswith("/Date(")
            else (datetime.fromisoformat(created.replace("Z", "+00:00")).date())
        )

    def tables_and_publish(self) -> tuple[TenantTables, TenantPublish | None, str]:
        """What the tables asset and the extracts asset do (``defs/table_assets.py``): rebuild
        the tables, write each one's .hyper, publish; the extracts wait for the blocking checks
        (nothing is published when one failed). A .hyper whose table did not change is not
        written again (it would come out the same)."""
        settings = self.settings
        built = build_tables(settings, self.tenant_id, self.engine)
        if _blocking_failures(built):
            return built, None, ""
        source = lake.tenant_dir(settings.lake_dir, self.tenant_id) / "tables"
        target = settings.hyper_dir / self.tenant_id
        for name in TABLES:
            digest = _file_digest(source / f"{name}.parquet")
            if self.hyper_digests.get(name) != digest or not (target / f"{name}.hyper").exists():
                self.world.hyper.write_table(
                    source / f"{name}.parquet", target / f"{name}.hyper", name
                )
                self.hyper_digests[name] = digest
        try:
            published = publish_tenant(
                settings, self.engine, self.tenant_id, self.world.hyper, lambda _m: None
            )
        except Exception as exc:  # any failure to publish is a finding, not a harness error
            return built, None, f"publish_tenant raised {type(exc).__name__}: {exc}"
        failed = "; ".join(f"{t.table}: {t.error}" for t in published.failed)
        return built, published, failed

    # ------------------------------------------------------------------ a sync step and its check

    def sync(self, kind: str) -> list[Difference]:
        """One sync step of ``kind`` (webhook, poll, sweep, sync), then the comparison."""
        with self.world.timed(f"read: {kind}"):
            if kind == "webhook":
                self.webhook_runs()
            elif kind == "poll":
                self.reference_run()
                self.scheduled_runs([xero_poll, xero_webhook_safety_poll])
            elif kind == "sweep":
                self.reference_run()
                self.scheduled_runs([xero_sweep])
            elif kind == "sync":
                self.full_sync_runs()
            else:
                raise ValueError(kind)
        return self.check()

    def check(self) -> list[Difference]:
        """Tables, extracts and publish as the Dagster wiring would, then the incremental data
        sources (read back through TSC) against the from-scratch replace."""
        with self.world.timed("tables and publish"):
            _built, published, problem = self.tables_and_publish()
        with self.world.timed("from-scratch replace"):
            expected = self.replace_oracle()
        self.world.checks += 1
        if expected is None:
            self.world.unpublishable += 1
            return []  # the state fails a blocking check: nothing is owed to Tableau
        differences: list[Difference] = []
        if problem:
            differences.append(Difference("*", "publish", incremental=problem))
        touched = (
            None
            if published is None or problem
            else {t.table for t in published.tables if t.mode != "unchanged"}
        )
        with self.world.timed("download and compare"):
            self.downloaded = download_project(
                self.world,
                INCREMENTAL_PROJECT,
                self.home.parent / "download",
                only=touched,
                cached=self.downloaded,
            )
            differences += compare_tables(self.downloaded, expected)
        return differences

    def replace_oracle(self) -> Tables | None:
        """The from-scratch replace of the state the sync paths were obliged to have read: a
        fresh lake, a full read of the shadow sandbox, every table's extract published with
        Overwrite to project Replace and downloaded. The same shadow state is replaced once per
        session (examples repeat states), and a table whose content was replace-published before
        is not published again (its download would be the same)."""
        key = self._shadow_digest()
        if key in self.world.replaces:
            return self.world.replaces[key]
        settings = self.oracle_settings
        for folder in (settings.lake_dir, settings.hyper_dir):
            shutil.rmtree(folder, ignore_errors=True)
        with open_xero(settings, window_scale=WINDOW_SCALE) as conn:
            for spec in REFERENCE:
                records = [r for page in conn.client.read_all(spec, self.tenant_id) for r in page]
                raw_lake.write_reference(settings.lake_dir, self.tenant_id, spec.endpoint, records)
            first, today = self.history_start(), self.now().date()
            for entity in TRANSACTIONAL:
                if entity.asset_name in settings.disabled_entities:
                    continue
                # only the days that hold records: the same tables as every day, faster
                days = sorted(
                    {
                        utc_day(updated)
                        for updated, _ in self.shadow.instants[entity.endpoint].values()
                        if first <= utc_day(updated) <= today
                    }
                )
                if days:
                    sync_entity(
                        conn,
                        settings.lake_dir,
                        entity.endpoint,
                        {self.tenant_id: days},
                        run_id=None,
                        purpose="sync",
                        webhook_batch=None,
                        page_size=settings.xero_page_size,
                    )
        # the tracking slots a tenant keeps are its own, not the read's: the same map
        built = build_tables(settings, self.tenant_id, self.engine)
        if _blocking_failures(built):
            self.world.replaces[key] = None
            return None
        result: Tables = {}
        todo: dict[str, Path] = {}
        for table in built.tables:
            content = f"{table.name}:{_file_digest(table.path)}"
            if content in self.world.replaced_tables:
                result[table.name] = self.world.replaced_tables[content]
            else:
                todo[table.name] = table.path
        if todo:
            target = settings.hyper_dir / self.tenant_id
            with TableauPublisher(
                settings.tableau_server_url or "",
                settings.tableau_pat_name or "",
                settings.tableau_pat_secret or "",
                settings.tableau_site,
                hyper=self.world.hyper,
                work_dir=settings.home / "staging",
            ) as publisher:
                publisher.check_can_publish(REPLACE_PROJECT)
                for name, parquet in todo.items():
                    self.world.hyper.write_table(parquet, target / f"{name}.hyper", name)
                    outcome = publisher.publish_replace(
                        target / f"{name}.hyper", self.datasource_name(name), REPLACE_PROJECT
                    )
                    if not outcome.succeeded:
                        raise AssertionError(
                            f"the from-scratch replace of {name} failed: {outcome}"
                        )
            fresh = download_project(
                self.world, REPLACE_PROJECT, self.oracle_home / "download", only=set(todo)
            )
            for name, parquet in todo.items():
                rows = fresh.get(name, [])
                self.world.replaced_tables[f"{name}:{_file_digest(parquet)}"] = rows
                result[name] = rows
        self.world.replaces[key] = result
        return result

    def _shadow_digest(self) -> str:
        shadow = self.shadow
        digest = hashlib.sha256(",".join(sorted(self.disabled)).encode())
        digest.update(json.dumps(shadow.organisation, sort_keys=True, default=str).encode())
        for endpoint in sorted(shadow.collections):
            for record_id in sorted(shadow.collections[endpoint]):
                digest.update(
                    json.dumps(shadow.collections[endpoint][record_id], sort_keys=True).encode()
                )
        digest.update(self.now().date().isoformat().encode())
        return digest.hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _empty_like(tenant: TenantData) -> TenantData:
    """The same organisation with nothing read yet."""
    return TenantData(
        tenant.tenant_id,
        tenant.name,
        copy.deepcopy(tenant.organisation),
        short_code=tenant.short_code,
    )


def build_tables(settings: Settings, tenant_id: str, engine: Any) -> TenantTables:
    """``tenant_tables.build_tenant_tables`` as the tables asset calls it, with the state DB and
    the switched-off entities when it takes them."""
    takes = inspect.signature(build_tenant_tables).parameters
    extra: dict[str, Any] = {}
    if "engine" in takes:
        extra["engine"] = engine
    if "disabled" in takes:
        extra["disabled"] = sorted(settings.disabled_entities)
    return build_tenant_tables(settings.lake_dir, tenant_id, **extra)


def _window_days(run: RawRun, tenant_id: str) -> list[date]:
    """The days a window read really covered (it may reach back further than asked, to catch
    up), from the run's ``windows`` (``"<tenant>: <first> .. <last>"``)."""
    days: list[date] = []
    for text in run.windows:
        match = re.fullmatch(rf"{re.escape(tenant_id)}: (\S+) \.\. (\S+)", text.strip())
        if match:
            days += _days(date.fromisoformat(match[1]), date.fromisoformat(match[2]))
    return days


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _blocking_failures(built: TenantTables) -> list[str]:
    """Failed checks that block the publish: ``built.blocked`` where the tables say so, else
    every failed check of severity ERROR (all of them, while checks carry no severity)."""
    blocked = getattr(built, "blocked", None)
    if isinstance(blocked, bool):
        return ["blocked"] if blocked else []
    return [
        f"{table.name}:{check.name}"
        for table in built.tables
        for check, outcome in table.checks
        if not outcome.passed and str(getattr(check, "severity", "ERROR")).upper().endswith("ERROR")
    ]


# --------------------------------------------------------------------------- Tableau read-back


class tableau_session:
    """A TSC session on the Tableau sandbox's demo site (signed out on exit)."""

    def __init__(self, base_url: str) -> None:
        self.server = TSC.Server(base_url, use_server_version=False)
        self.server.version = API_VERSION

    def __enter__(self) -> TSC.Server:
        self.server.auth.sign_in(
            TSC.PersonalAccessTokenAuth(
                TABLEAU_DEMO_PAT_NAME, TABLEAU_DEMO_PAT_SECRET, site_id=TABLEAU_DEMO_SITE
            )
        )
        return self.server

    def __exit__(self, *_exc: object) -> None:
        self.server.auth.sign_out()


def download_project(
    world: World,
    project: str,
    folder: Path,
    *,
    only: set[str] | None = None,
    cached: Tables | None = None,
) -> Tables:
    """The data sources of ``project``, downloaded with TSC (``.tdsx``) and read back, by the
    table each holds. With ``only``, just those tables are downloaded; the others are taken
    from ``cached`` (what they held at their last download: nothing was sent to them since)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out: Tables = {}
    extracts: dict[str, Path] = {}
    with tableau_session(world.tableau.base_url) as server:
        items = [d for d in TSC.Pager(server.datasources) if d.project_name == project]
        for item in items:
            table = next((t for t in TABLES if (item.name or "").endswith(f"_{t}")), None)
            if table is None or item.id is None:
                continue
            if only is not None and table not in only and cached and table in cached:
                out[table] = cached[table]
                continue
            buffer = io.BytesIO()
            server.datasources.download(item.id, filepath=buffer, include_extract=True)
            with zipfile.ZipFile(buffer) as tdsx:
                extract = next(n for n in tdsx.namelist() if n.startswith("Data/Extracts/"))
                extracts[table] = folder / f"{table}.hyper"
                extracts[table].write_bytes(tdsx.read(extract))
    out.update(read_extracts(world.hyper, extracts))
    return out


def read_extracts(writer: HyperWriter, paths: Mapping[str, Path]) -> Tables:
    """The rows of one-table ``.hyper`` files, through Hyper's own Parquet export on one
    connection (NUMERIC comes back as ``Decimal``): several times faster than value by value."""
    out: Tables = {}
    if not paths:
        return out
    with Connection(writer.process.endpoint) as connection:
        for key, path in paths.items():
            connection.catalog.attach_database(str(path), alias="extract")
            try:
                (name,) = [
                    table
                    for schema in connection.catalog.get_schema_names("extract")
                    for table in connection.catalog.get_table_names(schema)
                ]
                target = path.with_suffix(".parquet")
                connection.execute_command(
                    f"COPY {name} TO {escape_string_literal(str(target))} WITH (FORMAT PARQUET)"
                )
            finally:
                connection.catalog.detach_database("extract")
            out[key] = pq.read_table(target).to_pylist()
    return out


def format_failure(differences: list[Difference], steps: list[str], limit: int = 25) -> str:
    lines = ["The incremental data sources differ from a from-scratch replace:"]
    by_signature = Counter(d.signature for d in differences)
    lines += [f"  {n} x {' / '.join(filter(None, sig))}" for sig, n in by_signature.items()]
    lines += ["First differences:"]
    lines += [f"  {d.describe()}" for d in differences[:limit]]
    lines += ["Steps:"] + [f"  {i + 1}. {s}" for i, s in enumerate(steps)]
    return "\n".join(lines)


__all__ = [
    "FUZZ_BOOKS",
    "IGNORED_COLUMNS",
    "SYNC_KINDS",
    "Difference",
    "Example",
    "World",
    "comparable",
    "compare_tables",
    "format_failure",
    "start_world",
    "stop_world",
]
