"""The sandbox's identity service over real HTTP: Xero's OAuth2 rules.

Every rule is checked through the wire (authorize redirect, token endpoint, revocation,
/connections), with the clock jumped forward where a rule is about time.
"""

import httpx
import pytest

from xero_tableau.sandbox.credentials import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOM_CLIENT_ID,
    DEMO_CUSTOM_CLIENT_SECRET,
    READ_SCOPES,
)
from xero_tableau.sandbox.server import RunningXeroSandbox
from xero_tableau_tests.conftest import (
    API,
    SandboxFactory,
    authorize,
    basic_auth,
    bearer,
    connect,
    exchange_code,
    jwt_claims,
    redirect_query,
    refresh,
    token_request,
)
from xero_tableau_tests.xero_spec import IDENTITY, assert_valid, skip_reason, spec_available

MINUTE = 60.0
DAY = 86400.0


def _organisation(
    http: httpx.Client, base_url: str, access_token: str, tenant_id: str | None
) -> httpx.Response:
    return http.get(f"{base_url}{API}/Organisation", headers=bearer(access_token, tenant_id))


def _tenants(sandbox: RunningXeroSandbox) -> list[str]:
    return list(sandbox.sandbox.dataset.tenants)


# --- authorization code -------------------------------------------------------------------------


