"""Normalize + write .hyper for 1,000,000 invoice lines already in the lake, against pantab.

Set-up (not timed, in a child process so its memory does not count): the sandbox generator
builds one tenant with N invoice lines, the raw asset's own code (flatten + write_day_partition)
lays them into the lake one day partition at a time, with the reference snapshots beside them.

Timed, in one process: reading the lake and normalizing to fct_invoice_lines, writing it as
parquet, then Hyper loading that parquet into a .hyper (our path); and, as the yardstick, pantab's
``frame_to_hyper`` writing the same Arrow table. Peak RSS covers the whole run.

    python bench/normalize_hyper.py [--lines 1000000]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pantab

from xero_tableau import raw_lake
from xero_tableau.sandbox.dataset import parse_ms_date
from xero_tableau.sandbox.generator import GeneratorConfig, generate
from xero_tableau.store import lake
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.transform.normalize import NORMALIZE_COLUMNS, Reference, normalize
from xero_tableau.transform.raw import flatten

TABLE = "fct_invoice_lines"


def build_lake(lines: int, root: Path) -> tuple[str, int]:
    dataset = generate(GeneratorConfig(tenants=1, invoice_lines=lines, seed=11))
    tenant_id, tenant = next(iter(dataset.tenants.items()))
    fetched_at = datetime.now(UTC)
    by_day: dict[date, list[dict]] = defaultdict(list)
    for record in tenant.collections["Invoices"].values():
        day = datetime.fromtimestamp(parse_ms_date(record["UpdatedDateUTC"]) / 1000, UTC).date()
        by_day[day].append(record)
    for day, records in by_day.items():
        batch = flatten("Invoices", records, fetched_at)
        raw_lake.write_day_partition(root, tenant_id, "Invoices", day, batch, records)
    raw_lake.compact_entity(root, tenant_id, "Invoices")  # as the raw backfill run does
    raw_lake.write_reference(root, tenant_id, "Organisation", [tenant.organisation])
    for entity in ("Accounts", "TrackingCategories"):
        raw_lake.write_reference(root, tenant_id, entity, list(tenant.collections[entity].values()))
    return tenant_id, len(by_day)


def main() -> None:
    parser = argparse.ArgumentParser(description="normalize + .hyper write vs pantab")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--build-lake", help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.build_lake:
        tenant_id, partitions = build_lake(args.lines, Path(args.build_lake))
        print(json.dumps({"tenant_id": tenant_id, "partitions": partitions}))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-normalize-"))
    lake_dir = work / "lake"

    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--lines", str(args.lines), "--build-lake", str(lake_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    built = json.loads(child.stdout.strip().splitlines()[-1])
    tenant_id, partitions = built["tenant_id"], built["partitions"]
    setup_s = time.perf_counter() - started

    t0 = time.perf_counter()
    columns = NORMALIZE_COLUMNS["Invoices"]
    raw = {"Invoices": raw_lake.read_entity(lake_dir, tenant_id, "Invoices", columns=columns)}
    reference = Reference(
        organisation=raw_lake.read_reference(lake_dir, tenant_id, "Organisation")[0],
        accounts=raw_lake.read_reference(lake_dir, tenant_id, "Accounts"),
        tracking_categories=raw_lake.read_reference(lake_dir, tenant_id, "TrackingCategories"),
    )
    t1 = time.perf_counter()
    table = normalize(tenant_id, raw, reference)[TABLE]
    t2 = time.perf_counter()
    parquet = work / "tables" / f"{TABLE}.parquet"
    lake.write_parquet(parquet, table)
    t3 = time.perf_counter()
    with HyperWriter() as writer:
        rows = writer.write_table(parquet, work / "hyper" / f"{TABLE}.hyper", TABLE)
    t4 = time.perf_counter()
    (work / "pantab").mkdir()
    pantab.frame_to_hyper(table, work / "pantab" / f"{TABLE}.hyper", table=TABLE)
    t5 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    read_s, normalize_s, parquet_s, hyper_load_s, pantab_s = (
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t4 - t3,
        t5 - t4,
    )
    hyper_s = parquet_s + hyper_load_s  # our whole .hyper stage, from the Arrow table
    total_s = t4 - t0
    assert rows == table.num_rows
    print(f"lake: {table.num_rows:,} invoice lines, {partitions} days, set-up {setup_s:.0f}s")
    print(f"{'stage':<40}{'seconds':>10}")
    for label, value in (
        ("read lake (compacted raw)", read_s),
        ("normalize to fct_invoice_lines", normalize_s),
        ("write table parquet", parquet_s),
        ("Hyper load (external parquet)", hyper_load_s),
        ("our .hyper stage (parquet + load)", hyper_s),
        ("pantab frame_to_hyper (same table)", pantab_s),
        ("normalize + write, total", total_s),
    ):
        print(f"{label:<40}{value:>10.2f}")
    print(f"lines per second (read + normalize + write): {table.num_rows / total_s:,.0f}")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    print(
        json.dumps(
            {
                "lines": table.num_rows,
                "lines_per_s": round(table.num_rows / total_s),
                "normalize_s": round(read_s + normalize_s, 3),
                "hyper_s": round(hyper_s, 3),
                "pantab_s": round(pantab_s, 3),
                "total_s": round(total_s, 3),
                "peak_rss_mb": round(peak_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
