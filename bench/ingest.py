"""Ingestion through the serving stack against PostgreSQL's COPY of the same rows.

    make bench-ingest [BENCH_ARGS="--seconds 60"]

Targets (issue "Ingestion"): batch ingestion at least 40% of the COPY rate of the same
rows in the same run; single events p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
import load
import msgspec
import psycopg
from harness import say

PLACEHOLDER = "@" * 12  # replaced per request by the wrk script: fresh event ids


def bodies_file(directory: Path, *, tag: str, count: int, batch: int | None) -> Path:
    """`count` request bodies, one a line: `{"events": [...]}` of `batch` events, or one
    event when `batch` is None; event ids `<tag><placeholder>-<n>`."""
    rng = random.Random(tag)
    now = datetime.now(UTC)
    path = directory / f"{tag}.jsonl"
    n = 0
    with open(path, "wb") as out:
        for _ in range(count):
            events = []
            for _ in range(batch or 1):
                n += 1
                event_id = f"{tag}{PLACEHOLDER}-{n}"
                events.append(
                    harness.event(rng, event_id=event_id, now=now, spread=timedelta(days=1))
                )
            body = {"events": events} if batch else events[0]
            out.write(msgspec.json.encode(body) + b"\n")
    return path


def copy_baseline(conn: psycopg.Connection) -> dict:
    """The rows the API just wrote, read out as COPY text, then the table emptied and the
    same text COPYed back in by one client (same indexes, constraints, WAL): the rate
    PostgreSQL alone takes those rows at."""
    names = ", ".join(f'"{c}"' for c in harness.event_columns(conn))
    text = io.BytesIO()
    with conn.cursor().copy(f"COPY (SELECT {names} FROM {harness.TABLE}) TO STDOUT") as copy:
        for chunk in copy:
            text.write(chunk)
    data = text.getvalue()
    rows = data.count(b"\n")
    if not rows:
        raise harness.BenchError("the API stored no rows; see bench/results/ingest-servers.log")
    conn.execute(f"TRUNCATE {harness.TABLE} CASCADE")
    conn.commit()
    harness.checkpoint(conn)
    started = time.perf_counter()
    with conn.cursor().copy(f"COPY {harness.TABLE} ({names}) FROM STDIN") as copy:
        for at in range(0, len(data), 1 << 20):
            copy.write(data[at : at + (1 << 20)])
    conn.commit()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds}


def run(args: argparse.Namespace) -> dict:
    key = harness.database_prepare(args.database_url)
    conn = psycopg.connect(args.database_url, autocommit=True)
    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-ingest-"))
    files = {
        "warm_batch": bodies_file(tmp, tag="w", count=4, batch=args.batch_size),
        "warm_single": bodies_file(tmp, tag="v", count=256, batch=None),
        "batch": bodies_file(tmp, tag="b", count=8, batch=args.batch_size),
        "single": bodies_file(tmp, tag="s", count=1024, batch=None),
    }

    def script(name: str) -> str:
        return load.wrk_bodies_script(
            files[name], path="/api/v1/events", key=key, expected=202, placeholder=PLACEHOLDER
        )

    result: dict = {"config": vars(args)}
    log = harness.RESULTS / "ingest-servers.log"
    with harness.serving_stack(
        database_url=args.database_url,
        key=key,
        web_workers=args.workers,
        guard_workers=1,
        log=log,
    ) as stack:
        url = f"{stack.url}/api/v1/events"
        # Untimed: features and prompt templates are created on first sight.
        load.wrk(url, script=script("warm_batch"), connections=args.clients, seconds=5)
        load.wrk(url, script=script("warm_single"), connections=args.single_clients, seconds=3)
        time.sleep(2)  # requests in flight when wrk stopped
        conn.execute(f"TRUNCATE {harness.TABLE} CASCADE")

        harness.checkpoint(conn)
        say(f"batch: {args.clients} connections, {args.batch_size} events each, {args.seconds}s")
        batch = load.wrk(
            url, script=script("batch"), connections=args.clients, seconds=args.seconds
        )
        time.sleep(2)  # requests in flight when wrk stopped
        stored = conn.execute(f"SELECT count(*) FROM {harness.TABLE}").fetchone()[0]
        batch["events"] = batch["requests"] * args.batch_size
        batch["events_stored"] = stored
        batch["events_rate"] = batch["events"] / batch["seconds"]
        # Answered requests are stored; those in flight at the end may be too.
        batch["ok"] = (
            batch["unexpected"] == 0
            and batch["socket_errors"] == 0
            and batch["events"] <= stored <= batch["events"] + args.clients * args.batch_size
        )
        result["batch"] = batch

        say("copy: the same rows by one COPY")
        result["copy"] = copy = copy_baseline(conn)
        result["batch_to_copy"] = batch["events_rate"] / copy["rate"]

        harness.checkpoint(conn)
        say(
            f"single: {args.single_clients} connections, one event a request, "
            f"{args.single_seconds}s"
        )
        single = load.wrk(
            url,
            script=script("single"),
            connections=args.single_clients,
            seconds=args.single_seconds,
        )
        single["ok"] = single["unexpected"] == 0 and single["socket_errors"] == 0
        result["single"] = single
        health = load.wrk(
            f"{stack.url}/api/v1/health",
            script=f"expected = 200\n{load.WRK_REPORT}",
            connections=args.single_clients,
            seconds=args.single_seconds,
        )
        result["health"] = health
    conn.close()
    shutil.rmtree(tmp)
    if not args.keep:
        harness.database_drop(args.database_url)

    say("")
    say(
        f"COPY baseline      {copy['rate']:>10,.0f} rows/s    "
        f"({copy['rows']:,} rows, {copy['seconds']:.2f} s)"
    )
    say(
        f"batch ingestion    {batch['events_rate']:>10,.0f} events/s  ({batch['events']:,} events, "
        f"{batch['events_stored']:,} stored)"
    )
    say(
        f"  batch / COPY     {result['batch_to_copy']:>10.1%}   target >= 40%: "
        f"{harness.verdict(result['batch_to_copy'] >= 0.4)}"
    )
    say(
        f"single events      {single['rate']:>10,.0f} requests/s  p50 {single['p50_ms']:.1f} ms  "
        f"p90 {single['p90_ms']:.1f} ms  p99 {single['p99_ms']:.1f} ms  "
        f"max {single['max_ms']:.1f} ms"
    )
    say(f"  p99 target < 50 ms: {harness.verdict(single['p99_ms'] < 50)}")
    say(
        f"GET /api/v1/health {health['rate']:>10,.0f} requests/s  p99 {health['p99_ms']:.1f} ms "
        f"(single event p99 / health p99: {single['p99_ms'] / health['p99_ms']:.1f}x)"
    )
    if not (batch["ok"] and single["ok"]):
        say("FAILED: unexpected answers or lost events; see the result file")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=harness.DATABASE_URL)
    parser.add_argument("--workers", type=int, default=2, help="web pool workers (2)")
    parser.add_argument("--clients", type=int, default=4, help="batch connections (4)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events a request (1000)")
    parser.add_argument("--seconds", type=int, default=30, help="batch phase (30)")
    parser.add_argument(
        "--single-clients", type=int, default=8, help="single-event connections (8)"
    )
    parser.add_argument("--single-seconds", type=int, default=20, help="single-event phase (20)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    result = run(args)
    harness.result_write("ingest", result)
    return 0 if result["batch"]["ok"] and result["single"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
