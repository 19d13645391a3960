"""What the audit trail costs a large sync: noting 450,000 record versions in the state DB.

A full sync of an organisation with about 1,000,000 invoice lines writes about 450,000 invoice
versions to ``xero_record_versions``; the nightly sweep writes most of its versions again (they
are skipped as already noted). Measured on SQLite in a temp folder: the first write, the repeat,
and the longest single write transaction (what the webhook receiver may wait for, since SQLite
has one writer at a time; Xero wants webhooks answered within 5 s).

    python bench/audit_trail.py [--versions 450000]
"""

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_tableau.store.audit import record_versions
from xero_tableau.store.db import connect, xero_record_versions


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--versions", type=int, default=450_000)
    args = parser.parse_args()
    count = args.versions
    start = datetime(2024, 1, 1, tzinfo=UTC)
    documents = pa.table(
        {
            "id": [str(uuid.uuid4()) for _ in range(count)],
            "updated_at_utc": [start + timedelta(seconds=n) for n in range(count)],
            "fetched_at_utc": [start + timedelta(days=800)] * count,
            "status": ["AUTHORISED"] * count,
        }
    )
    with tempfile.TemporaryDirectory(prefix="xt-audit-") as tmp:
        engine = connect(f"sqlite:///{tmp}/state.db")
        longest = 0.0
        opened: list[float] = []

        @event.listens_for(engine, "begin")
        def _begin(_conn: sa.Connection) -> None:
            opened.append(time.perf_counter())

        @event.listens_for(engine, "commit")
        def _commit(_conn: sa.Connection) -> None:
            nonlocal longest
            if opened:
                longest = max(longest, time.perf_counter() - opened.pop())

        def note() -> float:
            began = time.perf_counter()
            record_versions(
                engine, "t", "Invoices", documents, run_id="r", purpose="sync", read_mode="window"
            )
            return time.perf_counter() - began

        first = note()
        again = note()
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(sa.func.count()).select_from(xero_record_versions)
            ).scalar()
        engine.dispose()
    figures = {
        "versions": count,
        "rows": rows,
        "insert_s": round(first, 2),
        "reinsert_s": round(again, 2),
        "versions_per_s": round(count / first),
        "longest_transaction_ms": round(longest * 1000, 1),
    }
    print(f"{'versions noted':24} {count:>10,}")
    print(f"{'first write':24} {first:>9.2f}s")
    print(f"{'again (all skipped)':24} {again:>9.2f}s")
    print(f"{'longest transaction':24} {longest * 1000:>8.1f}ms")
    print(json.dumps(figures))
    return 0 if rows == count else 1


if __name__ == "__main__":
    raise SystemExit(main())
