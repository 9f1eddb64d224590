"""Metrics benchmark: the predictive metrics and the projection over 90 days of events.

    make bench-metrics [BENCH_ARGS="--events 10000000 --tenants 500"]

Fills a dedicated PostgreSQL database with `--tenants` tenants and `--events` events by
COPY over the last `--days` days (rows shaped as the API writes them, from
bench/ledger.py, with the metrics' fields: routing tiers, retrieval and reranker on RAG
calls, outcomes, sessions of several calls, repeated prompt hashes), folds them with one
`rollups_update()`, then times in this process, after a warm-up, `--runs` times each:

1. `metrics_compute()` over the whole window: all tenants, the biggest tenant, the
   biggest feature (each also reads the previous window of the same length);
2. `projection_compute()`: all tenants (with a planned feature), the biggest tenant;
3. the same through the HTTP API (`GET /api/v1/metrics`, `/api/v1/projection`), in
   process with Django's test client: authentication, view and JSON included.

Target (issue "The FinOps console"): each under 500 ms with 10M events over 90 days,
served from the rollups. The fold is timed too (target of "The money brain": 10M events
under 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # noqa: E402 - who used the CPUs during a phase
import ledger  # noqa: E402 - the benchmarks' row source and database helpers

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench_metrics"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_S = 0.5
FOLD_TARGET_S = 60
QUIET_BUSY_SHARE = 0.25  # others' share of the CPUs below which the machine is quiet
QUIET_WAIT_S = 180
XMIN_WAIT_S = 900


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90, help="the events' span and the window")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7, choices=range(1, 101), metavar="N")
    parser.add_argument("--warmup", type=int, default=2, choices=range(0, 11), metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the folded ledger of a database kept by --keep: migrate, no fill or fold",
    )
    parser.add_argument(
        "--refold",
        action="store_true",
        help="with --reuse: empty the rollups and fold the whole ledger again, timed "
        "(after a change to the fold)",
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP API timings")
    args = parser.parse_args(argv)
    if args.refold and not args.reuse:
        parser.error("--refold goes with --reuse")
    if args.tenants < len(ledger.TENANTS):
        parser.error(f"--tenants must be >= {len(ledger.TENANTS)}")
    return args


# --- Ledger ------------------------------------------------------------------------------


def fresh_ledger(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """Tenants, features with their task types, and `--events` events over `--days`."""
    from finops.models import Tenant
    from ingestion.models import Feature
    from ingestion.services import events_ingest

    spread = timedelta(days=args.days)
    factory = ledger.EventFactory(seed=args.seed, spread=timedelta(hours=1))
    # Features and prompt templates come into being the way the API makes them.
    seed_items = [ledger.encoder.encode(e) for e in factory.every_combination(now)]
    events_ingest(key_tenant=None, items=seed_items)
    for spec in ledger.FEATURES:
        Feature.objects.filter(key=spec.key).update(task_type=spec.task_type)
    ledger.create_tenants(args.tenants, signup=now - spread - timedelta(days=30))
    ids = list(Tenant.objects.values_list("id", flat=True))
    with psycopg.connect(args.database_url) as conn:
        ledger.check_copy_columns(conn)
        catalog = ledger.load_catalog(conn)
        pool = ledger.tenant_pool(ids, random.Random(args.seed))
        source = ledger.RowSource(
            factory, catalog, spread=spread, seed=args.seed, end=now, tenants=pool
        )
        ledger.say(f"fill: {args.events:,} events over {len(ids):,} tenants, {args.days} days")
        fill_s = ledger.fill(conn, source, args.events)
        conn.autocommit = True
        ledger.say("fill: VACUUM ANALYZE")
        conn.execute(f"VACUUM ANALYZE {ledger.TABLE}")
        (last_xact,) = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    return {
        "events": args.events + len(seed_items),
        "tenants": len(ids),
        "fill_s": round(fill_s, 1),
        "last_xact": last_xact,
    }


def wait_for_xmin(url: str, xact: int) -> float:
    """Wait until every transaction older than `xact` has ended, in any database: the
    fold reads only below the oldest one still running."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            (xmin,) = conn.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            ).fetchone()
            if xmin > xact:
                return time.perf_counter() - started
            waited = time.perf_counter() - started
            if waited > XMIN_WAIT_S:
                raise ledger.BenchError(
                    f"a transaction older than the fill ({xmin}) still runs after "
                    f"{waited:.0f} s: the fold would miss events"
                )
            ledger.say(f"  waiting: transaction {xmin} (another client) holds back the fold")
            time.sleep(15)


