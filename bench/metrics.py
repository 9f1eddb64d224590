"""The report endpoints (metrics, usage, projection and the newer reports) through the
serving stack, one request at a time, against GET /api/v1/health as the floor.

    make bench-metrics [BENCH_ARGS="--events 1000000"]

Target (issue 22): metrics and the reports under 500 ms on the 10M-event ledger.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import harness
import load
import psycopg
from harness import say

TARGET_MS = 500
TENANT = "acme"  # the tenant key's, and the one `tenant=` names
FEATURE = "chat_assistant"  # a feature of the ledger (harness.FEATURES)
HEALTH = "/api/v1/health"


@dataclass(frozen=True, slots=True)
class Url:
    """One timed GET. `path` may name {from} and {to} (the window: the ledger's last
    `--days` whole UTC days), {quarter} (YYYY-Qn, the quarter of the ledger's end),
    {tenant} and {feature}. `key` is whose key asks: "operator" or "tenant" (TENANT's).
    `unknown_400`: a 400 whose body holds this text means a parameter the endpoint does
    not take yet, i.e. not built, like a 404 from Django's URL resolver."""

    label: str
    path: str
    key: str = "operator"
    unknown_400: str = ""


WINDOW = "from={from}&to={to}"
URLS = (
    Url("metrics", f"/api/v1/metrics?{WINDOW}"),
    Url("metrics-tenant", f"/api/v1/metrics?{WINDOW}&tenant={{tenant}}"),
    Url("metrics-feature", f"/api/v1/metrics?{WINDOW}&feature={{feature}}"),
    Url("metrics-own", f"/api/v1/metrics?{WINDOW}", key="tenant"),
    Url("usage-feature-model", f"/api/v1/usage?{WINDOW}&group_by=feature,model&granularity=day"),
    Url("usage-tenant", f"/api/v1/usage?{WINDOW}&group_by=tenant&granularity=day"),
    Url("projection", "/api/v1/projection"),
    # Being written: skipped while not built.
    Url(
        "usage-region",
        f"/api/v1/usage?{WINDOW}&group_by=region,provider,service_tier&granularity=day",
        unknown_400="Unknown:",
    ),
    Url("savings", f"/api/v1/savings?{WINDOW}"),
    Url("quarterly", "/api/v1/reports/quarterly?quarter={quarter}"),
    Url("economics", f"/api/v1/economics?{WINDOW}"),
)


# --- The ledger -------------------------------------------------------------------------


def ledger_reusable(url: str, events: int) -> str:
    """Why the bench database cannot be reused for a ledger of `events` ('' if it can): it
    must hold exactly the seed rows plus `events`, every one of them folded (the hourly
    rollups' calls add up to the events)."""
    name = harness.database_name(url)
    with psycopg.connect(harness.admin_url(url)) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return f"no database {name}"
    try:
        with psycopg.connect(url) as conn:
            stored = conn.execute(f"SELECT count(*) FROM {harness.TABLE}").fetchone()[0]
            folded = ledger_folded(conn)
    except psycopg.Error as exc:
        return f"unreadable ({exc.__class__.__name__})"
    expected = events + harness.SEED_EVENTS
    if stored != expected:
        return f"{stored:,} events stored, not {expected:,}"
    if folded != stored:
        return f"{folded:,} of its {stored:,} events folded"
    return ""


def ledger_folded(conn: psycopg.Connection) -> int:
    """The events the rollups hold: their hourly rows' calls."""
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM billing_usagerollup WHERE grain = 'hour'"
    ).fetchone()
    return int(row[0])


def ledger_reuse(args: argparse.Namespace) -> list[str]:
    """The bench database as it is, migrated; returns the migrations that applied."""
    say(f"ledger: reusing the bench database ({args.events:,} events, folded)")
    harness.redis_flush()
    out = harness.manage(harness.app_env(args.database_url), "migrate", "--no-input")
    applied = [line.split()[1] for line in out.splitlines() if "Applying" in line]
    if applied:
        say(f"ledger: migrations applied since it was folded: {', '.join(applied)}; "
            "its rollups stay as folded (run without --reuse to fold anew)")  # fmt: skip
    harness.django_setup(args.database_url)
    return applied


def ledger_new(args: argparse.Namespace) -> None:
    """A new bench database: the app's seed rows multiplied into `--events` over `--days`,
    ending an hour ago (harness)."""
    harness.database_prepare(args.database_url)
    harness.django_setup(args.database_url)
    now = datetime.now(UTC)
    harness.ledger_seed(now=now)
    say(f"ledger: {args.events:,} events over {args.days} days (SQL from the app's seed rows)")
    with psycopg.connect(args.database_url) as conn:
        harness.ledger_fill(
            conn,
            prefix="f",
            count=args.events,
            end=now - timedelta(hours=1),
            span=timedelta(days=args.days),
        )


def ledger_make(args: argparse.Namespace) -> dict:
    """The bench database with a folded ledger of `--events` over `--days`: reused as it
    is with `--reuse` when it holds one (migrated, analysed), made afresh otherwise; then
    one `rollups_update()` (nothing left to fold on a reused ledger)."""
    why = ledger_reusable(args.database_url, args.events) if args.reuse else "no --reuse"
    applied: list[str] = []
    if not why:
        applied = ledger_reuse(args)
    else:
        if args.reuse:
            say(f"ledger: cannot reuse the bench database: {why}")
        ledger_new(args)
    from billing.rollups import rollups_update

    fold = rollups_update()
    say(f"fold: {fold.events:,} events, {fold.rows:,} rollup rows in {fold.seconds:.1f} s")
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute("ANALYZE" if not why else "VACUUM ANALYZE")
        harness.checkpoint(conn)
        stored, first, last = conn.execute(
            f'SELECT count(*), min("timestamp"), max("timestamp") FROM {harness.TABLE}'
        ).fetchone()
        folded = ledger_folded(conn)
    return {
        "reused": not why,
        "migrations_applied": applied,
        "events": stored,
        "folded": folded,
        "first": first,
        "last": last,
        "fold_events": fold.events,
        "fold_seconds": fold.seconds,
    }


def parameters(last: datetime, days: int) -> dict[str, str]:
    """The window: the `days` whole UTC days up to the end of the ledger's last day; the
    quarter of that day; the tenant and the feature asked about."""
    last = last.astimezone(UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=days)
    day = end - timedelta(days=1)
    return {
        "from": f"{start:%Y-%m-%dT%H:%M:%SZ}",
        "to": f"{end:%Y-%m-%dT%H:%M:%SZ}",
        "quarter": f"{day.year}-Q{(day.month - 1) // 3 + 1}",
        "tenant": TENANT,
        "feature": FEATURE,
    }


def key_create(url: str, *, scopes: str, tenant: str | None = None) -> str:
    """A key made by the app's management command (a tenant's with `tenant`)."""
    extra = ["--tenant", tenant] if tenant else []
    out = harness.manage(harness.app_env(url), "createapikey", "--name", "bench metrics",
                         "--scopes", scopes, *extra)  # fmt: skip
    key = out.strip().splitlines()[-1]
    if not key.startswith("fo_"):
        raise harness.BenchError("createapikey printed no key on its last line")
    return key


# --- The requests -------------------------------------------------------------------------


def get_once(url: str, key: str) -> tuple[int, str, str]:
    """One GET: status, content type, body (cut)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers.get("Content-Type", ""), ""
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        return exc.code, exc.headers.get("Content-Type", ""), body[:400]


def check(url: str, entry: Url, key: str) -> tuple[str, str]:
    """The untimed first request: ("ok", ""), ("not built", why) or ("failed", why).
    Not built: Django's own 404 page (no route: DRF views answer JSON), or a 400 naming
    a parameter the endpoint does not take yet (`entry.unknown_400`)."""
    status, content_type, body = get_once(url, key)
    if status == 200:
        return "ok", ""
    if status == 404 and content_type.startswith("text/html") and "Not Found" in body:
        return "not built", "404 from the URL resolver"
    if status == 400 and entry.unknown_400 and entry.unknown_400 in body:
        return "not built", f"400: {body.strip()}"
    return "failed", f"{status}: {body.strip()}"


def hey_get(url: str, *, key: str | None, requests: int) -> dict:
    """`requests` GETs one after the other (hey -c 1), every latency from hey's CSV."""
    command = ["hey", "-n", str(requests), "-c", "1", "-o", "csv"]
    if key:
        command += ["-H", f"Authorization: Bearer {key}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise harness.BenchError(f"hey failed: {done.stderr.strip()}")
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    for line in done.stdout.splitlines()[1:]:
        fields = line.split(",")
        latencies.append(float(fields[0]) * 1000)
        statuses[fields[6]] = statuses.get(fields[6], 0) + 1
    latencies.sort()
    if not latencies:
        raise harness.BenchError(f"hey answered no latency for {url}")
    shown = [f"Authorization: Bearer {key[:15]}..." if key and c.startswith("Auth") else c
             for c in command]  # fmt: skip
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "p50_ms": load.percentile(latencies, 50),
        "p90_ms": load.percentile(latencies, 90),
        "max_ms": latencies[-1],
        "latencies_ms": latencies,
        "command": " ".join([*shown, url]),
    }


def time_url(stack: harness.Stack, entry: Url, *, path: str, keys: dict, repeat: int) -> dict:
    """Check (the untimed warm-up), then `repeat` timed GETs if the endpoint answers."""
    url = f"{stack.url}{path}"
    state, why = check(url, entry, keys[entry.key])
    figures: dict = {"label": entry.label, "path": path, "key": entry.key, "state": state}
    if state != "ok":
        say(f"  {entry.label:<20} {'skipped (not built)' if state == 'not built' else 'FAILED'}: "
            f"{why}")  # fmt: skip
        return figures | {"why": why}
    figures |= hey_get(url, key=keys[entry.key], requests=repeat)
    if set(figures["statuses"]) != {"200"}:
        figures["state"] = "failed"
    say(f"  {entry.label:<20} p50 {figures['p50_ms']:7.1f} ms  p90 {figures['p90_ms']:7.1f} ms  "
        f"max {figures['max_ms']:7.1f} ms  {figures['statuses']}")  # fmt: skip
    return figures


def selected(only: str | None) -> tuple[Url, ...]:
    if not only:
        return URLS
    labels = [label.strip() for label in only.split(",") if label.strip()]
    unknown = sorted(set(labels) - {u.label for u in URLS})
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; "
                         f"choose among {', '.join(u.label for u in URLS)}")  # fmt: skip
    return tuple(u for u in URLS if u.label in labels)


