"""The guard (POST /api/v1/guard) through the serving stack, closed loop then paced,
against nginx answering 200 itself at the same load.

    make bench-guard [BENCH_ARGS="--events 1000000"]

Target (issue "Guard"): p99 under 5 ms at 16 clients, paced at half the closed-loop
rate, with 10 million events in the ledger.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import harness
import load
import msgspec
import psycopg
from harness import say

# (tenant, feature, model): one hey process each, so the answers mix allow, downgrade
# (acme's day budget on search_answering is reached) and block (umbrella's month).
REQUESTS = (
    ("acme", "chat_assistant", "gpt-4o-2024-08-06"),
    ("acme", "search_answering", "gemini-2.5-flash"),
    ("umbrella", "support_triage", "gpt-4o-mini"),
    ("globex", "code_review", "claude-3-5-sonnet-20241022"),
)
DECISIONS = ("allow", "downgrade", "block", "allow")
REACHED_MONTH = "umbrella"
REACHED_DAY = ("acme", "search_answering")
FALLBACK = "amazon.nova-lite-v1:0"
# The end users asking, named as the ledger's (user-0000 to user-4999: a counter seeds
# from that user's events in the tenant, if any): user i asks request kind i % 4. wrk
# cycles through all 400; a paced hey client sends one body, so that phase has 16 users
# (4 per kind).
USERS = tuple(f"user-{i * 12:04d}" for i in range(400))
# Limits on every end user and on the asking key, never reached at the bench's rates.
USER_REQUESTS_PER_MINUTE = 10**9
USER_TOKENS_PER_HOUR = 10**12


def api(stack: harness.Stack, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{stack.url}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def spend(
    conn: psycopg.Connection,
    *,
    since: str,
    tenant: str | None = None,
    feature: str | None = None,
    model: str | None = None,
) -> Decimal:
    row = conn.execute(
        "SELECT coalesce(sum(e.cost), 0) FROM ingestion_usageevent e "
        "JOIN finops_tenant t ON t.id = e.tenant_id "
        "LEFT JOIN ingestion_feature f ON f.id = e.feature_id "
        "WHERE e.timestamp >= date_trunc(%(since)s, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' "
        "AND (%(tenant)s::text IS NULL OR t.slug = %(tenant)s) "
        "AND (%(feature)s::text IS NULL OR f.key = %(feature)s) "
        "AND (%(model)s::text IS NULL OR e.model = %(model)s)",
        {"since": since, "tenant": tenant, "feature": feature, "model": model},
    ).fetchone()
    return row[0]


def limits_set(
    stack: harness.Stack, conn: psycopg.Connection, *, requests_window: str = "minute"
) -> tuple[list[dict], list[dict]]:
    """Through the API, relative to the ledger's spend: a fallback model on every
    feature; a monthly budget (block) on each tenant, reached for one; a daily budget
    (downgrade) on one tenant's feature, reached; an hourly one on a model, not reached;
    on each tenant, a monthly budget (downgrade) for each end user (`*`) of twice the
    tenant's month, and rate limits for each end user of 10^9 requests a minute (or
    `requests_window`) and 10^12 tokens an hour; a monthly budget (block) on the bench's
    API key of twice all usage's month. None of the new ones is reached, so the answers
    stay those of DECISIONS. Every request then checks 6 or 7 counters (2 or 3 budgets,
    its user's budget, the key's, its user's requests and tokens). Returns budgets and
    rate limits."""
    for feature in harness.FEATURES:
        api(stack, "PATCH", f"/api/v1/features/{feature}", {"fallback_model": FALLBACK})
    budgets = []
    for tenant, _ in harness.TENANTS:
        month = spend(conn, since="month", tenant=tenant)
        amount = month / 2 if tenant == REACHED_MONTH else 2 * month + 100
        budgets.append({"tenant": tenant, "period": "month", "amount": amount, "action": "block"})
        # Per tenant, as a tenant sets its own: the seed of one user's counter then
        # reads the events' (tenant, user, timestamp) index.
        budgets.append(
            {
                "tenant": tenant,
                "user": "*",
                "period": "month",
                "amount": 2 * month + 100,
                "action": "downgrade",
            }
        )
    day = spend(conn, since="day", tenant=REACHED_DAY[0], feature=REACHED_DAY[1])
    budgets.append(
        {
            "tenant": REACHED_DAY[0],
            "feature": REACHED_DAY[1],
            "period": "day",
            "amount": day / 2,
            "action": "downgrade",
        }
    )
    hour = spend(conn, since="hour", model="gpt-4o-2024-08-06")
    budgets.append(
        {
            "model": "gpt-4o-2024-08-06",
            "period": "hour",
            "amount": 2 * hour + 100,
            "action": "block",
        }
    )
    budgets.append(
        {
            "api_key": stack.key.split("_")[1],  # fo_<prefix>_<secret>
            "period": "month",
            "amount": 2 * spend(conn, since="month") + 100,
            "action": "block",
        }
    )
    for budget in budgets:
        budget["amount"] = str(Decimal(budget["amount"]).quantize(Decimal("0.000001")))
        budget["name"] = f"bench {budget['period']}"
        api(stack, "POST", "/api/v1/budgets", budget)
    rate_limits = []
    for tenant, _ in harness.TENANTS:
        rate_limits.append(
            {"tenant": tenant, "user": "*", "window": requests_window,
             "requests": USER_REQUESTS_PER_MINUTE}
        )  # fmt: skip
        rate_limits.append(
            {"tenant": tenant, "user": "*", "window": "hour", "tokens": USER_TOKENS_PER_HOUR}
        )
    for rate_limit in rate_limits:
        rate_limit["name"] = f"bench {rate_limit['window']}"
        api(stack, "POST", "/api/v1/rate-limits", rate_limit)
    return budgets, rate_limits


def decisions_ask(stack: harness.Stack, bodies: list[bytes]) -> dict:
    """The answer to each request kind, asked for its first user."""
    decisions = {}
    for (tenant, feature, model), body in zip(REQUESTS, bodies, strict=False):
        answer = api(stack, "POST", "/api/v1/guard", msgspec.json.decode(body))
        decisions[f"{tenant}/{feature}/{model}"] = answer
        say(
            f"guard: {tenant}/{feature}/{model} -> {answer['decision']} {answer['model']} "
            f"({answer['error_type']})"
        )
    return decisions


def run(args: argparse.Namespace) -> dict:
    if args.reuse:
        harness.database_name(args.database_url)
        harness.redis_flush()
        key = harness.api_key_create(args.database_url)
        harness.django_setup(args.database_url)
    else:
        key = harness.database_prepare(args.database_url)
        harness.django_setup(args.database_url)
        harness.ledger_seed(now=datetime.now(UTC))
    from billing.rollups import rollups_update

    conn = psycopg.connect(args.database_url)
    if not args.reuse:
        say(f"ledger: {args.events:,} events over 30 days")
        harness.ledger_fill(
            conn,
            prefix="f",
            count=args.events,
            end=datetime.now(UTC) - timedelta(hours=1),
            span=timedelta(days=30),
        )
    rollups_update()
    # Above the rollups' watermark: a counter is seeded from rollups and these events.
    harness.ledger_fill(
        conn,
        prefix=f"t{datetime.now(UTC):%H%M%S}-",
        count=args.tail_events,
        end=datetime.now(UTC),
        span=timedelta(hours=1),
    )
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    events = conn.execute(f"SELECT count(*) FROM {harness.TABLE}").fetchone()[0]
    result: dict = {"config": vars(args), "ledger_events": events}

    bodies = [
        msgspec.json.encode({"tenant": t, "feature": f, "model": m, "user": user})
        for (t, f, m), user in zip(REQUESTS * (len(USERS) // len(REQUESTS)), USERS, strict=True)
    ]
    lines = "\n".join(b.decode() for b in bodies)
    script = f"""
expected = 200
local bodies = {{}}
for line in ([[{lines}]]):gmatch("[^\\n]+") do table.insert(bodies, line) end
local n = 0
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}"}}
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/guard", headers, bodies[n % #bodies + 1])
end
{load.WRK_REPORT}"""
    static_script = f"expected = 200\n{load.WRK_REPORT}"

    with harness.serving_stack(
        database_url=args.database_url,
        key=key,
        web_workers=2,
        guard_workers=args.workers,
        server=args.server,
        log=harness.RESULTS / "guard-servers.log",
    ) as stack:
        result["budgets"], result["rate_limits"] = limits_set(
            stack, conn, requests_window=args.requests_window
        )
        guard_url = f"{stack.url}/api/v1/guard"
        result["decisions"] = decisions_ask(stack, bodies)
        load.wrk(guard_url, script=script, connections=args.clients, seconds=5)  # warm-up
        harness.checkpoint(conn)

        say(f"closed loop: wrk, {args.clients} connections, {args.seconds} s")
        closed = load.wrk(guard_url, script=script, connections=args.clients, seconds=args.seconds)
        static_closed = load.wrk(
            stack.static_url, script=static_script, connections=args.clients, seconds=args.seconds
        )
        rate = args.rate or closed["rate"] / 2
        requests = int(rate * args.seconds)
        say(f"paced: hey, {args.clients} clients, {rate:,.0f} requests/s, {requests:,} requests")
        paced = load.hey_paced(
            guard_url, bodies=bodies, key=key, rate=rate, clients=args.clients, requests=requests
        )
        static_paced = load.hey_paced(
            stack.static_url,
            bodies=[b""] * len(REQUESTS),
            key=key,
            rate=rate,
            clients=args.clients,
            requests=requests,
        )
        # Informative: reservations of the calls let through (never settled here: no
        # events follow) count on the spend limits for FINOPS_GUARD_RESERVATION_TTL.
        say("after the load:")
        result["decisions_after"] = decisions_ask(stack, bodies)
    conn.close()
    result.update(
        closed=closed, paced=paced, static_closed=static_closed, static_paced=static_paced
    )
    if not args.keep:
        harness.database_drop(args.database_url)
    harness.redis_flush()

    decided = tuple(a["decision"] for a in result["decisions"].values())
    ok = (
        decided == DECISIONS
        and closed["unexpected"] == closed["socket_errors"] == 0
        and set(paced["statuses"]) == {"200"}
        and paced["requests"] == paced["expected"]
    )
    result["ok"] = ok
    say("")
    say(f"ledger: {events:,} events")
    for name, figures in (
        ("guard closed loop", closed),
        ("nginx 200 closed", static_closed),
        ("guard paced", paced),
        ("nginx 200 paced", static_paced),
    ):
        say(
            f"{name:<18} {figures['rate']:>8,.0f} requests/s  p50 {figures['p50_ms']:6.2f} ms  "
            f"p90 {figures['p90_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
            f"max {figures['max_ms']:7.2f} ms"
        )
    say(f"guard closed-loop rate / nginx 200: {closed['rate'] / static_closed['rate']:.1%}")
    say(f"paced: offered {rate:,.0f} requests/s, hey sent {paced['rate']:,.0f} (fewer: saturated)")
    say(
        f"paced p99: guard {paced['p99_ms']:.2f} ms, nginx 200 {static_paced['p99_ms']:.2f} ms; "
        f"target < 5 ms: {harness.verdict(paced['p99_ms'] < 5)}"
    )
    if not ok:
        say("FAILED: unexpected answers; see the result file")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=harness.DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000, help="ledger (10M)")
    parser.add_argument("--tail-events", type=int, default=20_000, help="above the watermark (20k)")
    parser.add_argument("--reuse", action="store_true", help="use the bench database as it is")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--workers", type=int, default=2, help="guard pool workers (2)")
    parser.add_argument(
        "--server", choices=sorted(harness.SERVERS), default="gunicorn", help="the pools' server"
    )
    parser.add_argument("--clients", type=int, default=16, help="connections (16)")
    parser.add_argument("--seconds", type=int, default=30, help="each phase (30)")
    parser.add_argument("--rate", type=float, help="paced rate (half the closed loop's)")
    parser.add_argument(
        "--requests-window",
        choices=("minute", "hour", "day"),
        default="minute",
        help="window of the per-user request rate limit (minute)",
    )
    args = parser.parse_args()
    try:
        result = run(args)
    except BaseException:
        # Leave nothing behind on a failure either (the serving stack stops on its own).
        if not args.keep:
            harness.database_drop(args.database_url)
        harness.redis_flush()
        raise
    harness.result_write("guard", result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
