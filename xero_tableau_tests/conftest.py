"""Shared fixtures: emulated Xero sandboxes served on loopback, and Xero's OAuth2 dance over HTTP.

The sandbox is tested with plain httpx, never with the project's client (``xero_tableau.xero``), so
the emulator and the client are each checked against Xero's documented behaviour on their own.

- ``xero_sandbox``: one session-wide sandbox on a small dataset (two tenants), with limits high
  enough that the read tests never meet them. Tests must not change its data or move its clock.
- ``make_sandbox``: a factory for a sandbox of a test's own (fast clock, small limits, faults,
  writes, clock jumps); each is stopped when the test ends.
- ``authorize`` / ``connect``: the authorization-code flow exactly as a browser and a client do it.
"""

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from xero_tableau.sandbox.credentials import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    READ_SCOPES,
)
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.limits import LimitSettings
from xero_tableau.sandbox.server import RunningXeroSandbox, start_xero_sandbox
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.store import db
from xero_tableau_tests.postgres import server_binaries, temporary_postgres

API = "/api.xro/2.0"
SESSION_DATA = GeneratorConfig(tenants=2, invoice_lines=3000)
SMALL_DATA = GeneratorConfig(tenants=2, invoice_lines=300)
GENEROUS_LIMITS = LimitSettings(per_minute=1_000_000, per_day=10_000_000, app_per_minute=10_000_000)

SandboxFactory = Callable[..., RunningXeroSandbox]


def basic_auth(client_id: str, client_secret: str) -> str:
    """HTTP Basic client authentication, as Xero's token endpoint wants it."""
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def authorize(
    http: httpx.Client,
    base_url: str,
    *,
    scope: str = READ_SCOPES,
    state: str = "state-123",
    client_id: str = DEMO_CLIENT_ID,
    redirect_uri: str = DEMO_REDIRECT_URI,
) -> httpx.Response:
    """GET the consent page; the sandbox consents at once and redirects (not followed)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    return http.get(f"{base_url}/identity/connect/authorize", params=params, follow_redirects=False)


def redirect_query(response: httpx.Response) -> dict[str, str]:
    """The query of an authorize redirect's Location, one value per key."""
    assert response.status_code in (302, 303), response.text
    location = urlsplit(response.headers["location"])
    redirect = urlsplit(DEMO_REDIRECT_URI)
    assert (location.scheme, location.netloc, location.path) == (
        redirect.scheme,
        redirect.netloc,
        redirect.path,
    )
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def token_request(
    http: httpx.Client,
    base_url: str,
    form: dict[str, str],
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
) -> httpx.Response:
    """POST the token endpoint with HTTP Basic client authentication."""
    return http.post(
        f"{base_url}/connect/token",
        data=form,
        headers={"Authorization": basic_auth(client_id, client_secret)},
    )


def exchange_code(http: httpx.Client, base_url: str, code: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEMO_REDIRECT_URI}
    return token_request(http, base_url, form)


