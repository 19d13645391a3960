"""Dagster resources: thin wrappers that hand the plain clients to assets and sensors."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import dagster as dg
from pydantic import Field

from xero_tableau.settings import Settings
from xero_tableau.xero.connection import XeroConnection, open_xero


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

    def settings(self) -> Settings:
        """The environment contract as it is now (read per call: cheap, and never stale)."""
        settings = Settings.from_env()
        return replace(
            settings,
            xero_client_id=self.client_id,
            xero_client_secret=self.client_secret,
            xero_api_base=(self.api_base or settings.xero_api_base).rstrip("/"),
            xero_identity_base=(self.identity_base or settings.xero_identity_base).rstrip("/"),
        )

    @contextmanager
    def connection(self) -> Iterator[XeroConnection]:
        """A rate-limited client whose access token is refreshed from the state DB as needed."""
        with open_xero(self.settings()) as xero:
            yield xero


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
