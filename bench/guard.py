"""Guard benchmark: how fast `POST /api/v1/guard` decides, with a big ledger behind it.

    make bench-guard [BENCH_ARGS="--events 200000 --requests 3000"]

Phases (see bench/README.md):

1. the bench Redis DB flushed; a fresh database (dropped and recreated), `--events`
   events by COPY, folded by `rollups_update()`, then `--tail-events` more left unfolded
   (counters are seeded from the rollups and that tail, as in production);
2. limits, so that every decision reads the hot counters: a monthly cap on every tenant
   (one below its spend), a feature cap, budgets that block or downgrade, a free-tier
   tenant with a predicted lifetime value, fallback models;
3. the app under gunicorn on 127.0.0.1 with the guard's Redis; an untimed warm-up sends
   every (tenant, feature, model) the phases use, which seeds the counters;
4. phase A, closed loop: `--clients` clients send guard requests back to back;
5. phase B, paced: the same clients at a fixed offered rate, each latency counted from
   the request's scheduled send time;
6. a check that each tenant's monthly counter in Redis equals the ledger's figure.

Target (issue "Guard"): p99 under 5 ms at 16 concurrent clients under gunicorn, with 10
million events in the ledger. Figures are printed and written to
bench/results/guard-<timestamp>.json. Only 127.0.0.1 is contacted; the database is
dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import msgspec
import psycopg
import redis
from cpu import CpuMeter, cpu_disturbed, cpu_text
from ledger import (
    LOCAL_HOSTS,
    ROOT,
    TABLE,
    BenchError,
    EventFactory,
    RowSource,
    app_env,
    check_copy_columns,
    check_database_url,
    check_flag,
    copy_rows,
    encoder,
    fill,
    git_revision,
    load_catalog,
    manage,
    prepare_database,
    relative,
    say,
    table_size,
    with_database,
)
from load import HOST, Checker, Gunicorn, LoadResult, latency_ms, percentile, run_load
from stalls import StallProbe, stall_figures, stall_text

RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench_guard"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
GUARD_PATH = "/api/v1/guard"
GUARD_KEY_PREFIX = b"g:"  # every key billing.hotstate writes

TARGET_P99_MS = 5.0
KEEP_ALIVE_S = 30  # gthread workers: idle client connections stay open this long
WARM_REQUESTS_PER_CLIENT = 20

DECISIONS = ("allow", "downgrade", "block")

# Limits (see setup_limits): who gets which, relative to the spend in the ledger.
CAPPED_TENANT = "umbrella"  # monthly cap below its month-to-date spend: blocked
FREE_TENANT = "initech"  # free tier, predicted LTV below its first-30-days cost
FREE_SIGNUP_AGO = timedelta(days=10)
FEATURE_CAP = ("acme", "code_review")  # below its month-to-date spend: blocked
DAY_BUDGET = ("acme", "search_answering")  # below today's spend: downgraded
HOUR_BUDGET_MODEL = "gpt-4o-2024-08-06"  # block, not reached
FALLBACKS = {
    "document_summarization": "gpt-4o-mini",
    "chat_assistant": "gpt-4o-mini",
    "support_triage": "amazon.nova-lite-v1:0",
    "code_review": "gpt-4o-mini",
    "search_answering": "gpt-4o-mini",
    "invoice_extraction": "amazon.nova-lite-v1:0",
}
MICRO = Decimal("0.000001")  # the places of caps and budget amounts


# --- Redis ----------------------------------------------------------------------------


def check_redis_url(url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise BenchError(f"--redis-url must be a redis:// URL, not {parts.scheme}://")
    if parts.hostname not in LOCAL_HOSTS:
        raise BenchError("--redis-url must point at a local server (127.0.0.1)")
    db = parts.path.lstrip("/")
    if not db.isdigit() or int(db) == 0:
        raise BenchError("--redis-url must name a database other than 0, e.g. /3")
    return int(db)


def redis_flush(client: redis.Redis, db: int) -> None:
    """FLUSHDB, refused when the database holds keys that are not the guard's."""
    for key in client.scan_iter(count=1000):
        if not key.startswith(GUARD_KEY_PREFIX):
            raise BenchError(
                f"refusing to flush Redis database {db}: it holds keys other than the "
                f"guard's (e.g. {key[:60]!r}); choose another with --redis-url"
            )
    client.flushdb()


