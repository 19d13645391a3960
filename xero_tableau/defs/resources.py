"""Dagster resources, one per system: the state (home folder, state DB, encryption key), Xero and
Tableau. Each field is one setting of the environment contract (README, ``.env.example``); the
secrets are bound with ``dg.EnvVar`` so Dagster treats them as secrets and resolves them at run
time. :func:`resources_from_env` builds them when the definitions load.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from xero_tableau.settings import Settings
from xero_tableau.xero_connection import XeroConnection, open_xero


class StateResource(dg.ConfigurableResource):
    """Where the connector keeps its state: the home folder (raw lake, .hyper output, key file)
    and the state DB (tokens, rate limits, webhook queue, publish ledger, audit trail)."""

    home: str = Field(
        description="XT_HOME: the folder of the lake, the local .hyper output, the key file and "
        "(by default) the SQLite state DB."
    )
    database_url: str | None = Field(
        default=None,
        description="XT_DATABASE_URL: SQLAlchemy URL of the state DB (PostgreSQL in production); "
        "unset: SQLite at XT_HOME/state.db.",
        json_schema_extra={"dagster__is_secret": True},
    )
    encryption_key: str | None = Field(
        default=None,
        description="XT_ENCRYPTION_KEY: Fernet key of the token store; unset: the generated key "
        "file XT_HOME/secret.key.",
        json_schema_extra={"dagster__is_secret": True},
    )

    def env(self) -> dict[str, str]:
        """This resource's settings in the environment contract's names."""
        return _present(
            {
                "XT_HOME": self.home,
                "XT_DATABASE_URL": self.database_url,
                "XT_ENCRYPTION_KEY": self.encryption_key,
            }
        )

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    @property
    def lake_dir(self) -> Path:
        return self.settings().lake_dir


class XeroResource(dg.ConfigurableResource):
    """Xero API access for one app: the token session from the state DB and the rate-limited,
    paging HTTP client, plus which entities to read."""

    state: StateResource
    client_id: str = Field(description="XERO_CLIENT_ID: the Xero app's client id.")
    client_secret: str = Field(
        description="XERO_CLIENT_SECRET: the Xero app's client secret.",
        json_schema_extra={"dagster__is_secret": True},
    )
    auth_mode: str = Field(
        default="authorization_code",
        description="XERO_AUTH_MODE: authorization_code (consent, refresh tokens) or "
        "client_credentials (a custom connection).",
    )
    scopes: str | None = Field(
        default=None, description="XERO_SCOPES: the scopes asked for at consent; unset: default."
    )
    redirect_uri: str | None = Field(
        default=None, description="XERO_REDIRECT_URI: the consent callback URL."
    )
    api_base: str | None = Field(
        default=None, description="XERO_API_BASE; unset: https://api.xero.com."
    )
    identity_base: str | None = Field(
        default=None, description="XERO_IDENTITY_BASE; unset: https://identity.xero.com."
    )
    login_base: str | None = Field(
        default=None, description="XERO_LOGIN_BASE; unset: https://login.xero.com."
    )
    daily_call_limit: int = Field(
        default=5000,
        description="XERO_DAILY_CALL_LIMIT: calls per tenant per day (5,000; 1,000 on Starter).",
    )
    page_size: int = Field(
        default=1000, description="XERO_PAGE_SIZE: records per page of a paged read (max 1,000)."
    )
    disabled_entities: list[str] = Field(
        default_factory=list,
        description="XT_DISABLED_ENTITIES: optional entities switched off (credit_notes, "
        "manual_journals, purchase_orders): not read, and their tables empty.",
    )
    sweep_period_days: int = Field(
        default=7,
        description="XT_SWEEP_PERIOD_DAYS: the nightly sweep re-reads all history within this "
        "many nights (stretched when the daily call budget needs it).",
    )
    webhook_retry_seconds: int = Field(
        default=30,
        description="XT_WEBHOOK_RETRY_SECONDS: wait before a failed webhook run's events are "
        "asked for again (doubling per attempt, at most an hour).",
    )

    def settings(self) -> Settings:
        """The settings this resource and its state resource describe (no environment read)."""
        return Settings.from_env(
            {
                **self.state.env(),
                **_present(
                    {
                        "XERO_CLIENT_ID": self.client_id,
                        "XERO_CLIENT_SECRET": self.client_secret,
                        "XERO_AUTH_MODE": self.auth_mode,
                        "XERO_SCOPES": self.scopes,
                        "XERO_REDIRECT_URI": self.redirect_uri,
                        "XERO_API_BASE": self.api_base,
                        "XERO_IDENTITY_BASE": self.identity_base,
                        "XERO_LOGIN_BASE": self.login_base,
                        "XERO_DAILY_CALL_LIMIT": str(self.daily_call_limit),
                        "XERO_PAGE_SIZE": str(self.page_size),
                        "XT_DISABLED_ENTITIES": ",".join(self.disabled_entities),
                        "XT_WEBHOOK_RETRY_SECONDS": str(self.webhook_retry_seconds),
                        "XT_SWEEP_PERIOD_DAYS": str(self.sweep_period_days),
                    }
                ),
            }
        )

    @contextmanager
    def connection(self) -> Iterator[XeroConnection]:
        """A rate-limited client whose access token is refreshed from the state DB as needed."""
        with open_xero(self.settings()) as xero:
            yield xero


class TableauResource(dg.ConfigurableResource):
    """Where and how the extracts are published: a Tableau site signed in to with a Personal
    Access Token, or (no server URL) the local folder of .hyper files."""

    state: StateResource
    server_url: str | None = Field(
        default=None,
        description="TABLEAU_SERVER_URL: Tableau Server or Cloud; unset: .hyper files in "
        "XT_HOME/hyper/<tenant>/ only.",
    )
    site: str = Field(default="", description="TABLEAU_SITE: the site's content URL.")
    project: str = Field(default="Xero", description="TABLEAU_PROJECT: the target project.")
    publish_mode: str = Field(
        default="incremental",
        description="TABLEAU_PUBLISH_MODE: incremental (changed documents only) or replace.",
    )
    pat_name: str | None = Field(
        default=None, description="TABLEAU_PAT_NAME: the Personal Access Token's name."
    )
    pat_secret: str | None = Field(
        default=None,
        description="TABLEAU_PAT_SECRET: the Personal Access Token's secret.",
        json_schema_extra={"dagster__is_secret": True},
    )
    routing_file: str | None = Field(
        default=None,
        description="XT_ROUTING_FILE: YAML routing each tenant to its site, project and data "
        "source names.",
    )

    def settings(self) -> Settings:
        """The settings this resource and its state resource describe (no environment read)."""
        return Settings.from_env(
            {
                **self.state.env(),
                **_present(
                    {
                        "TABLEAU_SERVER_URL": self.server_url,
                        "TABLEAU_SITE": self.site,
                        "TABLEAU_PROJECT": self.project,
                        "TABLEAU_PUBLISH_MODE": self.publish_mode,
                        "TABLEAU_PAT_NAME": self.pat_name,
                        "TABLEAU_PAT_SECRET": self.pat_secret,
                        "XT_ROUTING_FILE": self.routing_file,
                    }
                ),
            }
        )


def _present(values: Mapping[str, str | None]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value not in (None, "")}


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``dg.EnvVar(name)`` when the variable is set (resolved at run time), else None."""
    return dg.EnvVar(name) if env.get(name) else None


