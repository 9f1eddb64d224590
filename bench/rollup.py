"""The rollup fold against a plain GROUP BY over the same rows.

    make bench-rollup [BENCH_ARGS="--events 1000000"]

Targets (issue "The money brain"): the first fold of 10M events under 60 s; an
incremental fold of 10,000 new events under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import harness
import psycopg
from harness import say

# The fold's hourly groups and sums (without its daily session and prompt keys): what
# PostgreSQL alone takes to read and aggregate the rows. The groups are the rollups'
# (`billing.UsageRollup`), the reported tag's value taken as the fold takes it.
PLAIN_GROUP_BY = """
SELECT count(*) FROM (
    SELECT date_trunc('hour', e.timestamp), e.tenant_id, e.feature_id, e.model,
           e.prompt_template_id, e.routing_tier, e.provider, e.region, e.service_tier,
           e.above_tokens, e.off_peak,
           COALESCE(left(e.tags ->> NULLIF(%(tag_key)s, ''), 200), ''),
           count(*), count(e.price_id),
           sum(e.input_tokens), sum(e.cached_input_tokens), sum(e.cache_write_tokens),
           sum(e.cache_write_1h_tokens), sum(e.output_tokens), sum(e.reasoning_tokens),
           sum(e.grounding_tokens), sum(e.wasted_tokens), sum(e.queries), sum(e.cost),
           sum(e.chunks_retrieved), sum(e.chunks_used),
           count(e.reranker_changed_order), count(*) FILTER (WHERE e.reranker_changed_order),
           count(*) FILTER (WHERE e.outcome <> ''),
           count(*) FILTER (WHERE e.outcome = 'correct'),
           sum(e.cost) FILTER (WHERE e.outcome <> ''), sum(e.cost) FILTER (WHERE e.session <> ''),
           count(*) FILTER (WHERE e.prompt_hash <> ''),
           count(*) FILTER (WHERE e.escalated), count(e.cache_hit),
           count(*) FILTER (WHERE e.cache_hit), sum(e.cost) FILTER (WHERE e.cache_hit)
      FROM ingestion_usageevent e
     WHERE e.id > %(after)s
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
) hourly
"""


def timed(conn: psycopg.Connection, sql: str, params: dict) -> float:
    started = time.perf_counter()
    conn.execute(sql, params)
    return time.perf_counter() - started


def last_id(conn: psycopg.Connection) -> int:
    return conn.execute(f"SELECT coalesce(max(id), 0) FROM {harness.TABLE}").fetchone()[0]


def run(args: argparse.Namespace) -> dict:
    harness.database_prepare(args.database_url)
    harness.django_setup(args.database_url)
    from billing.rollups import rollups_update
    from billing.rollups.tags import tag_key

    now = datetime.now(UTC)
    harness.ledger_seed(now=now)
    conn = psycopg.connect(args.database_url)
    say(f"ledger: {args.events:,} events over {args.days} days (SQL from the app's seed rows)")
    fill_s = harness.ledger_fill(
        conn,
        prefix="f",
        count=args.events,
        end=now - timedelta(hours=1),
        span=timedelta(days=args.days),
    )
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    harness.checkpoint(conn)
    events = conn.execute(f"SELECT count(*) FROM {harness.TABLE}").fetchone()[0]
    say(f"ledger: {events:,} events in {fill_s:.0f} s")

    group_by_s = timed(conn, PLAIN_GROUP_BY, {"after": 0, "tag_key": tag_key()})
    harness.checkpoint(conn)
    first = rollups_update()
    result: dict = {
        "config": vars(args),
        "fill_seconds": fill_s,
        "first": {
            "events": events,
            "folded": first.events,
            "rows": first.rows,
            "seconds": first.seconds,
            "group_by_seconds": group_by_s,
        },
    }

    incremental = []
    for run_no in range(args.runs):
        after = last_id(conn)
        conn.autocommit = False
        harness.ledger_fill(
            conn,
            prefix=f"i{run_no}-",
            count=args.new_events,
            end=datetime.now(UTC),
            span=timedelta(minutes=10),
        )
        conn.autocommit = True
        harness.checkpoint(conn)
        group_s = timed(conn, PLAIN_GROUP_BY, {"after": after, "tag_key": tag_key()})
        fold = rollups_update()
        incremental.append(
            {"folded": fold.events, "seconds": fold.seconds, "group_by_seconds": group_s}
        )
    result["incremental"] = incremental
    conn.close()
    if not args.keep:
        harness.database_drop(args.database_url)

    seconds = [r["seconds"] for r in incremental]
    group_seconds = [r["group_by_seconds"] for r in incremental]
    say("")
    say(
        f"first fold       {first.seconds:7.2f} s  {first.events:,} of {events:,} events, "
        f"{first.rows:,} rollup rows; "
        f"target < 60 s: {harness.verdict(first.seconds < 60)}"
    )
    say(
        f"  plain GROUP BY {group_by_s:7.2f} s  "
        f"(fold / GROUP BY: {first.seconds / group_by_s:.1f}x)"
    )
    say(
        f"incremental fold of {args.new_events:,} events, {args.runs} runs: "
        f"median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s; target < 1 s: {harness.verdict(max(seconds) < 1)}"
    )
    say(
        f"  plain GROUP BY median {statistics.median(group_seconds):.3f} s "
        f"(fold / GROUP BY: {statistics.median(seconds) / statistics.median(group_seconds):.1f}x)"
    )
    missed = first.events != events or any(r["folded"] != args.new_events for r in incremental)
    if missed:
        say("FAILED: a fold missed events (a long transaction elsewhere on the server?)")
    result["ok"] = not missed
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=harness.DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000, help="ledger (10M)")
    parser.add_argument("--days", type=int, default=30, help="ledger span (30)")
    parser.add_argument("--new-events", type=int, default=10_000, help="per incremental fold (10k)")
    parser.add_argument("--runs", type=int, default=5, help="incremental folds (5)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    result = run(args)
    harness.result_write("rollup", result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