# --- Ledger and limits ----------------------------------------------------------------


def money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def setup_limits() -> dict[str, Any]:
    """Caps, budgets, a free-tier tenant and fallback models, set relative to the spend
    the ledger holds now, so that every guard request checks counters and the answers
    mix allow, downgrade and block."""
    from django.utils import timezone

    from billing import hotstate
    from billing.caps import FREE_TIER_WINDOW
    from billing.models import Budget, FeatureCap
    from finops.models import Tenant
    from finops.periods import DAY, HOUR, MONTH, period_end, period_start
    from ingestion.models import Feature

    now = timezone.now()
    tenants = {t.slug: t for t in Tenant.objects.all()}
    features = {f.key: f for f in Feature.objects.all()}

    def spend(period: str, **dims: Any) -> Decimal:
        start = period_start(period, now)
        scope = hotstate.calendar_scope(
            period=period, start=start, end=period_end(period, start), **dims
        )
        return hotstate.ledger_spend(scope)[0]

    def above(amount: Decimal) -> Decimal:  # a limit not reached
        return (2 * amount + 100).quantize(MICRO, rounding=ROUND_CEILING)

    def below(amount: Decimal) -> Decimal:  # a limit already reached
        return (amount / 2).quantize(MICRO, rounding=ROUND_FLOOR)

    for key, fallback in FALLBACKS.items():
        Feature.objects.filter(key=key).update(fallback_model=fallback)

    limits: dict[str, Any] = {"at": now.isoformat(), "monthly_caps": {}}
    lines = []
    for slug, tenant in sorted(tenants.items()):
        month_spend = spend(MONTH, tenant_id=tenant.id)
        cap = below(month_spend) if slug == CAPPED_TENANT else above(month_spend)
        tenant.monthly_cap = cap
        tenant.save(update_fields=["monthly_cap"])
        limits["monthly_caps"][slug] = {"cap": str(cap), "month_spend": str(month_spend)}
        lines.append(
            f"{slug} {money(cap)} (month to date {money(month_spend)}"
            + (": reached)" if cap <= month_spend else ")")
        )
    say("limits: monthly caps " + ", ".join(lines))

    tenant, feature = tenants[FEATURE_CAP[0]], features[FEATURE_CAP[1]]
    feature_spend = spend(MONTH, tenant_id=tenant.id, feature=(feature.id, feature.key))
    cap = below(feature_spend)
    FeatureCap.objects.create(tenant=tenant, feature=feature, monthly_cap=cap)
    limits["feature_cap"] = {
        "tenant": tenant.slug,
        "feature": feature.key,
        "cap": str(cap),
        "month_spend": str(feature_spend),
    }
    say(
        f"limits: feature cap {tenant.slug}/{feature.key} {money(cap)} "
        f"(month to date {money(feature_spend)}: reached, block)"
    )

    tenant, feature = tenants[DAY_BUDGET[0]], features[DAY_BUDGET[1]]
    day_spend = spend(DAY, tenant_id=tenant.id, feature=(feature.id, feature.key))
    hour_spend = spend(HOUR, model=HOUR_BUDGET_MODEL)
    all_spend = spend(MONTH)
    budgets = [
        Budget(
            name="bench: day, tenant and feature",
            tenant=tenant,
            feature=feature,
            period=Budget.Period.DAY,
            amount=below(day_spend),
            action=Budget.Action.DOWNGRADE,
        ),
        Budget(
            name="bench: hour, model",
            model=HOUR_BUDGET_MODEL,
            period=Budget.Period.HOUR,
            amount=above(hour_spend),
            action=Budget.Action.BLOCK,
        ),
        Budget(
            name="bench: month, all usage",
            period=Budget.Period.MONTH,
            amount=above(all_spend),
            action=Budget.Action.DOWNGRADE,
        ),
    ]
    Budget.objects.bulk_create(budgets)
    limits["budgets"] = []
    for budget, period_spend in zip(budgets, (day_spend, hour_spend, all_spend), strict=True):
        limits["budgets"].append(
            {
                "scope": budget.scope_label,
                "period": budget.period,
                "action": budget.action,
                "amount": str(budget.amount),
                "period_spend": str(period_spend),
            }
        )
        reached = "reached" if budget.amount <= period_spend else "not reached"
        say(
            f"limits: budget {budget.scope_label} per {budget.period}, {budget.action}: "
            f"{money(budget.amount)} (spent {money(period_spend)}: {reached})"
        )

    tenant = tenants[FREE_TENANT]
    tenant.tier = Tenant.Tier.FREE
    tenant.signup_at = now - FREE_SIGNUP_AGO
    window = hotstate.window_scope(
        tenant_id=tenant.id, start=tenant.signup_at, end=tenant.signup_at + FREE_TIER_WINDOW
    )
    window_spend = hotstate.ledger_spend(window)[0]
    tenant.predicted_ltv = below(window_spend)
    tenant.save(update_fields=["tier", "signup_at", "predicted_ltv"])
    limits["free_tier"] = {
        "tenant": tenant.slug,
        "signup_at": tenant.signup_at.isoformat(),
        "predicted_ltv": str(tenant.predicted_ltv),
        "window_spend": str(window_spend),
    }
    say(
        f"limits: {tenant.slug} on the free tier since {tenant.signup_at:%Y-%m-%d}, predicted "
        f"LTV {money(tenant.predicted_ltv)} (cost since signup {money(window_spend)}: "
        "reached, downgrade)"
    )
    say("limits: fallback models " + ", ".join(f"{k} -> {v}" for k, v in FALLBACKS.items()))
    return limits


