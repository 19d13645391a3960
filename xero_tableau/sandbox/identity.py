"""Xero's identity service, emulated: apps, consent, codes, access tokens, rotating refresh tokens.

It follows Xero's documented rules: 30-minute JWT access tokens; a new refresh token on every
refresh (only with ``offline_access``), single use but for a 30-minute grace window, expiring
unused after 60 days; single-use 5-minute authorization codes; ``client_credentials`` for custom
connections. Everything is pure state plus the sandbox clock; the HTTP layer lives in ``xero_app``.
"""

import base64
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from xero_tableau.sandbox.clock import SandboxClock

CODE_TTL_SECONDS = 5 * 60


class OAuthError(Exception):
    """An error the token endpoint returns as ``{"error": code}`` with HTTP 400."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description


@dataclass
class ClientApp:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    # a custom connection (client_credentials) is bound to exactly one organisation
    custom_connection_tenant: str | None = None
    custom_connection_scopes: tuple[str, ...] = ()


@dataclass
class Connection:
    id: str
    tenant_id: str
    created_ms: int
    updated_ms: int


@dataclass
class Grant:
    """One consent: a user authorised an app for some organisations at one time (authEventId)."""

    auth_event_id: str
    client_id: str
    user_id: str
    scopes: frozenset[str]
    connections: dict[str, Connection] = field(default_factory=dict)  # tenant id -> connection
    custom_connection: bool = False


@dataclass
class RefreshTokenState:
    grant_id: str
    issued_at: float
    first_used_at: float | None = None
    revoked: bool = False


@dataclass
class AccessTokenState:
    grant_id: str
    expires_at: float
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    tenant_ids: tuple[str, ...]
    expires_at: float
    used: bool = False


class AccessDenied(Exception):
    """A bearer token that cannot be used: Xero answers 401 with ``detail``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityService:
    """Token issuance and validation. Thread-safe; all times come from the sandbox clock."""

    def __init__(
        self,
        clock: SandboxClock,
        *,
        access_token_ttl: float = 1800.0,
        refresh_token_idle_ttl: float = 60 * 86400.0,
        refresh_grace: float = 1800.0,
        issuer_url: str = "https://identity.xero.com",
    ) -> None:
        self.clock = clock
        self.access_token_ttl = access_token_ttl
        self.refresh_token_idle_ttl = refresh_token_idle_ttl
        self.refresh_grace = refresh_grace
        self.issuer_url = issuer_url
        self.user_id = str(uuid.UUID(int=0xD3A0_0000_0000_4000_8000_0000_0000_0001))
        self._lock = threading.RLock()
        self._clients: dict[str, ClientApp] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshTokenState] = {}
        self._access: dict[str, AccessTokenState] = {}
        self.refresh_count = 0  # successful refresh_token grants, for tests and the admin API

    # --- apps --------------------------------------------------------------------------------

    def register_client(self, app: ClientApp) -> None:
        with self._lock:
            self._clients[app.client_id] = app

    def client(self, client_id: str) -> ClientApp | None:
        return self._clients.get(client_id)

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> ClientApp:
        app = self._clients.get(client_id or "")
        if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
            raise OAuthError("invalid_client")
        return app

    # --- authorization code flow -------------------------------------------------------------

    def authorize(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        tenant_ids: tuple[str, ...],
    ) -> str:
        """The user consents; returns the code the authorize page redirects with."""
        with self._lock:
            app = self._clients.get(client_id)
            if app is None:
                raise OAuthError("unauthorized_client", "Unknown client or client not enabled")
            if redirect_uri not in app.redirect_uris:
                raise OAuthError("invalid_request", "Invalid redirect_uri")
            scopes = frozenset(scope.split())
            if "openid" not in scopes and not any(s.startswith("accounting.") for s in scopes):
                raise OAuthError("invalid_scope", "Invalid scope for client")
            code = secrets.token_hex(32)
            self._codes[code] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=scopes,
                tenant_ids=tenant_ids,
                expires_at=self.clock.time() + CODE_TTL_SECONDS,
            )
            return code

    def exchange_code(self, app: ClientApp, code: str, redirect_uri: str) -> dict:
        with self._lock:
            state = self._codes.get(code)
            now = self.clock.time()
            if (
                state is None
                or state.used
                or state.expires_at < now
                or state.client_id != app.client_id
                or state.redirect_uri != redirect_uri
            ):
                raise OAuthError("invalid_grant")
            state.used = True
            now_ms = int(now * 1000)
            grant = Grant(
                auth_event_id=str(uuid.uuid4()),
                client_id=app.client_id,
                user_id=self.user_id,
                scopes=state.scopes,
                connections={
                    tid: Connection(str(uuid.uuid4()), tid, now_ms, now_ms)
                    for tid in state.tenant_ids
                },
            )
            self._grants[grant.auth_event_id] = grant
            return self._issue(grant, with_refresh="offline_access" in grant.scopes)

    # --- refresh -----------------------------------------------------------------------------

    def refresh(self, app: ClientApp, refresh_token: str) -> dict:
        """Rotate: a new access token and a new refresh token. Single use, 30-minute grace."""
        with self._lock:
            state = self._refresh.get(refresh_token)
            now = self.clock.time()
            if state is None or state.revoked:
                raise OAuthError("invalid_grant")
            grant = self._grants.get(state.grant_id)
            if grant is None or grant.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if state.first_used_at is None:
                if now - state.issued_at > self.refresh_token_idle_ttl:
                    raise OAuthError("invalid_grant")
                state.first_used_at = now
            elif now - state.first_used_at > self.refresh_grace:
                raise OAuthError("invalid_grant")
            self.refresh_count += 1
            return self._issue(grant, with_refresh=True)

    # --- client credentials (custom connections) ---------------------------------------------

    def client_credentials(self, app: ClientApp, scope: str | None) -> dict:
        with self._lock:
            if app.custom_connection_tenant is None:
                raise OAuthError(
                    "unauthorized_client", "client_credentials needs a custom connection"
                )
            granted = frozenset(app.custom_connection_scopes)
            wanted = frozenset(scope.split()) if scope else granted
            if not wanted <= granted:
                raise OAuthError("invalid_scope")
            now_ms = self.clock.now_ms()
            tid = app.custom_connection_tenant
            grant = Grant(
                auth_event_id=str(uuid.uuid4()),
                client_id=app.client_id,
                user_id=self.user_id,
                scopes=wanted,
                connections={tid: Connection(str(uuid.uuid4()), tid, now_ms, now_ms)},
                custom_connection=True,
            )
            self._grants[grant.auth_event_id] = grant
            return self._issue(grant, with_refresh=False)

    # --- revocation and disconnection --------------------------------------------------------

    def revoke(self, app: ClientApp, token: str) -> None:
        """Revoke a refresh token and every token of its grant (RFC 7009: unknown tokens are OK)."""
        with self._lock:
            state = self._refresh.get(token)
            if state is None:
                return
            grant = self._grants.get(state.grant_id)
            if grant is None or grant.client_id != app.client_id:
                return
            for rt in self._refresh.values():
                if rt.grant_id == state.grant_id:
                    rt.revoked = True
            for at in self._access.values():
                if at.grant_id == state.grant_id:
                    at.revoked = True

    def disconnect(self, grant: Grant, connection_id: str) -> bool:
        with self._lock:
            for tid, conn in list(grant.connections.items()):
                if conn.id == connection_id:
                    del grant.connections[tid]
                    return True
            return False

    def disconnect_tenant_everywhere(self, tenant_id: str) -> int:
        """Admin action: the organisation revoked the app (as a user would in Xero's settings)."""
        with self._lock:
            count = 0
            for grant in self._grants.values():
                if grant.connections.pop(tenant_id, None) is not None:
                    count += 1
            return count

    # --- validation --------------------------------------------------------------------------

    def grant_for_access_token(self, token: str) -> Grant:
        with self._lock:
            state = self._access.get(token)
            if state is None or state.revoked:
                raise AccessDenied("TokenInvalid: the access token is not valid")
            if state.expires_at <= self.clock.time():
                expired = datetime.fromtimestamp(state.expires_at, UTC).strftime(
                    "%m/%d/%Y %H:%M:%S"
                )
                raise AccessDenied(f"TokenExpired: token expired at {expired}")
            return self._grants[state.grant_id]

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token ever issued (tests grep for them in what we store)."""
        with self._lock:
            return [*self._access, *self._refresh]

    # --- internals ---------------------------------------------------------------------------

    def _issue(self, grant: Grant, *, with_refresh: bool) -> dict:
        now = self.clock.time()
        claims = {
            "nbf": int(now),
            "exp": int(now + self.access_token_ttl),
            "iss": self.issuer_url,
            "aud": f"{self.issuer_url}/resources",
            "client_id": grant.client_id,
            "sub": hashlib.sha256(grant.user_id.encode()).hexdigest()[:32],
            "xero_userid": grant.user_id,
            "authentication_event_id": grant.auth_event_id,
            "jti": secrets.token_hex(16),
            "scope": sorted(grant.scopes),
        }
        header = {"alg": "RS256", "kid": "sandbox", "typ": "JWT"}
        access_token = ".".join(
            (
                _b64url(json.dumps(header).encode()),
                _b64url(json.dumps(claims).encode()),
                _b64url(secrets.token_bytes(64)),
            )
        )
        self._access[access_token] = AccessTokenState(
            grant.auth_event_id, now + self.access_token_ttl
        )
        body: dict = {
            "access_token": access_token,
            "expires_in": int(self.access_token_ttl),
            "token_type": "Bearer",
            "scope": " ".join(sorted(grant.scopes)),
        }
        if "openid" in grant.scopes:
            identity_claims = {
                "iss": self.issuer_url,
                "aud": grant.client_id,
                "iat": int(now),
                "exp": int(now + 300),
                "sub": claims["sub"],
                "xero_userid": grant.user_id,
                "email": "demo@sandbox.invalid",
                "given_name": "Sandbox",
                "family_name": "User",
            }
            body["id_token"] = ".".join(
                (
                    _b64url(json.dumps(header).encode()),
                    _b64url(json.dumps(identity_claims).encode()),
                    _b64url(secrets.token_bytes(64)),
                )
            )
        if with_refresh:
            refresh_token = secrets.token_hex(32)
            self._refresh[refresh_token] = RefreshTokenState(grant.auth_event_id, now)
            body["refresh_token"] = refresh_token
        return body
