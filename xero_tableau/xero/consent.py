"""The OAuth2 consent round trip: a one-shot local callback server that receives Xero's redirect.

``run_consent`` prints (and, where there is one, opens in a browser) the consent URL, waits for the
redirect to ``XERO_REDIRECT_URI``, checks ``state`` and returns the authorization code.
"""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from xero_tableau.xero.errors import XeroError

_PAGE = (
    "<!doctype html><title>xero-tableau</title><body style='font-family:sans-serif'>"
    "<h2>{title}</h2><p>{text}</p></body>"
)


class ConsentError(XeroError):
    """The consent did not complete: denied, wrong state, or timed out."""


class _Callback:
    def __init__(self) -> None:
        self.params: dict[str, str] | None = None
        self.done = threading.Event()


def _handler(callback: _Callback, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != path:
                self.send_error(404)
                return
            callback.params = {k: v[0] for k, v in parse_qs(url.query).items()}
            ok = "code" in callback.params
            title = "Connected to Xero" if ok else "Xero consent failed"
            text = (
                "You can close this window; xero-tableau has what it needs."
                if ok
                else f"Xero said: {callback.params.get('error', 'no code in the redirect')}"
            )
            body = _PAGE.format(title=title, text=text).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            callback.done.set()

        def log_message(self, format: str, *args: object) -> None:
            return  # the query string holds the code: never log it

    return Handler


def run_consent(
    authorize_url: str,
    state: str,
    redirect_uri: str,
    *,
    open_url: Callable[[str], object] | None = None,
    timeout: float = 300.0,
) -> str:
    """Serve the redirect URI, let the user consent, and return the authorization code."""
    target = urlsplit(redirect_uri)
    if target.scheme != "http" or target.hostname not in ("localhost", "127.0.0.1"):
        raise ConsentError(
            f"XERO_REDIRECT_URI {redirect_uri!r} is not a local http URL: the consent callback "
            "is served on this machine (use e.g. http://localhost:8765/callback and register it "
            "in the Xero app)."
        )
    callback = _Callback()
    server = HTTPServer(("127.0.0.1", target.port or 80), _handler(callback, target.path or "/"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        if open_url is not None:
            open_url(authorize_url)
        if not callback.done.wait(timeout):
            raise ConsentError(f"no redirect from Xero within {timeout:.0f}s; run connect again")
    finally:
        server.shutdown()
        server.server_close()
    params = callback.params or {}
    if params.get("state") != state:
        raise ConsentError("the redirect's state does not match: possible CSRF, consent refused")
    if "code" not in params:
        raise ConsentError(f"Xero refused the consent: {params.get('error', 'no code returned')}")
    return params["code"]
