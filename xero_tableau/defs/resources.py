"""Dagster resources: thin wrappers that hand the plain clients to assets and sensors."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from xero_tableau.settings import Settings
from xero_tableau.store import db
from xero_tableau.store.crypto import load_fernet
from xero_tableau.store.tokens import TokenStore
from xero_tableau.xero.api import XeroApi
from xero_tableau.xero.oauth import OAuthSettings, XeroOAuth
from xero_tableau.xero.session import XeroSession


class XeroResource(dg.ConfigurableResource):
    """Xero API access for one app: the token session from the state DB and the HTTP client.

    Secrets come in through ``dg.EnvVar``; every other setting falls back to the environment
    contract of DESIGN.md (``Settings.from_env``) when left unset, read at run time only.
    """

    client_id: str = Field(description="Xero app client id (XERO_CLIENT_ID).")
    client_secret: str = Field(
        description="Xero app client secret (XERO_CLIENT_SECRET).",
        json_schema_extra={"dagster__is_secret": True},
    )
    api_base: str | None = Field(default=None, description="XERO_API_BASE override.")
    identity_base: str | None = Field(default=None, description="XERO_IDENTITY_BASE override.")

    _settings: Settings | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        if self._settings is None:
            settings = Settings.from_env()
            settings = replace(
                settings,
                xero_client_id=self.client_id,
                xero_client_secret=self.client_secret,
                xero_api_base=(self.api_base or settings.xero_api_base).rstrip("/"),
                xero_identity_base=(self.identity_base or settings.xero_identity_base).rstrip("/"),
            )
            self._settings = settings
        return self._settings

    @contextmanager
    def api(self) -> Iterator[XeroApi]:
        """An API client whose access token is refreshed from the state DB as needed."""
        settings = self.settings()
        engine = db.connect(settings.database_url)
        try:
            oauth = XeroOAuth(
                OAuthSettings(
                    client_id=self.client_id,
                    client_secret=self.client_secret,
                    identity_base=settings.xero_identity_base,
                    login_base=settings.xero_login_base,
                    redirect_uri=settings.xero_redirect_uri,
                    scopes=settings.xero_scopes,
                )
            )
            store = TokenStore(engine, load_fernet(settings.encryption_key, settings.key_file))
            session = XeroSession(oauth, store, auth_mode=settings.xero_auth_mode)
            api = XeroApi(settings.xero_api_base, session.access_token)
            try:
                yield api
            finally:
                api.http.close()
                oauth.http.close()
        finally:
            engine.dispose()

    def lake_dir(self) -> Path:
        return self.settings().lake_dir


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "xero": XeroResource(
                client_id=dg.EnvVar("XERO_CLIENT_ID"),
                client_secret=dg.EnvVar("XERO_CLIENT_SECRET"),
            )
        }
    )
