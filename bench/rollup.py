"""Rollup benchmark: fold a large ledger into hourly and daily aggregates.

    make bench-rollup [BENCH_ARGS="--events 10000000"]

Fills a dedicated PostgreSQL database with `--events` events by COPY (rows shaped as the
API writes them, from bench/ledger.py), then, in this process:

1. the first fold of the whole ledger by `rollups_update()`;
2. the same aggregation as one plain SQL `GROUP BY` over the same rows, for comparison;
3. incremental runs after `--new-events` new events each, several times;
4. a check that the aggregates hold every event and every cent of the ledger.

Targets (issue "The money brain"): the first fold of 10M events under 60 s; an
incremental run after 10,000 new events under 1 s whatever the history size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ledger  # noqa: E402 - the benchmarks' row source and database helpers

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench_rollup"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The fold's hourly groups and sums, without its sessions and prompt hashes of the day.
PLAIN_GROUP_BY = """
SELECT count(*) FROM (
    SELECT date_trunc('hour', e.timestamp), e.tenant_id, e.feature_id, e.model,
           e.prompt_template_id, e.routing_tier, count(*), count(e.price_id),
           sum(e.input_tokens), sum(e.cached_input_tokens), sum(e.cache_write_tokens),
           sum(e.cache_write_1h_tokens), sum(e.output_tokens), sum(e.reasoning_tokens),
           sum(e.grounding_tokens), sum(e.wasted_tokens), sum(e.queries), sum(e.cost),
           sum(e.chunks_retrieved), sum(e.chunks_used),
           count(e.reranker_changed_order), count(*) FILTER (WHERE e.reranker_changed_order),
           count(*) FILTER (WHERE e.outcome <> ''),
           count(*) FILTER (WHERE e.outcome = 'correct'),
           sum(e.cost) FILTER (WHERE e.outcome <> ''), sum(e.cost) FILTER (WHERE e.session <> ''),
           count(*) FILTER (WHERE e.prompt_hash <> '')
      FROM ingestion_usageevent e
     GROUP BY 1, 2, 3, 4, 5, 6
) hourly
"""


FILLED = "bench_rollup_filled"


class StepTimes(logging.Handler):
    """The seconds of each statement of a rollup run, from its debug log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: dict[str, float] = {}
        self._logger = logging.getLogger("billing.rollups")

    def emit(self, record: logging.LogRecord) -> None:
        step, _, seconds = record.args
        self.times[step] = round(seconds, 3)

    def __enter__(self) -> StepTimes:
        self._level, self._propagate = self._logger.level, self._logger.propagate
        self._logger.setLevel(logging.DEBUG)
        self._logger.propagate = False  # printed once, with the result
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
        self._logger.propagate = self._propagate


def forget_incremental_runs(conn: psycopg.Connection) -> None:
    """Back to the filled ledger: the events of earlier incremental runs deleted, the
    rollups, the day keys and the watermark emptied."""
    ledger.say("database: deleting the events of earlier incremental runs; emptying the rollups")
    if conn.execute("SELECT to_regclass(%s)", [FILLED]).fetchone()[0] is None:
        raise ledger.BenchError("--reuse needs a database filled by an earlier run of this script")
    conn.execute(f"DELETE FROM {ledger.TABLE} WHERE id > (SELECT last_id FROM {FILLED})")
    conn.execute(
        "TRUNCATE billing_usagerollup, billing_featurerollup, billing_dailykey, "
        "billing_rollupwatermark, ingestion_costchange"
    )
    conn.commit()