# --- Guard requests -------------------------------------------------------------------


class DecisionOut(msgspec.Struct):
    decision: str
    model: str
    reason: str
    error_type: str | None = None


decision_decoder = msgspec.json.Decoder(DecisionOut)
Combo = tuple[str, str, str]  # tenant, feature, model
Outcome = tuple[str, str | None]  # decision, error type


def guard_requests(factory: EventFactory, total: int) -> tuple[list[bytes], list[Combo]]:
    """Bodies drawn from the ledger's mix of tenants, features and models."""
    now = datetime.now(UTC)
    combos = []
    for _ in range(total):
        event = factory.event(now)
        combos.append((event["tenant"], event["feature"], event["model"]))
    bodies = [encoder.encode({"tenant": t, "feature": f, "model": m}) for t, f, m in combos]
    return bodies, combos


def decision_checker(combos: Sequence[Combo], outcomes: list[Outcome | None]) -> Checker:
    """A 200 with a decision that fits the request: the model asked for, or the
    feature's fallback when downgraded; an error type unless allowed."""

    def check(index: int, status: int, data: bytes) -> tuple[str | None, int]:
        if status != 200:
            return f"HTTP {status}: {data[:300]!r}", 0
        try:
            out = decision_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            return f"unreadable answer: {exc}: {data[:300]!r}", 0
        _, feature, model = combos[index]
        expected = FALLBACKS[feature] if out.decision == "downgrade" else model
        if out.decision not in DECISIONS:
            return f"decision {out.decision!r}", 0
        if (out.error_type is None) != (out.decision == "allow"):
            return f"{out.decision} with error_type {out.error_type!r}", 0
        if out.model != expected:
            return f"{out.decision} to {out.model!r}, expected {expected!r}", 0
        outcomes[index] = (out.decision, out.error_type)
        return None, 0

    return check


def mix(outcomes: Sequence[Outcome | None]) -> dict[str, dict[str, int]]:
    seen = [o for o in outcomes if o is not None]
    decisions = Counter(d for d, _ in seen)
    error_types = Counter(e for _, e in seen if e is not None)
    return {
        "decisions": {d: decisions.get(d, 0) for d in DECISIONS},
        "error_types": dict(error_types.most_common()),
    }


def mix_text(m: dict[str, dict[str, int]]) -> str:
    decisions = ", ".join(f"{d} {n:,}" for d, n in m["decisions"].items())
    errors = ", ".join(f"{e} {n:,}" for e, n in m["error_types"].items()) or "none"
    return f"decisions: {decisions}; error types: {errors}"


