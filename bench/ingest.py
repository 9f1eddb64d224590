"""Ingestion benchmark: how fast `POST /api/v1/events` stores usage events.

Phases (see bench/README.md):

1. a fresh database (dropped and recreated), migrated, with tenants and an operator key;
2. the app under gunicorn on 127.0.0.1, as in production (DEBUG off);
3. the raw baseline: PostgreSQL alone taking the same rows by `COPY`, from one client;
4. batch ingestion: concurrent clients posting pre-encoded batches of 1000 events;
5. single events: concurrent clients posting one event per request (latency);
6. the other intakes: OTLP/HTTP protobuf span batches (`POST /v1/traces`) and LiteLLM
   `json_array` batches (`POST /api/v1/integrations/litellm`), compared with phase 4;
7. optionally a table preloaded with N rows by `COPY` (and a comparison with the empty table).

Figures are printed and written to bench/results/ingest-<timestamp>.json; nothing is
asserted about timing. Only 127.0.0.1 is contacted and every loop ends by count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from cpu import CpuMeter, cpu_disturbed, cpu_text
from intake import (
    DEFAULT_MODEL_MAP,
    JSON,
    LITELLM_PATH,
    OTLP_PATH,
    PROTOBUF,
    Checker,
    LiteLLMBodies,
    litellm_checker,
    load_model_map,
    otlp_bodies,
    otlp_checker,
    post_load,
)
from ledger import (
    PRELOAD_ROWS_PER_COPY,
    ROOT,
    TABLE,
    BenchError,
    Catalog,
    EventFactory,
    RowSource,
    app_env,
    batch_bodies,
    check_copy_columns,
    check_database_url,
    check_flag,
    copy_rows,
    encoder,
    git_revision,
    load_catalog,
    prepare_database,
    relative,
    say,
    single_bodies,
    table_rows,
    table_size,
    wal_lsn,
)
from load import HOST, Gunicorn, batch_checker, latency_ms, rate_profile, run_load, single_check

RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench"

TARGET_BATCH_VS_COPY = 0.40  # batch ingestion at least 40% of the COPY rate
TARGET_SINGLE_P99_MS = 50.0  # single events: p99 under 50 ms
TARGET_PRELOADED_VS_EMPTY = 0.80  # batch rate on a full table within 20% of the empty one
TARGET_OTLP_VS_BATCH = 0.50  # OTLP spans/s at least half the REST batch events/s
TARGET_LITELLM_VS_BATCH = 0.25  # LiteLLM payloads/s at least a quarter of it

# Server settings recorded with the results: they explain differences between machines.
PG_SETTINGS = [
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_compression",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
]
RATE_PROFILE_PARTS = 10
DEFAULT_OTLP_SPANS = 200_704  # 392 batches of 512
DEFAULT_LITELLM_EVENTS = 100_352  # 196 batches of 512

# --- Phases ---------------------------------------------------------------------------


@dataclass(slots=True)
class Context:
    args: argparse.Namespace
    admin: psycopg.Connection
    copier: psycopg.Connection
    server: Gunicorn
    key: str
    factory: EventFactory
    cpu: CpuMeter
    catalog: Catalog | None = None
    copy_rate: float = 0.0
    model_map: dict[str, dict[str, Any]] | None = None


def phase_warmup(ctx: Context) -> dict[str, Any]:
    """Post every feature/prompt/model combination (first sight creates them), then warm
    every worker with concurrent small batches. Not timed; the rows are truncated later."""
    now = datetime.now(UTC)
    first = ctx.factory.every_combination(now)
    seed = run_load(
        port=ctx.server.port,
        key=ctx.key,
        bodies=[encoder.encode({"events": first})],
        sizes=[len(first)],
        clients=1,
        check=batch_checker([len(first)]),
    )
    n_warm = 4 * ctx.server.workers
    bodies, sizes = batch_bodies(ctx.factory, total=n_warm * 100, batch_size=100)
    warm = run_load(
        port=ctx.server.port,
        key=ctx.key,
        bodies=bodies,
        sizes=sizes,
        clients=max(ctx.args.clients, ctx.server.workers),
        check=batch_checker(sizes),
    )
    singles = single_bodies(ctx.factory, total=4 * ctx.server.workers)
    warm_single = run_load(
        port=ctx.server.port,
        key=ctx.key,
        bodies=singles,
        sizes=[1] * len(singles),
        clients=ctx.server.workers,
        check=single_check,
    )
    failures = seed.failure_samples + warm.failure_samples + warm_single.failure_samples
    events = seed.events + warm.events + warm_single.events
    n_intake = 2 * ctx.server.workers
    if ctx.args.otlp_spans:
        bodies, sizes = otlp_bodies(ctx.factory, total=n_intake * 64, batch_size=64)
        otlp = post_load(
            port=ctx.server.port,
            key=ctx.key,
            path=OTLP_PATH,
            content_type=PROTOBUF,
            bodies=bodies,
            sizes=sizes,
            clients=ctx.server.workers,
            check=otlp_checker(sizes),
        )
        failures += otlp.failure_samples
        events += otlp.events
    if ctx.args.litellm_events:
        assert ctx.model_map is not None
        lite = LiteLLMBodies(ctx.factory, ctx.model_map, total=n_intake * 16, batch_size=16)
        litellm = post_load(
            port=ctx.server.port,
            key=ctx.key,
            path=LITELLM_PATH,
            content_type=JSON,
            bodies=lite,
            sizes=lite.sizes,
            clients=ctx.server.workers,
            check=litellm_checker(lite.sizes),
        )
        failures += litellm.failure_samples
        events += litellm.events
    if failures:
        raise BenchError("warm-up failed: " + "; ".join(failures[:3]))
    ctx.catalog = load_catalog(ctx.admin)
    say(
        f"warm-up: {events} events posted, "
        f"{len(ctx.catalog.features)} features and {len(ctx.catalog.prompts)} prompt "
        "templates created on first sight"
    )
    return {"events": events}


def settle(ctx: Context) -> None:
    """Flush dirty pages so a checkpoint left by the previous step does not land in the
    next measurement."""
    ctx.admin.execute("CHECKPOINT")


def phase_copy(ctx: Context, *, label: str) -> dict[str, Any]:
    assert ctx.catalog is not None
    rows = ctx.args.copy_rows
    source = RowSource(ctx.factory, ctx.catalog, spread=timedelta(days=1), seed=ctx.args.seed)
    chunks = list(source.chunks(rows))  # encoded before timing
    settle(ctx)
    before_rows = table_rows(ctx.admin)
    wal_before = wal_lsn(ctx.admin)
    with ctx.cpu.measure() as cpu:
        started = time.perf_counter()
        copy_rows(ctx.copier, chunks)
        elapsed = time.perf_counter() - started
    wal = wal_lsn(ctx.admin) - wal_before
    rate = rows / elapsed
    say(
        f"{label}: {rows:,} rows in {elapsed:.2f} s = {rate:,.0f} rows/s "
        f"(table held {before_rows:,} rows; server WAL {wal / rows:,.0f} B/row)"
    )
    say(f"  {cpu_text(cpu)}")
    return {
        "rows": rows,
        "table_rows_before": before_rows,
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(rate, 1),
        "wal_bytes_per_row": round(wal / rows, 1),
        "cpu": cpu,
    }


def truncate(ctx: Context) -> None:
    # CASCADE: rows derived from events (cost changes) reference them.
    ctx.admin.execute(f"TRUNCATE {TABLE} CASCADE")


def phase_preload(ctx: Context) -> dict[str, Any]:
    assert ctx.catalog is not None
    total = ctx.args.preload
    source = RowSource(ctx.factory, ctx.catalog, spread=timedelta(days=30), seed=ctx.args.seed + 1)
    say(f"preload: {total:,} rows by COPY, {PRELOAD_ROWS_PER_COPY:,} per statement")
    started = time.perf_counter()
    done = 0
    while done < total:
        size = min(PRELOAD_ROWS_PER_COPY, total - done)
        copy_rows(ctx.copier, source.chunks(size))
        done += size
        elapsed = time.perf_counter() - started
        say(f"  {done:>12,} / {total:,} rows  {elapsed:7.1f} s  {done / elapsed:>9,.0f} rows/s")
    copy_s = time.perf_counter() - started
    say("preload: VACUUM ANALYZE ...")
    vacuum_started = time.perf_counter()
    ctx.admin.execute(f"VACUUM ANALYZE {TABLE}")
    vacuum_s = time.perf_counter() - vacuum_started
    settle(ctx)
    sizes = table_size(ctx.admin)
    say(
        f"preload: done in {time.perf_counter() - started:.1f} s (COPY {copy_s:.1f} s, "
        f"VACUUM ANALYZE {vacuum_s:.1f} s); table {sizes['table_bytes'] / 2**20:,.0f} MiB, "
        f"indexes {sizes['index_bytes'] / 2**20:,.0f} MiB"
    )
    return {
        "rows": total,
        "copy_s": round(copy_s, 1),
        "copy_rows_per_s": round(total / copy_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        **sizes,
    }


def phase_batches(ctx: Context, *, label: str) -> dict[str, Any]:
    args = ctx.args
    bodies, sizes = batch_bodies(ctx.factory, total=args.batch_events, batch_size=args.batch_size)
    mib = sum(len(b) for b in bodies) / 2**20
    say(
        f"{label}: posting {args.batch_events:,} events in {len(bodies)} batches "
        f"({mib:,.0f} MiB) from {args.clients} clients ..."
    )
    settle(ctx)
    before_rows = table_rows(ctx.admin)
    wal_before = wal_lsn(ctx.admin)
    with ctx.cpu.measure() as cpu:
        load = run_load(
            port=ctx.server.port,
            key=ctx.key,
            bodies=bodies,
            sizes=sizes,
            clients=args.clients,
            check=batch_checker(sizes),
        )
    wal = wal_lsn(ctx.admin) - wal_before
    rate = load.events / load.elapsed_s
    ratio = rate / ctx.copy_rate if ctx.copy_rate else float("nan")
    latency = latency_ms(load.latencies_s)
    profile = rate_profile(load.completions, RATE_PROFILE_PARTS)
    say(
        f"{label}: {load.events:,} events in {load.elapsed_s:.2f} s = {rate:,.0f} events/s, "
        f"{ratio:.1%} of the COPY rate (target >= {TARGET_BATCH_VS_COPY:.0%}); "
        f"request p50 {latency.get('p50', 0):.0f} ms, p99 {latency.get('p99', 0):.0f} ms; "
        f"failures {load.failures}"
    )
    say(f"  {cpu_text(cpu)}")
    say(
        f"  events/s by tenth of the events: {' '.join(f'{r / 1000:.1f}k' for r in profile)}; "
        f"server WAL {wal / max(load.events, 1):,.0f} B/event"
    )
    for sample in load.failure_samples:
        say(f"  failure: {sample}")
    return {
        "table_rows_before": before_rows,
        "events": load.events,
        "requests": load.requests,
        "elapsed_s": round(load.elapsed_s, 3),
        "events_per_s": round(rate, 1),
        "ratio_to_copy": round(ratio, 4),
        "priced": load.priced,
        "request_latency_ms": latency,
        "wal_bytes_per_event": round(wal / max(load.events, 1), 1),
        "events_per_s_by_tenth": profile,
        "body_mib": round(mib, 1),
        "failures": load.failures,
        "failure_samples": load.failure_samples,
        "cpu": cpu,
    }


def phase_singles(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    bodies = single_bodies(ctx.factory, total=args.single_events)
    say(
        f"single events: posting {args.single_events:,} events from "
        f"{args.single_clients} clients ..."
    )
    settle(ctx)
    before_rows = table_rows(ctx.admin)
    with ctx.cpu.measure() as cpu:
        load = run_load(
            port=ctx.server.port,
            key=ctx.key,
            bodies=bodies,
            sizes=[1] * len(bodies),
            clients=args.single_clients,
            check=single_check,
        )
    latency = latency_ms(load.latencies_s)
    rate = load.requests / load.elapsed_s
    say(
        f"single events: {load.requests:,} requests in {load.elapsed_s:.2f} s = "
        f"{rate:,.0f} requests/s; latency p50 {latency['p50']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms "
        f"(target p99 < {TARGET_SINGLE_P99_MS:.0f} ms), max {latency['max']:.1f} ms; "
        f"failures {load.failures}"
    )
    say(f"  {cpu_text(cpu)}")
    for sample in load.failure_samples:
        say(f"  failure: {sample}")
    return {
        "table_rows_before": before_rows,
        "requests": load.requests,
        "elapsed_s": round(load.elapsed_s, 3),
        "requests_per_s": round(rate, 1),
        "priced": load.priced,
        "latency_ms": latency,
        "failures": load.failures,
        "failure_samples": load.failure_samples,
        "cpu": cpu,
    }


def table_rows_priced(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(f"SELECT count(*), count(price_id) FROM {TABLE}").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def intake_phase(
    ctx: Context,
    *,
    label: str,
    path: str,
    content_type: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    check: Checker,
    target: float,
    batch_rate: float,
    mib: float,
) -> dict[str, Any]:
    """Post `bodies` to `path` from `--clients` threads, as the batch phase does; the rate
    counts the rows stored (checked against the events the answers accepted)."""
    args = ctx.args
    if not args.preload:
        truncate(ctx)  # on the empty table, as the batch phase
    settle(ctx)
    before_rows, before_priced = table_rows_priced(ctx.admin)
    wal_before = wal_lsn(ctx.admin)
    with ctx.cpu.measure() as cpu:
        load = post_load(
            port=ctx.server.port,
            key=ctx.key,
            path=path,
            content_type=content_type,
            bodies=bodies,
            sizes=sizes,
            clients=args.clients,
            check=check,
        )
    wal = wal_lsn(ctx.admin) - wal_before
    after_rows, after_priced = table_rows_priced(ctx.admin)
    stored, priced = after_rows - before_rows, after_priced - before_priced
    if stored != load.events:
        load.failures += 1
        load.failure_samples.append(
            f"{stored:,} rows stored for {load.events:,} events the answers accepted"
        )
    rate = stored / load.elapsed_s
    ratio = rate / batch_rate if batch_rate else float("nan")
    latency = latency_ms(load.latencies_s)
    profile = rate_profile(load.completions, RATE_PROFILE_PARTS)
    say(
        f"{label}: {stored:,} events stored in {load.elapsed_s:.2f} s = {rate:,.0f} events/s, "
        f"{ratio:.1%} of the REST batch rate (target >= {target:.0%}: "
        f"{check_flag(ratio >= target)}); request p50 {latency.get('p50', 0):.0f} ms, "
        f"p99 {latency.get('p99', 0):.0f} ms; priced {priced:,}; failures {load.failures}"
    )
    say(f"  {cpu_text(cpu)}")
    say(
        f"  events/s by tenth of the events: {' '.join(f'{r / 1000:.1f}k' for r in profile)}; "
        f"server WAL {wal / max(stored, 1):,.0f} B/event"
    )
    for sample in load.failure_samples:
        say(f"  failure: {sample}")
    return {
        "table_rows_before": before_rows,
        "events": load.events,
        "stored": stored,
        "requests": load.requests,
        "batch_size": max(sizes, default=0),
        "elapsed_s": round(load.elapsed_s, 3),
        "events_per_s": round(rate, 1),
        "ratio_to_batch": round(ratio, 4),
        "target_ratio_to_batch": target,
        "priced": priced,
        "request_latency_ms": latency,
        "wal_bytes_per_event": round(wal / max(stored, 1), 1),
        "events_per_s_by_tenth": profile,
        "body_mib": round(mib, 1),
        "failures": load.failures,
        "failure_samples": load.failure_samples,
        "cpu": cpu,
    }


def phase_otlp(ctx: Context, *, batch_rate: float) -> dict[str, Any]:
    args = ctx.args
    bodies, sizes = otlp_bodies(ctx.factory, total=args.otlp_spans, batch_size=args.intake_batch)
    mib = sum(len(b) for b in bodies) / 2**20
    say(
        f"OTLP/HTTP protobuf: posting {args.otlp_spans:,} spans in {len(bodies)} batches "
        f"({mib:,.0f} MiB, {mib * 2**20 / args.otlp_spans:,.0f} B/span) to {OTLP_PATH} "
        f"from {args.clients} clients ..."
    )
    result = intake_phase(
        ctx,
        label="OTLP/HTTP protobuf",
        path=OTLP_PATH,
        content_type=PROTOBUF,
        bodies=bodies,
        sizes=sizes,
        check=otlp_checker(sizes),
        target=TARGET_OTLP_VS_BATCH,
        batch_rate=batch_rate,
        mib=mib,
    )
    result["bytes_per_span"] = round(mib * 2**20 / args.otlp_spans, 1)
    return result


def phase_litellm(ctx: Context, *, batch_rate: float) -> dict[str, Any]:
    args = ctx.args
    assert ctx.model_map is not None
    bodies = LiteLLMBodies(
        ctx.factory, ctx.model_map, total=args.litellm_events, batch_size=args.intake_batch
    )
    total_bytes = bodies.total_bytes()
    payload = total_bytes / args.litellm_events
    model_map = bodies.model_map_bytes()
    mib = total_bytes / 2**20
    say(
        f"LiteLLM json_array: posting {args.litellm_events:,} payloads in {len(bodies)} "
        f"batches ({mib:,.0f} MiB) to {LITELLM_PATH} from {args.clients} clients; "
        f"average payload {payload / 1000:.1f} kB, of which model_map_information "
        f"{model_map / 1000:.1f} kB ..."
    )
    result = intake_phase(
        ctx,
        label="LiteLLM json_array",
        path=LITELLM_PATH,
        content_type=JSON,
        bodies=bodies,
        sizes=bodies.sizes,
        check=litellm_checker(bodies.sizes),
        target=TARGET_LITELLM_VS_BATCH,
        batch_rate=batch_rate,
        mib=mib,
    )
    result["payload_bytes_avg"] = round(payload, 1)
    result["model_map_bytes_avg"] = round(model_map, 1)
    return result


# --- Setup, summary, main -------------------------------------------------------------


def print_summary(results: dict[str, Any]) -> None:
    phases = results["phases"]
    copy_rate = phases["copy"]["rows_per_s"]
    lines = [
        "",
        "=" * 78,
        "finops ingestion benchmark: summary",
        "=" * 78,
        f"revision {results['revision']}, {results['cpus']} CPUs, {results['postgresql']}",
        "PostgreSQL: "
        + ", ".join(f"{k} {v}" for k, v in results.get("postgresql_settings", {}).items()),
        f"gunicorn {results['config']['workers']} workers x {results['config']['threads']} "
        f"threads; batch clients {results['config']['clients']}, "
        f"single clients {results['config']['single_clients']}",
        f"COPY baseline (empty table)    {copy_rate:>12,.0f} rows/s",
    ]
    batch_runs = [("batch ingest, empty table", phases.get("batch_empty"))]
    batch_runs.append(
        (
            f"batch ingest, {results['config']['preload']:,} rows"
            if results["config"]["preload"]
            else "batch ingest",
            phases.get("batch"),
        )
    )
    for name, run in batch_runs:
        if run is None:
            continue
        ratio = run["ratio_to_copy"]
        lines.append(
            f"{name:<30} {run['events_per_s']:>12,.0f} events/s  {ratio:6.1%} of COPY "
            f"(target >= {TARGET_BATCH_VS_COPY:.0%}: {check_flag(ratio >= TARGET_BATCH_VS_COPY)})"
        )
    if "preloaded_vs_empty" in results:
        ratio = results["preloaded_vs_empty"]
        lines.append(
            f"preloaded / empty batch rate   {ratio:>12.1%}  "
            f"(target within 20%: {check_flag(ratio >= TARGET_PRELOADED_VS_EMPTY)})"
        )
    if "copy_full" in phases:
        lines.append(
            f"COPY into the full table       {phases['copy_full']['rows_per_s']:>12,.0f} rows/s"
        )
    single = phases["single"]
    p = single["latency_ms"]
    lines.append(
        f"single events                  {single['requests_per_s']:>12,.0f} requests/s  "
        f"p50 {p['p50']:.1f} ms  p95 {p['p95']:.1f} ms  p99 {p['p99']:.1f} ms "
        f"(target p99 < {TARGET_SINGLE_P99_MS:.0f} ms: "
        f"{check_flag(p['p99'] < TARGET_SINGLE_P99_MS)})"
    )
    for key, name in (("otlp", "OTLP/HTTP protobuf spans"), ("litellm", "LiteLLM json_array")):
        run = phases.get(key)
        if run is None:
            continue
        ratio, target = run["ratio_to_batch"], run["target_ratio_to_batch"]
        lines.append(
            f"{name:<30} {run['events_per_s']:>12,.0f} events/s  {ratio:6.1%} of REST batch "
            f"(target >= {target:.0%}: {check_flag(ratio >= target)})"
        )
    lines.append(f"failed requests                {results['failures']:>12}")
    if results["disturbed_phases"]:
        lines.append(
            "disturbed (other processes used the CPUs): " + ", ".join(results["disturbed_phases"])
        )
    lines.append(f"results: {results['results_file']}")
    say("\n".join(lines))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Ingestion benchmark of POST /api/v1/events against PostgreSQL.",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="local PostgreSQL database to DROP and recreate (name must contain 'bench')",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--threads", type=int, default=1, help="gunicorn threads per worker (1: sync workers)"
    )
    parser.add_argument("--copy-rows", type=int, default=200_000, help="COPY baseline rows")
    parser.add_argument("--clients", type=int, default=4, help="concurrent batch clients (4)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (1000)")
    parser.add_argument(
        "--batch-events", type=int, default=200_000, help="events posted in batches (200,000)"
    )
    parser.add_argument(
        "--single-clients", type=int, default=8, help="concurrent single-event clients (8)"
    )
    parser.add_argument(
        "--single-events", type=int, default=4000, help="single events posted (4,000)"
    )
    parser.add_argument(
        "--preload", type=int, default=0, help="rows COPYed into the table before phases 4-6"
    )
    parser.add_argument(
        "--compare-empty",
        action="store_true",
        help="run batch ingestion on the empty table first, then preload and run it again",
    )
    parser.add_argument(
        "--otlp-spans",
        type=int,
        default=DEFAULT_OTLP_SPANS,
        help=f"spans posted to {OTLP_PATH} as OTLP protobuf ({DEFAULT_OTLP_SPANS:,}; 0 skips)",
    )
    parser.add_argument(
        "--litellm-events",
        type=int,
        default=DEFAULT_LITELLM_EVENTS,
        help=f"LiteLLM payloads posted to {LITELLM_PATH} ({DEFAULT_LITELLM_EVENTS:,}; 0 skips)",
    )
    parser.add_argument(
        "--intake-batch",
        type=int,
        default=512,
        help="spans or LiteLLM payloads per request (512, both exporters' default)",
    )
    parser.add_argument(
        "--litellm-model-map",
        default=str(DEFAULT_MODEL_MAP),
        help="LiteLLM's model price map, the source of model_map_information",
    )
    parser.add_argument(
        "--no-intakes",
        action="store_true",
        help="skip the OTLP and LiteLLM phases (as --otlp-spans 0 --litellm-events 0)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the event contents")
    args = parser.parse_args(argv)
    if args.no_intakes:
        args.otlp_spans = args.litellm_events = 0
    positive = ("workers", "threads", "copy_rows", "clients", "batch_size", "batch_events")
    for name in (*positive, "single_clients", "single_events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000 (the API's limit)")
    if args.preload < 0:
        parser.error("--preload must be >= 0")
    if args.otlp_spans < 0 or args.litellm_events < 0:
        parser.error("--otlp-spans and --litellm-events must be >= 0 (0 skips the phase)")
    if not 1 <= args.intake_batch <= 1000:
        parser.error("--intake-batch must be 1..1000")
    if args.compare_empty and not args.preload:
        parser.error("--compare-empty needs --preload N")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    db_name = check_database_url(args.database_url)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_file = RESULTS_DIR / f"ingest-{stamp}.json"
    log_file = RESULTS_DIR / f"ingest-{stamp}-gunicorn.log"
    env = app_env(args.database_url)
    # Read before anything is dropped: a missing model map stops the run at once.
    model_map = load_model_map(Path(args.litellm_model_map)) if args.litellm_events else None
    key = prepare_database(args.database_url, db_name, env)

    phases: dict[str, Any] = {}
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "revision": git_revision(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "config": {k: v for k, v in vars(args).items() if k != "database_url"},
        "database": db_name,
        "phases": phases,
    }
    with (
        psycopg.connect(args.database_url, autocommit=True) as admin,
        psycopg.connect(args.database_url) as copier,
        Gunicorn(env=env, workers=args.workers, threads=args.threads, log=log_file) as server,
    ):
        version = admin.execute("SHOW server_version").fetchone()
        results["postgresql"] = f"PostgreSQL {version[0] if version else '?'}"
        results["postgresql_settings"] = dict(
            admin.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [PG_SETTINGS]
            ).fetchall()
        )
        say(
            f"gunicorn: {args.workers} workers x {args.threads} threads on {HOST}:{server.port} "
            f"(log {relative(log_file)})"
        )
        check_copy_columns(admin)
        ctx = Context(
            args=args,
            admin=admin,
            copier=copier,
            server=server,
            key=key,
            factory=EventFactory(seed=args.seed, spread=timedelta(days=1)),
            cpu=CpuMeter(db_name),
            model_map=model_map,
        )
        ctx.cpu.gunicorn_pid = server.pid
        phases["warmup"] = phase_warmup(ctx)
        truncate(ctx)
        phases["copy"] = phase_copy(ctx, label="COPY baseline")
        ctx.copy_rate = phases["copy"]["rows_per_s"]
        truncate(ctx)
        if args.compare_empty:
            phases["batch_empty"] = phase_batches(ctx, label="batch ingest (empty table)")
            truncate(ctx)
        if args.preload:
            phases["preload"] = phase_preload(ctx)
        label = f"batch ingest ({args.preload:,} rows)" if args.preload else "batch ingest"
        phases["batch"] = phase_batches(ctx, label=label)
        phases["single"] = phase_singles(ctx)
        batch_rate = phases["batch"]["events_per_s"]
        if args.otlp_spans:
            phases["otlp"] = phase_otlp(ctx, batch_rate=batch_rate)
        if args.litellm_events:
            phases["litellm"] = phase_litellm(ctx, batch_rate=batch_rate)
        if args.preload:
            phases["copy_full"] = phase_copy(ctx, label="COPY into the full table")
        results["final_table"] = {"rows": table_rows(admin), **table_size(admin)}

    if "batch_empty" in phases:
        results["preloaded_vs_empty"] = round(
            phases["batch"]["events_per_s"] / phases["batch_empty"]["events_per_s"], 4
        )
    results["failures"] = sum(p.get("failures", 0) for p in phases.values())
    results["disturbed_phases"] = [
        name for name, p in phases.items() if "cpu" in p and cpu_disturbed(p["cpu"])
    ]
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["results_file"] = relative(results_file)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results)
    return 1 if results["failures"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/ingest.py: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench/ingest.py: interrupted; gunicorn stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
