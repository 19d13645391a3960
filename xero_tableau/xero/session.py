"""A valid access token on demand: read from the encrypted store, refreshed ahead of expiry.

Rotation is single-writer: the refreshed set is written with compare-and-swap on the version read,
so when two processes refresh at once only one write wins; the loser adopts the winner's set.
"""

import threading
import time

from xero_tableau.store.tokens import StaleTokenVersion, TokenStore
from xero_tableau.xero.errors import ReconsentRequired
from xero_tableau.xero.oauth import TokenSet, XeroOAuth

REFRESH_MARGIN_SECONDS = 300.0  # refresh when the access token has under five minutes left


class XeroSession:
    def __init__(
        self,
        oauth: XeroOAuth,
        store: TokenStore,
        *,
        auth_mode: str = "authorization_code",
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self.oauth = oauth
        self.store = store
        self.auth_mode = auth_mode
        self.refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._cached: TokenSet | None = None
        self.refreshes = 0

    def connect_with_code(self, code: str) -> TokenSet:
        tokens = self.oauth.exchange_code(code)
        self.store.save(tokens, expected_version=None)
        self._cached = tokens
        return tokens

    def access_token(self) -> str:
        with self._lock:
            cached = self._cached
            if cached is not None and not cached.expires_within(self.refresh_margin):
                return cached.access_token
            self._cached = self._fresh_tokens()
            return self._cached.access_token

    def invalidate(self) -> None:
        """Forget the cached access token (after a 401), so the next call refreshes."""
        with self._lock:
            self._cached = None

    def _fresh_tokens(self) -> TokenSet:
        if self.auth_mode == "client_credentials":
            stored = self.store.load()
            if stored is not None and not stored.tokens.expires_within(self.refresh_margin):
                return stored.tokens
            tokens = self.oauth.client_credentials()
            self.store.save(tokens, expected_version=None)
            return tokens
        for _attempt in range(5):
            stored = self.store.load()
            if stored is None:
                raise ReconsentRequired(
                    "no Xero tokens are stored: run `xero-tableau connect` to authorise the app"
                )
            if not stored.tokens.expires_within(self.refresh_margin):
                return stored.tokens
            if not stored.tokens.refresh_token:
                raise ReconsentRequired(
                    "the stored Xero tokens have no refresh token (was offline_access granted?): "
                    "run `xero-tableau connect`"
                )
            tokens = self.oauth.refresh(stored.tokens.refresh_token)
            try:
                self.store.save(tokens, expected_version=stored.version)
            except StaleTokenVersion:
                time.sleep(0.05)  # another process rotated first: adopt its set on the next read
                continue
            self.refreshes += 1
            return tokens
        raise RuntimeError("could not settle the Xero token set after 5 concurrent refreshes")