def resources_from_env(env: Mapping[str, str]) -> dict[str, dg.ConfigurableResource]:
    """The three resources from the environment contract, validated now (a malformed setting
    fails the definitions' load with a message naming it); secrets stay ``dg.EnvVar``."""
    settings = Settings.from_env(env)
    state = StateResource(
        home=str(settings.home),
        database_url=_secret(env, "XT_DATABASE_URL"),
        encryption_key=_secret(env, "XT_ENCRYPTION_KEY"),
    )
    xero = XeroResource(
        state=state,
        client_id=dg.EnvVar("XERO_CLIENT_ID"),
        client_secret=dg.EnvVar("XERO_CLIENT_SECRET"),
        auth_mode=settings.xero_auth_mode,
        scopes=settings.xero_scopes,
        redirect_uri=settings.xero_redirect_uri,
        api_base=settings.xero_api_base,
        identity_base=settings.xero_identity_base,
        login_base=settings.xero_login_base,
        daily_call_limit=settings.xero_daily_call_limit,
        page_size=settings.xero_page_size,
        disabled_entities=sorted(settings.disabled_entities),
        webhook_retry_seconds=settings.webhook_retry_seconds,
        sweep_period_days=settings.sweep_period_days,
    )
    tableau = TableauResource(
        state=state,
        server_url=settings.tableau_server_url,
        site=settings.tableau_site,
        project=settings.tableau_project,
        publish_mode=settings.tableau_publish_mode,
        pat_name=settings.tableau_pat_name,
        pat_secret=_secret(env, "TABLEAU_PAT_SECRET"),
        routing_file=str(settings.routing_file) if settings.routing_file else None,
    )
    return {"state": state, "xero": xero, "tableau": tableau}
