"""The Tableau publisher and tenant routing, against the emulated Tableau through the real TSC.

Every test reads the stored ``.hyper`` of the published data source back and compares rows
exactly (Decimal amounts included), because "the job succeeded" is not the same as "Tableau
holds the right rows": retries must never double a row and a changed document must be replaced
as a whole.
"""

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
)
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
)
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.incremental import delete_insert_actions, incremental_request_id
from xero_tableau.tableau.outcome import (
    InMemoryPublishLedger,
    PublishError,
    PublishFailed,
    PublishOutcome,
    PublishPermissionError,
    PublishTimeout,
)
from xero_tableau.tableau.publish import TableauPublisher
from xero_tableau.tableau.routing import (
    Route,
    RoutingError,
    UnknownTenantError,
    load_routing,
)
from xero_tableau_tests.conftest import StartTableau

TABLE = "fct_invoice_lines"
DS = "acme_fct_invoice_lines"
KEY = "invoice_id"
T1 = "tenant-1"
SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("invoice_id", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("amount", pa.decimal128(18, 2)),
        pa.field("description", pa.string()),
    ]
)
Row = tuple[str, str, int, Decimal, str]

BASE: list[Row] = [
    (T1, "INV-A", 1, Decimal("100.10"), "a1"),
    (T1, "INV-A", 2, Decimal("-0.05"), "a2"),
    (T1, "INV-B", 1, Decimal("2500.00"), "b1"),
    (T1, "INV-C", 1, Decimal("0.01"), "c1"),
]
# INV-A lost a line and changed amount; INV-D is new; B and C untouched.
CHANGED: list[Row] = [
    (T1, "INV-A", 1, Decimal("99.99"), "a1 edited"),
    (T1, "INV-D", 1, Decimal("12.34"), "d1"),
    (T1, "INV-D", 2, Decimal("0.66"), "d2"),
]
AFTER: list[Row] = sorted([BASE[2], BASE[3], *CHANGED])


@pytest.fixture(scope="module")
def writer() -> Iterator[HyperWriter]:
    with HyperWriter() as hyper:
        yield hyper


@pytest.fixture
def tableau(start: StartTableau) -> RunningTableauSandbox:
    return start()


@pytest.fixture
def make(writer: HyperWriter, tmp_path: Path) -> Callable[[str, list[Row]], Path]:
    """Rows → parquet (pyarrow) → ``"Extract"."fct_invoice_lines"`` in ``<name>.hyper``."""

    def _make(name: str, rows: list[Row]) -> Path:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in SCHEMA]
        table = pa.Table.from_arrays(
            [
                pa.array(list(values), type=f.type)
                for values, f in zip(columns, SCHEMA, strict=True)
            ],
            schema=SCHEMA,
        )
        parquet = tmp_path / f"{name}.parquet"
        pq.write_table(table, parquet)
        hyper = tmp_path / f"{name}.hyper"
        writer.write_table(parquet, hyper, TABLE, schema=SCHEMA)
        return hyper

    return _make


def publisher(
    tableau: RunningTableauSandbox, site: str = TABLEAU_DEMO_SITE, **kw: Any
) -> TableauPublisher:
    kw.setdefault("sleep", lambda _: None)
    return TableauPublisher(
        tableau.base_url, TABLEAU_DEMO_PAT_NAME, TABLEAU_DEMO_PAT_SECRET, site, **kw
    )


def stored(
    writer: HyperWriter,
    tableau: RunningTableauSandbox,
    name: str = DS,
    site: str = TABLEAU_DEMO_SITE,
) -> list[Row]:
    path = tableau.sandbox.datasource_path(site, name)
    table = writer.read_table(path, TABLE, order_by=["tenant_id", "invoice_id", "line_number"])
    return [tuple(r.values()) for r in table.to_pylist()]  # type: ignore[misc]


def stored_sum(writer: HyperWriter, tableau: RunningTableauSandbox, name: str = DS) -> Decimal:
    path = tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, name)
    return writer.query(path, f'SELECT SUM("amount") FROM "Extract"."{TABLE}"')[0][0]


def incremental(
    pub: TableauPublisher, changed: Path, batch: str, full: Path | None = None
) -> PublishOutcome:
    return pub.publish_incremental(changed, DS, "Xero", TABLE, KEY, batch, full_hyper_path=full)


