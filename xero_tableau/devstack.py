"""The whole product live on the built-in sandbox: what ``xero-tableau dev``, the end-to-end
webhook test and ``bench/webhook_latency.py`` run.

- the Xero sandbox (its webhook sender on) and the Tableau sandbox, on loopback;
- the consent, so tokens are in the state DB, with the organisations registered as tenants;
- the webhook receiver (the app ``xero-tableau webhooks serve`` runs) and the sandbox's webhook
  subscription pointed at it, after Xero's intent-to-receive check;
- Dagster as a subprocess: the daemon alone, or ``dagster dev`` (webserver and daemon), on the
  instance at ``DAGSTER_HOME``, with the environment that points everything at the sandboxes.

Nothing here changes ``os.environ``: :attr:`LiveStack.env` is the environment the caller applies
(the initial sync reads it) and hands to the Dagster subprocess.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import Engine

from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY, sandbox_env, tableau_env
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.server import (
    RunningXeroSandbox,
    ServedApp,
    free_port,
    start_xero_sandbox,
)
from xero_tableau.sandbox.tableau_app import (
    RunningTableauSandbox,
    TableauSandboxConfig,
    start_tableau_sandbox,
)
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.store.db import connect as connect_db
from xero_tableau.webhooks.receiver import WEBHOOK_PATH, build_receiver

# The instance `dev`, the demo and these stacks use: SQLite under DAGSTER_HOME, runs dequeued
# every second (the default is slower; a webhook's change should not wait on the queue), and, as
# in deploy/dagster.yaml, one raw run per tenant at a time (webhook runs, polls and the sweep of
# one tenant would otherwise rewrite the same day partitions at once).
DAGSTER_YAML = """\
# The embedded default instance: SQLite under DAGSTER_HOME (made by xero-tableau).
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: xero/tenant
        value: {applyLimitPerUniqueValue: true}
        limit: 1
telemetry:
  enabled: false
"""


# The code location as `dg` names it (pyproject's [tool.dg.project]), for the daemon and the UI.
WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: xero_tableau.definitions
      location_name: xero_tableau
"""


def prepare_dagster_home(path: Path) -> None:
    """Create DAGSTER_HOME with a dagster.yaml for the embedded SQLite instance."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)


@dataclass
class LiveStack:
    home: Path
    xero: RunningXeroSandbox
    tableau: RunningTableauSandbox
    receiver: ServedApp
    engine: Engine
    env: dict[str, str]
    tenants: list[str]
    dagster: subprocess.Popen | None = None

    def start_dagster(
        self, kind: Literal["daemon", "dev"] = "daemon", port: int = 3000
    ) -> subprocess.Popen:
        """Start the Dagster daemon (its output in ``<home>/logs/dagster-daemon.log``) or
        ``dagster dev`` (on this terminal) on this stack."""
        dagster_home = Path(self.env["DAGSTER_HOME"])
        prepare_dagster_home(dagster_home)
        workspace = dagster_home / "workspace.yaml"
        workspace.write_text(WORKSPACE_YAML)
        bin_dir = Path(sys.executable).parent
        if kind == "daemon":
            command = [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)]
        else:
            command = [str(bin_dir / "dagster"), "dev", "-w", str(workspace)]
            command += ["-h", "127.0.0.1", "-p", str(port)]
        env = {**os.environ, **self.env}
        if kind == "dev":
            self.dagster = subprocess.Popen(command, env=env, start_new_session=True)
            return self.dagster
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "dagster-daemon.log").open("ab") as out:
            self.dagster = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped as a group: code server and runs too
            )
        return self.dagster

    def stop_dagster(self, timeout: float = 60.0) -> None:
        process, self.dagster = self.dagster, None
        if process is None:
            return
        if process.poll() is None:
            _kill_group(process.pid, signal.SIGTERM)  # Dagster shuts down cleanly on SIGTERM
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, signal.SIGKILL)
                process.wait(10)
        # Its code server and run workers share the group: none may outlive it (they would keep
        # writing under DAGSTER_HOME).
        deadline = time.monotonic() + 10
        while _kill_group(process.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.2)
        _kill_group(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        self.stop_dagster()
        self.receiver.stop()
        self.engine.dispose()
        self.tableau.stop()
        self.xero.stop()


def _kill_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def start_live_stack(
    home: Path,
    *,
    data: GeneratorConfig,
    xero_config: XeroSandboxConfig | None = None,
    xero_port: int = 0,
    tableau_port: int = 0,
    receiver_port: int = 0,
    say: Callable[[str], None] = lambda _m: None,
) -> LiveStack:
    """Sandboxes up, consent given, receiver subscribed; Dagster not started yet."""
    from xero_tableau.connect import connect
    from xero_tableau.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    redirect = f"http://localhost:{free_port()}/callback"
    config = xero_config or XeroSandboxConfig()
    config.redirect_uris = (redirect,)
    started = time.monotonic()
    xero = start_xero_sandbox(config, data, port=xero_port)
    say(f"Xero sandbox up at {xero.base_url} ({time.monotonic() - started:.1f}s)")
    tableau = start_tableau_sandbox(
        TableauSandboxConfig(storage_dir=home / "tableau-sandbox"), port=tableau_port
    )
    say(f"Tableau sandbox up at {tableau.base_url}")
    env = {
        **sandbox_env(xero.base_url, home),
        **tableau_env(tableau.base_url),
        "XERO_REDIRECT_URI": redirect,
    }
    settings = Settings.from_env({**os.environ, **env})
    tenants = [t.tenant_id for t in connect(settings, follow_with_http=True)]
    engine = connect_db(settings.database_url)
    receiver = ServedApp(build_receiver(engine, DEMO_WEBHOOK_KEY), port=receiver_port).start()
    subscription = xero.sandbox.webhooks.subscribe(
        receiver.base_url + WEBHOOK_PATH, DEMO_WEBHOOK_KEY
    )
    if subscription.status != "OK":
        raise RuntimeError(f"the sandbox's intent-to-receive check failed: {subscription.status}")
    say(f"Webhook receiver at {receiver.base_url}{WEBHOOK_PATH} (subscription {subscription.id})")
    return LiveStack(home, xero, tableau, receiver, engine, env, tenants)
