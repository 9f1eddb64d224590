"""Statements benchmark: draft and finalize a month of statements, render a big PDF.

    make bench-statements [BENCH_ARGS="--events 10000000 --tenants 1000"]

Fills a dedicated PostgreSQL database with `--tenants` tenants and `--events` events by
COPY (rows shaped as the API writes them, from bench/ledger.py), every event inside one
calendar month (UTC) that is over, grace period included. Then, in this process:

1. `statements_draft(now=...)`: a statement per tenant for that month and the next,
   every draft rebuilt from the ledger;
2. `statements_finalize(now=...)`: the month's statements rebuilt once more and frozen;
3. a check that every final statement bills every digit of its tenant's ledger, plus
   its markup, and still hashes to its content hash;
4. `statement_pdf()` of the statement with the most lines, several times.

Targets (issue): drafting and finalizing statements for 1,000 tenants over a month of
10M events under 60 s; the PDF of a statement with 200 lines under 1 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # noqa: E402 - who used the CPUs during a phase
import ledger  # noqa: E402 - the benchmarks' row source and database helpers

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench_statements"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
WIDE_VARIANTS = 8  # token vectors per (feature, model, batch) of a wide tenant
WIDE_BATCH_FEATURES = 3  # features a wide tenant also runs through the batch API
LEDGER_SCALE = Decimal("1e-30")  # ingestion_usageevent.cost: numeric(48, 30)
MARKUPS = (Decimal("7.5"), Decimal("12"), Decimal("3.125"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument(
        "--wide-tenants",
        type=int,
        default=2,
        help="tenants that also call every model from every feature, some by batch: "
        "about 225 statement lines each",
    )
    parser.add_argument(
        "--wide-events", type=int, default=20_000, help="extra events of each wide tenant"
    )
    parser.add_argument("--pdf-runs", type=int, default=5, choices=range(1, 101), metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the ledger of a database kept by --keep (same month): migrate, delete "
        "its statements, skip the fill",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the draft and finalize phases under cProfile, counting SQL queries "
        "(slower: for finding where the time goes, not for the figures)",
    )
    args = parser.parse_args(argv)
    if args.tenants < len(ledger.TENANTS) or not 0 <= args.wide_tenants <= args.tenants:
        parser.error(f"--tenants must be >= {len(ledger.TENANTS)} and >= --wide-tenants")
    if args.wide_tenants * args.wide_events > args.events:
        parser.error("--wide-tenants x --wide-events must not exceed --events")
    return args


def bench_month(grace_days: int) -> tuple[datetime, datetime, datetime]:
    """The last calendar month (UTC) and a `now` just after its grace period."""
    today = datetime.now(UTC)
    end = datetime(today.year, today.month, 1, tzinfo=UTC)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end, end + timedelta(days=grace_days, hours=1)


# --- Tenants ---------------------------------------------------------------------------


def create_tenants(count: int, *, signup: datetime) -> list[str]:
    """The tenants of `ledger.create_tenants`; every 3rd tenant with a markup."""
    from finops.models import Tenant

    slugs = ledger.create_tenants(count, signup=signup)
    for i, slug in enumerate(slugs):
        if i % 3 == 0:
            markup = MARKUPS[(i // 3) % len(MARKUPS)]
            Tenant.objects.filter(slug=slug).update(markup_percent=markup)
    return slugs


# --- Rows ------------------------------------------------------------------------------


class MonthRows:
    """COPY lines as `ledger.RowSource` makes them (its row templates: realistic
    features, prompts, models, token counts, exact costs), but for many tenants and with
    timestamps inside one month."""

    def __init__(
        self,
        factory: ledger.EventFactory,
        catalog: ledger.Catalog,
        *,
        start: datetime,
        end: datetime,
        priced_at: datetime,
        seed: int,
    ) -> None:
        at = priced_at.isoformat()
        self._factory = factory
        self._templates = [
            self._strip(ledger.row_template(factory.event(end), catalog, priced_at=at))
            for _ in range(ledger.TEMPLATE_POOL)
        ]
        rng = random.Random(seed)
        span = (end - start).total_seconds()
        self._timestamps = [
            (start + timedelta(seconds=rng.random() * span)).isoformat()
            for _ in range(ledger.TIMESTAMP_POOL)
        ]

    @staticmethod
    def _strip(template: tuple[str, str]) -> str:
        """The suffix of a row template: the tenant id of its prefix is set per row."""
        return template[1]

    def chunks(self, count: int, tenants: list[int], templates: list[str] | None = None):
        """`count` lines, tenants drawn from `tenants` in turn, `COPY_LINES_PER_WRITE` to
        a chunk."""
        templates = templates or self._templates
        timestamps = self._timestamps
        n_templates, ts_mask, n_tenants = len(templates), len(timestamps) - 1, len(tenants)
        new_id = self._factory.new_id
        done = 0
        while done < count:
            size = min(ledger.COPY_LINES_PER_WRITE, count - done)
            lines = []
            for i in range(done, done + size):
                suffix = templates[(i * 7919) % n_templates]
                at = timestamps[(i * 40503) & ts_mask]
                lines.append(f"{tenants[i % n_tenants]}\t{new_id()}\t{at}\t{at}{suffix}")
            yield "".join(lines).encode()
            done += size


def wide_templates(
    factory: ledger.EventFactory, catalog: ledger.Catalog, *, priced_at: datetime, seed: int
) -> list[str]:
    """Row suffixes of a tenant that calls every model from every feature, with cache
    writes, and some features by the batch API too: every line kind a statement has.
    Costs as the app prices them (`finops.pricing.token_cost`, batch prices included)."""
    from finops.models import ModelPrice
    from finops.pricing import TokenVector, token_cost

    rng = random.Random(seed)
    prices = ModelPrice.objects.in_bulk([p.id for p in catalog.prices.values()])
    index = {c: ledger.COPY_COLUMNS.index(c) - 4 for c in ledger.COPY_COLUMNS[4:]}
    suffixes = []
    for n, feature in enumerate(ledger.FEATURES):
        for model in ledger.MODELS:
            for batch in (False, True) if n < WIDE_BATCH_FEATURES else (False,):
                for _ in range(WIDE_VARIANTS):
                    event = factory.event(priced_at, feature=feature, model=model)
                    tokens = TokenVector(
                        input=event["input_tokens"],
                        output=event["output_tokens"],
                        cached_input=rng.randint(1, event["input_tokens"] // 4),
                        cache_write=rng.randint(1, event["input_tokens"] // 4),
                        reasoning=(
                            rng.randint(1, event["output_tokens"] // 2)
                            if ledger.MODELS[model].reasoning
                            else 0
                        ),
                    )
                    event["cached_input_tokens"] = tokens.cached_input
                    event["reasoning_tokens"] = tokens.reasoning
                    _, suffix = ledger.row_template(event, catalog, priced_at=priced_at.isoformat())
                    fields = suffix[1:-1].split("\t")
                    price = prices[catalog.prices[model].id]
                    fields[index["cache_write_tokens"]] = str(tokens.cache_write)
                    tier = "batch" if batch else "standard"
                    fields[index["batch"]] = "t" if batch else "f"
                    fields[index["service_tier"]] = tier
                    fields[index["cost"]] = str(
                        token_cost(tokens=tokens, price=price, service_tier=tier, at=priced_at)
                    )
                    suffixes.append("\t" + "\t".join(fields) + "\n")
    return suffixes


def wide_line_count() -> int:
    """Usage lines of a wide tenant's statement: input, cached input, cache write and
    output (and reasoning for reasoning models) per feature, model and batch flag."""
    per_model = sum(4 + ledger.MODELS[m].reasoning for m in ledger.MODELS)
    return per_model * (len(ledger.FEATURES) + WIDE_BATCH_FEATURES)


def fill(conn: psycopg.Connection, chunks: Iterator[bytes], count: int, label: str) -> float:
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(ledger.PRELOAD_ROWS_PER_COPY, count - done)
        ledger.copy_rows(conn, itertools.islice(chunks, _chunks_of(size)))
        done += size
        if count >= 1_000_000:
            elapsed = time.perf_counter() - started
            ledger.say(f"  {label}: {done:>12,} / {count:,} rows  {elapsed:7.1f} s")
    return time.perf_counter() - started


def _chunks_of(rows: int) -> int:
    """Chunks holding `rows` lines (PRELOAD_ROWS_PER_COPY is a multiple of the chunk
    size, so only the last COPY may be short)."""
    return -(-rows // ledger.COPY_LINES_PER_WRITE)


# --- Phases ----------------------------------------------------------------------------


def timed(
    meter: cpu.CpuMeter, fn: Any, *, profile: Path | None = None, **kwargs: Any
) -> tuple[Any, float, dict[str, float]]:
    """Run `fn(**kwargs)`: its result, wall seconds and CPU use. With `profile`, under
    cProfile (stats written there) with every SQL query counted."""
    if profile is None:
        with meter.measure() as used:
            started = time.perf_counter()
            result = fn(**kwargs)
            seconds = time.perf_counter() - started
        return result, seconds, used
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    profiler = cProfile.Profile()
    with meter.measure() as used, CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = profiler.runcall(fn, **kwargs)
        seconds = time.perf_counter() - started
    profiler.dump_stats(profile)
    sql_s = sum(float(q["time"]) for q in queries.captured_queries)
    used = {**used, "queries": len(queries), "sql_wall_s": round(sql_s, 2)}
    ledger.say(
        f"  profile: {ledger.relative(profile)}; {len(queries):,} SQL queries, {sql_s:.2f} s"
    )
    stats = pstats.Stats(str(profile))
    stats.sort_stats("cumulative").print_stats(r"statements|django/db/models/(query|sql/comp)", 25)
    return result, seconds, used


def cpu_summary(used: dict[str, float]) -> str:
    text = (
        f"CPU s: this process {used['client_s']:.1f}, postgres {used['postgres_s']:.1f}, "
        f"kernel {used['kernel_s']:.1f}, other processes {used['other_s']:.1f} "
        f"({used['busy_share']:.0%} of {os.cpu_count() or 1} CPUs busy)"
    )
    if cpu.cpu_disturbed(used):
        text += "; WARNING: other processes used the CPUs, figures are disturbed"
    return text


def check(start: datetime, end: datetime) -> dict[str, Any]:
    """Every final statement of the month bills exactly its tenant's ledger: usage lines
    sum to the ledger's cost and tokens, the total is that plus the markup, no
    adjustments, and the content hash holds."""
    from django.db.models import Count, F, Sum

    from finops.fields import ExactSum
    from finops.money import EXACT
    from ingestion.models import UsageEvent
    from statements.models import Statement, StatementLine
    from statements.services import statement_verify

    period = start.date()
    in_ledger = {
        row["tenant_id"]: row
        for row in UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
        .values("tenant_id")
        .annotate(
            cost=ExactSum("cost"), tokens=Sum(F("input_tokens") + F("output_tokens")), n=Count("id")
        )
        .order_by()
    }
    usage = {
        row["statement__tenant_id"]: row
        for row in StatementLine.objects.filter(
            statement__period=period, kind=StatementLine.Kind.USAGE
        )
        .values("statement__tenant_id")
        .annotate(amount=ExactSum("amount_exact"), quantity=Sum("quantity"))
        .order_by()
    }
    adjustments = StatementLine.objects.filter(
        statement__period=period, kind=StatementLine.Kind.ADJUSTMENT
    ).count()
    statements = list(Statement.objects.filter(period=period).select_related("tenant"))
    problems: list[str] = []
    with localcontext(EXACT):
        for s in statements:
            ledger_row = in_ledger.get(s.tenant_id, {"cost": Decimal(0), "tokens": 0})
            billed = usage.get(s.tenant_id, {"amount": Decimal(0), "quantity": 0})
            cost = ledger_row["cost"] or Decimal(0)
            # The markup is kept at the ledger's scale, 30 places, rounded half-up.
            markup = (cost * s.markup_percent / 100).quantize(LEDGER_SCALE, ROUND_HALF_UP)
            expected_total = cost + markup
            if s.status != Statement.Status.FINALIZED:
                problems.append(f"{s.number}: {s.status}")
            if billed["amount"] != cost or billed["quantity"] != ledger_row["tokens"]:
                problems.append(f"{s.number}: usage {billed['amount']} != ledger {cost}")
            if s.total_exact != expected_total:
                problems.append(f"{s.number}: total_exact {s.total_exact} != {expected_total}")
            if not statement_verify(s):
                problems.append(f"{s.number}: content hash does not verify")
        ledger_cost = sum((row["cost"] or Decimal(0) for row in in_ledger.values()), Decimal(0))
        billed_cost = sum((row["amount"] for row in usage.values()), Decimal(0))
    missing = set(in_ledger) - {s.tenant_id for s in statements}
    if missing:
        problems.append(f"{len(missing)} tenants with usage have no statement")
    return {
        "statements": len(statements),
        "finalized": sum(s.status == Statement.Status.FINALIZED for s in statements),
        "ledger_events": sum(row["n"] for row in in_ledger.values()),
        "ledger_cost": str(ledger_cost),
        "billed_usage_exact": str(billed_cost),
        "billed_total_exact": str(sum((s.total_exact for s in statements), Decimal(0))),
        "billed_total_rounded": str(sum((s.total for s in statements), Decimal(0))),
        "adjustment_lines": adjustments,
        "problems": problems[:20],
        "problem_count": len(problems),
        "exact": not problems and adjustments == 0 and ledger_cost == billed_cost,
    }


def pdf_timing(period: datetime, runs: int) -> dict[str, Any]:
    from django.db.models import Count

    from statements.documents import statement_pdf
    from statements.models import Statement

    statement = (
        Statement.objects.filter(period=period.date())
        .select_related("tenant")
        .annotate(n_lines=Count("lines"))
        .order_by("-n_lines", "id")
        .first()
    )
    seconds, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        document = statement_pdf(statement)
        seconds.append(time.perf_counter() - started)
        size = len(document)
    pages = len(re.findall(rb"/Type\s*/Page\b", document))
    return {
        "statement": statement.number,
        "lines": statement.n_lines,
        "usage_lines": statement.lines.filter(kind="usage").exclude(token_kind="").count(),
        "other_lines": {
            {"usage": "rounding", "adjustment": "adjustment rounding"}.get(kind, kind): n
            for kind, n in statement.lines.filter(token_kind="")
            .values_list("kind")
            .annotate(n=Count("id"))
            .order_by()
        },
        "bytes": size,
        "pages": pages,
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
    }


def fresh_ledger(
    args: argparse.Namespace, start: datetime, end: datetime, now: datetime
) -> tuple[list[str], float]:
    """Tenants and the month's events in a new database; the slugs and the fill time."""
    from finops.models import Tenant
    from ingestion.services import events_ingest

    # Features and prompt templates come into being the way the API makes them; these
    # few events fall just before `now`, in the next month's (open) statements.
    seed_factory = ledger.EventFactory(seed=args.seed, spread=timedelta(hours=1))
    seed_items = [ledger.encoder.encode(e) for e in seed_factory.every_combination(now)]
    events_ingest(key_tenant=None, items=seed_items, now=now)

    slugs = create_tenants(args.tenants, signup=start - timedelta(days=90))
    ids = dict(Tenant.objects.values_list("slug", "id"))
    wide = [ids[slug] for slug in slugs[: args.wide_tenants]]
    rng = random.Random(args.seed)
    factory = ledger.EventFactory(seed=args.seed, spread=end - start)
    with psycopg.connect(args.database_url) as conn:
        catalog = ledger.load_catalog(conn)
        rows = MonthRows(factory, catalog, start=start, end=end, priced_at=now, seed=args.seed)
        wide_rows = wide_templates(factory, catalog, priced_at=now, seed=args.seed)
        normal = args.events - args.wide_tenants * args.wide_events
        ledger.say(f"fill: {normal:,} events over {len(ids):,} tenants by COPY")
        pool = ledger.tenant_pool(list(ids.values()), rng)
        fill_s = fill(conn, rows.chunks(normal, pool), normal, "fill")
        if wide:
            count = len(wide) * args.wide_events
            ledger.say(f"fill: {count:,} more events of the wide tenants")
            fill_s += fill(conn, rows.chunks(count, wide, wide_rows), count, "wide")
    return slugs, fill_s


