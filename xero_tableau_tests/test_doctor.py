"""``xero-tableau doctor`` against both emulated systems over real HTTP: a healthy setup is all
green, and each broken piece is reported with its fix while the other checks still run."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xero_tableau.doctor import Check, exit_code, format_report, run_doctor
from xero_tableau.sandbox.credentials import (
    DEMO_CLIENT_ID,
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
)
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.xero_connection import open_xero
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    sandbox_with_callback,
    settings_for,
)

SMALL = GeneratorConfig(tenants=2, invoice_lines=100)


@pytest.fixture(scope="module")
def xero() -> Iterator[CallbackSandbox]:
    sandbox = sandbox_with_callback(data=SMALL)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def tableau() -> Iterator[RunningTableauSandbox]:
    with start_tableau_sandbox(TableauSandboxConfig()) as running:
        yield running


@pytest.fixture
def tableau_env(tableau: RunningTableauSandbox) -> dict[str, str]:
    return {
        "TABLEAU_SERVER_URL": tableau.base_url,
        "TABLEAU_SITE": TABLEAU_DEMO_SITE,
        "TABLEAU_PAT_NAME": TABLEAU_DEMO_PAT_NAME,
        "TABLEAU_PAT_SECRET": TABLEAU_DEMO_PAT_SECRET,
        "TABLEAU_PROJECT": "Xero",
    }


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def _failed(checks: list[Check]) -> list[Check]:
    return [check for check in checks if not check.ok]


def test_a_healthy_setup_is_all_green(
    xero: CallbackSandbox, tableau_env: dict[str, str], tmp_path: Path
) -> None:
    settings, tenants = connected_settings(xero, tmp_path, **tableau_env)
    checks = run_doctor(settings)
    assert _failed(checks) == [], format_report(checks)
    assert exit_code(checks) == 0
    named = _by_name(checks)
    for name in ("app credentials", "state DB", "encryption key", "token refresh", "tenants"):
        assert named[name].system == "xero"
    for tenant in tenants:
        assert tenant.name in named["tenants"].detail
        headroom = named[f"rate limits: {tenant.name}"]
        assert "calls left today" in headroom.detail
        assert "local limiter: 1 today" in headroom.detail
        assert not headroom.warning
    assert named["sign-in finance"].system == "tableau"
    assert "REST API 3.24" in named["server version finance"].detail
    assert "publish permission ok" in named["project 'Xero' on finance"].detail
    report = format_report(checks)
    assert "✓" in report and "✗" not in report
    assert f"{len(checks)} checks: {len(checks)} ok" in report


def test_revoked_tokens_fail_with_the_connect_fix_and_tableau_still_runs(
    xero: CallbackSandbox, tableau_env: dict[str, str], tmp_path: Path
) -> None:
    settings, _ = connected_settings(xero, tmp_path, **tableau_env)
    with open_xero(settings) as connection:
        stored = connection.session.store.load()
    assert stored is not None and stored.tokens.refresh_token
    app = xero.sandbox.identity.client(DEMO_CLIENT_ID)
    assert app is not None
    xero.sandbox.identity.revoke(app, stored.tokens.refresh_token)

    checks = run_doctor(settings)
    failed = _failed(checks)
    assert [check.name for check in failed] == ["token refresh"], format_report(checks)
    assert "invalid_grant" in failed[0].detail
    assert "xero-tableau connect" in failed[0].fix
    assert exit_code(checks) == 1
    # the Tableau checks ran for the tenants the state DB recorded
    named = _by_name(checks)
    assert named["sign-in finance"].ok
    assert "Meridian" in named["project 'Xero' on finance"].detail
    report = format_report(checks)
    assert "✗ token refresh" in report and "fix: Run `xero-tableau connect`" in report


def test_a_disconnected_tenant_is_named(tmp_path: Path) -> None:
    sandbox = sandbox_with_callback(data=SMALL)
    try:
        settings, tenants = connected_settings(sandbox, tmp_path)
        gone, kept = tenants
        sandbox.sandbox.identity.disconnect_tenant_everywhere(gone.tenant_id)
        checks = run_doctor(settings)
    finally:
        sandbox.stop()
    failed = _failed(checks)
    assert [check.name for check in failed] == [f"tenant {gone.name}"], format_report(checks)
    assert gone.tenant_id in failed[0].detail and "no longer connected" in failed[0].detail
    assert "xero-tableau connect" in failed[0].fix and gone.name in failed[0].fix
    named = _by_name(checks)
    assert named["tenants"].detail.startswith("1 connected: ")
    assert kept.name in named["tenants"].detail
    assert f"rate limits: {gone.name}" not in named


def test_a_wrong_pat_secret_fails_the_sign_in_with_a_fix(
    xero: CallbackSandbox, tableau_env: dict[str, str], tmp_path: Path
) -> None:
    settings, _ = connected_settings(
        xero, tmp_path, **{**tableau_env, "TABLEAU_PAT_SECRET": "not-the-secret"}
    )
    checks = run_doctor(settings)
    failed = _failed(checks)
    assert [check.name for check in failed] == ["sign-in finance"], format_report(checks)
    assert TABLEAU_DEMO_PAT_NAME in failed[0].detail
    assert "TABLEAU_PAT_SECRET" in failed[0].fix and "one session at a time" in failed[0].fix
    assert all(check.ok for check in checks if check.system == "xero")


def test_a_route_to_a_restricted_project_fails_naming_it(
    xero: CallbackSandbox, tableau_env: dict[str, str], tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    settings, (first, second) = connected_settings(
        xero, tmp_path / "home", **tableau_env, XT_ROUTING_FILE=str(routing)
    )
    routing.write_text(
        "tenants:\n"
        f"  {first.tenant_id}: {{site: {TABLEAU_DEMO_SITE}, project: Xero, "
        "datasource_prefix: a_}\n"
        f"  {second.tenant_id}: {{site: {TABLEAU_DEMO_SITE}, project: Restricted, "
        "datasource_prefix: b_}\n",
        encoding="utf-8",
    )
    checks = run_doctor(settings)
    failed = _failed(checks)
    assert [check.name for check in failed] == ["project 'Restricted' on finance"], format_report(
        checks
    )
    assert "Restricted" in failed[0].detail and second.name in failed[0].detail
    assert "Write" in failed[0].fix and "'Restricted'" in failed[0].fix
    named = _by_name(checks)
    assert named["project 'Xero' on finance"].ok
    assert first.name in named["project 'Xero' on finance"].detail
    assert named["routing"].ok


def test_a_tenant_missing_from_the_routing_file_is_refused(
    xero: CallbackSandbox, tableau_env: dict[str, str], tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    settings, (first, second) = connected_settings(
        xero, tmp_path / "home", **tableau_env, XT_ROUTING_FILE=str(routing)
    )
    routing.write_text(
        f"tenants:\n  {first.tenant_id}: {{site: {TABLEAU_DEMO_SITE}, project: Xero}}\n",
        encoding="utf-8",
    )
    failed = _failed(run_doctor(settings))
    assert [check.name for check in failed] == [f"route: {second.name}"]
    assert second.tenant_id in failed[0].fix


def test_without_a_tableau_server_the_output_is_local(
    xero: CallbackSandbox, tmp_path: Path
) -> None:
    settings, _ = connected_settings(xero, tmp_path)
    checks = run_doctor(settings)
    assert exit_code(checks) == 0, format_report(checks)
    tableau_checks = [check for check in checks if check.system == "tableau"]
    assert len(tableau_checks) == 1
    assert tableau_checks[0].ok
    assert str(tmp_path.resolve() / "hyper") in tableau_checks[0].detail


def test_a_home_never_connected_says_to_connect(xero: CallbackSandbox, tmp_path: Path) -> None:
    settings = settings_for(xero, tmp_path / "fresh")
    checks = run_doctor(settings)
    failed = _failed(checks)
    assert [check.name for check in failed] == ["state DB"], format_report(checks)
    assert "xero-tableau connect" in failed[0].fix
    assert not (tmp_path / "fresh" / "secret.key").exists()  # the doctor creates nothing


def test_a_low_day_budget_warns_without_failing(xero: CallbackSandbox, tmp_path: Path) -> None:
    # Xero says ~5,000 calls are left: under 10% of a configured budget of 100,000
    settings, tenants = connected_settings(xero, tmp_path, XERO_DAILY_CALL_LIMIT="100000")
    checks = run_doctor(settings)
    assert exit_code(checks) == 0, format_report(checks)
    headroom = _by_name(checks)[f"rate limits: {tenants[0].name}"]
    assert headroom.ok and headroom.warning
    assert "/100000 calls left today" in headroom.detail
    assert "Under 10% of the day budget" in headroom.fix
    assert f"! rate limits: {tenants[0].name}" in format_report(checks)


def test_the_webhook_queue_reports_strangers_retries_and_a_backlog(
    xero: CallbackSandbox, tmp_path: Path
) -> None:
    settings, tenants = connected_settings(xero, tmp_path)
    named = _by_name(run_doctor(settings))
    assert named["webhook queue"].ok and "no webhook received yet" in named["webhook queue"].detail

    stranger = "00000000-0000-4000-8000-00000000beef"
    long_ago = datetime.now(UTC) - timedelta(hours=2)

    def event(tenant: str, resource: str) -> dict[str, str]:
        return {
            "resourceId": resource,
            "eventDateUtc": long_ago.replace(tzinfo=None).isoformat(),
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": tenant,
        }

    engine = connect(settings.database_url)
    try:
        queue = EventQueue(engine)
        known = {tenants[0].tenant_id}
        queue.add_batch([event(tenants[0].tenant_id, f"r{n}") for n in range(3)], long_ago, known)
        queue.add_batch([event(stranger, "s1"), event(stranger, "s2")], long_ago, known)
        (first, *_rest) = queue.pending()
        queue.request([first.id], "key-1", long_ago)
        queue.failed("key-1", "run-1", long_ago)
        checks = run_doctor(settings)
    finally:
        engine.dispose()
    named = _by_name(checks)
    assert (
        "3 pending" in named["webhook queue"].detail
        and "2 ignored" in named["webhook queue"].detail
    )
    strangers = named["webhook tenants"]
    assert strangers.warning and f"{stranger} (2 events)" in strangers.detail
    assert "xero-tableau connect" in strangers.fix
    retries = named["webhook retries"]
    assert retries.warning and retries.detail.startswith("1 event(s)")
    backlog = named["webhook backlog"]
    assert backlog.warning and "120 minutes ago" in backlog.detail
    assert "xero_webhook_events" in backlog.fix
    assert exit_code(checks) == 0  # warnings, not failures
