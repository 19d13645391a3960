"""Benchmark the sandbox data generator: how long one tenant with N invoice lines takes to build
and how much memory the resulting records hold.

Run from the repository root::

    python bench/generator.py [--lines N] [--tenants T] [--seed S]

It prints a table, then as its very last line one JSON object (``seconds``, ``lines``,
``lines_per_s``, ``peak_rss_mb``...) for scripts that track the figures.
"""

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

# Work from a fresh checkout too, without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xero_tableau.sandbox.generator import GeneratorConfig, generate


def _peak_rss_mb() -> float:
    """Peak resident set size of this process; Linux reports KiB, macOS bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the sandbox data generator.")
    parser.add_argument("--lines", type=int, default=1_000_000, help="invoice lines per tenant")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    config = GeneratorConfig(seed=args.seed, tenants=args.tenants, invoice_lines=args.lines)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    dataset = generate(config)
    seconds = time.perf_counter() - started
    peak = _peak_rss_mb()

    lines = dataset.invoice_line_count()
    counts: dict[str, int] = {}
    for tenant in dataset.tenants.values():
        for endpoint in tenant.collections:
            counts[endpoint] = counts.get(endpoint, 0) + tenant.count(endpoint)

    print(
        f"sandbox generator: seed {args.seed}, {args.tenants} tenant(s), {args.lines:,} lines each"
    )
    print(f"{'endpoint':<20}{'records':>12}")
    for endpoint, count in counts.items():
        print(f"{endpoint:<20}{count:>12,}")
    print(f"{'invoice lines':<20}{lines:>12,}")
    print(f"{'seconds':<20}{seconds:>12.2f}")
    print(f"{'lines / s':<20}{lines / seconds:>12,.0f}")
    print(f"{'peak RSS MB':<20}{peak:>12,.0f}   (before generating: {rss_before:,.0f})")
    result = {
        "seconds": round(seconds, 3),
        "lines": lines,
        "invoices": counts.get("Invoices", 0),
        "records": sum(counts.values()),
        "lines_per_s": round(lines / seconds),
        "peak_rss_mb": round(peak, 1),
        "tenants": args.tenants,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
