"""One reused, self-healing Tableau session per site, and the wrapper every REST call goes through.

A :class:`TableauSession` signs in once and again only when the server says the session is gone;
only idempotent calls are healed (:meth:`TableauSession.call`); the REST version is pinned from
``serverInfo``; REST calls are counted (:class:`CallCounter`, :class:`Meter`).

This package must never import dagster.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import tableauserverclient as TSC
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    InternalServerError,
    NotSignedInError,
    ServerResponseError,
)

from xero_tableau.tableau.outcome import PublishError

__all__ = ["CallCounter", "Meter", "TableauSession", "version_tuple"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CallCounter:
    """Counts HTTP requests TSC sends, via a response hook on each session it creates.

    TSC 0.42 makes one ``requests.Session`` per thread from ``session_factory``; hooking every
    one of them counts all calls (uploads and job polls included), thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def session_factory(self) -> requests.Session:
        """A ``requests.Session`` whose responses are counted (pass to ``TSC.Server``)."""
        session = requests.Session()
        session.hooks["response"].append(self._hook)
        return session

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = response.request.method or "?"
        with self._lock:
            self._counts[method] += 1

    def snapshot(self) -> Counter[str]:
        """A copy of the counts by HTTP method so far."""
        with self._lock:
            return Counter(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


@dataclass(frozen=True)
class Meter:
    """Where the clock, the call counts and the sign-in count stood when an operation began."""

    started: float
    calls: Counter[str]
    sign_ins: int


def version_tuple(text: str) -> tuple[int, ...]:
    """``"3.13"`` as ``(3, 13)``, for comparing REST versions."""
    return tuple(int(part) for part in text.split("."))


def _is_session_expired(err: BaseException) -> bool:
    """401002 (expired or superseded token) or TSC's own "not signed in"; not a bad sign-in."""
    if isinstance(err, FailedSignInError):
        return err.code == "401002"
    return isinstance(err, NotSignedInError)


class TableauSession:
    """A TSC server signed in to one site with a PAT, its call counter and the call wrapper."""

    def __init__(
        self,
        server_url: str,
        pat_name: str,
        pat_secret: str,
        site: str,
        *,
        api_version: str,
        transient_retries: int,
        retry_pause: float,
        sleep: Callable[[float], None],
    ) -> None:
        """``site`` is the site's content URL; ``api_version`` is used when ``serverInfo`` does
        not answer; a transient failure's n-th retry waits ``retry_pause * n`` seconds."""
        self.server_url = server_url
        self.site = site
        self.api_version = api_version
        self.transient_retries = transient_retries
        self.retry_pause = retry_pause
        self._pat_name = pat_name
        self._pat_secret = pat_secret
        self._sleep = sleep
        self.counter = CallCounter()
        self.server = TSC.Server(
            server_url, use_server_version=False, session_factory=self.counter.session_factory
        )
        self.sign_ins = 0
        self.signed_in = False

    def sign_in(self) -> None:
        """Pin the REST version (first time) and sign in with the PAT."""
        if not self.signed_in and self.sign_ins == 0:
            self._pin_version()
        try:
            self.server.auth.sign_in(
                TSC.PersonalAccessTokenAuth(self._pat_name, self._pat_secret, site_id=self.site)
            )
        except FailedSignInError as err:
            # Never retried: a bad PAT or site stays bad, and retries could lock the token.
            raise PublishError(
                f"sign-in to Tableau site {self.site or '(Default)'!r} at {self.server_url} with "
                f"personal access token {self._pat_name!r} failed ({err.code}: {err.summary}); "
                "check the token name, secret and site content URL"
            ) from err
        self.sign_ins += 1
        self.signed_in = True

    def _pin_version(self) -> None:
        """Use the server's REST version (what it speaks best); ``api_version`` if it won't say."""
        self.server.version = "2.4"  # serverInfo exists from 2.4 and needs no token
        version: str | None = None
        try:
            info = self.server.server_info.get()
            version = info.rest_api_version if info is not None else None
        except Exception as exc:  # any failure here just means "the server did not say"
            logger.warning("serverInfo failed (%s); pinning REST API %s", exc, self.api_version)
        self.server.version = version or self.api_version
        logger.info("Tableau REST API version pinned to %s", self.server.version)

    def close(self) -> None:
        """Sign out (a dead session is fine) and close the server's HTTP sessions."""
        if self.signed_in:
            self.signed_in = False
            try:
                self.server.auth.sign_out()
            except (NotSignedInError, ServerResponseError, requests.RequestException) as exc:
                logger.info("sign-out failed (session already gone?): %s", exc)
        self.server.close()

    def call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one TSC call, healing what is safe to heal for idempotent calls only (a
        non-idempotent call's first attempt may have applied):

        - an expired or superseded session (401002): sign in again, retry once;
        - a transient failure (HTTP 5xx, connection error): retry up to ``transient_retries``
          times with a growing pause."""
        if not self.signed_in:
            raise PublishError("the publisher is not signed in: use it in a `with` block")
        resigned, transient = False, 0
        while True:
            try:
                return fn()
            except NotSignedInError as err:
                if not idempotent or resigned or not _is_session_expired(err):
                    raise
                logger.info("Tableau session expired (%s); signing in again", err)
                resigned = True
                self.sign_in()
            except (InternalServerError, requests.ConnectionError, requests.Timeout) as err:
                if not idempotent or transient >= self.transient_retries:
                    raise
                transient += 1
                logger.warning("transient Tableau failure (%s); retry %d", err, transient)
                self._sleep(self.retry_pause * transient)

    @property
    def rest_version(self) -> str:
        """The pinned REST API version."""
        return str(self.server.version)

    def meter(self) -> Meter:
        """Start measuring one operation (see :meth:`calls_since`)."""
        return Meter(time.monotonic(), self.counter.snapshot(), self.sign_ins)

    def calls_since(self, meter: Meter) -> dict[str, int]:
        """The HTTP calls made since ``meter`` was taken, by method (methods with none left out)."""
        calls = self.counter.snapshot()
        calls.subtract(meter.calls)
        return {method: n for method, n in sorted(calls.items()) if n}
