"""Everything needed to talk to one Xero app, built from the settings: the state DB engine, the
token session (tokens kept encrypted in the state DB) and the rate-limited client."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from xero_tableau.entities import ENTITIES
from xero_tableau.rate_limits import RateLimits, SharedRateLimiter
from xero_tableau.settings import Settings
from xero_tableau.store import db
from xero_tableau.store.crypto import load_fernet
from xero_tableau.store.tenants import KnownTenant, record_connections
from xero_tableau.token_store import TokenStore
from xero_tableau.xero.client import XeroClient
from xero_tableau.xero.oauth import OAuthSettings, XeroOAuth
from xero_tableau.xero.session import XeroSession


@dataclass
class XeroConnection:
    engine: Engine
    oauth: XeroOAuth
    session: XeroSession
    limiter: SharedRateLimiter
    client: XeroClient


def oauth_for(settings: Settings) -> XeroOAuth:
    settings.require_xero_app()
    return XeroOAuth(
        OAuthSettings(
            client_id=settings.xero_client_id or "",
            client_secret=settings.xero_client_secret or "",
            identity_base=settings.xero_identity_base,
            login_base=settings.xero_login_base,
            redirect_uri=settings.xero_redirect_uri,
            scopes=settings.xero_scopes,
        )
    )


@contextmanager
def open_xero(settings: Settings, *, window_scale: float = 1.0) -> Iterator[XeroConnection]:
    """A ready client; ``window_scale`` shrinks the rate-limit windows for a sped-up sandbox."""
    engine = db.connect(settings.database_url)
    oauth = oauth_for(settings)
    session = XeroSession(
        oauth,
        TokenStore(engine, load_fernet(settings.encryption_key, settings.key_file)),
        auth_mode=settings.xero_auth_mode,
    )
    limiter = SharedRateLimiter(
        engine,
        RateLimits(per_day=settings.xero_daily_call_limit, window_scale=window_scale),
    )
    client = XeroClient(
        settings.xero_api_base,
        access_token=session.access_token,
        refresh=session.refresh_now,
        limiter=limiter,
        scopes={e.endpoint: e.scopes for e in ENTITIES.values()},
        page_size=settings.xero_page_size,
    )
    try:
        yield XeroConnection(engine, oauth, session, limiter, client)
    finally:
        client.close()
        oauth.http.close()
        engine.dispose()


def record_tenants(xero: XeroConnection) -> list[KnownTenant]:
    """Read Xero's /connections and record them in the state DB: connected tenants become
    active, the rest inactive (kept, so their history stays explainable). Every tenant known."""
    tenants = xero.client.connections()
    return record_connections(
        xero.engine, ((t.tenant_id, t.name, t.tenant_type, t.connection_id) for t in tenants)
    )