def load_figures(load: LoadResult) -> dict[str, Any]:
    return {
        "requests": load.requests,
        "elapsed_s": round(load.elapsed_s, 3),
        "decisions_per_s": round(load.requests / load.elapsed_s, 1) if load.elapsed_s else 0,
        "latency_ms": latency_ms(load.latencies_s),
        "failures": load.failures,
        "failure_samples": load.failure_samples,
    }


def run_phase(
    *,
    label: str,
    server: Gunicorn,
    key: str,
    bodies: Sequence[bytes],
    combos: Sequence[Combo],
    clients: int,
    cpu: CpuMeter,
    admin: psycopg.Connection,
    pace_s: float | None = None,
) -> dict[str, Any]:
    outcomes: list[Outcome | None] = [None] * len(bodies)
    admin.execute("CHECKPOINT")
    probe = StallProbe()  # paced phases: what is late there may be the host's doing
    with probe if pace_s is not None else nullcontext(), cpu.measure() as used:
        load = run_load(
            port=server.port,
            key=key,
            bodies=bodies,
            sizes=[1] * len(bodies),
            clients=clients,
            check=decision_checker(combos, outcomes),
            path=GUARD_PATH,
            pace_s=pace_s,
            # Sync workers close every connection: a lean client per request.
            lean=server.threads == 1,
        )
    figures = load_figures(load)
    figures["mix"] = mix(outcomes)
    figures["cpu"] = used
    p = figures["latency_ms"]
    offered = ""
    if pace_s is not None:
        lags = sorted(load.send_lags_s)
        figures["offered_per_s"] = round(1 / pace_s, 1)
        figures["send_lag_ms"] = {
            "p99": round(percentile(lags, 99) * 1000, 2),
            "max": round(lags[-1] * 1000, 2) if lags else 0.0,
        }
        offered = f" (offered {1 / pace_s:,.0f}/s)"
        figures["host_stalls"] = stall_figures(probe.result, load.spans_s, TARGET_P99_MS)
    say(
        f"{label}: {load.requests:,} decisions in {load.elapsed_s:.2f} s = "
        f"{figures['decisions_per_s']:,.0f} decisions/s{offered}; latency p50 "
        f"{p.get('p50', 0):.2f} ms, p95 {p.get('p95', 0):.2f} ms, p99 {p.get('p99', 0):.2f} ms, "
        f"max {p.get('max', 0):.2f} ms; target p99 < {TARGET_P99_MS:.0f} ms: "
        f"{check_flag(p.get('p99', float('inf')) < TARGET_P99_MS)}; failures {load.failures}"
    )
    say(f"  {mix_text(figures['mix'])}")
    if pace_s is not None:
        lag = figures["send_lag_ms"]
        say(
            f"  sent after the scheduled time by: p99 {lag['p99']:.2f} ms, "
            f"max {lag['max']:.2f} ms (counted in the latencies)"
        )
        say(f"  {stall_text(figures['host_stalls'], TARGET_P99_MS)}")
    say(f"  {cpu_text(used)}")
    for sample in load.failure_samples:
        say(f"  failure: {sample}")
    return figures


# --- Exactness ------------------------------------------------------------------------


def check_counters(conn: psycopg.Connection) -> dict[str, Any]:
    """Each tenant's counter of this month (as the guard names it) against the ledger's
    figure (rollups up to the watermark and the events above it) and against a plain sum
    of the month's events. Reservations are kept apart from counters: guard requests
    leave reservations, and only stored events change a counter."""
    from django.utils import timezone

    from billing import hotstate
    from finops.models import Tenant
    from finops.periods import MONTH, period_end, period_start

    now = timezone.now()
    month = period_start(MONTH, now)
    month_end = period_end(MONTH, month)
    sums = dict(
        conn.execute(
            f"SELECT tenant_id, COALESCE(sum(cost), 0) FROM {TABLE} "
            "WHERE timestamp >= %s AND timestamp < %s GROUP BY tenant_id",
            [month, month_end],
        ).fetchall()
    )
    conn.rollback()
    tenants: dict[str, Any] = {}
    for tenant in Tenant.objects.order_by("slug"):
        scope = hotstate.calendar_scope(
            period=MONTH, start=month, end=month_end, tenant_id=tenant.id
        )
        counter = hotstate.counter_value(scope.name)
        in_ledger = hotstate.ledger_spend(scope)[0]
        events = sums.get(tenant.id, Decimal(0))
        tenants[tenant.slug] = {
            "counter": scope.name,
            "redis": None if counter is None else str(counter),
            "ledger": str(in_ledger),
            "events_sum": str(events),
            "reserved": str(Decimal(hotstate.reserved_nanos(scope.name)).scaleb(-9)),
            "exact": counter is not None and counter == in_ledger == events,
        }
    return {
        "month": f"{month:%Y-%m}",
        "tenants": tenants,
        "exact": all(t["exact"] for t in tenants.values()),
    }


