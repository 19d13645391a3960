"""Helpers for tests of the project's Xero client against a running sandbox.

``connected_settings`` points ``Settings`` at a sandbox and a fresh ``XT_HOME``, then runs the real
``connect`` (consent on a local callback, code exchange, encrypted token store, tenant registry).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from xero_tableau.connect import connect
from xero_tableau.sandbox.credentials import sandbox_env
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.server import RunningXeroSandbox, free_port, start_xero_sandbox
from xero_tableau.sandbox.xero_app import XeroSandbox, XeroSandboxConfig
from xero_tableau.settings import Settings
from xero_tableau.store.tenants import KnownTenant
from xero_tableau.sync import QUIET_RUN_CONFIG


@dataclass
class CallbackSandbox:
    """A running sandbox whose demo app accepts ``redirect`` (a free local port)."""

    running: RunningXeroSandbox
    redirect: str

    @property
    def sandbox(self) -> XeroSandbox:
        return self.running.sandbox

    @property
    def base_url(self) -> str:
        return self.running.base_url

    def stop(self) -> None:
        self.running.stop()


def sandbox_with_callback(
    config: XeroSandboxConfig | None = None, data: GeneratorConfig | None = None
) -> CallbackSandbox:
    redirect = f"http://localhost:{free_port()}/callback"
    config = config or XeroSandboxConfig()
    config.redirect_uris = (redirect,)
    running = start_xero_sandbox(config, data or GeneratorConfig(tenants=2, invoice_lines=400))
    return CallbackSandbox(running, redirect)


def settings_for(sandbox: CallbackSandbox, home: Path, **extra: str) -> Settings:
    env = sandbox_env(sandbox.base_url, home)
    env["XERO_REDIRECT_URI"] = sandbox.redirect
    env.update(extra)
    return Settings.from_env(env)


def connected_settings(
    sandbox: CallbackSandbox, home: Path, **extra: str
) -> tuple[Settings, list[KnownTenant]]:
    """Settings for ``sandbox`` under ``home``, after the real ``connect``."""
    settings = settings_for(sandbox, home, **extra)
    tenants = connect(settings, follow_with_http=True)
    return settings, tenants


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that rebuilds ``settings`` in another process (or for Dagster resources)."""
    return {
        "XT_HOME": str(settings.home),
        "XERO_CLIENT_ID": settings.xero_client_id or "",
        "XERO_CLIENT_SECRET": settings.xero_client_secret or "",
        "XERO_API_BASE": settings.xero_api_base,
        "XERO_IDENTITY_BASE": settings.xero_identity_base,
        "XERO_LOGIN_BASE": settings.xero_login_base,
        "XERO_REDIRECT_URI": settings.xero_redirect_uri,
    }


def materialize(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    *,
    raise_on_error: bool = True,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """A real run of ``keys`` of the project's definitions on ``instance``, quietly logged."""
    assets = [a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(*keys),
        instance=instance,
        resources=dict(definitions.resources or {}),
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=raise_on_error,
        partition_key=partition_key,
        tags=tags,
    )