def wait_for_quiet(meter: cpu.CpuMeter) -> dict[str, float]:
    """Sample the CPUs for 2 s until other processes use less than QUIET_BUSY_SHARE of
    them (at most QUIET_WAIT_S); return the last sample."""
    started = time.perf_counter()
    while True:
        with meter.measure() as used:
            time.sleep(2)
        capacity = used["wall_s"] * (os.cpu_count() or 1)
        share = used["other_s"] / capacity if capacity else 0.0
        if share < QUIET_BUSY_SHARE or time.perf_counter() - started > QUIET_WAIT_S:
            return {
                "others_share": round(share, 3),
                "waited_s": round(time.perf_counter() - started),
            }
        ledger.say(f"  waiting: other processes use {share:.0%} of the CPUs")
        time.sleep(10)


def fold(meter: cpu.CpuMeter, url: str) -> dict[str, Any]:
    from billing.rollups import rollups_update

    with meter.measure() as used:
        result = rollups_update()
    with psycopg.connect(url, autocommit=True) as conn:
        # Autovacuum may be off: the metrics' plans need the tables' statistics.
        conn.execute("VACUUM ANALYZE billing_usagerollup")
        conn.execute("VACUUM ANALYZE billing_dailykey")
        conn.execute("VACUUM ANALYZE billing_featurerollup")
        rows = dict(conn.execute("SELECT grain, count(*) FROM billing_usagerollup GROUP BY 1"))
        across = dict(conn.execute("SELECT grain, count(*) FROM billing_featurerollup GROUP BY 1"))
        keys = conn.execute("SELECT count(*) FROM billing_dailykey").fetchone()[0]
        sizes = conn.execute(
            "SELECT pg_total_relation_size('billing_usagerollup'), "
            "pg_total_relation_size('billing_dailykey')"
        ).fetchone()
    return {
        "seconds": round(result.seconds, 2),
        "events": result.events,
        "rows_written": result.rows,
        "rollup_rows": rows,
        "feature_rollup_rows": across,
        "daily_keys": keys,  # sessions and prompt hashes (one hash holds the kind)
        "rollup_bytes": sizes[0],
        "dailykey_bytes": sizes[1],
        "cpu": used,
    }


def reused_ledger(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    ledger.say("database: reusing the kept ledger and its rollups; migrate")
    ledger.manage(env, "migrate", "--no-input")
    from billing.models import DailyKey, FeatureRollup, RollupWatermark, UsageRollup
    from finops.models import Tenant
    from ingestion.models import UsageEvent

    if args.refold:
        tables = (UsageRollup, FeatureRollup, DailyKey, RollupWatermark)
        ledger.say("database: emptying the rollups, daily keys and watermark")
        with psycopg.connect(args.database_url) as conn:
            conn.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in tables)}")
    return {"events": UsageEvent.objects.count(), "tenants": Tenant.objects.count()}


# --- Timings -----------------------------------------------------------------------------


def timing(
    meter: cpu.CpuMeter, label: str, fn: Callable[[], Any], *, runs: int, warmup: int
) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    seconds = []
    with meter.measure() as used:
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - started)
    median, worst = statistics.median(seconds), max(seconds)
    ledger.say(
        f"  {label:<44} median {median * 1000:7.1f} ms  max {worst * 1000:7.1f} ms  "
        f"target < {TARGET_S * 1000:.0f} ms: {ledger.check_flag(worst < TARGET_S)}"
    )
    return {
        "label": label,
        "seconds": [round(s, 4) for s in seconds],
        "median_s": round(median, 4),
        "max_s": round(worst, 4),
        "met": worst < TARGET_S,
        "cpu": used,
    }


