"""The ``xero-tableau`` command.

- ``sandbox``         serve the emulated Xero on loopback and print its URLs and demo credentials
- ``connect``         OAuth2 consent (or a custom connection), store tokens, register tenants
- ``doctor``          ping Xero and Tableau: tokens, tenants, headroom, sign-in, publish rights
- ``webhooks serve``  receive Xero's webhooks into the event queue
- ``sync``            one full sync of every tenant through Dagster (cron users, CI)
- ``demo``            everything on the built-in sandbox, end to end
- ``dev``             the sandbox plus ``dagster dev`` on it
- ``audit <id>``      a Xero record's synced versions, webhooks and Tableau publish jobs
- ``ci-materialize``  the dagster CLI as CI runs it: one sandbox partition through
                      ``dagster asset materialize``
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from xero_tableau import raw_lake
from xero_tableau.connect import connect
from xero_tableau.sandbox.credentials import sandbox_env, tableau_env
from xero_tableau.settings import ConfigError, Settings
from xero_tableau.store.crypto import EncryptionKeyError
from xero_tableau.store.tenants import KnownTenant
from xero_tableau.xero.errors import XeroError


def _say(message: str = "") -> None:
    print(message, flush=True)


# --- connect -----------------------------------------------------------------------------------


def register_partitions(tenants: Sequence[KnownTenant]) -> None:
    """Add the tenants as ``xero_tenants`` partitions of the instance at DAGSTER_HOME."""
    import dagster as dg

    from xero_tableau.sync import add_tenant_partitions

    add_tenant_partitions(dg.DagsterInstance.get(), [t.tenant_id for t in tenants])


# --- the sandbox -------------------------------------------------------------------------------


def _start_sandbox(args: argparse.Namespace):
    from xero_tableau.sandbox.generator import GeneratorConfig
    from xero_tableau.sandbox.server import start_xero_sandbox
    from xero_tableau.sandbox.xero_app import XeroSandboxConfig

    started = time.monotonic()
    running = start_xero_sandbox(
        XeroSandboxConfig(clock_speed=args.clock_speed, seed=args.seed),
        GeneratorConfig(seed=args.seed, tenants=args.tenants, invoice_lines=args.invoice_lines),
        port=args.xero_port,
    )
    counts = running.sandbox.dataset.invoice_line_count()
    _say(
        f"Xero sandbox up at {running.base_url}: {len(running.sandbox.dataset.tenants)} "
        f"organisations, {counts:,} invoice lines (built in {time.monotonic() - started:.1f}s)"
    )
    return running


def prepare_dagster_home(path: Path) -> None:
    """DAGSTER_HOME with the embedded instance's dagster.yaml (``devstack.DAGSTER_YAML``)."""
    from xero_tableau.devstack import prepare_dagster_home as prepare

    prepare(path)


def _start_tableau(args: argparse.Namespace, storage: Path | None = None):
    from xero_tableau.sandbox.tableau_app import TableauSandboxConfig, start_tableau_sandbox

    running = start_tableau_sandbox(
        TableauSandboxConfig(storage_dir=storage), port=args.tableau_port
    )
    _say(f"Tableau sandbox up at {running.base_url}")
    return running


