"""The differential stateful fuzzer at length (``make fuzz``): random changes in the Xero sandbox,
synced by webhook, poll, sweep and full sync and published incrementally to the Tableau sandbox,
each sync step compared with a from-scratch replace of the same Xero state
(``xero_tableau_tests/test_stateful_sync.py``, ``xero_tableau_tests/sync_fuzz.py``).

Unlike the pytest run, a mismatch does not stop the run: it is recorded (with the shortest step
sequence that showed it) and its example ends, so one run surveys every defect it can reach. Prints
the distinct mismatches, then, last, one JSON line of real counters: examples, steps, sync checks,
mismatches (examples that ended in one) and distinct mismatches. Exits 1 if there were any.

    python -m xero_tableau_tests.fuzz_run [--examples 500] [--steps 6]

It lives beside the tests, not in ``bench/``: ``make bench`` runs every script there, and this one
takes half an hour.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from xero_tableau_tests.sync_fuzz import start_world, stop_world
from xero_tableau_tests.test_stateful_sync import fuzz_settings, machine_for


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xt-fuzz-") as root:
        world = start_world(Path(root), collect=True)
        try:
            run_state_machine_as_test(
                machine_for(world),
                settings=settings(fuzz_settings(args.examples, args.steps), database=None),
            )
        finally:
            stop_world(world)
    seconds = time.monotonic() - started
    print(f"\n{len(world.found)} distinct mismatch(es) in {seconds:.0f} s")
    for (table, kind, column), (steps, example) in sorted(world.found.items()):
        print(f"\n== {table} / {kind}{' / ' + column if column else ''}")
        print(f"   e.g. {example}")
        print("   shortest steps seen:")
        for number, step in enumerate(steps, 1):
            print(f"     {number}. {step}")
    print("\nseconds by phase:")
    for phase, spent in sorted(world.seconds.items(), key=lambda item: -item[1]):
        print(f"  {phase:<24}{spent:8.1f}")
    figures = {**world.summary(), "seconds": round(seconds)}
    print(json.dumps(figures))
    return 1 if world.mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
