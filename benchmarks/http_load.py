"""Over HTTP: each app under gunicorn (2 workers) on 127.0.0.1, a bounded load generator."""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .apps import SECRET, create_ours, create_tables
from .workload import Delivery, build

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 8
START = 1_800_000_000
STEP = 10_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(app_spec: str, database_url: str) -> Iterator[int]:
    """Serve ``app_spec`` with 2 sync workers on a free local port; yield the port."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers", "2",
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        app_spec,
    ]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"gunicorn did not start: {app_spec}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def send(port: int, deliveries: list[Delivery], seconds: float) -> tuple[list[float], float]:
    """POST the deliveries with CONCURRENCY threads for at most ``seconds``.

    Returns each request's latency (ms) and the wall time taken.
    """
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    position = iter(range(len(deliveries)))
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop_at:
            with lock:
                index = next(position, None)
            if index is None:
                return
            delivery = deliveries[index]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            began = time.perf_counter()
            connection.request(
                "POST",
                "/stripe/webhook",
                body=delivery.body,
                headers={
                    "Stripe-Signature": delivery.signature,
                    "Content-Type": "application/json",
                },
            )
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - began) * 1000
            connection.close()
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures.append(str(response.status))

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    wall = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} non-200 answers, e.g. {failures[:3]}")
    return latencies, wall


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_http(url: str, args: argparse.Namespace) -> dict[str, Any]:
    create_tables(create_ours(url), args.users)
    results: dict[str, dict[str, list[float]]] = {
        name: {"latencies": [], "rps": []} for name in ("ours", "baseline")
    }
    with (
        gunicorn("benchmarks.apps:create_ours()", url) as ours_port,
        gunicorn("benchmarks.apps:create_baseline()", url) as base_port,
    ):
        ports = {"ours": ours_port, "baseline": base_port}
        for name, port in ports.items():  # warm up both workers of each
            send(port, build(100, args.users, SECRET, tag=f"hw{name}", start=START), 10)
        for number in range(args.rounds):
            order = list(ports) if number % 2 == 0 else list(ports)[::-1]
            for position, name in enumerate(order):
                start = START + (number * 2 + position + 1) * STEP
                work = build(args.events, args.users, SECRET, tag=f"h{name}{number}", start=start)
                latencies, wall = send(ports[name], work, args.http_seconds)
                results[name]["latencies"].extend(latencies)
                results[name]["rps"].append(len(latencies) / wall)
    return {
        name: {
            "requests": len(data["latencies"]),
            "p50": percentile(data["latencies"], 0.50),
            "p99": percentile(data["latencies"], 0.99),
            "rps": statistics.median(data["rps"]),
        }
        for name, data in results.items()
    }
