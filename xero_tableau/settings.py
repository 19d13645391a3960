"""The configuration contract (README, ``.env.example``), read from the environment when asked
(never at import).

Every variable is optional except the credentials of the real systems; ``.env.example`` lists them
with their defaults and the README explains each one.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xero_tableau.entities import OPTIONAL_ASSET_NAMES
from xero_tableau.xero.oauth import DEFAULT_SCOPES

AUTH_MODES = ("authorization_code", "client_credentials")
PUBLISH_MODES = ("replace", "incremental")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and how to fix it."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    encryption_key: str | None = field(repr=False)
    routing_file: Path | None
    xero_client_id: str | None
    xero_client_secret: str | None = field(repr=False)
    xero_auth_mode: str
    xero_scopes: str
    xero_redirect_uri: str
    xero_webhook_key: str | None = field(repr=False)
    xero_api_base: str
    xero_identity_base: str
    xero_login_base: str
    xero_daily_call_limit: int
    xero_page_size: int
    tableau_server_url: str | None
    tableau_site: str
    tableau_pat_name: str | None
    tableau_pat_secret: str | None = field(repr=False)
    tableau_project: str
    tableau_publish_mode: str
    disabled_entities: frozenset[str] = frozenset()
    webhook_retry_seconds: int = 30
    sweep_period_days: int = 7

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def hyper_dir(self) -> Path:
        return self.home / "hyper"

    @property
    def key_file(self) -> Path:
        return self.home / "secret.key"

    def require_xero_app(self) -> None:
        missing = [
            name
            for name, value in (
                ("XERO_CLIENT_ID", self.xero_client_id),
                ("XERO_CLIENT_SECRET", self.xero_client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set: create an app at developer.xero.com "
                "(or run `xero-tableau sandbox` for demo credentials) and export them."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = get(name, str(default))
            try:
                value = int(str(raw))
            except ValueError as exc:
                raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
            return value

        home = Path(get("XT_HOME", "./.xero_tableau") or ".").expanduser().resolve()
        auth_mode = get("XERO_AUTH_MODE", "authorization_code") or ""
        if auth_mode not in AUTH_MODES:
            raise ConfigError(f"XERO_AUTH_MODE must be one of {', '.join(AUTH_MODES)}")
        publish_mode = get("TABLEAU_PUBLISH_MODE", "incremental") or ""
        if publish_mode not in PUBLISH_MODES:
            raise ConfigError(f"TABLEAU_PUBLISH_MODE must be one of {', '.join(PUBLISH_MODES)}")
        routing = get("XT_ROUTING_FILE")
        disabled = frozenset(
            part.strip()
            for part in (get("XT_DISABLED_ENTITIES", "") or "").split(",")
            if part.strip()
        )
        if not disabled <= set(OPTIONAL_ASSET_NAMES):
            raise ConfigError(
                f"XT_DISABLED_ENTITIES may name only {', '.join(OPTIONAL_ASSET_NAMES)}; "
                f"got {', '.join(sorted(disabled - set(OPTIONAL_ASSET_NAMES)))}"
            )
        return cls(
            home=home,
            database_url=get("XT_DATABASE_URL") or f"sqlite:///{home / 'state.db'}",
            encryption_key=get("XT_ENCRYPTION_KEY"),
            routing_file=Path(routing).expanduser() if routing else None,
            xero_client_id=get("XERO_CLIENT_ID"),
            xero_client_secret=get("XERO_CLIENT_SECRET"),
            xero_auth_mode=auth_mode,
            xero_scopes=get("XERO_SCOPES", DEFAULT_SCOPES) or DEFAULT_SCOPES,
            xero_redirect_uri=get("XERO_REDIRECT_URI", "http://localhost:8765/callback") or "",
            xero_webhook_key=get("XERO_WEBHOOK_KEY"),
            xero_api_base=(get("XERO_API_BASE", "https://api.xero.com") or "").rstrip("/"),
            xero_identity_base=(
                get("XERO_IDENTITY_BASE", "https://identity.xero.com") or ""
            ).rstrip("/"),
            xero_login_base=(get("XERO_LOGIN_BASE", "https://login.xero.com") or "").rstrip("/"),
            xero_daily_call_limit=integer("XERO_DAILY_CALL_LIMIT", 5000, 1, 1_000_000),
            xero_page_size=integer("XERO_PAGE_SIZE", 1000, 1, 1000),
            tableau_server_url=get("TABLEAU_SERVER_URL"),
            tableau_site=get("TABLEAU_SITE", "") or "",
            tableau_pat_name=get("TABLEAU_PAT_NAME"),
            tableau_pat_secret=get("TABLEAU_PAT_SECRET"),
            tableau_project=get("TABLEAU_PROJECT", "Xero") or "Xero",
            tableau_publish_mode=publish_mode,
            disabled_entities=disabled,
            webhook_retry_seconds=integer("XT_WEBHOOK_RETRY_SECONDS", 30, 0, 86_400),
            sweep_period_days=integer("XT_SWEEP_PERIOD_DAYS", 7, 1, 366),
        )
