"""Throughput and latency of the Xero webhook receiver, over real HTTP on loopback.

The receiver runs under uvicorn (one worker) in a child process with a SQLite state DB in a temp
folder, so the client's work does not share its GIL. The client fires N signed single-event
requests (each a distinct event, so every request is a real INSERT) with a fixed concurrency and
reports requests per second and latency percentiles. Targets: >= 500 rps, p99 < 50 ms. The run is
bounded by ``--max-seconds``; the last line printed is JSON.

    python bench/receiver_throughput.py [--requests 5000] [--concurrency 16]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_tableau.sandbox.credentials import DEMO_WEBHOOK_KEY
from xero_tableau.sandbox.server import free_port
from xero_tableau.sandbox.webhooks import sign
from xero_tableau.store.db import connect
from xero_tableau.store.event_queue import EventQueue
from xero_tableau.store.tenants import record_connections
from xero_tableau.webhooks.receiver import WEBHOOK_PATH

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
ROOT = Path(__file__).resolve().parents[1]


def _serve(db_url: str, port: int) -> None:
    """Child process: the receiver under uvicorn, quiet (access logs would cost throughput)."""
    import uvicorn

    from xero_tableau.webhooks.receiver import build_receiver

    app = build_receiver(connect(db_url), DEMO_WEBHOOK_KEY)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _bodies(count: int) -> list[tuple[bytes, str]]:
    """Signed single-event payloads, built before the clock starts."""
    out: list[tuple[bytes, str]] = []
    for n in range(count):
        resource = str(uuid.uuid4())
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}",
            "resourceId": resource,
            "eventDateUtc": "2024-06-21T01:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": TENANT,
            "tenantType": "ORGANISATION",
        }
        document = {
            "events": [event],
            "firstEventSequence": n + 1,
            "lastEventSequence": n + 1,
            "entropy": uuid.uuid4().hex[:20].upper(),
        }
        body = json.dumps(document, separators=(",", ":")).encode()
        out.append((body, sign(DEMO_WEBHOOK_KEY, body)))
    return out


async def _fire(
    url: str, bodies: list[tuple[bytes, str]], concurrency: int, max_seconds: float
) -> tuple[list[float], dict[int, int], int, float]:
    """Send every body with ``concurrency`` workers; returns latencies (s), status counts,
    transport errors and the wall time. Stops early at ``max_seconds``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    # One single-connection client per worker: httpx's shared async pool gets slower as its
    # connection count grows, which would measure the client rather than the receiver.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        nonlocal errors
        async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:
            while not queue.empty() and time.perf_counter() < deadline:
                body, signature = queue.get_nowait()
                sent = time.perf_counter()
                try:
                    response = await client.post(
                        url,
                        content=body,
                        headers={"Content-Type": "application/json", "x-xero-signature": signature},
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, errors, time.perf_counter() - started


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _wait_ready(base_url: str, child: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the receiver process exited before it was ready")
        try:
            if httpx.get(base_url + "/healthz", trust_env=False, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the receiver did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description="Webhook receiver throughput on loopback")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--serve", nargs=2, metavar=("DB_URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]))
        return

    with tempfile.TemporaryDirectory(prefix="xt-receiver-bench-") as folder:
        db_url = f"sqlite:///{Path(folder) / 'state.db'}"
        engine = connect(db_url)
        record_connections(engine, [(TENANT, "Bench Org", "ORGANISATION", str(uuid.uuid4()))])
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", db_url, str(port)], cwd=ROOT, env=env
        )
        try:
            _wait_ready(base_url, child)
            bodies = _bodies(args.requests)
            latencies, statuses, errors, wall = asyncio.run(
                _fire(base_url + WEBHOOK_PATH, bodies, args.concurrency, args.max_seconds)
            )
        finally:
            child.terminate()
            child.wait(timeout=10)
        stored = EventQueue(engine).counts()["pending"]
        engine.dispose()

    done = len(latencies)
    figures = {
        "requests": args.requests,
        "completed": done,
        "concurrency": args.concurrency,
        "seconds": round(wall, 3),
        "rps": round(done / wall, 1) if wall else 0.0,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p95_ms": round(_percentile(latencies, 0.95) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        "status_200": statuses.get(200, 0),
        "other_status": sum(n for code, n in statuses.items() if code != 200),
        "errors": errors,
        "rows_stored": stored,
    }
    print(f"{'metric':<14} value")
    for name, value in figures.items():
        print(f"{name:<14} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
