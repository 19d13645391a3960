"""How many Xero API calls a read costs, measured against the sandbox over real HTTP.

For one tenant with 100,000 invoices: a full read at pageSize 1000 (target: at most
ceil(records / 1000) + 2 calls per entity), the same read as a 100-per-page connector makes it,
and the read of one day on which 500 invoices changed (target: 1 call). The sandbox enforces
Xero's limits on a clock 60 times faster than real time; the client's shared limiter is scaled to
match, so the figures include any 429 the limits cause.

    python bench/xero_calls.py [--invoices 100000]
"""

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_tableau.entities import ENTITIES
from xero_tableau.sandbox.admin import SandboxWriter
from xero_tableau.sandbox.generator import GeneratorConfig
from xero_tableau.sandbox.xero_app import XeroSandboxConfig
from xero_tableau.xero_connection import open_xero
from xero_tableau_tests.xero_harness import connected_settings, sandbox_with_callback

INVOICES = ENTITIES["Invoices"]

LINES_PER_INVOICE = 2.25  # the generator's average, to size the data for the invoice target
SPEED = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description="Xero API calls per read, against the sandbox")
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=500)
    args = parser.parse_args()

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    started = time.monotonic()
    sandbox = sandbox_with_callback(
        XeroSandboxConfig(clock_speed=SPEED),
        GeneratorConfig(
            tenants=1,
            invoice_lines=int(args.invoices * LINES_PER_INVOICE * 1.02),
            as_of=yesterday,
        ),
    )
    build_s = time.monotonic() - started
    try:
        home = Path(tempfile.mkdtemp(prefix="bench-xero-calls-"))
        settings, tenants = connected_settings(sandbox, home)
        tenant = tenants[0].tenant_id
        data = sandbox.sandbox.dataset.tenants[tenant]
        entities = ["Invoices", "Contacts", "Payments", "BankTransactions", "CreditNotes"]
        rows = []
        with open_xero(settings, window_scale=1 / SPEED) as xero:
            for entity in entities:
                before = xero.client.stats.calls
                t0 = time.monotonic()
                count = sum(len(page) for page in xero.client.read_all(ENTITIES[entity], tenant))
                calls = xero.client.stats.calls - before
                target = math.ceil(count / 1000) + 2
                rows.append((entity, count, calls, target, time.monotonic() - t0))
            full = rows[0]

            # The same read by a connector paging 100 at a time.
            xero.client.page_size = 100
            before = xero.client.stats.calls
            slow_count = sum(len(page) for page in xero.client.read_all(INVOICES, tenant))
            calls_100 = xero.client.stats.calls - before
            xero.client.page_size = 1000

            # One day on which 500 invoices changed (today: the data ends yesterday).
            writer = SandboxWriter(sandbox.sandbox)
            editable = sorted(
                rid
                for rid, record in data.collections["Invoices"].items()
                if record["Status"] not in ("VOIDED", "DELETED")
            )
            for invoice_id in editable[: args.changed]:
                with sandbox.sandbox.dataset.lock:
                    writer.update(tenant, "Invoices", invoice_id, {"Reference": "bench edit"})
            today = sandbox.sandbox.clock.now().date()
            start = datetime(today.year, today.month, today.day, tzinfo=UTC)
            before = xero.client.stats.calls
            day_count = sum(
                len(page)
                for page in xero.client.read_window(
                    INVOICES, tenant, start, start + timedelta(days=1)
                )
            )
            calls_day = xero.client.stats.calls - before
            http_429 = xero.client.stats.http_429
    finally:
        sandbox.stop()

    print(f"sandbox: 1 tenant, {full[1]:,} invoices, built in {build_s:.1f}s, clock x{SPEED:g}")
    print(f"{'entity':<18}{'records':>10}{'calls':>8}{'target':>8}{'seconds':>9}")
    for entity, count, calls, target, seconds in rows:
        print(f"{entity:<18}{count:>10,}{calls:>8}{target:>8}{seconds:>9.1f}")
    print(f"full read of invoices at pageSize 100: {calls_100} calls for {slow_count:,} records")
    print(f"one day with {args.changed} changed invoices: {calls_day} call(s), {day_count} records")
    print(f"HTTP 429 answers: {http_429}")
    figures = {
        "invoices": full[1],
        "calls_full_read": full[2],
        "calls_limit": math.ceil(full[1] / 1000) + 2,
        "calls_full_read_page100": calls_100,
        "calls_day_read": calls_day,
        "day_records": day_count,
        "http_429": http_429,
        "calls_per_entity": {entity: calls for entity, _c, calls, _t, _s in rows},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
