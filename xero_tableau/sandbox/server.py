"""Serve the sandbox emulators on loopback, in a background thread or in the foreground.

``ServedApp`` runs any ASGI app under uvicorn on 127.0.0.1 (port 0 picks a free port) and knows its
base URL once started. ``start_xero_sandbox`` builds the data, the emulator and the server in one
call; tests, the demo and ``xero-tableau sandbox`` all use it.
"""

import gc
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.sandbox.xero_app import XeroSandbox, XeroSandboxConfig

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on loopback right now (for servers that need a known port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    """An ASGI app served by uvicorn in a daemon thread on loopback."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the sandbox serves on loopback only")
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None)
        if not servers:
            raise RuntimeError("the server is not running")
        return servers[0].sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "ServedApp":
        self._thread = threading.Thread(target=self.server.run, name="sandbox-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server failed to start (is the port taken?)")
            if time.monotonic() > deadline:
                raise TimeoutError("the sandbox server did not start in time")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "ServedApp":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RunningSandbox:
    """An emulator being served on loopback; stop it (or use ``with``) when done."""

    def __init__(self, served: ServedApp) -> None:
        self.served = served

    @property
    def base_url(self) -> str:
        return self.served.base_url

    def stop(self) -> None:
        self.served.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RunningXeroSandbox(RunningSandbox):
    """An emulated Xero with its server and webhook sender running."""

    def __init__(self, sandbox: XeroSandbox, served: ServedApp) -> None:
        super().__init__(served)
        self.sandbox = sandbox

    def stop(self) -> None:
        self.sandbox.webhooks.stop()
        super().stop()


def start_xero_sandbox(
    config: XeroSandboxConfig | None = None,
    generator: GeneratorConfig | None = None,
    *,
    port: int = 0,
) -> RunningXeroSandbox:
    """Generate the data, build the emulator and serve it; the caller stops it (or ``with``)."""
    started = time.monotonic()
    dataset = generate(generator or GeneratorConfig())
    # The records hold no reference cycles: keep the collector from re-scanning them all.
    gc.freeze()
    log.info("sandbox data generated in %.1fs", time.monotonic() - started)
    sandbox = XeroSandbox(dataset, config)
    served = ServedApp(sandbox.app, port=port).start()
    sandbox.set_base_url(served.base_url)
    sandbox.webhooks.start()
    return RunningXeroSandbox(sandbox, served)