def cmd_sandbox(args: argparse.Namespace) -> int:
    from xero_tableau.sandbox.credentials import (
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        DEMO_CUSTOM_CLIENT_ID,
        DEMO_CUSTOM_CLIENT_SECRET,
        DEMO_REDIRECT_URI,
        DEMO_WEBHOOK_KEY,
    )

    running = _start_sandbox(args)
    tableau = _start_tableau(args)
    base = running.base_url
    tab = tableau_env(tableau.base_url)
    _say(
        "\n".join(
            (
                "",
                f"  Xero API base       {base}      (accounting: {base}/api.xro/2.0)",
                f"  Xero identity base  {base}      (token: {base}/connect/token)",
                f"  Xero login base     {base}      (consent: {base}/identity/connect/authorize)",
                f"  Admin API           {base}/sandbox/admin/state",
                f"  Client id           {DEMO_CLIENT_ID}",
                f"  Client secret       {DEMO_CLIENT_SECRET}",
                f"  Redirect URI        {DEMO_REDIRECT_URI}",
                f"  Custom connection   {DEMO_CUSTOM_CLIENT_ID} / {DEMO_CUSTOM_CLIENT_SECRET}",
                f"  Webhook key         {DEMO_WEBHOOK_KEY}",
                f"  Tableau server      {tableau.base_url}",
                f"  Tableau PAT name    {tab['TABLEAU_PAT_NAME']}",
                f"  Tableau PAT secret  {tab['TABLEAU_PAT_SECRET']}",
                f"  Tableau site        {tab['TABLEAU_SITE']}  (projects: Xero, Restricted)",
                "",
                "Point the project at them:",
                f"  export XERO_API_BASE={base} XERO_IDENTITY_BASE={base} XERO_LOGIN_BASE={base}",
                f"  export XERO_CLIENT_ID={DEMO_CLIENT_ID} XERO_CLIENT_SECRET={DEMO_CLIENT_SECRET}",
                "  export " + " ".join(f"{k}={v}" for k, v in tab.items()),
                "Ctrl-C stops the sandboxes.",
            )
        )
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say("stopping the sandboxes")
    finally:
        running.stop()
        tableau.stop()
    return 0


def _demo_home() -> Path:
    return Settings.from_env().home / "sandbox-demo"


def run_sync(settings: Settings) -> int:
    """One full sync of every tenant through Dagster, with progress and a summary."""
    import dagster as dg

    from xero_tableau.definitions import defs
    from xero_tableau.sync import print_summary, sync_all

    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(settings.home / "dagster")
    prepare_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    _say(f"Dagster instance: {os.environ['DAGSTER_HOME']}")
    # Entered, the instance is also the one Dagster's definitions loading sees as current.
    with dg.DagsterInstance.get() as instance:
        summaries = sync_all(settings, instance, defs(), _say)
    print_summary(settings, summaries, _say)
    # 1 when a tenant was not extracted and published (an ERROR data check or a step failed);
    # WARN checks that failed are printed but do not fail the sync.
    return 0 if summaries and all(s.ok for s in summaries) else 1


def cmd_sync(_args: argparse.Namespace) -> int:
    return run_sync(Settings.from_env())


def cmd_demo(args: argparse.Namespace) -> int:
    """Both sandboxes, the consent, then a full sync through Dagster, published to Tableau."""
    home = _demo_home()
    _say(f"xero-tableau demo: state, lake, Dagster instance and .hyper files under {home}")
    running = _start_sandbox(args)
    tableau = _start_tableau(args, storage=home / "tableau-sandbox")
    try:
        os.environ.update(sandbox_env(running.base_url, home))
        os.environ.update(tableau_env(tableau.base_url))
        settings = Settings.from_env()
        connect(settings, follow_with_http=True)
        status = run_sync(settings)
        _say(f"\nXero sandbox calls served: {running.sandbox.total_calls()}")
        _say(f"Tableau sandbox data sources: {home / 'tableau-sandbox'}")
    finally:
        running.stop()
        tableau.stop()
    return status


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    """Receive Xero's webhooks into the state DB's event queue (Xero needs TLS on 443 in front)."""
    from xero_tableau.webhooks.receiver import serve

    serve(args.host, args.port, Settings.from_env())
    return 0


def cmd_doctor(_args: argparse.Namespace) -> int:
    """Ping Xero and Tableau as configured; say what is wrong and how to fix it."""
    from xero_tableau.doctor import exit_code, format_report, run_doctor

    checks = run_doctor(Settings.from_env())
    _say(format_report(checks))
    return exit_code(checks)


def cmd_audit(args: argparse.Namespace) -> int:
    """Every synced version of a Xero record, its webhooks and the Tableau jobs that carried it."""
    from xero_tableau.entities import PUBLISHED_TABLES
    from xero_tableau.store.audit import format_trail, trail
    from xero_tableau.store.db import connect as connect_db

    settings = Settings.from_env()
    engine = connect_db(settings.database_url)
    try:
        found = trail(engine, args.xero_id, PUBLISHED_TABLES)
    finally:
        engine.dispose()
    _say(format_trail(found))
    return 0 if found.found else 1


def cmd_connect(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    tenants = connect(settings, open_browser=not args.no_browser)
    if os.environ.get("DAGSTER_HOME"):
        register_partitions(tenants)
        _say("Tenants registered as xero_tenants partitions of the Dagster instance.")
    return 0


def cmd_ci_materialize(args: argparse.Namespace) -> int:
    """`dagster asset materialize` of one sandbox partition, as a CI user runs the dagster CLI."""
    home = Path(args.home).resolve() if args.home else _demo_home().with_name("ci-materialize")
    if home.exists():
        shutil.rmtree(home)
    args.tenants, args.invoice_lines = 1, 200
    running = _start_sandbox(args)
    try:
        env = {**os.environ, **sandbox_env(running.base_url, home)}
        os.environ.update(env)
        prepare_dagster_home(Path(env["DAGSTER_HOME"]))
        tenants = connect(Settings.from_env(), follow_with_http=True)
        register_partitions(tenants)
        tenant = tenants[0].tenant_id
        command = [
            str(Path(sys.executable).with_name("dagster")),
            "asset",
            "materialize",
            "-m",
            "xero_tableau.definitions",
            "--select",
            "xero/raw/organisation",
            "--partition",
            tenant,
        ]
        _say("$ " + " ".join(command))
        status = subprocess.run(command, env=env, check=False).returncode
        lake = Settings.from_env().lake_dir
        written = raw_lake.read_reference(lake, tenant, "Organisation")
        if status != 0 or not written:
            _say(f"ci-materialize FAILED (exit {status}, no organisation snapshot in {lake})")
            return 1
        _say(f"ci-materialize ok: {raw_lake.reference_path(lake, tenant, 'Organisation')}")
        return 0
    finally:
        running.stop()


def cmd_dev(args: argparse.Namespace) -> int:
    """Everything live on the sandbox: both sandboxes, the webhook receiver subscribed to the
    Xero sandbox's webhooks, a first sync, then ``dagster dev`` (UI, daemon, sensors)."""
    from xero_tableau.devstack import start_live_stack
    from xero_tableau.sandbox.generator import GeneratorConfig
    from xero_tableau.sandbox.xero_app import XeroSandboxConfig

    home = _demo_home()
    _say(f"xero-tableau dev: state, lake, Dagster instance and .hyper files under {home}")
    stack = start_live_stack(
        home,
        data=GeneratorConfig(
            seed=args.seed, tenants=args.tenants, invoice_lines=args.invoice_lines
        ),
        xero_config=XeroSandboxConfig(clock_speed=args.clock_speed, seed=args.seed),
        xero_port=args.xero_port,
        tableau_port=args.tableau_port,
        receiver_port=args.webhook_port,
        say=_say,
    )
    try:
        os.environ.update(stack.env)
        if not args.no_sync:
            _say("First sync, so every table and data source exists (--no-sync skips it):")
            run_sync(Settings.from_env())
        tenant = stack.tenants[0]
        invoice = next(iter(stack.xero.sandbox.dataset.tenants[tenant].collections["Invoices"]))
        base = stack.xero.base_url
        _say(
            "\n".join(
                (
                    "",
                    f"Dagster UI: http://127.0.0.1:{args.port}  (sensor xero_webhook_events, "
                    "automation xero_automation)",
                    "Edit an invoice as a bookkeeper would; Xero's webhook reaches the receiver, "
                    "the sensor asks for a run, and the change is in Tableau within a minute:",
                    f"  curl -X PATCH {base}/sandbox/admin/tenants/{tenant}/Invoices/{invoice} "
                    "-H 'content-type: application/json' -d '{\"Reference\": \"edited live\"}'",
                    f"Published data sources: {home / 'tableau-sandbox'}",
                    "Ctrl-C stops everything.",
                    "",
                )
            )
        )
        return stack.start_dagster("dev", port=args.port).wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


def _sandbox_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--xero-port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--tableau-port", type=int, default=0, help="Tableau sandbox port (default: a free one)"
    )
    parser.add_argument("--tenants", type=int, default=2, help="organisations (default 2)")
    parser.add_argument(
        "--invoice-lines", type=int, default=4000, help="invoice lines per organisation"
    )
    parser.add_argument("--seed", type=int, default=7, help="data generator seed")
    parser.add_argument(
        "--clock-speed",
        type=float,
        default=1.0,
        help="sandbox clock speed: 60 makes a rate-limit minute last one second (default 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xero-tableau", description="Keeps Tableau live on Xero data."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sandbox", help="serve the Xero emulator on loopback")
    _sandbox_options(p)
    p.set_defaults(func=cmd_sandbox)
    p = sub.add_parser("demo", help="everything on the built-in sandbox")
    _sandbox_options(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("dev", help="the sandbox plus dagster dev")
    _sandbox_options(p)
    p.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    p.add_argument(
        "--webhook-port", type=int, default=8766, help="webhook receiver port (default 8766)"
    )
    p.add_argument("--no-sync", action="store_true", help="skip the first full sync")
    p.set_defaults(func=cmd_dev)
    p = sub.add_parser("webhooks", help="the Xero webhook receiver")
    webhooks = p.add_subparsers(dest="webhooks_command", required=True)
    p = webhooks.add_parser("serve", help="serve POST /webhooks/xero and /healthz")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8766, help="port (default 8766)")
    p.set_defaults(func=cmd_webhooks_serve)
    p = sub.add_parser("audit", help="the audit trail of one Xero record")
    p.add_argument("xero_id", help="the record's Xero id (InvoiceID, ContactID, PaymentID, ...)")
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser("doctor", help="check the Xero and Tableau connections and rights")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("sync", help="one full sync of every tenant through Dagster")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("connect", help="authorise the app in Xero and register tenants")
    p.add_argument("--no-browser", action="store_true", help="only print the consent URL")
    p.set_defaults(func=cmd_connect)
    p = sub.add_parser("ci-materialize", help="dagster asset materialize of a sandbox partition")
    _sandbox_options(p)
    p.add_argument("--home", help="XT_HOME to use (default: a fresh folder under XT_HOME)")
    p.set_defaults(func=cmd_ci_materialize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # BackfillPolicy and partition mappings are marked beta; the project relies on them knowingly.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    warnings.filterwarnings("ignore", message=".*is currently in preview.*")
    try:
        return int(args.func(args))
    except (ConfigError, EncryptionKeyError, XeroError) as exc:
        print(f"xero-tableau: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