def check_text(check: dict[str, Any]) -> str:
    parts = []
    for slug, t in check["tenants"].items():
        if t["redis"] is None:
            parts.append(f"{slug} not seeded")
            continue
        verdict = "=" if t["exact"] else "MISMATCH"
        parts.append(f"{slug} {money(Decimal(t['redis']))} {verdict}")
    return (
        f"exactness ({check['month']} counters, Redis = ledger = SUM of the events, "
        f"to the last of 30 places): {'; '.join(parts)}: "
        + ("exact" if check["exact"] else "NOT exact")
    )


def counters_seeded_since(client: redis.Redis, since: float, ttl_s: int) -> tuple[int, int]:
    """How many counters were (re)seeded after `since` (a time.time()), from their TTL:
    a counter is installed with a TTL of `ttl_s` and keeps it while it is incremented."""
    now = time.time()
    total = later = 0
    for key in client.scan_iter(match="g:s:*", count=1000):
        remaining = client.pttl(key)
        if remaining < 0:
            continue
        total += 1
        if now - (ttl_s * 1000 - remaining) / 1000 > since:
            later += 1
    return later, total


# --- Main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/guard.py",
        description="Guard benchmark: POST /api/v1/guard latency and throughput.",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="local PostgreSQL database to DROP and recreate (name must contain 'bench')",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="local Redis database for the guard's counters; FLUSHDB at start and end",
    )
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="events in the ledger (10,000,000)"
    )
    parser.add_argument(
        "--tail-events", type=int, default=20_000, help="events left out of the rollups (20,000)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument(
        "--requests", type=int, default=20_000, help="guard requests per phase (20,000)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="phase B offered rate, /s (half of phase A)"
    )
    parser.add_argument(
        "--sweep",
        default="",
        help="after phase B, one more paced phase per fraction of phase A's throughput, "
        "e.g. 0.2,0.3,0.4 (none)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="gunicorn threads per worker (1: sync workers; more: gthread with keep-alive)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the event contents")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the ledger of a database kept by --keep: migrate, a new operator key, "
        "the limits set again; no fill (--events and --tail-events are ignored)",
    )
    args = parser.parse_args(argv)
    for name in ("events", "clients", "requests", "workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.tail_events < 0:
        parser.error("--tail-events must be >= 0")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    try:
        args.sweep = [float(part) for part in args.sweep.split(",") if part.strip()]
    except ValueError:
        parser.error("--sweep takes fractions separated by commas, e.g. 0.2,0.3,0.4")
    if any(not 0 < fraction <= 1 for fraction in args.sweep):
        parser.error("--sweep fractions must be in (0, 1]")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def build_ledger(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from billing.rollups import rollups_update
    from ingestion.services import events_ingest

    factory = EventFactory(seed=args.seed, spread=timedelta(days=30))
    now = datetime.now(UTC)
    # Features and prompt templates come into being the way the API makes them.
    seed_items = [encoder.encode(e) for e in factory.every_combination(now)]
    events_ingest(key_tenant=None, items=seed_items)
    with psycopg.connect(args.database_url) as conn:
        check_copy_columns(conn)
        catalog = load_catalog(conn)
        source = RowSource(factory, catalog, spread=timedelta(days=30), seed=args.seed)
        say(f"fill: {args.events:,} events by COPY (timestamps over the last 30 days)")
        fill_s = fill(conn, source, args.events)
        conn.autocommit = True
        say("fill: VACUUM ANALYZE")
        started = time.perf_counter()
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        vacuum_s = time.perf_counter() - started
        conn.autocommit = False
        say("fill: rollups_update() over the whole ledger")
        fold = rollups_update()
        say(f"  {fold.events:,} events folded into {fold.rows:,} rows in {fold.seconds:.1f} s")
        tail = RowSource(factory, catalog, spread=timedelta(hours=1), seed=args.seed + 1)
        copy_rows(conn, tail.chunks(args.tail_events))
        say(f"fill: {args.tail_events:,} more events (the last hour), not folded")
        conn.autocommit = True
        conn.execute("CHECKPOINT")
        sizes = table_size(conn)
    results["ledger"] = {
        "events": args.events + len(seed_items) + args.tail_events,
        "fill_s": round(fill_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        "folded_events": fold.events,
        "rollup_rows": fold.rows,
        "rollup_s": round(fold.seconds, 1),
        "tail_events": args.tail_events,
        **sizes,
    }


def reused_ledger(args: argparse.Namespace, env: dict[str, str]) -> str:
    """A database kept by --keep, migrated to the current code, with a new operator key;
    returns the key. The limits of the previous run are deleted (setup_limits sets them
    again, relative to the spend at this moment)."""
    say("database: reusing the kept ledger; migrate, a new operator key")
    manage(env, "migrate", "--no-input")
    output = manage(env, "createapikey", "--name", "bench").strip().splitlines()
    if not output or not output[-1].startswith("fo_"):
        raise BenchError("createapikey printed no key on its last line")
    return output[-1]


def reused_ledger_figures(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from billing.models import Budget, FeatureCap, UsageRollup

    Budget.objects.all().delete()
    FeatureCap.objects.all().delete()
    with psycopg.connect(args.database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        sizes = table_size(conn)
    events = int(row[0]) if row else 0
    say(f"ledger: {events:,} events (reused)")
    results["ledger"] = {"events": events, "rollup_rows": UsageRollup.objects.count(), **sizes}
    results["ledger"]["reused"] = True


def run(args: argparse.Namespace) -> int:
    db_name = check_database_url(args.database_url)
    redis_db = check_redis_url(args.redis_url)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_file = RESULTS_DIR / f"guard-{stamp}.json"
    log_file = RESULTS_DIR / f"guard-{stamp}-gunicorn.log"
    env = app_env(args.database_url)
    env["FINOPS_GUARD_REDIS_URL"] = args.redis_url
    rds = redis.Redis.from_url(args.redis_url)
    try:
        redis_info = rds.info("server")
    except redis.RedisError as exc:
        raise BenchError(f"no Redis at {args.redis_url}: {exc}") from exc
    redis_flush(rds, redis_db)
    say(f"redis: flushed database {redis_db} ({args.redis_url})")

    phases: dict[str, Any] = {}
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "revision": git_revision(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "config": {k: v for k, v in vars(args).items() if k not in ("database_url", "redis_url")},
        "database": db_name,
        "redis": f"Redis {redis_info.get('redis_version', '?')}, database {redis_db}",
        "phases": phases,
    }
    try:
        if args.reuse:
            key = reused_ledger(args, env)
        else:
            key = prepare_database(args.database_url, db_name, env)
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "SECRET_KEY",
                    "DJANGO_SETTINGS_MODULE",
                    "FINOPS_GUARD_REDIS_URL",
                )
            }
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.conf import settings

        if args.reuse:
            reused_ledger_figures(args, results)
        else:
            build_ledger(args, results)
        results["limits"] = setup_limits()
        counter_ttl = settings.FINOPS_GUARD_COUNTER_TTL
        results["guard_settings"] = {
            name: getattr(settings, f"FINOPS_GUARD_{name.upper()}")
            for name in ("counter_ttl", "reservation_ttl", "policy_ttl", "redis_timeout")
        }

        factory = EventFactory(seed=args.seed + 2, spread=timedelta(days=1))
        bodies_a, combos_a = guard_requests(factory, args.requests)
        bodies_b, combos_b = guard_requests(factory, args.requests)
        warm_bodies, warm_combos = guard_requests(factory, args.clients * WARM_REQUESTS_PER_CLIENT)
        extra = ("--keep-alive", str(KEEP_ALIVE_S)) if args.threads > 1 else ()
        workers = (
            f"{args.workers} workers x {args.threads} threads (gthread; clients keep their "
            f"connections, keep-alive {KEEP_ALIVE_S} s)"
            if args.threads > 1
            else f"{args.workers} sync workers (each takes the next request from the shared "
            "socket; they close every connection, so clients reconnect per request)"
        )
        results["gunicorn"] = workers
        with (
            psycopg.connect(args.database_url, autocommit=True) as admin,
            Gunicorn(
                env=env,
                workers=args.workers,
                threads=args.threads,
                log=log_file,
                extra_args=extra,
            ) as server,
        ):
            version = admin.execute("SHOW server_version").fetchone()
            results["postgresql"] = f"PostgreSQL {version[0] if version else '?'}"
            say(f"gunicorn: {workers} on {HOST}:{server.port} (log {relative(log_file)})")
            cpu = CpuMeter(db_name)
            cpu.gunicorn_pid = server.pid
            cpu.redis_pid = redis_info.get("process_id")

            # Warm-up, untimed: each combination once (seeds every counter and estimate
            # one at a time), then every client a few times (every worker and thread
            # opens its connections and loads the policies).
            seen: dict[Combo, bytes] = {}
            for body, combo in zip(bodies_a + bodies_b, combos_a + combos_b, strict=True):
                seen.setdefault(combo, body)
            combos = list(seen)
            started = time.perf_counter()
            seeding = run_load(
                port=server.port,
                key=key,
                bodies=list(seen.values()),
                sizes=[1] * len(seen),
                clients=1,
                check=decision_checker(combos, [None] * len(combos)),
                path=GUARD_PATH,
            )
            seed_s = time.perf_counter() - started
            warm = run_load(
                port=server.port,
                key=key,
                bodies=warm_bodies,
                sizes=[1] * len(warm_bodies),
                clients=args.clients,
                check=decision_checker(warm_combos, [None] * len(warm_bodies)),
                path=GUARD_PATH,
            )
            failures = seeding.failure_samples + warm.failure_samples
            if failures:
                raise BenchError("warm-up failed: " + "; ".join(failures[:3]))
            warm_end = time.time()
            counters = sum(1 for _ in rds.scan_iter(match="g:s:*", count=1000))
            first = latency_ms(seeding.latencies_s)
            phases["warmup"] = {
                "combinations": len(combos),
                "seconds": round(seed_s, 2),
                "first_requests_ms": first,
                "counters": counters,
                "requests": seeding.requests + warm.requests,
            }
            say(
                f"warm-up: {len(combos)} (tenant, feature, model) combinations in "
                f"{seed_s:.2f} s (slowest {first['max']:.0f} ms: seeding), {counters} counters "
                f"seeded; then {warm.requests} requests from {args.clients} clients"
            )

            def timed(label: str, bodies: list[bytes], combos: list[Combo],
                      rate: float | None = None) -> dict[str, Any]:  # fmt: skip
                return run_phase(
                    label=label,
                    server=server,
                    key=key,
                    bodies=bodies,
                    combos=combos,
                    clients=args.clients,
                    cpu=cpu,
                    admin=admin,
                    pace_s=None if rate is None else 1 / rate,
                )

            def paced(name: str, rate: float) -> dict[str, Any]:
                # Phase B's requests each time: no counter is new after the warm-up.
                label = f"{name} (paced: {args.clients} clients at a fixed total rate)"
                return timed(label, bodies_b, combos_b, rate)

            phases["A"] = timed(
                f"phase A (closed loop: {args.clients} clients back to back)", bodies_a, combos_a
            )

            rate = args.rate or phases["A"]["decisions_per_s"] / 2
            rate_source = "--rate" if args.rate else "half of phase A's throughput"
            say(f"phase B: offered rate {rate:,.1f}/s ({rate_source})")
            phases["B"] = paced("phase B", rate)
            results["phase_b_rate_source"] = rate_source
            # The latency at lighter loads: where the p99 target holds on this machine.
            for fraction in args.sweep:
                rate = phases["A"]["decisions_per_s"] * fraction
                name = f"sweep {fraction:g}"
                say(f"{name}: offered rate {rate:,.1f}/s ({fraction:g} of phase A's throughput)")
                phases[name] = paced(name, rate)

        later, total = counters_seeded_since(rds, warm_end, counter_ttl)
        results["counters_seeded_during_phases"] = {"counters": total, "seeded_later": later}
        say(
            f"counters: {later} of {total} were (re)seeded during the timed phases "
            f"(a counter lives {counter_ttl} s, FINOPS_GUARD_COUNTER_TTL; a new hour "
            "or day starts new ones)"
        )
        with psycopg.connect(args.database_url) as conn:
            results["check"] = check_counters(conn)
        say(check_text(results["check"]))
    finally:
        cleanup(args, db_name, rds)

    results["failures"] = sum(p.get("failures", 0) for p in phases.values())
    results["disturbed_phases"] = [
        name for name, p in phases.items() if "cpu" in p and cpu_disturbed(p["cpu"])
    ]
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["results_file"] = relative(results_file)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results)
    return 1 if results["failures"] or not results["check"]["exact"] else 0


def cleanup(args: argparse.Namespace, db_name: str, rds: redis.Redis) -> None:
    """FLUSHDB the bench Redis database; drop the bench database unless --keep."""
    try:
        rds.flushdb()
        say("redis: flushed the bench database")
    except redis.RedisError as exc:
        say(f"redis: could not flush the bench database: {exc}")
    if args.keep:
        say(f"database: {db_name} kept (--keep)")
        return
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - Django may not be set up yet
        pass
    with psycopg.connect(with_database(args.database_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    say(f"database: dropped {db_name} (--keep keeps it)")


def phase_line(name: str, phase: dict[str, Any]) -> str:
    p = phase["latency_ms"]
    return (
        f"{name:<34} {phase['decisions_per_s']:>8,.0f} decisions/s  p50 {p['p50']:.2f} ms  "
        f"p95 {p['p95']:.2f} ms  p99 {p['p99']:.2f} ms  max {p['max']:.2f} ms  "
        f"(target p99 < {TARGET_P99_MS:.0f} ms: {check_flag(p['p99'] < TARGET_P99_MS)})"
    )


def print_summary(results: dict[str, Any]) -> None:
    phases = results["phases"]
    ledger = results["ledger"]
    config = results["config"]
    a, b = phases["A"], phases["B"]
    lines = [
        "",
        "=" * 78,
        "finops guard benchmark: summary",
        "=" * 78,
        f"revision {results['revision']}, {results['cpus']} CPUs, {results['postgresql']}, "
        f"{results['redis']}",
        (
            f"ledger: {ledger['events']:,} events (reused: a database kept by --keep; "
            f"{ledger['rollup_rows']:,} rollup rows)"
            if ledger.get("reused")
            else f"ledger: {ledger['events']:,} events ({ledger['folded_events']:,} folded "
            f"into {ledger['rollup_rows']:,} rollup rows, {ledger['tail_events']:,} above "
            "the watermark)"
        ),
        f"gunicorn {results['gunicorn']}; {config['clients']} clients",
        phase_line("phase A, closed loop", a),
        phase_line(f"phase B, paced at {b['offered_per_s']:,.0f}/s", b),
        *(
            phase_line(f"{name}, paced at {phase['offered_per_s']:,.0f}/s", phase)
            for name, phase in phases.items()
            if name.startswith("sweep ")
        ),
        f"phase A {mix_text(a['mix'])}",
        f"phase B {mix_text(b['mix'])}",
        check_text(results["check"]),
        f"failed requests {results['failures']}",
    ]
    if results["disturbed_phases"]:
        lines.append(
            "disturbed (other processes used the CPUs): " + ", ".join(results["disturbed_phases"])
        )
    lines.append(f"results: {results['results_file']}")
    say("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/guard.py: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench/guard.py: interrupted; gunicorn stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