def test_authorize_redirects_with_code_and_state(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    response = authorize(http, xero_sandbox.base_url, state="xyz-987")
    query = redirect_query(response)
    assert query["state"] == "xyz-987"
    assert len(query["code"]) >= 20


def test_unregistered_redirect_uri_is_refused_without_redirect(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    response = authorize(
        http, xero_sandbox.base_url, redirect_uri="https://attacker.example/callback"
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    unknown_client = authorize(http, xero_sandbox.base_url, client_id="NOT-A-CLIENT")
    assert unknown_client.status_code == 400
    assert "location" not in unknown_client.headers


def test_code_is_single_use(http: httpx.Client, xero_sandbox: RunningXeroSandbox) -> None:
    code = redirect_query(authorize(http, xero_sandbox.base_url))["code"]
    first = exchange_code(http, xero_sandbox.base_url, code)
    assert first.status_code == 200
    second = exchange_code(http, xero_sandbox.base_url, code)
    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant"}


def test_code_expires_and_is_bound_to_its_redirect_uri(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    running = make_sandbox()
    base = running.base_url
    code = redirect_query(authorize(http, base))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://x/cb"}
    assert token_request(http, base, form).json() == {"error": "invalid_grant"}
    late = redirect_query(authorize(http, base))["code"]
    running.sandbox.clock.advance(6 * MINUTE)  # codes live five minutes
    expired = exchange_code(http, base, late)
    assert expired.status_code == 400 and expired.json() == {"error": "invalid_grant"}


def test_code_needs_the_right_client_secret(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    code = redirect_query(authorize(http, xero_sandbox.base_url))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "x"}
    wrong = token_request(http, xero_sandbox.base_url, form, client_secret="wrong")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_client"}


def test_token_response_shape(http: httpx.Client, xero_sandbox: RunningXeroSandbox) -> None:
    before = xero_sandbox.sandbox.clock.time()
    token = connect(http, xero_sandbox.base_url)
    after = xero_sandbox.sandbox.clock.time()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 1800
    assert isinstance(token["refresh_token"], str) and token["refresh_token"]
    claims = jwt_claims(token["access_token"])  # a JWT: three dot-separated base64url parts
    assert len(token["access_token"].split(".")) == 3
    assert int(before) + 1800 <= claims["exp"] <= after + 1800
    assert claims["client_id"] == DEMO_CLIENT_ID
    if spec_available(IDENTITY):
        assert_valid(token, "AccessToken", spec=IDENTITY)


def test_refresh_token_only_with_offline_access(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    scope = " ".join(s for s in READ_SCOPES.split() if s != "offline_access")
    token = connect(http, xero_sandbox.base_url, scope=scope)
    assert "refresh_token" not in token
    assert token["expires_in"] == 1800
    tenant = _tenants(xero_sandbox)[0]
    org = _organisation(http, xero_sandbox.base_url, token["access_token"], tenant)
    assert org.status_code == 200


# --- custom connections -------------------------------------------------------------------------


def test_client_credentials_custom_connection(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    response = token_request(
        http,
        xero_sandbox.base_url,
        {"grant_type": "client_credentials"},
        client_id=DEMO_CUSTOM_CLIENT_ID,
        client_secret=DEMO_CUSTOM_CLIENT_SECRET,
    )
    assert response.status_code == 200, response.text
    token = response.json()
    assert "refresh_token" not in token
    assert token["expires_in"] == 1800 and token["token_type"] == "Bearer"
    # one organisation, so no xero-tenant-id header is needed
    org = _organisation(http, xero_sandbox.base_url, token["access_token"], None)
    assert org.status_code == 200, org.text
    first_tenant = xero_sandbox.sandbox.dataset.tenants[_tenants(xero_sandbox)[0]]
    assert org.json()["Organisations"][0]["Name"] == first_tenant.organisation["Name"]
    # ... and the other organisation stays out of reach
    other = _organisation(
        http, xero_sandbox.base_url, token["access_token"], _tenants(xero_sandbox)[1]
    )
    assert other.status_code == 403


def test_client_credentials_refused_for_a_standard_app(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    response = token_request(http, xero_sandbox.base_url, {"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


# --- refresh rotation ---------------------------------------------------------------------------


def test_refresh_rotates_with_a_grace_window(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    running = make_sandbox()
    clock = running.sandbox.clock
    token = connect(http, running.base_url)
    old = token["refresh_token"]

    first = refresh(http, running.base_url, old)
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != old
    assert rotated["access_token"] != token["access_token"]
    assert rotated["expires_in"] == 1800

    # the old token may be used again, as often as needed, for 30 minutes after its first use
    clock.advance(29 * MINUTE)
    again = refresh(http, running.base_url, old)
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] not in (old, rotated["refresh_token"])

    # after the grace window it is dead, while the rotated one (never used) still works
    clock.advance(2 * MINUTE)
    dead = refresh(http, running.base_url, old)
    assert dead.status_code == 400
    assert dead.json() == {"error": "invalid_grant"}
    assert refresh(http, running.base_url, rotated["refresh_token"]).status_code == 200


def test_unused_refresh_token_expires_after_60_days(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    running = make_sandbox()
    clock = running.sandbox.clock
    idle_59 = connect(http, running.base_url)["refresh_token"]
    idle_61 = connect(http, running.base_url)["refresh_token"]
    clock.advance(59 * DAY)
    assert refresh(http, running.base_url, idle_59).status_code == 200
    clock.advance(2 * DAY)
    late = refresh(http, running.base_url, idle_61)
    assert late.status_code == 400
    assert late.json() == {"error": "invalid_grant"}


def test_refresh_token_belongs_to_its_client(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    token = connect(http, xero_sandbox.base_url)
    stolen = token_request(
        http,
        xero_sandbox.base_url,
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        client_id=DEMO_CUSTOM_CLIENT_ID,
        client_secret=DEMO_CUSTOM_CLIENT_SECRET,
    )
    assert stolen.status_code == 400
    assert stolen.json() == {"error": "invalid_grant"}


def test_access_token_expires_after_30_minutes(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    running = make_sandbox()
    token = connect(http, running.base_url)
    tenant = _tenants(running)[0]
    running.sandbox.clock.advance(29 * MINUTE)
    assert _organisation(http, running.base_url, token["access_token"], tenant).status_code == 200
    running.sandbox.clock.advance(2 * MINUTE)
    expired = _organisation(http, running.base_url, token["access_token"], tenant)
    assert expired.status_code == 401
    body = expired.json()
    assert body["Status"] == 401 and body["Title"] == "Unauthorized"
    assert "TokenExpired" in body["Detail"]
    # /connections refuses it too, and a refresh brings access back
    connections = http.get(f"{running.base_url}/connections", headers=bearer(token["access_token"]))
    assert connections.status_code == 401
    fresh = refresh(http, running.base_url, token["refresh_token"]).json()
    assert _organisation(http, running.base_url, fresh["access_token"], tenant).status_code == 200


def test_revocation_kills_refresh_and_access_tokens(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    base = xero_sandbox.base_url
    tenant = _tenants(xero_sandbox)[0]
    token = connect(http, base)
    rotated = refresh(http, base, token["refresh_token"]).json()
    assert _organisation(http, base, rotated["access_token"], tenant).status_code == 200

    response = http.post(
        f"{base}/connect/revocation",
        data={"token": rotated["refresh_token"]},
        headers={"Authorization": basic_auth(DEMO_CLIENT_ID, "wrong")},
    )
    assert response.status_code == 400  # the client must authenticate
    response = http.post(
        f"{base}/connect/revocation",
        data={"token": rotated["refresh_token"]},
        headers={"Authorization": basic_auth(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)},
    )
    assert response.status_code == 200

    for refresh_token in (rotated["refresh_token"], token["refresh_token"]):
        dead = refresh(http, base, refresh_token)
        assert dead.status_code == 400 and dead.json() == {"error": "invalid_grant"}
    for access_token in (rotated["access_token"], token["access_token"]):
        assert _organisation(http, base, access_token, tenant).status_code == 401
    # other consents are untouched
    other = connect(http, base)
    assert _organisation(http, base, other["access_token"], tenant).status_code == 200


# --- connections --------------------------------------------------------------------------------


def test_connections_list_every_tenant_in_xeros_shape(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    token = connect(http, xero_sandbox.base_url)
    response = http.get(
        f"{xero_sandbox.base_url}/connections", headers=bearer(token["access_token"])
    )
    assert response.status_code == 200
    rows = response.json()
    tenants = xero_sandbox.sandbox.dataset.tenants
    assert sorted(row["tenantId"] for row in rows) == sorted(tenants)
    auth_event = jwt_claims(token["access_token"])["authentication_event_id"]
    for row in rows:
        assert set(row) == {
            "id",
            "authEventId",
            "tenantId",
            "tenantType",
            "tenantName",
            "createdDateUtc",
            "updatedDateUtc",
        }
        assert row["tenantType"] == "ORGANISATION"
        assert row["tenantName"] == tenants[row["tenantId"]].name
        assert row["authEventId"] == auth_event
        # Xero's form: 7 fractional digits, no zone (e.g. 2019-12-07T18:46:19.5165400)
        date_part, fraction = row["createdDateUtc"].split(".")
        assert len(fraction) == 7 and fraction.isdigit() and len(date_part) == 19
    if spec_available(IDENTITY):
        assert_valid(rows, "Connection", spec=IDENTITY, strict=True, many=True)
    else:
        pytest.skip(skip_reason(IDENTITY))


def test_connections_filter_by_auth_event(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    token = connect(http, xero_sandbox.base_url)
    url = f"{xero_sandbox.base_url}/connections"
    auth_event = jwt_claims(token["access_token"])["authentication_event_id"]
    headers = bearer(token["access_token"])
    mine = http.get(url, params={"authEventId": auth_event}, headers=headers).json()
    assert len(mine) == len(xero_sandbox.sandbox.dataset.tenants)
    other = "00000000-0000-0000-0000-000000000000"
    assert http.get(url, params={"authEventId": other}, headers=headers).json() == []


def test_delete_connection_disconnects_one_tenant(
    http: httpx.Client, xero_sandbox: RunningXeroSandbox
) -> None:
    base = xero_sandbox.base_url
    token = connect(http, base)
    headers = bearer(token["access_token"])
    rows = http.get(f"{base}/connections", headers=headers).json()
    gone, kept = rows[0], rows[1]
    response = http.delete(f"{base}/connections/{gone['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert _organisation(http, base, token["access_token"], gone["tenantId"]).status_code == 403
    assert _organisation(http, base, token["access_token"], kept["tenantId"]).status_code == 200
    remaining = http.get(f"{base}/connections", headers=headers).json()
    assert [row["id"] for row in remaining] == [kept["id"]]
    again = http.delete(f"{base}/connections/{gone['id']}", headers=headers)
    assert again.status_code == 404
    # the disconnection belongs to this consent only: a new one reaches the tenant again
    other = connect(http, base)
    assert _organisation(http, base, other["access_token"], gone["tenantId"]).status_code == 200


# --- a lost token response ----------------------------------------------------------------------


def test_dropped_refresh_response_is_recovered_within_the_grace_window(
    http: httpx.Client, make_sandbox: SandboxFactory
) -> None:
    running = make_sandbox()
    sandbox = running.sandbox
    token = connect(http, running.base_url)
    refreshes_before = sandbox.identity.refresh_count
    sandbox.faults.drop_token_responses = 1
    with pytest.raises(httpx.TransportError):
        refresh(http, running.base_url, token["refresh_token"])
    # the server processed the refresh before the connection died
    assert sandbox.identity.refresh_count == refreshes_before + 1
    assert sandbox.faults.drop_token_responses == 0
    # the recovery path: the same old refresh token still works inside the grace window
    sandbox.clock.advance(10 * MINUTE)
    retry = refresh(http, running.base_url, token["refresh_token"])
    assert retry.status_code == 200, retry.text
    fresh = retry.json()
    assert fresh["refresh_token"] != token["refresh_token"]
    tenant = _tenants(running)[0]
    assert _organisation(http, running.base_url, fresh["access_token"], tenant).status_code == 200