# --- The run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, urls: tuple[Url, ...]) -> dict:
    ledger = ledger_make(args)
    params = parameters(ledger["last"], args.days)
    keys = {
        "operator": key_create(args.database_url, scopes="read"),
        "tenant": key_create(args.database_url, scopes="read", tenant=TENANT),
    }
    say(f"window: {params['from']} .. {params['to']}, quarter {params['quarter']}")
    result: dict = {"config": vars(args), "ledger": ledger, "parameters": params}
    with harness.serving_stack(
        database_url=args.database_url,
        key=keys["operator"],
        web_workers=args.workers,
        guard_workers=1,
        log=harness.RESULTS / "metrics-servers.log",
    ) as stack:
        say(f"timing: each URL {args.repeat} times, one at a time (hey -c 1), after one untimed")
        health_entry = Url("health", HEALTH)
        result["health"] = time_url(stack, health_entry, path=HEALTH, keys=keys,
                                    repeat=args.repeat)  # fmt: skip
        result["urls"] = [
            time_url(stack, entry, path=entry.path.format(**params), keys=keys, repeat=args.repeat)
            for entry in urls
        ]
    return result


def report(result: dict) -> bool:
    """Prints the table; True when every request built answered 200 and nothing missed
    the fold."""
    ledger, health = result["ledger"], result["health"]
    say("")
    say(f"ledger: {ledger['events']:,} events ({ledger['first']:%Y-%m-%d} .. "
        f"{ledger['last']:%Y-%m-%d %H:%M}), {ledger['folded']:,} folded")  # fmt: skip
    say(f"{'URL':<20} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}  p90 < {TARGET_MS} ms")
    ok = health["state"] == "ok" and ledger["folded"] == ledger["events"]
    for figures in [health, *result["urls"]]:
        if figures["state"] == "not built":
            say(f"{figures['label']:<20} skipped (not built)")
            continue
        if figures["state"] == "failed" and "p50_ms" not in figures:
            say(f"{figures['label']:<20} FAILED: {figures['why'][:100]}")
            ok = False
            continue
        ok = ok and figures["state"] == "ok"
        floor = " (the floor)" if figures is health else ""
        verdict = floor or f"  {harness.verdict(figures['p90_ms'] < TARGET_MS)}"
        say(f"{figures['label']:<20} {figures['p50_ms']:8.1f} {figures['p90_ms']:8.1f} "
            f"{figures['max_ms']:8.1f}{verdict}")  # fmt: skip
    if ledger["folded"] != ledger["events"]:
        say("FAILED: the fold missed events (a long transaction elsewhere on the server?)")
    if not ok:
        say("FAILED: unexpected answers; see the result file and bench/results/metrics-servers.log")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=harness.DATABASE_URL)
    parser.add_argument("--events", type=int, default=10_000_000, help="ledger (10M)")
    parser.add_argument("--days", type=int, default=30, help="ledger span and window (30)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per URL (20)")
    parser.add_argument("--workers", type=int, default=2, help="web pool workers (2)")
    parser.add_argument(
        "--only",
        metavar="LABEL[,LABEL]",
        help=f"these URLs only: {', '.join(u.label for u in URLS)}",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the bench database's ledger if it holds --events events, all folded",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    urls = selected(args.only)
    try:
        result = run(args, urls)
    except BaseException:
        if not args.keep:
            harness.database_drop(args.database_url)
        raise
    if not args.keep:
        harness.database_drop(args.database_url)
    result["ok"] = report(result)
    harness.result_write("metrics", result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