# ------------------------------------------------------------------------------ incremental


def test_incremental_creates_then_replaces_changed_documents(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full = make("full", BASE)
    with publisher(tableau) as pub:
        created = incremental(pub, full, "batch-0", full)
        assert created.mode == "create" and created.succeeded and created.finish_code == 0
        assert created.datasource_id == tableau.sandbox.find_datasource(TABLEAU_DEMO_SITE, DS).id
        assert stored(writer, tableau) == BASE

        updated = incremental(pub, make("delta", CHANGED), "batch-1")
    assert updated.mode == "incremental" and updated.succeeded
    assert updated.datasource_id == created.datasource_id  # same LUID: dashboards keep working
    assert updated.rows_sent == 3
    assert updated.request_id and updated.request_id.startswith("xt-batch-1-")
    assert updated.calls_by_method.get("PATCH") == 1
    assert updated.rest_calls == sum(updated.calls_by_method.values()) > 0
    assert updated.sign_ins == 0  # one session for the whole run
    assert pub.sign_ins == 1
    assert stored(writer, tableau) == AFTER
    assert stored_sum(writer, tableau) == sum(r[3] for r in AFTER) == Decimal("2613.00")
    assert tableau.sandbox.requests_log["POST /auth/signin"] == 1


def removed(*invoices: str) -> pa.Table:
    """The keys of documents gone since the last publish, as ``removed_keys`` takes them."""
    return pa.table({"tenant_id": [T1] * len(invoices), KEY: list(invoices)})


def test_removed_documents_are_deleted_in_the_same_update(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full = make("full", BASE)
    ledger = InMemoryPublishLedger()
    with publisher(tableau, ledger=ledger) as pub:
        incremental(pub, full, "batch-0", full)
        updated = pub.publish_incremental(
            make("delta", CHANGED), DS, "Xero", TABLE, KEY, "batch-1", removed_keys=removed("INV-C")
        )
        assert updated.mode == "incremental" and updated.rows_sent == 3
        assert updated.calls_by_method.get("PATCH") == 1  # one request: delete, then insert
        assert stored(writer, tableau) == [r for r in AFTER if r[1] != "INV-C"]

        # Nothing to insert, one document to delete: still sent, not a no-op.
        only = pub.publish_incremental(
            make("none", []), DS, "Xero", TABLE, KEY, "batch-2", removed_keys=removed("INV-B")
        )
        assert only.mode == "incremental" and only.rows_sent == 0 and only.succeeded
        assert stored(writer, tableau) == [r for r in AFTER if r[1] not in ("INV-B", "INV-C")]
        nothing = pub.publish_incremental(make("none2", []), DS, "Xero", TABLE, KEY, "batch-3")
        assert nothing.mode == "noop"
    # The deleted keys are part of the request id: same rows, other removals, other request.
    assert updated.request_id != only.request_id
    records = {r.batch_id: r for r in ledger.records()}
    assert records["batch-2"].status == "succeeded"


def test_request_id_covers_the_removed_keys(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    """The same batch id and rows with other removals is other data: refused once succeeded,
    never answered with the first request's job."""
    full, delta = make("full", BASE), make("delta", CHANGED)
    with publisher(tableau, ledger=InMemoryPublishLedger()) as pub:
        incremental(pub, full, "batch-0", full)
        first = pub.publish_incremental(
            delta, DS, "Xero", TABLE, KEY, "batch-1", removed_keys=removed("INV-B")
        )
        again = pub.publish_incremental(
            make("delta-again", CHANGED), DS, "Xero", TABLE, KEY, "batch-1",
            removed_keys=removed("INV-B"),
        )  # fmt: skip
        assert again.mode == "noop" and again.request_id == first.request_id
        with pytest.raises(PublishError, match="other data"):
            pub.publish_incremental(
                delta, DS, "Xero", TABLE, KEY, "batch-1", removed_keys=removed("INV-C")
            )
    assert stored(writer, tableau) == [r for r in AFTER if r[1] != "INV-B"]


def test_incremental_without_full_file_refuses_a_missing_datasource(
    tableau: RunningTableauSandbox, make: Callable[[str, list[Row]], Path]
) -> None:
    with publisher(tableau) as pub, pytest.raises(PublishError, match="full_hyper_path"):
        incremental(pub, make("delta", CHANGED), "batch-1")


def test_replace_mode_overwrites_and_keeps_the_luid(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    with publisher(tableau) as pub:
        first = pub.publish_replace(make("v1", BASE), DS, "Xero")
        second = pub.publish_replace(make("v2", AFTER), DS, "Xero")
    assert first.mode == second.mode == "replace"
    assert first.datasource_id == second.datasource_id is not None
    assert second.job_id and second.finish_code == 0
    assert second.calls_by_method.get("POST") == 1  # the publish; no permission re-check
    assert stored(writer, tableau) == AFTER


def test_request_id_is_deterministic() -> None:
    actions = delete_insert_actions(TABLE, ["tenant_id", KEY])
    one = incremental_request_id("b1", "ab" * 32, DS, actions)
    assert one == incremental_request_id("b1", "ab" * 32, DS, actions)
    assert one != incremental_request_id("b1", "cd" * 32, DS, actions)
    assert one != incremental_request_id("b2", "ab" * 32, DS, actions)
    assert one != incremental_request_id("b1", "ab" * 32, "other", actions)


# ------------------------------------------------------------------------------ sessions


def test_expired_session_signs_in_again_and_push_succeeds(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full = make("full", BASE)
    with publisher(tableau) as pub:
        incremental(pub, full, "batch-0", full)
        tableau.sandbox.expire_sessions()
        updated = incremental(pub, make("delta", CHANGED), "batch-1")
        tableau.sandbox.expire_sessions()
        replaced = pub.publish_replace(full, DS, "Xero")
    assert updated.succeeded and updated.sign_ins == 1
    assert replaced.succeeded and replaced.sign_ins == 1
    assert pub.sign_ins == 3
    assert stored(writer, tableau) == BASE


def test_session_expiring_while_a_job_is_polled(
    start: StartTableau, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    tableau = start(job_delay=0.05)

    def sleep(seconds: float) -> None:
        tableau.sandbox.expire_sessions()  # the session dies between two polls
        time.sleep(0.06)

    with publisher(tableau, sleep=sleep) as pub:
        outcome = pub.publish_replace(make("full", BASE), DS, "Xero")
    assert outcome.succeeded and outcome.sign_ins == 1
    assert stored(writer, tableau) == BASE


def test_transient_server_error_is_retried(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full = make("full", BASE)
    with publisher(tableau) as pub:
        pub.check_can_publish("Xero")
        tableau.sandbox.faults.fail_next_statuses.append(503)
        outcome = pub.publish_replace(full, DS, "Xero")
    assert outcome.succeeded
    assert outcome.calls_by_method.get("POST") == 2  # the 503 and the retry
    assert stored(writer, tableau) == BASE


def test_rest_version_is_pinned(
    start: StartTableau, make: Callable[[str, list[Row]], Path]
) -> None:
    tableau = start()
    with publisher(tableau, api_version="3.20") as pub:
        assert pub.rest_version == "3.24"  # the server's own
    tableau.sandbox.faults.fail_next_statuses.append(503)  # serverInfo fails
    with publisher(tableau, api_version="3.20") as pub:
        assert pub.rest_version == "3.20"  # never TSC's silent 2.4
    old = start(api_version="3.10")
    full = make("full", BASE)
    with publisher(old) as pub:
        assert pub.rest_version == "3.10"
        assert pub.publish_replace(full, DS, "Xero").succeeded
        with pytest.raises(PublishError, match=r"3\.13"):
            incremental(pub, make("delta", CHANGED), "b1")


def test_bad_token_is_a_clear_error(tableau: RunningTableauSandbox) -> None:
    pub = TableauPublisher(tableau.base_url, TABLEAU_DEMO_PAT_NAME, "wrong", TABLEAU_DEMO_SITE)
    with pytest.raises(PublishError, match="401001"):
        pub.sign_in()
    assert tableau.sandbox.requests_log["POST /auth/signin"] == 1  # not retried


# ------------------------------------------------------------------------------ permissions


def test_project_without_publish_rights_is_refused_before_any_upload(
    tableau: RunningTableauSandbox, make: Callable[[str, list[Row]], Path]
) -> None:
    full = make("full", BASE)
    with publisher(tableau) as pub:
        with pytest.raises(PublishPermissionError) as err:
            pub.publish_replace(full, DS, "Restricted")
        assert err.value.project == "Restricted" and err.value.site == TABLEAU_DEMO_SITE
        assert "Write=Allow" in str(err.value) and "'finance'" in str(err.value)
        with pytest.raises(PublishPermissionError, match="does not exist"):
            pub.publish_incremental(full, DS, "Nope", TABLE, KEY, "b", full_hyper_path=full)
        assert pub.check_can_publish("Xero").name == "Xero"
    log = tableau.sandbox.requests_log
    assert log["POST /sites/{site}/datasources"] == 0
    assert log["POST /sites/{site}/fileUploads"] == 0
    assert log["PATCH /sites/{site}/datasources/{ds}/data"] == 0
    assert tableau.sandbox.datasources == {}


def test_non_publishing_site_role_is_refused(
    start: StartTableau, make: Callable[[str, list[Row]], Path]
) -> None:
    tableau = start(site_role="Viewer")
    with publisher(tableau) as pub, pytest.raises(PublishPermissionError, match="site role"):
        pub.publish_replace(make("full", BASE), DS, "Xero")
    assert tableau.sandbox.requests_log["POST /sites/{site}/datasources"] == 0


# ------------------------------------------------------------------------------ failures


def test_failed_job_raises_then_retry_applies_once(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full, delta = make("full", BASE), make("delta", CHANGED)
    with publisher(tableau) as pub:
        tableau.sandbox.faults.fail_next_jobs = 1
        with pytest.raises(PublishFailed) as first:
            incremental(pub, full, "batch-0", full)  # the creating publish fails
        assert first.value.outcome.mode == "create" and first.value.outcome.finish_code == 1
        assert incremental(pub, full, "batch-0", full).succeeded
        assert stored(writer, tableau) == BASE

        tableau.sandbox.faults.fail_next_jobs = 1
        with pytest.raises(PublishFailed) as failed:
            incremental(pub, delta, "batch-1")
        outcome = failed.value.outcome
        assert not outcome.succeeded and outcome.finish_code == 1
        assert any("Injected failure" in note for note in outcome.notes)
        assert "Injected failure" in str(failed.value)
        assert stored(writer, tableau) == BASE  # the failed batch changed nothing

        retried = incremental(pub, delta, "batch-1")
    assert retried.succeeded and retried.request_id == outcome.request_id
    assert stored(writer, tableau) == AFTER  # nothing doubled


def test_server_remembering_failed_request_ids_needs_the_ledger(
    start: StartTableau, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    tableau = start(remember_failed_request_ids=True)
    ledger = InMemoryPublishLedger()
    full, delta = make("full", BASE), make("delta", CHANGED)
    with publisher(tableau, ledger=ledger) as pub:
        incremental(pub, full, "batch-0", full)
        tableau.sandbox.faults.fail_next_jobs = 1
        with pytest.raises(PublishFailed):
            incremental(pub, delta, "batch-1")
        record = ledger.get("batch-1")
        assert record is not None and record.status == "failed" and record.failures == 1
        retried = incremental(pub, delta, "batch-1")
        assert retried.succeeded and retried.request_id == f"{record.request_id}-r1"
        again = incremental(pub, delta, "batch-1")  # already done: no REST call at all
    assert again.mode == "noop" and again.rest_calls == 0
    assert stored(writer, tableau) == AFTER
    assert [r.status for r in ledger.records()] == ["succeeded", "succeeded"]


def test_same_batch_twice_is_not_doubled(
    tableau: RunningTableauSandbox, writer: HyperWriter, make: Callable[[str, list[Row]], Path]
) -> None:
    full, delta = make("full", BASE), make("delta", CHANGED)
    with publisher(tableau) as pub:
        incremental(pub, full, "batch-0", full)
        one = incremental(pub, delta, "batch-1")
        # Insert-only rows would double if applied twice: the request id makes it run once.
        two = incremental(pub, make("delta-again", CHANGED), "batch-1")
    assert one.request_id == two.request_id
    assert one.job_id == two.job_id  # Tableau answered with the original job
    assert stored(writer, tableau) == AFTER
    assert sum(1 for job in tableau.sandbox.jobs.values() if job.type == "UpdateUploadedFile") == 1


def test_job_that_never_finishes_times_out(
    start: StartTableau, make: Callable[[str, list[Row]], Path]
) -> None:
    tableau = start(job_delay=60.0)
    slept: list[float] = []
    with (
        publisher(tableau, poll_timeout=5.0, sleep=slept.append) as pub,
        pytest.raises(PublishTimeout) as err,
    ):
        pub.publish_replace(make("full", BASE), DS, "Xero")
    assert err.value.outcome.finish_code is None and err.value.outcome.job_id
    assert sum(slept) >= 5.0 and all(s <= 15.0 for s in slept)


# ------------------------------------------------------------------------------ routing


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_routing_refuses_unknown_tenants(tmp_path: Path) -> None:
    file = write(
        tmp_path / "routing.yaml",
        "tenants:\n  t1: {site: finance, project: Xero, datasource_prefix: acme_}\n",
    )
    routing = load_routing(file, default=Route("", "Default", "", "https://tableau"))
    route = routing.route_for("t1")
    assert route == Route("finance", "Xero", "acme_", "https://tableau")
    assert route.datasource_name(TABLE) == "acme_fct_invoice_lines"
    with pytest.raises(UnknownTenantError) as err:
        routing.route_for("t2")
    assert "'t2'" in str(err.value) and str(file) in str(err.value)
    # Without a routing file every tenant goes to the default route.
    assert load_routing(None, default=Route("", "Xero")).route_for("t2") == Route("", "Xero")
    with pytest.raises(UnknownTenantError):
        load_routing(None, default=None).route_for("t2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "top level must be a mapping"),
        ("tenants: {}\n", "non-empty mapping"),
        ("tenant:\n  t1: {site: s, project: p}\n", "unknown top-level keys"),
        ("tenants:\n  t1: {site: s}\n", "missing project"),
        ("tenants:\n  t1: {site: s, projet: p, project: p}\n", "unknown keys \\['projet'\\]"),
        ("tenants:\n  t1: {site: 3, project: p}\n", "site must be a string"),
        ("tenants:\n  t1: {site: s, project: ''}\n", "project must not be empty"),
        ("tenants:\n  123: {site: s, project: p}\n", "quote it"),
        (
            "tenants:\n  t1: {site: s, project: p}\n  t2: {site: s, project: p}\n",
            "two tenants may not share",
        ),
        ("tenants: [unclosed\n", "not valid YAML"),
    ],
)
def test_routing_file_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path / "routing.yaml", text)
    with pytest.raises(RoutingError, match=message):
        load_routing(file, default=None)


def test_missing_routing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="does not exist"):
        load_routing(tmp_path / "nope.yaml", default=None)


def test_two_tenants_on_two_sites_never_see_each_others_rows(
    tableau: RunningTableauSandbox,
    writer: HyperWriter,
    make: Callable[[str, list[Row]], Path],
    tmp_path: Path,
) -> None:
    file = write(
        tmp_path / "routing.yaml",
        'tenants:\n  tenant-1: {site: finance, project: Xero, datasource_prefix: ""}\n'
        '  tenant-2: {site: "", project: Xero, datasource_prefix: ""}\n',
    )
    routing = load_routing(file, default=Route("", "Xero", "", tableau.base_url))
    rows2: list[Row] = [("tenant-2", "INV-Z", 1, Decimal("7.00"), "z1")]
    files = {"tenant-1": make("t1", BASE), "tenant-2": make("t2", rows2)}
    publishers: dict[str, TableauPublisher] = {}
    try:
        for tenant in ("tenant-1", "tenant-2"):
            route = routing.route_for(tenant)
            assert route.server_url == tableau.base_url
            pub = publishers[route.site] = publisher(tableau, route.site).__enter__()
            name = route.datasource_name(TABLE)
            outcome = pub.publish_incremental(
                files[tenant], name, route.project, TABLE, KEY, "b0", full_hyper_path=files[tenant]
            )
            assert outcome.succeeded and outcome.site == route.site
        # Interleaved pushes with one PAT: each sign-in kills the other session; both heal.
        for tenant in ("tenant-1", "tenant-2"):
            route = routing.route_for(tenant)
            pub = publishers[route.site]
            assert pub.find_datasource(route.datasource_name(TABLE), route.project) is not None
            pub.publish_replace(files[tenant], route.datasource_name(TABLE), route.project)
    finally:
        for pub in publishers.values():
            pub.close()
    assert stored(writer, tableau, TABLE, "finance") == BASE
    assert stored(writer, tableau, TABLE, "") == rows2
    with pytest.raises(UnknownTenantError):
        routing.route_for("tenant-3")
