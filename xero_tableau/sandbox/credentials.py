"""The sandbox's fixed demo credentials (printed by `xero-tableau sandbox`, used by `make demo` and
the tests) and the environment that points the project at running emulators. They open nothing
but the local emulators."""

from pathlib import Path

DEMO_CLIENT_ID = "5A1DB0C5E7D34F0E9C1B2A3D4E5F6A7B"
DEMO_CLIENT_SECRET = "sandbox-secret-7q3Jk9Vx2mWp4Rt8Ln6Hb1Zc"
DEMO_CUSTOM_CLIENT_ID = "C0570C0E1F2A4B3C8D9E0F1A2B3C4D5E"
DEMO_CUSTOM_CLIENT_SECRET = "sandbox-custom-secret-Yw5Tq2Ze8Nr4Ks1M"
DEMO_WEBHOOK_KEY = "c2FuZGJveC13ZWJob29rLWtleS1mb3IteGVyby10YWJsZWF1LWRlbW8tb25seQ=="
DEMO_REDIRECT_URI = "http://localhost:8765/callback"
READ_SCOPES = (
    "openid profile email offline_access accounting.transactions.read "
    "accounting.contacts.read accounting.settings.read"
)
# The general ledger (GET /Journals) opens only with this scope; the demo's consent above does not
# ask for it, and the custom connection never has it (Xero gives new custom connections none).
JOURNALS_SCOPE = "accounting.journals.read"
# The emulated Tableau's personal access token and default site (its content URL).
TABLEAU_DEMO_PAT_NAME = "xero-tableau-sandbox"
TABLEAU_DEMO_PAT_SECRET = "sandbox-pat-Qm7Vt2Lx9Rk4Wz1Hc8Nf3Jd6Bp5Ys0Ga"
TABLEAU_DEMO_SITE = "finance"


def sandbox_env(base_url: str, home: Path) -> dict[str, str]:
    """The environment that points every part of the project at a running sandbox."""
    return {
        "XT_HOME": str(home),
        "XERO_CLIENT_ID": DEMO_CLIENT_ID,
        "XERO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "XERO_AUTH_MODE": "authorization_code",
        "XERO_SCOPES": READ_SCOPES,
        "XERO_REDIRECT_URI": DEMO_REDIRECT_URI,
        "XERO_WEBHOOK_KEY": DEMO_WEBHOOK_KEY,
        "XERO_API_BASE": base_url,
        "XERO_IDENTITY_BASE": base_url,
        "XERO_LOGIN_BASE": base_url,
        "DAGSTER_HOME": str(home / "dagster"),
    }


def tableau_env(base_url: str) -> dict[str, str]:
    """The environment that publishes to a running Tableau sandbox."""
    return {
        "TABLEAU_SERVER_URL": base_url,
        "TABLEAU_SITE": TABLEAU_DEMO_SITE,
        "TABLEAU_PAT_NAME": TABLEAU_DEMO_PAT_NAME,
        "TABLEAU_PAT_SECRET": TABLEAU_DEMO_PAT_SECRET,
        "TABLEAU_PROJECT": "Xero",
    }