def http_get(client: Any, key: str, path: str, params: dict[str, str]) -> Callable[[], Any]:
    def get() -> Any:
        answer = client.get(
            path, params, HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="127.0.0.1"
        )
        if answer.status_code != 200:
            raise ledger.BenchError(f"GET {path}: {answer.status_code} {answer.content[:300]!r}")
        return answer

    return get


def measure(args: argparse.Namespace, meter: cpu.CpuMeter, key: str | None) -> dict[str, Any]:
    from django.db.models import Sum
    from django.test import Client

    from billing.models import UsageRollup
    from console.metrics import Window, metrics_compute, rollup_rows
    from console.models import PlannedFeature
    from console.projection import projection_compute
    from finops.models import Tenant
    from ingestion.models import Feature

    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(days=args.days)
    days = UsageRollup.objects.filter(grain=UsageRollup.Grain.DAY)
    biggest_tenant = Tenant.objects.get(
        id=days.values("tenant_id").annotate(n=Sum("calls")).order_by("-n")[0]["tenant_id"]
    )
    biggest_feature = days.values("feature").annotate(n=Sum("calls")).order_by("-n")[0]["feature"]
    chat = Feature.objects.get(key=biggest_feature)
    PlannedFeature.objects.get_or_create(
        name="voice_assistant",
        defaults={"reuses": chat, "launch_date": (now + timedelta(days=10)).date()},
    )
    windows = {
        "all tenants": Window(start, end),
        f"tenant {biggest_tenant.slug} (biggest)": Window(start, end, biggest_tenant),
        f"feature {biggest_feature} (biggest)": Window(start, end, feature=biggest_feature),
    }
    results: dict[str, Any] = {
        "window": {"from": start.isoformat(), "to": end.isoformat(), "days": args.days},
        "biggest_tenant": biggest_tenant.slug,
        "biggest_feature": biggest_feature,
        "rollup_rows_read": {
            label: rollup_rows(w).count() + rollup_rows(w.previous()).count()
            for label, w in windows.items()
        },
        "events_in_window": {
            label: rollup_rows(w).aggregate(n=Sum("calls"))["n"] or 0
            for label, w in windows.items()
        },
    }
    for label, n in results["rollup_rows_read"].items():
        ledger.say(
            f"  {label}: {results['events_in_window'][label]:,} events in the window, "
            f"{n:,} rollup rows read (window and previous window)"
        )
    results["quiet"] = wait_for_quiet(meter)
    ledger.say(f"  machine: others use {results['quiet']['others_share']:.0%} of the CPUs")
    timings = []
    kw = {"runs": args.runs, "warmup": args.warmup}
    for label, window in windows.items():
        timings.append(
            timing(meter, f"metrics_compute, {label}", lambda w=window: metrics_compute(w), **kw)
        )
    timings.append(
        timing(meter, "projection_compute, all tenants",
               lambda: projection_compute(now=datetime.now(UTC)), **kw)
    )  # fmt: skip
    timings.append(
        timing(meter, f"projection_compute, tenant {biggest_tenant.slug}",
               lambda: projection_compute(now=datetime.now(UTC), tenant=biggest_tenant), **kw)
    )  # fmt: skip
    if key is not None:
        client = Client()
        span = {"from": start.isoformat(), "to": end.isoformat()}
        timings.append(
            timing(meter, "GET /api/v1/metrics, all tenants",
                   http_get(client, key, "/api/v1/metrics", span), **kw)
        )  # fmt: skip
        timings.append(
            timing(meter, f"GET /api/v1/metrics, tenant {biggest_tenant.slug}",
                   http_get(client, key, "/api/v1/metrics", span | {"tenant": biggest_tenant.slug}),
                   **kw)
        )  # fmt: skip
        timings.append(
            timing(meter, "GET /api/v1/projection, all tenants",
                   http_get(client, key, "/api/v1/projection", {}), **kw)
        )  # fmt: skip
    results["timings"] = timings
    return results


