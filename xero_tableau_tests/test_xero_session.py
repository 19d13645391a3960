"""Tokens that never lapse: the project's token session against the sandbox's identity service.

Real HTTP on loopback; the state DB is a real SQLite file; "processes" are real processes.
"""

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from xero_tableau.entities import ENTITIES
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store import db
from xero_tableau.store.crypto import load_fernet
from xero_tableau.token_store import TokenStore
from xero_tableau.xero.errors import ReconsentRequired
from xero_tableau.xero.oauth import TokenSet
from xero_tableau.xero.session import XeroSession
from xero_tableau.xero_connection import oauth_for, open_xero
from xero_tableau_tests.xero_harness import (
    CallbackSandbox,
    connected_settings,
    sandbox_with_callback,
    settings_env,
)


@pytest.fixture
def sandbox() -> Iterator[CallbackSandbox]:
    running = sandbox_with_callback(XeroSandboxConfig())
    yield running
    running.stop()


def _store(settings: Settings) -> TokenStore:
    engine = db.connect(settings.database_url)
    return TokenStore(engine, load_fernet(settings.encryption_key, settings.key_file))


def _expire_stored_access_token(settings: Settings) -> TokenSet:
    """Make the stored access token look expired to the client (the refresh token stays good)."""
    store = _store(settings)
    stored = store.load()
    assert stored is not None
    expired = TokenSet(
        access_token=stored.tokens.access_token,
        expires_at=0.0,
        refresh_token=stored.tokens.refresh_token,
        scope=stored.tokens.scope,
        refresh_issued_at=stored.tokens.refresh_issued_at,
    )
    store.save(expired, expected_version=stored.version)
    store.engine.dispose()
    return expired


def _session(settings: Settings) -> XeroSession:
    return XeroSession(oauth_for(settings), _store(settings))


def test_connect_stores_tokens_encrypted_and_registers_tenants(
    sandbox: CallbackSandbox, tmp_path: Path
) -> None:
    settings, tenants = connected_settings(sandbox, tmp_path)
    assert {t.tenant_id for t in tenants} == set(sandbox.sandbox.dataset.tenants)
    stored = _store(settings).load()
    assert stored is not None and stored.tokens.refresh_token
    raw = Path(settings.database_url.removeprefix("sqlite:///")).read_bytes()
    for secret in (stored.tokens.access_token, stored.tokens.refresh_token):
        assert secret.encode() not in raw
        assert secret[:24].encode() not in raw
    key_mode = settings.key_file.stat().st_mode & 0o777
    assert key_mode == 0o600


def test_long_read_crosses_an_access_token_expiry(sandbox: CallbackSandbox, tmp_path: Path) -> None:
    settings, tenants = connected_settings(sandbox, tmp_path)
    tenant = tenants[0].tenant_id
    expected = set(sandbox.sandbox.dataset.tenants[tenant].collections["Invoices"])
    before = _store(settings).load()
    assert before is not None
    seen: list[str] = []
    with open_xero(settings) as xero:
        xero.client.page_size = 100
        for page_no, page in enumerate(xero.client.read_all(ENTITIES["Invoices"], tenant)):
            seen.extend(r["InvoiceID"] for r in page)
            if page_no == 0:
                # 31 minutes pass on Xero's side: the access token the client holds expires.
                sandbox.sandbox.clock.advance(31 * 60)
        assert xero.client.stats.token_refreshes == 1
    assert len(seen) == len(set(seen)) and set(seen) == expected
    after = _store(settings).load()
    assert after is not None and after.version == before.version + 1
    assert after.tokens.refresh_token != before.tokens.refresh_token
    assert sandbox.sandbox.identity.refresh_count == 1


def _refresh_in_process(
    database_url: str, env: dict[str, str], out: "multiprocessing.Queue"
) -> None:
    settings = Settings.from_env({**env, "XT_DATABASE_URL": database_url})
    session = _session(settings)
    token = session.access_token()
    out.put((token, session.refreshes))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
    sandbox: CallbackSandbox, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    extra = {}
    if backend == "postgresql":  # the production state DB
        extra["XT_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings, tenants = connected_settings(sandbox, tmp_path, **extra)
    _expire_stored_access_token(settings)
    env = settings_env(settings)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_refresh_in_process, args=(settings.database_url, env, out))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    tokens = {token for token, _ in results}
    assert len(tokens) == 1, "both processes must end on the same token set"
    assert sorted(refreshes for _, refreshes in results) == [0, 1]
    assert sandbox.sandbox.identity.refresh_count == 1
    with open_xero(settings) as xero:
        assert xero.client.get("Organisation", tenants[0].tenant_id)["Organisations"]


def test_a_dropped_token_response_is_recovered_in_the_grace_window(
    sandbox: CallbackSandbox, tmp_path: Path
) -> None:
    settings, tenants = connected_settings(sandbox, tmp_path)
    _expire_stored_access_token(settings)
    sandbox.sandbox.faults.drop_token_responses = 1
    session = _session(settings)
    session.sleep = lambda _s: None
    token = session.access_token()
    # Xero rotated twice (the lost response, then the retry with the same refresh token).
    assert sandbox.sandbox.identity.refresh_count == 2
    assert session.refreshes == 1
    stored = _store(settings).load()
    assert stored is not None and stored.tokens.access_token == token
    with open_xero(settings) as xero:
        assert xero.client.get("Organisation", tenants[0].tenant_id)["Organisations"]


def test_a_process_that_died_mid_refresh_is_recovered_then_reconsent_is_asked(
    sandbox: CallbackSandbox, tmp_path: Path
) -> None:
    settings, _tenants = connected_settings(sandbox, tmp_path)
    expired = _expire_stored_access_token(settings)
    assert expired.refresh_token
    # A process spent the refresh token and died before storing the new set.
    oauth_for(settings).refresh(expired.refresh_token)
    sandbox.sandbox.clock.advance(10 * 60)  # within Xero's 30-minute grace window
    assert _session(settings).access_token()
    # Without the grace window the old token is dead: the error says how to fix it.
    _expire_stored_access_token(settings)
    stale = _store(settings).load()
    assert stale is not None and stale.tokens.refresh_token
    oauth_for(settings).refresh(stale.tokens.refresh_token)
    sandbox.sandbox.clock.advance(31 * 60)
    with pytest.raises(ReconsentRequired, match="xero-tableau connect"):
        _session(settings).access_token()


def test_an_idle_refresh_token_is_renewed_before_its_60_days(
    sandbox: CallbackSandbox, tmp_path: Path
) -> None:
    settings, _ = connected_settings(sandbox, tmp_path)
    session = _session(settings)
    assert session.keep_alive() is False  # fresh: nothing to do
    stored = _store(settings).load()
    assert stored is not None
    session.clock = lambda: stored.tokens.refresh_issued_at + 31 * 86400
    assert session.keep_alive() is True
    renewed = _store(settings).load()
    assert renewed is not None and renewed.tokens.refresh_token != stored.tokens.refresh_token


def test_no_token_in_plain_text_in_the_state_db_after_refreshes(
    sandbox: CallbackSandbox, tmp_path: Path
) -> None:
    settings, _ = connected_settings(sandbox, tmp_path)
    _expire_stored_access_token(settings)
    session = _session(settings)
    session.access_token()
    stored = _store(settings).load()
    assert stored is not None and stored.tokens.refresh_token
    path = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
    raw = Path(path).read_bytes()
    for secret in (stored.tokens.access_token, stored.tokens.refresh_token):
        assert secret not in dump
        assert secret.encode() not in raw