def refresh(http: httpx.Client, base_url: str, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(http, base_url, form)


def connect(http: httpx.Client, base_url: str, scope: str = READ_SCOPES) -> dict[str, Any]:
    """The whole authorization-code flow; returns the token response JSON."""
    state = uuid.uuid4().hex
    query = redirect_query(authorize(http, base_url, scope=scope, state=state))
    assert query["state"] == state
    response = exchange_code(http, base_url, query["code"])
    assert response.status_code == 200, response.text
    return response.json()


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def bearer(access_token: str, tenant_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if tenant_id is not None:
        headers["xero-tenant-id"] = tenant_id
    return headers


@dataclass
class XeroConnection:
    """A connected app: a token and the tenants /connections lists, with an Accounting API GET."""

    http: httpx.Client
    base_url: str
    token: dict[str, Any]
    tenant_ids: list[str] = field(default_factory=list)

    @property
    def access_token(self) -> str:
        return self.token["access_token"]

    def get(
        self,
        endpoint: str,
        tenant_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """GET ``/api.xro/2.0/{endpoint}`` for ``tenant_id`` (the first tenant by default)."""
        tenant = tenant_id if tenant_id is not None else self.tenant_ids[0]
        all_headers = bearer(self.access_token, tenant)
        all_headers.update(headers or {})
        return self.http.get(f"{self.base_url}{API}/{endpoint}", params=params, headers=all_headers)

    def ok(
        self,
        endpoint: str,
        tenant_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET and insist on 200; returns the JSON body."""
        response = self.get(endpoint, tenant_id, params, headers)
        assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
        return response.json()

    def all_records(
        self,
        endpoint: str,
        tenant_id: str | None = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> list[dict]:
        """Every record of a paged endpoint, walking pages of 1000."""
        records: list[dict] = []
        page = 1
        while True:
            query: dict[str, str | int] = {"page": page, "pageSize": 1000, **params}
            body = self.ok(endpoint, tenant_id, query, headers)
            records.extend(body[endpoint])
            if page >= body["pagination"]["pageCount"]:
                return records
            page += 1


def connect_sandbox(
    http: httpx.Client, running: RunningXeroSandbox, scope: str = READ_SCOPES
) -> XeroConnection:
    token = connect(http, running.base_url, scope)
    response = http.get(f"{running.base_url}/connections", headers=bearer(token["access_token"]))
    assert response.status_code == 200, response.text
    tenant_ids = [row["tenantId"] for row in response.json()]
    return XeroConnection(http, running.base_url, token, tenant_ids)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One plain HTTP client for the whole run (no proxies from the environment)."""
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def xero_sandbox() -> Iterator[RunningXeroSandbox]:
    """A sandbox shared by the read-only tests: do not write to it or move its clock."""
    config = XeroSandboxConfig(limits=GENEROUS_LIMITS)
    with start_xero_sandbox(config, SESSION_DATA) as running:
        yield running


@pytest.fixture(scope="module")
def xero(http: httpx.Client, xero_sandbox: RunningXeroSandbox) -> XeroConnection:
    """The session sandbox, connected with the demo app's read scopes to both tenants (once per
    module: an access token lives 30 minutes, a whole test run may not)."""
    return connect_sandbox(http, xero_sandbox)


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Start sandboxes of a test's own (default: a small dataset); all stop after the test."""
    started: list[RunningXeroSandbox] = []

    def factory(
        config: XeroSandboxConfig | None = None, data: GeneratorConfig | None = None
    ) -> RunningXeroSandbox:
        running = start_xero_sandbox(config or XeroSandboxConfig(), data or SMALL_DATA)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL for the production path (see ``postgres.py``); CI must have one."""
    configured = os.environ.get("XT_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    if server_binaries() is None:
        reason = "PostgreSQL server binaries missing (`make test` installs them as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with temporary_postgres() as url:
        yield url


StartTableau = Callable[..., RunningTableauSandbox]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartTableau]:
    """Start Tableau sandboxes with a test's own config; all are stopped when the test ends."""
    running: list[RunningTableauSandbox] = []

    def _start(**overrides: Any) -> RunningTableauSandbox:
        overrides.setdefault("storage_dir", tmp_path / f"tableau{len(running)}")
        sandbox = start_tableau_sandbox(TableauSandboxConfig(**overrides))
        running.append(sandbox)
        return sandbox

    yield _start
    for sandbox in running:
        sandbox.stop()


def fresh_state_db(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, *tables: str
) -> str:
    """A state DB URL for one test: a new SQLite file, or the session's PostgreSQL with
    ``tables`` emptied (the production backend; see ``postgres_url``)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url = request.getfixturevalue("postgres_url")
    engine = db.connect(url)
    with engine.begin() as conn:
        for name in tables:
            conn.execute(db.metadata.tables[name].delete())
    engine.dispose()
    return url
