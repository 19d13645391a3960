"""Benchmark the .hyper write stage: parquet on disk → a Tableau extract, three ways.

Run from the repository root::

    python bench/hyper_write.py [--rows 1000000] [--repeat 3] [--row-group-rows 131072]

It builds a synthetic 15-column table shaped like Xero invoice lines (GUID ids as strings, dates,
a UTC timestamp, four money columns and a quantity as exact decimals, texts with unicode and
nulls, a bool) with vectorised pyarrow/numpy, writes it to parquet once, then times, in fresh
subprocesses so that each start-up and peak RSS is its own:

- ``hyper``: :class:`xero_tableau.tableau.hyper.HyperWriter` (``INSERT … SELECT … FROM
  external()``), including its Hyper process start and stop, the count check and atomic replace;
- ``copy``: the same steps with ``COPY … FROM … WITH (FORMAT => 'parquet')`` instead (and no
  footer checks), to show the choice between Hyper's two parquet paths was made on numbers;
- ``pantab``: ``pantab.frame_to_hyper`` of the same Arrow table (already in memory, so reading
  the parquet is not timed), including the Hyper process pantab starts itself.

Every output is then checked (untimed): the row count and the exact ``SUM()`` of each decimal
column computed by Hyper must equal the sums of the integer units the table was built from, to
the cent. Runs are interleaved and the median is reported; peak RSS is ``VmHWM`` on Linux, of the
worker (Python) and of the ``hyperd`` it starts, sampled from outside.

It prints a table, then as its very last line one JSON object (``rows``, ``hyper_s``, ``copy_s``,
``pantab_s``, ``rows_per_s``, ``peak_rss_mb``...) for scripts that track the figures.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

# Work from a fresh checkout too, without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from xero_tableau.tableau.hyper import HyperWriter, table_definition

TABLE = "invoice_lines"
MONEY_COLUMNS = ("quantity", "unit_amount", "line_amount", "tax_amount", "total_amount")
METHODS = ("hyper", "copy", "pantab")
LABELS = {
    "hyper": "HyperWriter (INSERT … external)",
    "copy": "COPY FROM parquet",
    "pantab": "pantab.frame_to_hyper (Arrow)",
}

SCHEMA = pa.schema(
    [
        pa.field("line_item_id", pa.string(), nullable=False),
        pa.field("invoice_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("contact_name", pa.string()),
        pa.field("account_code", pa.string()),
        pa.field("description", pa.string()),
        pa.field("invoice_date", pa.date32(), nullable=False),
        pa.field("due_date", pa.date32()),
        pa.field("updated_date_utc", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("quantity", pa.decimal128(18, 4)),
        pa.field("unit_amount", pa.decimal128(18, 4)),
        pa.field("line_amount", pa.decimal128(18, 2), nullable=False),
        pa.field("tax_amount", pa.decimal128(18, 2)),
        pa.field("total_amount", pa.decimal128(18, 2)),
        pa.field("is_credit", pa.bool_()),
    ]
)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]
_US_PER_DAY = 86_400_000_000


def _vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Linux's high-water RSS of one process (``VmHWM``), or None where there is no /proc.

    Preferred over ``ru_maxrss``, which a forked child inherits from its parent: every worker
    would otherwise report the builder's peak.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _peak_rss_mb() -> float:
    """Peak resident set size of this process; ``ru_maxrss`` is KiB on Linux, bytes on macOS."""
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a scan of /proc, ~1 ms)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _watch_children(process: subprocess.Popen[str]) -> float:
    """Wait for ``process`` and return the highest ``VmHWM`` of its children (the ``hyperd`` the
    Hyper API or pantab starts). Sampled from outside every 20 ms, because pantab holds the GIL
    for its whole call, so a thread inside the worker would never get to look."""
    peak = 0.0
    children: list[int] = []
    tick = 0
    while process.poll() is None:
        if Path("/proc").is_dir() and (not children or tick % 25 == 0):
            children = _children_of(process.pid)
        tick += 1
        for child in children:
            peak = max(peak, _vm_hwm_mb(child) or 0.0)
        time.sleep(0.02)
    return peak


# --- synthetic invoice lines ----------------------------------------------------------------------


def _guids(rng: np.random.Generator, count: int) -> pa.Array:
    """``count`` random lowercase 8-4-4-4-12 GUID strings, built as one ASCII buffer."""
    chars = np.full((count, 36), ord("-"), dtype=np.uint8)
    chars[:, _GUID_DIGITS] = _HEX[rng.integers(0, 16, size=(count, 32), dtype=np.uint8)]
    offsets = np.arange(0, 36 * (count + 1), 36, dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    return pa.Array.from_buffers(pa.string(), count, buffers)


def _decimals(units: np.ndarray, precision: int, scale: int) -> pa.Array:
    """Exact decimals from integer units (cents for scale 2): the 128-bit two's complement
    little-endian words are written directly, so no float is ever involved."""
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = np.where(units < 0, -1, 0)
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale), len(units), [None, pa.py_buffer(words)]
    )


def _pick(rng: np.random.Generator, words: list[str], count: int, nulls: float = 0.0) -> pa.Array:
    """``count`` words drawn at random, a ``nulls`` share of them null."""
    indices = rng.integers(0, len(words), count)
    mask = rng.random(count) < nulls
    return pa.array(words).take(pa.array(indices, mask=mask))


def _exact_sum(units: np.ndarray, scale: int) -> Decimal:
    """The exact total of integer units as a Decimal of that scale (int64 has headroom: < 1e14
    per million rows here)."""
    return Decimal(int(units.sum())).scaleb(-scale)


def build_invoice_lines(rows: int, seed: int = 7) -> tuple[pa.Table, dict[str, Decimal]]:
    """A table of ``rows`` invoice lines (four per invoice, 5 % credits) and the exact sums of its
    decimal columns, computed from the integer units rather than read back from Arrow.

    Credits are negative but never in (-0.10, 0): pantab 5.3.0 fails on such decimals (see the
    probe below), and the yardstick must run.
    """
    rng = np.random.default_rng(seed)
    invoices = rows // 4 + 1
    invoice_of_line = np.arange(rows) // 4
    quantity = rng.integers(10_000, 500_000, rows)  # 1.0000 … 50.0000
    unit = rng.integers(1_000, 50_000_000, rows)  # 0.1000 … 5000.0000
    line = (quantity * unit + 500_000) // 1_000_000  # cents, half up
    tax = (line * 15 + 50) // 100
    credit = (rng.random(rows) < 0.05) & (line >= 100)
    sign = np.where(credit, -1, 1)
    invoice_day = rng.integers(17_900, 20_450, invoices).astype(np.int32)[invoice_of_line]
    updated = invoice_day.astype(np.int64) * _US_PER_DAY + rng.integers(0, 3 * _US_PER_DAY, rows)
    descriptions = [
        f"{kind} {i:03d}" for kind in ("Widget", "Consulting", "Café") for i in range(70)
    ]
    contacts = [
        f"{name} {i:04d} Ltd" for name in ("Kōwhai", "Rātā", "Acme", "Zürich") for i in range(500)
    ]
    columns = [
        _guids(rng, rows),
        _guids(rng, invoices).take(pa.array(invoice_of_line)),
        _pick(rng, [f"tenant-{i:02d}" for i in range(3)], rows),
        _pick(rng, contacts, rows, nulls=0.01),
        _pick(rng, ["200", "260", "400", "410", "420", "429", "453", "469"], rows),
        _pick(rng, descriptions, rows, nulls=0.10),
        pa.array(invoice_day).view(pa.date32()),
        pa.array(invoice_day + 30, mask=rng.random(rows) < 0.05).view(pa.date32()),
        pa.array(updated).view(pa.timestamp("us", tz="UTC")),
        _decimals(quantity, 18, 4),
        _decimals(unit * sign, 18, 4),
        _decimals(line * sign, 18, 2),
        _decimals(tax * sign, 18, 2),
        _decimals((line + tax) * sign, 18, 2),
        pa.array(credit),
    ]
    sums = {
        "quantity": _exact_sum(quantity, 4),
        "unit_amount": _exact_sum(unit * sign, 4),
        "line_amount": _exact_sum(line * sign, 2),
        "tax_amount": _exact_sum(tax * sign, 2),
        "total_amount": _exact_sum((line + tax) * sign, 2),
    }
    return pa.Table.from_arrays(columns, schema=SCHEMA), sums


def pantab_rejects_small_negatives(workdir: Path) -> bool:
    """Whether this pantab still fails on a negative decimal in (-0.10, 0), e.g. -0.01."""
    import pantab

    probe = pa.table({"amount": pa.array([Decimal("-0.01")], pa.decimal128(18, 2))})
    try:
        pantab.frame_to_hyper(probe, workdir / "probe.hyper", table="probe")
    except Exception:
        return True
    return False


# --- workers: one method, one fresh process ------------------------------------------------------


def _copy_write(parquet: Path, out: Path) -> int:
    """The same steps as HyperWriter.write_table, loading with COPY instead of external()."""
    from tableauhyperapi import (
        Connection,
        CreateMode,
        HyperProcess,
        Telemetry,
        escape_string_literal,
    )

    definition = table_definition(TABLE, pq.read_schema(parquet))
    temporary = out.with_name(f".{out.name}.copy.tmp")
    parameters = {"log_config": "", "default_database_version": "2"}
    with (
        HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU, parameters=parameters) as hyper,
        Connection(hyper.endpoint, temporary, CreateMode.CREATE) as connection,
    ):
        connection.catalog.create_schema_if_not_exists("Extract")
        connection.catalog.create_table(definition)
        source = escape_string_literal(str(parquet.resolve()))
        connection.execute_command(
            f"COPY {definition.table_name} FROM ARRAY[{source}] WITH (FORMAT => 'parquet')"
        )
        rows = connection.execute_scalar_query(f"SELECT COUNT(*) FROM {definition.table_name}")
    os.replace(temporary, out)
    return int(str(rows))


def worker(method: str, parquet: Path, out: Path) -> dict[str, Any]:
    """Run one method once, in this fresh process, and time it."""
    if method == "pantab":
        import pantab

        table = pq.read_table(parquet)  # pantab takes data in memory; reading is not timed
        not_null = {field.name for field in table.schema if not field.nullable}
        started = time.perf_counter()
        pantab.frame_to_hyper(table, out, table=TABLE, table_mode="w", not_null_columns=not_null)
        seconds = time.perf_counter() - started
    elif method == "hyper":
        started = time.perf_counter()
        with HyperWriter() as writer:
            writer.write_table(parquet, out, TABLE)
        seconds = time.perf_counter() - started
    else:
        started = time.perf_counter()
        _copy_write(parquet, out)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "python_mb": _peak_rss_mb()}


def run_worker(method: str, parquet: Path, out: Path) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter; add its hyperd's peak RSS and the file size."""
    command = [sys.executable, __file__, "--worker", method, str(parquet), str(out)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        hyperd_mb = _watch_children(process)
        stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{method} worker failed:\n{stderr}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "hyperd_mb": hyperd_mb, "hyper_mb": out.stat().st_size / 1e6}


