"""Latency from a Xero webhook POST to the changed row in the published Tableau data source.

Everything real on loopback: the Xero sandbox (its webhook sender batching as Xero does), our
receiver, the state DB queue, a real ``dagster-daemon run`` subprocess (webhook sensor, run
launcher, automation sensor), the raw run, the tables and extracts run, the incremental publish
through tableauserverclient to the Tableau sandbox. After a first full sync and one warm-up edit,
``--edits`` invoices are edited ``--spacing`` seconds apart (so runs overlap as they would on a
busy day) and the published ``fct_invoice_lines`` is polled until each edit is visible.

Latency per edit = the moment the row is readable in the published .hyper minus the moment the
receiver stored the webhook (``received_at`` in the queue: the POST arriving). Also reported:
from the bookkeeper's edit (includes the sender's batching). Target: p95 under 60 s.

    python bench/webhook_latency.py [--edits 24] [--spacing 3] [--lines 4000]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg

from xero_tableau.cli import run_sync
from xero_tableau.devstack import start_live_stack
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.settings import Settings
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.tenant_publish import route_for

TABLE = "fct_invoice_lines"
TIMEOUT_S = 300


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def _run_durations(instance: dg.DagsterInstance, skip: int) -> dict[str, float | None]:
    """Mean queue wait (created -> started) and run time of the webhook raw runs and of the
    automation runs (tables, extracts, publish) launched during the measurement."""
    records = list(reversed(instance.get_run_records()))[skip:]
    kinds: dict[str, list[tuple[float, float]]] = {"raw": [], "follow": []}
    for record in records:
        if record.start_time is None or record.end_time is None:
            continue
        tags = record.dagster_run.tags
        kind = "raw" if tags.get("xero/purpose") == "webhook" else "follow"
        if kind == "follow" and tags.get("dagster/sensor_name") != "xero_automation":
            continue
        wait = record.start_time - record.create_timestamp.timestamp()
        kinds[kind].append((wait, record.end_time - record.start_time))
    out: dict[str, float | None] = {}
    for kind, rows in kinds.items():
        out[f"{kind}_runs"] = len(rows)
        out[f"{kind}_start_wait_s"] = (
            round(statistics.mean(r[0] for r in rows), 2) if rows else None
        )
        out[f"{kind}_run_s"] = round(statistics.mean(r[1] for r in rows), 2) if rows else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--edits", type=int, default=24, help="edits measured (default 24)")
    parser.add_argument("--spacing", type=float, default=3.0, help="seconds between edits")
    parser.add_argument("--lines", type=int, default=4000, help="invoice lines in the org")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xt-latency-", ignore_cleanup_errors=True) as tmp:
        home = Path(tmp) / "home"
        stack = start_live_stack(
            home, data=GeneratorConfig(tenants=1, invoice_lines=args.lines), say=print
        )
        try:
            os.environ.update(stack.env)
            settings = Settings.from_env()
            if run_sync(settings) != 0:
                print("the first sync failed", file=sys.stderr)
                return 1
            (tenant,) = stack.tenants
            route = route_for(settings, tenant)
            source = route.datasource_name(TABLE)
            invoices = [
                i["InvoiceID"]
                for i in stack.xero.sandbox.dataset.tenants[tenant].collections["Invoices"].values()
                if i["Status"] == "AUTHORISED" and i["LineItems"]
            ][: args.edits + 1]
            writer = SandboxWriter(stack.xero.sandbox)
            queue = EventQueue(stack.engine)

            def visible() -> dict[str, str]:
                sql = (
                    f'SELECT DISTINCT "invoice_id", "reference" FROM "ds"."Extract"."{TABLE}" '
                    "WHERE \"reference\" LIKE 'latency-%'"
                )
                rows = stack.tableau.sandbox.query(route.site, source, sql, route.project)
                return {str(r[0]): str(r[1]) for r in rows}

            def wait_for(expected: dict[str, str], seen_at: dict[str, float]) -> None:
                deadline = time.monotonic() + TIMEOUT_S
                while len(seen_at) < len(expected) and time.monotonic() < deadline:
                    now = datetime.now(UTC).timestamp()
                    for invoice, reference in visible().items():
                        if expected.get(invoice) == reference and invoice not in seen_at:
                            seen_at[invoice] = now
                    time.sleep(0.25)

            stack.start_dagster("daemon")
            print("daemon started; warm-up edit (not measured)")
            warm = {invoices[0]: "latency-warmup"}
            writer.update(tenant, "Invoices", invoices[0], {"Reference": warm[invoices[0]]})
            warm_seen: dict[str, float] = {}
            wait_for(warm, warm_seen)
            if not warm_seen:
                print("the warm-up edit never reached Tableau", file=sys.stderr)
                return 1

            instance = dg.DagsterInstance.get()
            runs_before = len(instance.get_run_records())
            calls_before = stack.xero.sandbox.total_calls()
            expected: dict[str, str] = {}
            edited_at: dict[str, float] = {}
            seen_at: dict[str, float] = {}
            for n, invoice in enumerate(invoices[1:]):
                expected[invoice] = f"latency-{n}"
                edited_at[invoice] = datetime.now(UTC).timestamp()
                writer.update(tenant, "Invoices", invoice, {"Reference": expected[invoice]})
                end = time.monotonic() + args.spacing
                while time.monotonic() < end:
                    now = datetime.now(UTC).timestamp()
                    for found, reference in visible().items():
                        if expected.get(found) == reference and found not in seen_at:
                            seen_at[found] = now
                    time.sleep(0.25)
            wait_for(expected, seen_at)
            runs = len(instance.get_run_records()) - runs_before
            calls = stack.xero.sandbox.total_calls() - calls_before
            durations = _run_durations(instance, runs_before)
            received = {
                invoice: max(e.received_at.timestamp() for e in queue.history(invoice))
                for invoice in expected
            }
        finally:
            stack.stop()

    missing = sorted(set(expected) - set(seen_at))
    from_post: list[float] = []
    from_edit: list[float] = []
    print(f"\n{'invoice':38} {'POST->visible s':>16} {'edit->visible s':>16}")
    for invoice in expected:
        if invoice not in seen_at:
            print(f"{invoice:38} {'never':>16}")
            continue
        post = seen_at[invoice] - received[invoice]
        edit = seen_at[invoice] - edited_at[invoice]
        from_post.append(post)
        from_edit.append(edit)
        print(f"{invoice:38} {post:16.1f} {edit:16.1f}")
    figures = {
        "edits": len(expected),
        "visible": len(seen_at),
        "missing": len(missing),
        "p50_s": round(_percentile(from_post, 50), 2) if from_post else None,
        "p95_s": round(_percentile(from_post, 95), 2) if from_post else None,
        "max_s": round(max(from_post), 2) if from_post else None,
        "edit_p50_s": round(_percentile(from_edit, 50), 2) if from_edit else None,
        "edit_p95_s": round(_percentile(from_edit, 95), 2) if from_edit else None,
        "spacing_s": args.spacing,
        "dagster_runs": runs,
        **durations,
        "xero_calls": calls,
    }
    print(f"\np50 {figures['p50_s']} s, p95 {figures['p95_s']} s (target p95 < 60 s)")
    print(json.dumps(figures))
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