def reused_ledger(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    """A kept database: migrated to the current code, its statements deleted."""
    from statements.models import Statement, StatementLine

    ledger.say("database: reusing the kept ledger; migrate, delete every statement")
    ledger.manage(env, "migrate", "--no-input")
    with psycopg.connect(args.database_url) as conn:
        tables = f"{StatementLine._meta.db_table}, {Statement._meta.db_table}"
        conn.execute(f"TRUNCATE {tables}")
        conn.commit()
        slugs = [slug for (slug,) in conn.execute("SELECT slug FROM finops_tenant ORDER BY slug")]
    ledger_slugs = [slug for slug, _ in ledger.TENANTS]
    return [s for s in slugs if s not in ledger_slugs] + ledger_slugs


def run(args: argparse.Namespace) -> dict[str, Any]:
    name = ledger.check_database_url(args.database_url)
    env = ledger.app_env(args.database_url)
    revision = ledger.git_revision()  # of the code this process is about to import
    if not args.reuse:
        ledger.prepare_database(args.database_url, name, env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")})
    sys.path.insert(0, str(ledger.ROOT))
    import django

    django.setup()
    from django.conf import settings

    from finops.models import Tenant
    from statements.services import statements_draft, statements_finalize

    start, end, now = bench_month(settings.FINOPS_STATEMENT_GRACE_DAYS)
    ledger.say(
        f"month: {start:%Y-%m} (UTC); statements run at now={now.isoformat()} "
        f"(grace {settings.FINOPS_STATEMENT_GRACE_DAYS} days)"
    )
    fill_s = None
    if args.reuse:
        slugs = reused_ledger(args, env)
    else:
        slugs, fill_s = fresh_ledger(args, start, end, now)
    ledger.say(
        f"tenants: {len(slugs):,} (wide: {', '.join(slugs[: args.wide_tenants]) or 'none'}), "
        f"{Tenant.objects.exclude(markup_percent=0).count():,} with a markup"
    )
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "revision": revision,
        "month": f"{start:%Y-%m}",
        "now": now.isoformat(),
        "tenants": len(slugs),
        "wide_tenants": args.wide_tenants,
        "wide_events": args.wide_events,
        "reused": args.reuse,
        "profiled": args.profile,
        "fill_s": None if fill_s is None else round(fill_s, 1),
    }
    meter = cpu.CpuMeter(name)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        ledger.say("VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
        per_tenant = sorted(
            n
            for (n,) in conn.execute(
                "SELECT count(*) FROM ingestion_usageevent "
                "WHERE timestamp >= %s AND timestamp < %s GROUP BY tenant_id",
                [start, end],
            )
        )
        if not per_tenant:
            raise ledger.BenchError(f"no events in {start:%Y-%m}: nothing to bill")
        conn.execute("CHECKPOINT")
    median = per_tenant[len(per_tenant) // 2]
    results["events"] = sum(per_tenant)
    results["events_per_tenant"] = {"min": per_tenant[0], "median": median, "max": per_tenant[-1]}
    ledger.say(
        f"  {sum(per_tenant):,} events in {start:%Y-%m}, per tenant: min {per_tenant[0]:,}, "
        f"median {median:,}, max {per_tenant[-1]:,}"
    )

    ledger.say("draft: statements_draft(now=...)")
    stamp = args.stamp
    profiles = {
        phase: RESULTS_DIR / f"statements-{stamp}-{phase}.prof" if args.profile else None
        for phase in ("draft", "finalize")
    }
    if args.profile:
        RESULTS_DIR.mkdir(exist_ok=True)
    drafted, draft_s, draft_cpu = timed(meter, statements_draft, profile=profiles["draft"], now=now)
    ledger.say(
        f"  created {drafted.created:,}, drafted {drafted.drafted:,} in {draft_s:.2f} s; "
        + cpu_summary(draft_cpu)
    )
    ledger.say("finalize: statements_finalize(now=...)")
    final, final_s, final_cpu = timed(
        meter, statements_finalize, profile=profiles["finalize"], now=now
    )
    ledger.say(f"  finalized {final.finalized:,} in {final_s:.2f} s; " + cpu_summary(final_cpu))
    results["draft"] = {
        "seconds": round(draft_s, 2),
        "created": drafted.created,
        "drafted": drafted.drafted,
        "cpu": draft_cpu,
    }
    results["finalize"] = {
        "seconds": round(final_s, 2),
        "finalized": final.finalized,
        "cpu": final_cpu,
    }
    results["total_s"] = round(draft_s + final_s, 2)

    ledger.say("check: final statements against the ledger")
    results["check"] = check(start, end)
    ledger.say(f"pdf: statement_pdf() of the statement with the most lines, {args.pdf_runs} runs")
    results["pdf"] = pdf_timing(start, args.pdf_runs)
    results["expected_wide_usage_lines"] = wide_line_count() if args.wide_tenants else None
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    try:
        results = run(args)
    finally:
        if not args.keep and "django" in sys.modules:
            ledger.drop_database(args.database_url)
    draft, final, chk, pdf = (results[k] for k in ("draft", "finalize", "check", "pdf"))
    spread = results["events_per_tenant"]
    print()
    print(
        f"ledger: {results['events']:,} events in {results['month']} over "
        f"{results['tenants']:,} tenants (per tenant: min {spread['min']:,}, median "
        f"{spread['median']:,}, max {spread['max']:,}); "
        + ("ledger reused" if results["reused"] else f"fill {results['fill_s']} s")
    )
    print(
        f"draft: {draft['seconds']} s ({draft['created']:,} statements created, "
        f"{draft['drafted']:,} drafts built)"
    )
    print(f"finalize: {final['seconds']} s ({final['finalized']:,} statements finalized)")
    print(
        f"draft + finalize: {results['total_s']} s  target < 60 s: "
        f"{ledger.check_flag(results['total_s'] < 60)}"
    )
    print(
        f"check: {chk['finalized']:,} of {chk['statements']:,} statements final; "
        f"usage {chk['billed_usage_exact']} (ledger {chk['ledger_cost']}), total with "
        f"markup {chk['billed_total_exact']}, {chk['adjustment_lines']} adjustment lines: "
        f"{'exact' if chk['exact'] else 'MISMATCH'}"
    )
    for problem in chk["problems"]:
        print(f"  {problem}")
    print(
        f"pdf: {pdf['statement']}, {pdf['lines']} lines ({pdf['usage_lines']} usage lines"
        + "".join(f", {n} {kind}" for kind, n in sorted(pdf["other_lines"].items()))
        + "), "
        f"{pdf['pages']} pages, {pdf['bytes']:,} bytes: median {pdf['median_s']} s, "
        f"max {pdf['max_s']} s over {len(pdf['seconds'])} runs  target < 1 s: "
        f"{ledger.check_flag(pdf['max_s'] < 1)}"
    )
    if results["expected_wide_usage_lines"] is not None:
        print(
            f"  (a wide tenant's statement should have {results['expected_wide_usage_lines']} "
            "usage lines, plus a rounding and a markup line when it has them)"
        )
    if pdf["lines"] < 200:
        print(f"  note: the biggest statement has fewer than 200 lines ({pdf['lines']})")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"statements-{args.stamp}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {ledger.relative(out)}")
    return 0 if chk["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
