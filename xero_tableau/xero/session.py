"""A valid access token on demand: read from the encrypted store, refreshed ahead of expiry.

Refresh-token rotation is crash-safe and single-writer: a process claims the stored set
(compare-and-swap on its version) before refreshing, a process that loses the race adopts the
winner's new set, and the new set is persisted before the access token is used. A lost token
response is retried with the same refresh token inside Xero's 30-minute grace window.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from xero_tableau.xero.errors import ReconsentRequired, XeroError
from xero_tableau.xero.oauth import TokenSet, XeroOAuth

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300.0  # refresh when the access token has under five minutes left
CLAIM_SECONDS = 60.0  # how long a refresh claim holds before other processes may take over
KEEP_ALIVE_AGE_SECONDS = 30 * 86400.0  # renew refresh tokens unused for 30 of their 60 days
LOST_RESPONSE_RETRIES = 3


class StaleTokenVersion(RuntimeError):
    """Another process wrote a newer token set since this one was read."""


@dataclass(frozen=True)
class StoredTokens:
    tokens: TokenSet
    version: int


class TokenStorage(Protocol):
    """Where the session keeps the token set: compare-and-swap on a version number, and a
    claim on the right to spend the refresh token (``xero_tableau.token_store`` implements it
    on the state DB, encrypted)."""

    def load(self) -> StoredTokens | None: ...
    def save(self, tokens: TokenSet, expected_version: int | None) -> int: ...
    def claim_refresh(self, version: int, owner: str, until: float, now: float) -> bool: ...
    def release_claim(self, owner: str) -> None: ...


class XeroSession:
    def __init__(
        self,
        oauth: XeroOAuth,
        store: TokenStorage,
        *,
        auth_mode: str = "authorization_code",
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.oauth = oauth
        self.store = store
        self.auth_mode = auth_mode
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.sleep = sleep
        self.owner = secrets.token_hex(8)  # this process's name in refresh claims
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
            if cached is not None and not cached.expires_within(self.refresh_margin, self.clock()):
                return cached.access_token
            self._cached = self._current(stale_access_token=None)
            return self._cached.access_token

    def refresh_now(self, stale_access_token: str) -> str:
        """Xero refused ``stale_access_token`` (401): get a newer one, refreshing only if nobody
        (this process or another) already replaced it."""
        with self._lock:
            self._cached = self._current(stale_access_token=stale_access_token)
            return self._cached.access_token

    def keep_alive(self, max_age: float = KEEP_ALIVE_AGE_SECONDS) -> bool:
        """Renew a refresh token that has gone unused for ``max_age`` seconds, long before Xero's
        60-day idle expiry. Returns True when it refreshed."""
        if self.auth_mode != "authorization_code":
            return False
        stored = self.store.load()
        if stored is None or stored.tokens.refresh_issued_at + max_age > self.clock():
            return False
        with self._lock:
            self._cached = self._refresh(stored)
        return True

    # --- internals ---------------------------------------------------------------------------

    def _current(self, stale_access_token: str | None) -> TokenSet:
        if self.auth_mode == "client_credentials":
            return self._client_credentials(stale_access_token)
        deadline = self.clock() + CLAIM_SECONDS * 2
        while True:
            stored = self.store.load()
            if stored is None:
                raise ReconsentRequired(
                    "no Xero tokens are stored: run `xero-tableau connect` to authorise the app"
                )
            usable = not stored.tokens.expires_within(self.refresh_margin, self.clock())
            if usable and stored.tokens.access_token != stale_access_token:
                return stored.tokens
            tokens = self._refresh(stored)
            if tokens is not None:
                return tokens
            if self.clock() > deadline:
                raise XeroError("timed out waiting for another process to refresh the Xero tokens")
            self.sleep(0.2)  # someone else holds the claim: adopt their set when it lands

    def _refresh(self, stored: StoredTokens) -> TokenSet | None:
        """Spend the stored refresh token under a claim; None when another process holds it."""
        if not stored.tokens.refresh_token:
            raise ReconsentRequired(
                "the stored Xero tokens have no refresh token (was offline_access granted?): "
                "run `xero-tableau connect`"
            )
        now = self.clock()
        if not self.store.claim_refresh(stored.version, self.owner, now + CLAIM_SECONDS, now):
            return None
        try:
            tokens = self._spend(stored.tokens.refresh_token)
            self.store.save(tokens, expected_version=stored.version)
        except StaleTokenVersion:
            return None  # the set changed under a lapsed claim: read it again
        except BaseException:
            self.store.release_claim(self.owner)
            raise
        self.refreshes += 1
        log.info("Xero tokens refreshed and rotated (version %s)", stored.version + 1)
        return tokens

    def _spend(self, refresh_token: str) -> TokenSet:
        """One refresh; a lost response is retried with the same token (Xero's grace window)."""
        for attempt in range(LOST_RESPONSE_RETRIES + 1):
            try:
                return self.oauth.refresh(refresh_token)
            except httpx.TransportError as exc:
                if attempt == LOST_RESPONSE_RETRIES:
                    raise XeroError(
                        f"the Xero token endpoint did not answer ({type(exc).__name__}); the "
                        "stored refresh token stays valid for 30 minutes: run again"
                    ) from exc
                log.warning("token response lost (%s); retrying the same refresh token", exc)
                self.sleep(min(2.0**attempt, 10.0))
        raise AssertionError("unreachable")

    def _client_credentials(self, stale_access_token: str | None) -> TokenSet:
        stored = self.store.load()
        if (
            stored is not None
            and not stored.tokens.expires_within(self.refresh_margin, self.clock())
            and stored.tokens.access_token != stale_access_token
        ):
            return stored.tokens
        tokens = self.oauth.client_credentials()
        self.store.save(tokens, expected_version=None)
        return tokens
