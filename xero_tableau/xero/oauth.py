"""OAuth2 against Xero's identity service: the consent URL, the code exchange, refreshes and custom
connections (client_credentials). Token values never appear in reprs, logs or error messages."""

import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from xero_tableau.xero.errors import ReconsentRequired, XeroError

DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.transactions.read "
    "accounting.contacts.read accounting.settings.read"
)


@dataclass(frozen=True)
class TokenSet:
    """One token response. ``expires_at`` is POSIX seconds (local clock at receipt)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_token: str | None = field(default=None, repr=False)
    scope: str = ""
    refresh_issued_at: float = 0.0  # when Xero issued the refresh token (its 60-day idle clock)

    @classmethod
    def from_response(cls, body: dict, received_at: float | None = None) -> "TokenSet":
        received_at = time.time() if received_at is None else received_at
        return cls(
            access_token=body["access_token"],
            expires_at=received_at + float(body.get("expires_in", 1800)),
            refresh_token=body.get("refresh_token"),
            scope=body.get("scope", ""),
            refresh_issued_at=received_at,
        )

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) + seconds >= self.expires_at


@dataclass(frozen=True)
class OAuthSettings:
    client_id: str
    client_secret: str = field(repr=False)
    identity_base: str = "https://identity.xero.com"
    login_base: str = "https://login.xero.com"
    redirect_uri: str = "http://localhost:8765/callback"
    scopes: str = DEFAULT_SCOPES


class XeroOAuth:
    """Talks to ``{identity_base}/connect/token`` and builds the ``{login_base}`` consent URL."""

    def __init__(self, settings: OAuthSettings, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self.http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))

    def authorize_url(self, state: str | None = None) -> tuple[str, str]:
        """The URL to send the user to, and the ``state`` to check on the redirect."""
        state = state or secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.redirect_uri,
                "scope": self.settings.scopes,
                "state": state,
            }
        )
        return f"{self.settings.login_base}/identity/connect/authorize?{query}", state

    def exchange_code(self, code: str) -> TokenSet:
        return self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.settings.redirect_uri,
            }
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def client_credentials(self) -> TokenSet:
        return self._token({"grant_type": "client_credentials"})

    def revoke(self, refresh_token: str) -> None:
        response = self.http.post(
            f"{self.settings.identity_base}/connect/revocation",
            data={"token": refresh_token},
            auth=(self.settings.client_id, self.settings.client_secret),
        )
        if response.status_code != 200:
            raise XeroError(f"token revocation failed with HTTP {response.status_code}")

    def _token(self, form: dict[str, str]) -> TokenSet:
        received_at = time.time()
        response = self.http.post(
            f"{self.settings.identity_base}/connect/token",
            data=form,
            auth=(self.settings.client_id, self.settings.client_secret),
            headers={"Accept": "application/json"},
        )
        if response.status_code == 200:
            return TokenSet.from_response(response.json(), received_at)
        error = _oauth_error(response)
        if error == "invalid_grant":
            raise ReconsentRequired(
                "Xero refused the token grant (invalid_grant): the refresh token has expired, "
                "been used already or been revoked. Run `xero-tableau connect` to consent again.",
                status=response.status_code,
            )
        if error == "invalid_client":
            raise XeroError(
                "Xero refused the client credentials (invalid_client): check XERO_CLIENT_ID and "
                "XERO_CLIENT_SECRET.",
                status=response.status_code,
            )
        raise XeroError(
            f"Xero's token endpoint answered HTTP {response.status_code} "
            f"({error or 'no error code'})",
            status=response.status_code,
        )


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
