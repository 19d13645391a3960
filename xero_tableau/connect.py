"""``xero-tableau connect``: consent (or a custom connection), tokens stored encrypted in the state
DB, the connected organisations recorded as tenants."""

import webbrowser
from collections.abc import Callable

import httpx

from xero_tableau.settings import Settings
from xero_tableau.store.tenants import KnownTenant
from xero_tableau.xero.consent import run_consent
from xero_tableau.xero_connection import open_xero, record_tenants


def _print(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command's output


def connect(
    settings: Settings,
    *,
    open_browser: bool = True,
    follow_with_http: bool = False,
    say: Callable[[str], None] = _print,
) -> list[KnownTenant]:
    """Consent (or custom connection), store the tokens encrypted, register the tenants."""
    with open_xero(settings) as xero:
        if settings.xero_auth_mode == "authorization_code":
            url, state = xero.oauth.authorize_url()
            say("Open this URL to let xero-tableau read your Xero organisations:")
            say(f"  {url}")

            def follow(target: str) -> None:
                # The sandbox's consent page answers at once with a redirect to our callback.
                httpx.get(target, follow_redirects=True, timeout=30)

            opener = follow if follow_with_http else (webbrowser.open if open_browser else None)
            code = run_consent(url, state, settings.xero_redirect_uri, open_url=opener)
            xero.session.connect_with_code(code)
        known = record_tenants(xero)
    connected = sum(t.active for t in known)
    say(f"Connected: {connected} organisation(s); tokens stored encrypted in the state DB.")
    for tenant in known:
        say(f"  {tenant.tenant_id}  {tenant.name}{'' if tenant.active else '  (disconnected)'}")
    return [t for t in known if t.active]
