"""Publishing 200 changed invoices to a 1,000,000-line Tableau data source: incremental vs replace.

Set-up (not timed): the lake of bench/normalize_hyper.py (built in a child process), normalized
to fct_invoice_lines, written as parquet and .hyper, published once to the Tableau sandbox (real
tableauserverclient over loopback HTTP). Then 200 invoices change (their reference), and the
same change is published twice, each timed from the start of the publish step to the job's
success and counted in REST calls:

- incremental: diff against the last published fingerprints (timed on its own as well: the
  ``diff`` figure), a payload of the changed invoices' lines, ``update_hyper_data`` (delete the
  changed and removed documents' rows + insert) under a request id derived from the publish
  generation and the content;
- replace: the whole extract published with Overwrite.

    python bench/tableau_publish.py [--lines 1000000] [--changed 200]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
import pyarrow.compute as _compute

from xero_tableau import raw_lake
from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
)
from xero_tableau.sandbox.tableau_app import TableauSandboxConfig, start_tableau_sandbox
from xero_tableau.store import db, lake
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.publish import TableauPublisher
from xero_tableau.tableau.routing import Route
from xero_tableau.tenant_publish import (
    PublishTarget,
    publish_table_incremental,
    publish_table_replace,
)
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize

TABLE = "fct_invoice_lines"
pc: Any = _compute  # its kernels are generated at import time, invisible to type checkers


def build_table(lines: int, work: Path) -> tuple[str, pa.Table]:
    lake_dir = work / "lake"
    builder = Path(__file__).with_name("normalize_hyper.py")
    child = subprocess.run(
        [sys.executable, str(builder), "--lines", str(lines), "--build-lake", str(lake_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    tenant_id = json.loads(child.stdout.strip().splitlines()[-1])["tenant_id"]
    raw = {
        "Invoices": raw_lake.read_entity(
            lake_dir, tenant_id, "Invoices", columns=NORMALIZE_COLUMNS["Invoices"]
        )
    }
    reference = Reference(
        organisation=raw_lake.read_reference(lake_dir, tenant_id, "Organisation")[0],
        accounts=raw_lake.read_reference(lake_dir, tenant_id, "Accounts"),
        tracking_categories=raw_lake.read_reference(lake_dir, tenant_id, "TrackingCategories"),
    )
    return tenant_id, normalize(tenant_id, raw, reference)[TABLE]


def main() -> None:
    parser = argparse.ArgumentParser(description="incremental vs replace publish to Tableau")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    started = time.perf_counter()
    tenant_id, table = build_table(args.lines, work)
    current = work / "tables" / f"{TABLE}.parquet"
    full = work / "hyper" / f"{TABLE}.hyper"
    route = Route(TABLEAU_DEMO_SITE, "Xero", "bench_", None)
    engine = db.connect(f"sqlite:///{work / 'state.db'}")
    tableau = start_tableau_sandbox(TableauSandboxConfig(storage_dir=work / "tableau"))
    try:
        with (
            HyperWriter() as writer,
            TableauPublisher(
                tableau.base_url,
                TABLEAU_DEMO_PAT_NAME,
                TABLEAU_DEMO_PAT_SECRET,
                TABLEAU_DEMO_SITE,
                hyper=writer,
                ledger=DbPublishLedger(engine),
                work_dir=work / "staging",
            ) as publisher,
        ):
            target = PublishTarget(
                publisher, writer, DbPublishLedger(engine), tenant_id, route, work / "published"
            )
            lake.write_parquet(current, table)
            writer.write_table(current, full, TABLE)
            first = publish_table_incremental(target, TABLE, current, full)
            setup_s = time.perf_counter() - started

            # 200 invoices change: a new reference on every line of each.
            invoices = pc.unique(table["invoice_id"]).to_pylist()[: args.changed]
            chosen = pc.is_in(table["invoice_id"], value_set=pa.array(invoices))
            edited = pc.if_else(chosen, pa.scalar("bench edit"), table["reference"])
            table = table.set_column(table.schema.get_field_index("reference"), "reference", edited)
            changed_lines = pc.sum(chosen.cast(pa.int64())).as_py()
            lake.write_parquet(current, table)
            writer.write_table(current, full, TABLE)

            t0 = time.perf_counter()
            incremental = publish_table_incremental(target, TABLE, current, full)
            incremental_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            replace = publish_table_replace(target, TABLE, current, full)
            replace_s = time.perf_counter() - t0
    finally:
        tableau.stop()
        engine.dispose()

    assert first.outcome and incremental.outcome and replace.outcome
    print(
        f"data source: {table.num_rows:,} invoice lines (set-up and first publish {setup_s:.0f}s)"
    )
    print(f"changed: {args.changed} invoices, {changed_lines:,} lines")
    print(
        f"{'mode':<14}{'seconds':>10}{'diff s':>9}{'REST calls':>12}{'sent':>14}"
        f"{'payload':>16}  job finish code"
    )
    for label, entry, seconds in (
        ("incremental", incremental, incremental_s),
        ("replace", replace, replace_s),
    ):
        outcome = entry.outcome
        assert outcome is not None
        sent_lines = outcome.rows_sent or 0
        lines = f"{sent_lines:>10,} lines" if label == "incremental" else f"{'full':>16}"
        diff = f"{entry.diff_seconds:>9.2f}" if label == "incremental" else f"{'-':>9}"
        print(
            f"{label:<14}{seconds:>10.2f}{diff}{outcome.rest_calls:>12}"
            f"{entry.documents_sent:>10,} docs{lines}  {outcome.finish_code}"
        )
    print(
        json.dumps(
            {
                "lines": table.num_rows,
                "changed_invoices": args.changed,
                "changed_lines": changed_lines,
                "incremental_s": round(incremental_s, 3),
                "diff_s": round(incremental.diff_seconds, 3),
                "incremental_payload_lines": incremental.outcome.rows_sent,
                "replace_s": round(replace_s, 3),
                "incremental_calls": incremental.outcome.rest_calls,
                "replace_calls": replace.outcome.rest_calls,
            }
        )
    )


if __name__ == "__main__":
    main()