# --- Running -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    name = ledger.check_database_url(args.database_url)
    env = ledger.app_env(args.database_url)
    revision = ledger.git_revision()  # of the code this process is about to import
    key = None
    if not args.reuse:
        key = ledger.prepare_database(args.database_url, name, env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")})
    os.environ.update(DEBUG="false", ALLOWED_HOSTS=env["ALLOWED_HOSTS"])
    sys.path.insert(0, str(ledger.ROOT))
    import django

    django.setup()
    meter = cpu.CpuMeter(name)
    now = datetime.now(UTC)
    results: dict[str, Any] = {
        "started_at": now.isoformat(),
        "revision": revision,
        "reused": args.reuse,
        "runs": args.runs,
        "warmup": args.warmup,
    }
    if args.reuse:
        results["ledger"] = reused_ledger(args, env)
        if not args.no_http:
            key = ledger.manage(env, "createapikey", "--name", "bench").strip().splitlines()[-1]
    else:
        results["ledger"] = fresh_ledger(args, now)
        ledger.say("fold: waiting until no older transaction runs (other benchmarks' fills)")
        results["ledger"]["xmin_wait_s"] = round(
            wait_for_xmin(args.database_url, results["ledger"].pop("last_xact")), 1
        )
    if args.refold or not args.reuse:
        results["fold_quiet"] = wait_for_quiet(meter)
        ledger.say(
            f"fold: rollups_update() over the whole ledger (others use "
            f"{results['fold_quiet']['others_share']:.0%} of the CPUs)"
        )
        results["fold"] = fold(meter, args.database_url)
        f = results["fold"]
        ledger.say(
            f"  {f['events']:,} events -> {f['rows_written']:,} rows written in "
            f"{f['seconds']} s; rollups {f['rollup_rows']}, across tenants "
            f"{f['feature_rollup_rows']}, daily keys {f['daily_keys']}; " + cpu.cpu_text(f["cpu"])
        )
        if f["events"] != results["ledger"]["events"]:
            raise ledger.BenchError(
                f"the fold read {f['events']:,} events of {results['ledger']['events']:,}"
            )
    ledger.say("timings: metrics and projection from the rollups")
    results |= measure(args, meter, None if args.no_http else key)
    return results


def print_summary(results: dict[str, Any]) -> None:
    led = results["ledger"]
    print()
    print(
        f"ledger: {led['events']:,} events over {led['tenants']:,} tenants and "
        f"{results['window']['days']} days; "
        + ("ledger reused" if results["reused"] else f"fill {led['fill_s']} s")
    )
    if "fold" in results:
        f = results["fold"]
        rows = f["rollup_rows"]
        print(
            f"fold: {f['seconds']} s for {f['events']:,} events ({rows.get('hour', 0):,} hourly "
            f"and {rows.get('day', 0):,} daily rollup rows, "
            f"{sum(f.get('feature_rollup_rows', {}).values()):,} across tenants; "
            f"{f['daily_keys']:,} session and prompt hash daily keys kept)  "
            f"target < {FOLD_TARGET_S} s: {ledger.check_flag(f['seconds'] < FOLD_TARGET_S)}"
        )
    print(f"{'':<52}{'median':>10}{'max':>10}  target < {TARGET_S * 1000:.0f} ms")
    for t in results["timings"]:
        flag = ledger.check_flag(t["met"])
        disturbed = " (disturbed)" if cpu.cpu_disturbed(t["cpu"]) else ""
        print(
            f"{t['label']:<52}{t['median_s'] * 1000:>8.1f}ms{t['max_s'] * 1000:>8.1f}ms  "
            f"{flag}{disturbed}"
        )
    print(f"over {results['runs']} runs each after {results['warmup']} warm-up runs")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    finally:
        if not args.keep and "django" in sys.modules:
            ledger.drop_database(args.database_url)
    print_summary(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"metrics-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=1, default=_json_default))
    print(f"results: {ledger.relative(out)}")
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