def verify(writer: HyperWriter, method: str, out: Path) -> tuple[int, dict[str, Decimal]]:
    """Row count and exact money sums, computed by Hyper in the written file."""
    schema = "public" if method == "pantab" else "Extract"  # pantab's default for a str table
    sums = ", ".join(f"SUM({column})" for column in MONEY_COLUMNS)
    (row,) = writer.query(out, f'SELECT COUNT(*), {sums} FROM "{schema}"."{TABLE}"')
    return row[0], dict(zip(MONEY_COLUMNS, row[1:], strict=True))


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the .hyper write stage.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (median shown)")
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=128 * 1024,
        help="parquet row group size; Hyper decodes row groups in parallel, and 1M rows in one "
        "group (pyarrow's default size) loaded ~15 %% slower on 2 cores",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--worker", nargs=3, metavar=("METHOD", "PARQUET", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.worker:
        method, parquet, out = args.worker
        print(json.dumps(worker(method, Path(parquet), Path(out))))
        return

    with tempfile.TemporaryDirectory(prefix="hyper-bench-") as scratch:
        workdir = Path(scratch)
        started = time.perf_counter()
        table, expected = build_invoice_lines(args.rows, args.seed)
        build_s = time.perf_counter() - started
        parquet = workdir / f"{TABLE}.parquet"
        started = time.perf_counter()
        pq.write_table(table, parquet, row_group_size=args.row_group_rows)
        parquet_s = time.perf_counter() - started
        row_groups = pq.ParquetFile(parquet).metadata.num_row_groups
        parquet_mb = parquet.stat().st_size / 1e6
        main_rss = _peak_rss_mb()
        del table
        small_negatives_fail = pantab_rejects_small_negatives(workdir)

        results: dict[str, list[dict[str, Any]]] = {method: [] for method in METHODS}
        exact = True
        with HyperWriter() as checker:
            for _ in range(args.repeat):
                for method in METHODS:
                    out = workdir / f"{method}.hyper"
                    # Start from no file: with one, pantab (atomic=True) would first copy it.
                    out.unlink(missing_ok=True)
                    results[method].append(run_worker(method, parquet, out))
                    rows, sums = verify(checker, method, out)
                    exact = exact and rows == args.rows and sums == expected

    median = {m: statistics.median(run["seconds"] for run in results[m]) for m in METHODS}
    best = {m: min(run["seconds"] for run in results[m]) for m in METHODS}
    peak = {
        m: {key: max(run[f"{key}_mb"] for run in results[m]) for key in ("python", "hyperd")}
        for m in METHODS
    }

    print(
        f"hyper write stage: {args.rows:,} rows x {len(SCHEMA)} columns, seed {args.seed}, "
        f"{os.cpu_count()} cores, {args.repeat} run(s) per method, interleaved"
    )
    print(
        f"input: built in {build_s:.2f} s; parquet {parquet_mb:.1f} MB "
        f"({row_groups} row group(s), snappy) written in {parquet_s:.2f} s; "
        f"builder peak RSS {main_rss:.0f} MB"
    )
    header = f"{'method':<34}{'median s':>9}{'best s':>8}{'rows/s':>12}"
    print(header + f"{'py RSS MB':>11}{'hyperd MB':>11}{'.hyper MB':>11}")
    for m in METHODS:
        print(
            f"{LABELS[m]:<34}{median[m]:>9.2f}{best[m]:>8.2f}{args.rows / median[m]:>12,.0f}"
            f"{peak[m]['python']:>11.0f}{peak[m]['hyperd']:>11.0f}"
            f"{results[m][-1]['hyper_mb']:>11.1f}"
        )
    print(f"every run: row count and exact Hyper SUM() of the 5 decimal columns right: {exact}")
    print(f"  e.g. SUM(line_amount) = {expected['line_amount']}")
    if small_negatives_fail:
        print("note: this pantab fails on negative decimals in (-0.10, 0), e.g. -0.01")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "columns": len(SCHEMA),
                "hyper_s": round(median["hyper"], 3),
                "copy_s": round(median["copy"], 3),
                "pantab_s": round(median["pantab"], 3),
                "rows_per_s": round(args.rows / median["hyper"]),
                "speedup_vs_pantab": round(median["pantab"] / median["hyper"], 2),
                "parquet_write_s": round(parquet_s, 3),
                "parquet_mb": round(parquet_mb, 1),
                "peak_rss_mb": {m: {k: round(v) for k, v in peak[m].items()} for m in METHODS},
                "exact_sums": exact,
                "pantab_rejects_small_negative_decimals": small_negatives_fail,
                "repeat": args.repeat,
            }
        )
    )
    if not exact:
        raise SystemExit("an output differs from the source table")


if __name__ == "__main__":
    main()