def checkpoint(conn: psycopg.Connection) -> None:
    """Write every dirty page out now, so that a phase does not pay for the writes of the
    one before (the fill's gigabytes, the first fold's keys)."""
    conn.autocommit = True
    conn.execute("CHECKPOINT")
    conn.autocommit = False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--new-events", type=int, default=10_000)
    parser.add_argument("--incremental-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cost-changes",
        type=int,
        default=0,
        help="before the first fold, write this many cost changes (the history a re-pricing "
        "leaves), each of nothing on one of the first events, so that the check stays exact",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the ledger an earlier run left in the database: migrate, delete the events "
        "its incremental runs added, empty the rollups; no fill (--events is ignored)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    name = ledger.check_database_url(args.database_url)
    env = ledger.app_env(args.database_url)
    if args.reuse:
        ledger.say(f"database: reusing the ledger in {name}; migrate")
        ledger.manage(env, "migrate", "--no-input")
    else:
        ledger.prepare_database(args.database_url, name, env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")})
    sys.path.insert(0, str(ledger.ROOT))
    import django

    django.setup()
    from billing.models import UsageRollup
    from billing.rollups import rollups_update
    from finops.fields import ExactSum
    from ingestion.models import UsageEvent
    from ingestion.services import events_ingest

    factory = ledger.EventFactory(seed=args.seed, spread=timedelta(days=30))
    now = datetime.now(UTC)
    if not args.reuse:
        # Features and prompt templates come into being the way the API makes them.
        seed_items = [ledger.encoder.encode(e) for e in factory.every_combination(now)]
        events_ingest(key_tenant=None, items=seed_items)

    results: dict[str, Any] = {"started_at": now.isoformat(), "reused": args.reuse}
    with psycopg.connect(args.database_url) as conn:
        catalog = ledger.load_catalog(conn)
        source = ledger.RowSource(factory, catalog, spread=timedelta(days=30), seed=args.seed)
        if args.reuse:
            results["fill_s"] = None
            forget_incremental_runs(conn)
        else:
            ledger.say(f"fill: {args.events:,} events by COPY")
            results["fill_s"] = round(ledger.fill(conn, source, args.events), 1)
            # Where the filled ledger ends, for --reuse.
            conn.execute(f"CREATE TABLE {FILLED} AS SELECT max(id) AS last_id FROM {ledger.TABLE}")
            conn.commit()
        conn.autocommit = True
        ledger.say("fill: VACUUM ANALYZE")
        conn.execute(f"VACUUM ANALYZE {ledger.TABLE}")
        conn.autocommit = False
        results["events"] = conn.execute(f"SELECT count(*) FROM {ledger.TABLE}").fetchone()[0]
        conn.rollback()
        results["cost_changes"] = args.cost_changes
        if args.cost_changes:
            ledger.say(f"history: {args.cost_changes:,} cost changes")
            conn.execute(
                "INSERT INTO ingestion_costchange (event_id, cost_delta, priced_delta, reason, "
                f"created_at) SELECT id, 0, 0, 'repriced', now() FROM {ledger.TABLE} "
                "ORDER BY id LIMIT %s",
                [args.cost_changes],
            )
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE ingestion_costchange")
            conn.autocommit = False

        checkpoint(conn)
        ledger.say("first fold: rollups_update() over the whole ledger")
        with StepTimes() as steps:
            first = rollups_update()
        results["first_fold"] = {
            "seconds": round(first.seconds, 2),
            "events": first.events,
            "rows": first.rows,
            "events_per_s": round(first.events / first.seconds),
            "steps": steps.times,
        }
        for step, seconds in steps.times.items():
            ledger.say(f"    {step}: {seconds} s")
        ledger.say(f"  {first.events:,} events -> {first.rows:,} rows in {first.seconds:.2f} s")

        ledger.say("plain SQL GROUP BY (hourly only, no write) over the same rows")
        started = time.perf_counter()
        groups = conn.execute(PLAIN_GROUP_BY).fetchone()[0]
        conn.rollback()
        plain_s = time.perf_counter() - started
        results["plain_group_by"] = {"seconds": round(plain_s, 2), "hourly_groups": groups}
        ledger.say(f"  {groups:,} hourly groups in {plain_s:.2f} s")

        checkpoint(conn)
        incremental, incremental_steps = [], []
        for i in range(args.incremental_runs):
            ledger.copy_rows(conn, source.chunks(args.new_events))
            with StepTimes() as steps:
                result = rollups_update()
            assert result.events == args.new_events, result
            incremental.append(result.seconds)
            incremental_steps.append(steps.times)
            ledger.say(
                f"  incremental {i + 1}: {result.events:,} new events in {result.seconds:.3f} s"
                f" ({', '.join(f'{step} {s:.2f}' for step, s in steps.times.items())})"
            )
        results["incremental"] = {
            "new_events": args.new_events,
            "seconds": [round(s, 3) for s in incremental],
            "steps": incremental_steps,
            "median_s": round(statistics.median(incremental), 3),
            "max_s": round(max(incremental), 3),
        }

    ledger_cost = UsageEvent.objects.aggregate(cost=ExactSum("cost"))["cost"]
    hourly = UsageRollup.objects.filter(grain="hour")
    folded_cost = hourly.aggregate(cost=ExactSum("cost"))["cost"]
    daily_cost = UsageRollup.objects.filter(grain="day").aggregate(cost=ExactSum("cost"))["cost"]
    calls = sum(hourly.values_list("calls", flat=True))
    total = UsageEvent.objects.count()
    results["check"] = {
        "ledger_events": total,
        "folded_calls": calls,
        "ledger_cost": str(ledger_cost),
        "hourly_cost": str(folded_cost),
        "daily_cost": str(daily_cost),
        "exact": calls == total and ledger_cost == folded_cost == daily_cost,
    }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    first, inc = results["first_fold"], results["incremental"]
    print()
    print(
        f"ledger: {results['events']:,} events (+{inc['new_events']:,} per incremental run), "
        f"{results['cost_changes']:,} cost changes"
    )
    print(
        f"first fold: {first['seconds']} s ({first['events_per_s']:,} events/s, "
        f"{first['rows']:,} aggregate rows)  target < 60 s: "
        f"{ledger.check_flag(first['seconds'] < 60)}"
    )
    print(f"plain SQL GROUP BY, hourly, no write: {results['plain_group_by']['seconds']} s")
    print(
        f"incremental after {inc['new_events']:,} events: median {inc['median_s']} s, "
        f"max {inc['max_s']} s  target < 1 s: {ledger.check_flag(inc['max_s'] < 1)}"
    )
    check = results["check"]
    print(
        f"check: {check['folded_calls']:,} calls folded of {check['ledger_events']:,} events; "
        f"cost {check['hourly_cost']} (ledger {check['ledger_cost']}): "
        f"{'exact' if check['exact'] else 'MISMATCH'}"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"rollup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out.relative_to(ledger.ROOT)}")
    return 0 if check["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
