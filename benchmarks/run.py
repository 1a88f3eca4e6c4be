"""Benchmarks: our webhook pipeline against the guide's bare handler, in the same run.

    python -m benchmarks.run [--quick] [--only inprocess,http,scale,memory,usage]

Prints ratios (ours / baseline) measured in interleaved rounds (A B B A ...), so
machine drift hits both alike, and writes the figures to
``benchmarks/results/latest.json`` (the previous file is compared against).
SQLite always; PostgreSQL when ``DATABASE_URL`` is a postgresql URL (``make
bench`` starts a local one). Never a pass/fail test: numbers to read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import http_load, usage
from .apps import (
    SECRET,
    create_baseline,
    create_ours,
    create_raw_baseline,
    create_tables,
    fill_event_table,
)
from .workload import Delivery, build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GOALS = {
    "inprocess": ("throughput ours/the guide's handler", ">=", 1.0),
    "inprocess_raw": ("throughput ours/a raw handler (verify, json.loads, one UPDATE)", ">=", 0.9),
    "http": ("p99 latency ours/baseline", "<=", 1.3),
    "scale": ("throughput with a pre-filled event table / empty", ">=", 0.9),
    "memory": ("peak RSS after 100k / after 10k", "<=", 1.1),
    "usage_report": ("request time with report_usage / without", "<=", 1.1),
    "usage_sender": ("reported events sent per second, one process", ">=", 500),
}
START = 1_700_000_000
STEP = 10_000_000  # each round's events are newer than the last round's


def post_all(app: Any, deliveries: list[Delivery]) -> float:
    """Seconds to deliver every event through the app's test client."""
    client = app.test_client()
    began = time.perf_counter()
    for delivery in deliveries:
        response = client.post(
            "/stripe/webhook",
            data=delivery.body,
            headers={"Stripe-Signature": delivery.signature, "Content-Type": "application/json"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")
        response.close()
    return time.perf_counter() - began


def interleaved(
    contenders: dict[str, Callable[[list[Delivery]], float]],
    rounds: int,
    events: int,
    users: int,
) -> dict[str, list[float]]:
    """Events per second of each contender, round by round, order alternating."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for position, name in enumerate(order):
            start = START + (number * len(names) + position + 1) * STEP
            work = build(events, users, SECRET, tag=f"{name}{number}", start=start)
            seconds = contenders[name](work)
            rates[name].append(len(work) / seconds)
    return rates


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
    }


def bench_inprocess(url: str, args: argparse.Namespace) -> dict[str, Any]:
    ours, baseline, raw = create_ours(url), create_baseline(url), create_raw_baseline(url)
    create_tables(ours, args.users)
    for app in (ours, baseline, raw):  # warm up: imports, pools, caches
        post_all(app, build(200, args.users, SECRET, tag=f"warm{id(app)}", start=START))
    rates = interleaved(
        {
            "ours": lambda w: post_all(ours, w),
            "baseline": lambda w: post_all(baseline, w),
            "raw": lambda w: post_all(raw, w),
        },
        args.rounds,
        args.events,
        args.users,
    )
    return {
        "ours_eps": statistics.median(rates["ours"]),
        "baseline_eps": statistics.median(rates["baseline"]),
        "raw_eps": statistics.median(rates["raw"]),
        "ratio": ratio_summary(rates["ours"], rates["baseline"]),
        "ratio_raw": ratio_summary(rates["ours"], rates["raw"]),
    }


def bench_scale(url: str, url_full: str, args: argparse.Namespace) -> dict[str, Any]:
    empty, full = create_ours(url), create_ours(url_full)
    create_tables(empty, args.users)
    create_tables(full, args.users)
    began = time.perf_counter()
    fill_event_table(full, args.fill_rows)
    filled_in = time.perf_counter() - began
    for app in (empty, full):
        post_all(app, build(200, args.users, SECRET, tag=f"warm{id(app)}", start=START))
    rates = interleaved(
        {"full": lambda w: post_all(full, w), "empty": lambda w: post_all(empty, w)},
        args.rounds,
        args.events,
        args.users,
    )
    return {
        "rows": args.fill_rows,
        "fill_seconds": filled_in,
        "empty_eps": statistics.median(rates["empty"]),
        "full_eps": statistics.median(rates["full"]),
        "ratio": ratio_summary(rates["full"], rates["empty"]),
    }


def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of a fresh process after 10k and after N events (SQLite file)."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--memory-child", str(args.memory_events)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    marks = json.loads(output.strip().splitlines()[-1])
    return {**marks, "ratio": marks["rss_kib_after_all"] / marks["rss_kib_after_10k"]}


def memory_child(total: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = create_ours(f"sqlite:///{folder}/memory.db")
        create_tables(app, 1000)
        marks: dict[str, int] = {"events": total}
        sent = 0
        while sent < total:
            chunk = min(2_000, total - sent)  # built per chunk: the workload stays small
            post_all(app, build(chunk, 1000, SECRET, tag=f"m{sent}", start=START + sent * 600))
            sent += chunk
            if sent == 10_000:
                marks["rss_kib_after_10k"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        marks["rss_kib_after_all"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(marks))


def second_postgres_database(url: str, name: str) -> str:
    """A fresh database beside ``url``'s (for the 1M-row table), its URL."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def verdict(kind: str, value: float) -> str:
    _, sense, goal = GOALS[kind]
    met = value >= goal if sense == ">=" else value <= goal
    return f"{'met' if met else 'MISSED'} (goal {sense} {goal})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs, for a first look")
    parser.add_argument("--only", default="inprocess,http,scale,memory,usage")
    parser.add_argument("--usage-events", type=int, default=2000, help="per usage round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--fill-rows", type=int, default=1_000_000)
    parser.add_argument("--memory-events", type=int, default=100_000)
    parser.add_argument("--http-seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.quick:
        args.rounds, args.events, args.fill_rows = 4, 500, 100_000
        args.memory_events, args.http_seconds, args.usage_events = 20_000, 4.0, 500
    only = set(args.only.split(","))
    postgres = os.environ.get("DATABASE_URL", "")
    postgres = postgres if postgres.startswith("postgresql") else ""
    results: dict[str, Any] = {"settings": vars(args), "machine": os.uname().machine}
    with tempfile.TemporaryDirectory() as folder:
        databases = {"sqlite": f"sqlite:///{folder}/bench.db"}
        if postgres:
            databases["postgresql"] = postgres
        if "inprocess" in only:
            for name, url in databases.items():
                print(f"in-process, {name} ...", flush=True)
                results[f"inprocess_{name}"] = bench_inprocess(url, args)
        if "http" in only and postgres:
            print("over HTTP, gunicorn 2 workers, postgresql ...", flush=True)
            results["http_postgresql"] = http_load.bench_http(postgres, args)
        if "scale" in only:
            for name, url in databases.items():
                print(f"scale ({args.fill_rows:,} rows), {name} ...", flush=True)
                full = (
                    second_postgres_database(url, "billing_bench_full")
                    if name == "postgresql"
                    else f"sqlite:///{folder}/bench_full.db"
                )
                results[f"scale_{name}"] = bench_scale(url, full, args)
        if "usage" in only:
            for name, url in databases.items():
                print(f"usage: report_usage in a request, the sender, {name} ...", flush=True)
                if name == "postgresql":  # a database of its own, as the scale benchmark
                    url = second_postgres_database(url, "billing_bench_usage")
                results[f"usage_{name}"] = {
                    "report": usage.bench_report(url, args.rounds, args.usage_events),
                    "sender": usage.bench_sender(url, args.rounds, args.usage_events),
                }
        if "memory" in only:
            print(f"memory ({args.memory_events:,} events), sqlite ...", flush=True)
            results["memory"] = bench_memory(args)
    report(results)


def report(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    previous = json.loads(latest.read_text()) if latest.exists() else {}
    print("\nresult                                   ours/base  (min-max)        goal")
    for key, value in results.items():
        if key.startswith("inprocess_"):
            r, raw = value["ratio"], value["ratio_raw"]
            print(
                f"{'in-process ' + key[10:] + ' vs guide':40} {r['median']:6.2f}"
                f"     ({r['min']:.2f}-{r['max']:.2f})    {verdict('inprocess', r['median'])}"
                f"   [{value['ours_eps']:.0f} vs {value['baseline_eps']:.0f} events/s]"
            )
            print(
                f"{'in-process ' + key[10:] + ' vs raw':40} {raw['median']:6.2f}"
                f"     ({raw['min']:.2f}-{raw['max']:.2f})"
                f"    {verdict('inprocess_raw', raw['median'])}"
                f"   [{value['ours_eps']:.0f} vs {value['raw_eps']:.0f} events/s]"
            )
        elif key.startswith("http_"):
            for metric in ("p50", "p99"):
                ours, base = value["ours"][metric], value["baseline"][metric]
                goal = verdict("http", ours / base) if metric == "p99" else ""
                print(
                    f"{'HTTP ' + key[5:] + ' latency ' + metric:40} {ours / base:6.2f}"
                    f"                     {goal}   [{ours:.1f} vs {base:.1f} ms]"
                )
            ours_rps, base_rps = value["ours"]["rps"], value["baseline"]["rps"]
            print(
                f"{'HTTP ' + key[5:] + ' throughput':40} {ours_rps / base_rps:6.2f}"
                f"                              [{ours_rps:.0f} vs {base_rps:.0f} req/s]"
            )
        elif key.startswith("scale_"):
            r = value["ratio"]
            label = f"{value['rows']:,}-row table vs empty, {key[6:]}"
            print(
                f"{label:40} {r['median']:6.2f}"
                f"     ({r['min']:.2f}-{r['max']:.2f})    {verdict('scale', r['median'])}"
                f"   [{value['full_eps']:.0f} vs {value['empty_eps']:.0f} events/s]"
            )
        elif key.startswith("usage_"):
            r, sender = value["report"]["ratio"], value["sender"]
            print(
                f"{'report_usage in a request, ' + key[6:]:40} {r['median']:6.2f}"
                f"     ({r['min']:.2f}-{r['max']:.2f})    {verdict('usage_report', r['median'])}"
                f"   [{value['report']['reporting_rps']:.0f} vs"
                f" {value['report']['plain_rps']:.0f} req/s]"
            )
            floor, over = value["report"]["floor_ratio"], value["report"]["over_floor"]
            print(
                f"{'  the same row written by hand, ' + key[6:]:40} {floor['median']:6.2f}"
                f"     ({floor['min']:.2f}-{floor['max']:.2f})    the database's share"
                f"   [{value['report']['floor_rps']:.0f} req/s]"
            )
            print(
                f"{'  report_usage / that row, ' + key[6:]:40} {over['median']:6.2f}"
                f"     ({over['min']:.2f}-{over['max']:.2f})    the library's share"
            )
            eps = sender["events_per_second"]
            print(
                f"{'usage sender events/s, ' + key[6:]:40} {eps:6.0f}"
                f"     ({sender['min']:.0f}-{sender['max']:.0f})"
                f"      {verdict('usage_sender', eps)}"
            )
        elif key == "memory":
            print(
                f"{'peak RSS after all / after 10k':40} {value['ratio']:6.2f}"
                f"                     {verdict('memory', value['ratio'])}"
                f"   [{value['rss_kib_after_all'] / 1024:.0f} vs"
                f" {value['rss_kib_after_10k'] / 1024:.0f} MiB]"
            )
    if previous:
        print("\nprevious run (benchmarks/results/latest.json before this one):")
        for key in ("inprocess_sqlite", "inprocess_postgresql"):
            if key in previous and key in results:
                print(
                    f"  {key}: {previous[key]['ratio']['median']:.2f} ->"
                    f" {results[key]['ratio']['median']:.2f}"
                )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, indent=2, sort_keys=True)
    (RESULTS / f"{stamp}.json").write_text(text)
    latest.write_text(text)
    print(f"\nfigures written to {latest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
