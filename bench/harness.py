"""What every benchmark shares: the bench database, a realistic event mix, the ledger
fill, the production serving stack (nginx in front of a web and a guard gunicorn pool)
and the JSON result. The load tools (wrk, hey) are in load.py."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench"
CACHE_REDIS_URL = "redis://127.0.0.1:6379/14"
GUARD_REDIS_URL = "redis://127.0.0.1:6379/15"
NGINX = "/usr/sbin/nginx"
TABLE = "ingestion_usageevent"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def say(message: str) -> None:
    print(message, flush=True)


class BenchError(Exception):
    pass


# --- Events as clients post them ------------------------------------------------------

TENANTS = (("acme", 40), ("globex", 30), ("initech", 20), ("umbrella", 10))
# model: (provider, routing tier, regions: where most of its calls run, then a second one)
MODELS = {
    "gpt-4o-2024-08-06": ("openai", "premium", ("us", "eu")),
    "gpt-4o-mini": ("openai", "cheap", ("us", "eu")),
    "claude-3-5-sonnet-20241022": ("anthropic", "premium", ("us", "eu")),
    "gemini-2.5-flash": ("vertex_ai", "standard", ("us-central1", "europe-west4")),
    "mistral/mistral-small-latest": ("mistral", "cheap", ("eu",)),
    "amazon.nova-lite-v1:0": ("bedrock", "cheap", ("us-east-1", "eu-west-1")),
}
SECOND_REGION = 0.15  # the share of a model's calls in its second region
# The offline features send a share of their calls through the vendors' batch APIs.
BATCH = {"document_summarization": 0.2, "invoice_extraction": 0.3}
REASONING = {"gemini-2.5-flash"}
# feature: (weight, prompt templates, (model, weight)..., share of calls with retrieval)
FEATURES: dict[str, tuple[int, tuple[str, ...], tuple[tuple[str, int], ...], float]] = {
    "document_summarization": (25, ("summarize-v3", "summarize-long-v1"), (
        ("gpt-4o-mini", 5), ("claude-3-5-sonnet-20241022", 2), ("gemini-2.5-flash", 3)), 0.0),
    "chat_assistant": (30, ("chat-system-v7", "chat-persona-v2"), (
        ("gpt-4o-2024-08-06", 4), ("claude-3-5-sonnet-20241022", 3), ("gpt-4o-mini", 3)), 0.3),
    "support_triage": (15, ("triage-classify-v2",), (
        ("gpt-4o-mini", 4), ("mistral/mistral-small-latest", 3), ("amazon.nova-lite-v1:0", 3)),
        0.0),
    "code_review": (10, ("review-diff-v4", "review-explain-v1"), (
        ("claude-3-5-sonnet-20241022", 6), ("gpt-4o-2024-08-06", 4)), 0.0),
    "search_answering": (12, ("rag-answer-v5", "rag-rewrite-query-v1"), (
        ("gemini-2.5-flash", 6), ("gpt-4o-mini", 4)), 1.0),
    "invoice_extraction": (8, ("extract-invoice-v2",), (
        ("amazon.nova-lite-v1:0", 5), ("mistral/mistral-small-latest", 3), ("gpt-4o-mini", 2)),
        0.0),
}  # fmt: skip


def event(rng: random.Random, *, event_id: str, now: datetime, spread: timedelta) -> dict:
    """One model call as a client reports it: log-uniform token counts (input 200..8000,
    output 50..1500), half the calls with cached input, reasoning tokens on reasoning
    models, retrieval on RAG calls, an outcome on a quarter, a prompt hash on 70% (a
    fifth of those one of the tenant's 20 popular prompts); 15% of a model's calls in its
    second region, a share of the offline features' calls in the batch tier."""
    feature = rng.choices(list(FEATURES), weights=[f[0] for f in FEATURES.values()])[0]
    _, templates, models, retrieval = FEATURES[feature]
    model = rng.choices([m for m, _ in models], weights=[w for _, w in models])[0]
    provider, routing_tier, regions = MODELS[model]
    tenant = rng.choices([t for t, _ in TENANTS], weights=[w for _, w in TENANTS])[0]
    template = rng.choice(templates)
    input_tokens = int(200 * 40 ** rng.random())
    output_tokens = int(50 * 30 ** rng.random())
    at = now - spread * rng.random()
    body: dict[str, Any] = {
        "event_id": event_id,
        "tenant": tenant,
        "timestamp": at.isoformat(),
        "model": model,
        "provider": provider,
        "region": regions[-1] if rng.random() < SECOND_REGION else regions[0],
        "feature": feature,
        "prompt_template": template,
        "input_tokens": input_tokens,
        "cached_input_tokens": rng.randint(0, input_tokens // 2) if rng.random() < 0.5 else 0,
        "output_tokens": output_tokens,
        "user": f"user-{rng.randrange(5000):04d}",
        "session": f"sess-{rng.getrandbits(48):012x}",
        "routing_tier": routing_tier,
        "latency_ms": int(150 + output_tokens * rng.uniform(6, 25)),
        "tags": {"env": "prod", "team": feature.split("_")[0]},
    }
    if rng.random() < BATCH.get(feature, 0):
        body["service_tier"] = "batch"
    if model in REASONING:
        body["reasoning_tokens"] = rng.randint(0, output_tokens // 2)
    if rng.random() < retrieval:
        retrieved = rng.choice((5, 8, 10, 20))
        body["retrieval"] = {
            "chunks_retrieved": retrieved,
            "chunks_used": rng.randint(1, retrieved),
        }
        body["reranker_changed_order"] = rng.random() < 0.3
    if rng.random() < 0.25:
        body["outcome"] = "correct" if rng.random() < 0.85 else "incorrect"
    if routing_tier:
        body["escalated"] = rng.random() < 0.05
    if rng.random() < 0.3:  # the features whose application caches their answers
        body["cache_hit"] = rng.random() < 0.15
    if rng.random() < 0.7:
        popular = rng.random() < 0.2
        text = f"{tenant}/{template}/{rng.randrange(20)}" if popular else str(rng.random())
        body["prompt_hash"] = hashlib.sha256(text.encode()).hexdigest()
    return body


# --- The bench database ---------------------------------------------------------------


def database_name(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in {"postgres", "postgresql"} or parts.hostname not in LOCAL_HOSTS:
        raise BenchError("the bench database must be a postgres:// URL on 127.0.0.1")
    if "bench" not in name:
        raise BenchError(f"refusing to drop '{name}': a bench database's name contains 'bench'")
    return name


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def app_env(database_url: str) -> dict[str, str]:
    """The app's environment as deployed (DEBUG off, Redis for the cache and the guard),
    on the bench database and the bench's Redis databases."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "FINOPS_HTTPS": "0",  # plain HTTP: no TLS in front of the bench's nginx
        "SECRET_KEY": "bench-only-secret-key-not-for-any-deployment-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "REDIS_URL": CACHE_REDIS_URL,
        "FINOPS_GUARD_REDIS_URL": GUARD_REDIS_URL,
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def redis_flush() -> None:
    import redis

    for url in (CACHE_REDIS_URL, GUARD_REDIS_URL):
        redis.Redis.from_url(url).flushdb()


def database_prepare(url: str) -> str:
    """Drop and recreate the bench database, migrate, create the tenants (pro tier) and
    an operator key with the app's management commands; empty the bench's Redis
    databases. Returns the key."""
    name = database_name(url)
    say(f"database: recreating {name}")
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis_flush()
    env = app_env(url)
    manage(env, "migrate", "--no-input")
    for slug, _ in TENANTS:
        manage(env, "createtenant", slug, "--tier", "pro")
    return api_key_create(url)


def api_key_create(url: str) -> str:
    """An operator key (ingest, read, manage) made by the app's management command."""
    out = manage(app_env(url), "createapikey", "--name", "bench", "--scopes", "ingest,read,manage")
    key = out.strip().splitlines()[-1]
    if not key.startswith("fo_"):
        raise BenchError("createapikey printed no key on its last line")
    return key


def database_drop(url: str) -> None:
    if "django.db" in sys.modules:  # this process's own connections first
        from django.db import connections

        connections.close_all()
    name = database_name(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    say(f"database: dropped {name}")


def django_setup(database_url: str) -> None:
    os.environ.update(app_env(database_url))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def event_columns(conn: psycopg.Connection) -> list[str]:
    """The columns the app writes: all but those the database fills (id, xact)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND column_default IS NULL AND is_identity = 'NO' ORDER BY ordinal_position",
        [TABLE],
    ).fetchall()
    return [r[0] for r in rows]


def checkpoint(conn: psycopg.Connection) -> None:
    """So that one phase's dirty pages are not flushed during the next."""
    conn.execute("CHECKPOINT")


# --- The ledger: rows the app wrote, multiplied by SQL --------------------------------

SEED_EVENTS = 4096

# Each new row copies a seed row (the app's: validated, priced, resolved) with its own
# id, time, session (4 calls each), content hash and prompt hash (a fifth resend the
# seed's). Ids and times ascend together, as events arrive.
_MULTIPLY = {
    "event_id": "%(prefix)s || lpad(g::text, 12, '0')",
    "timestamp": "%(end)s - %(span)s * (1 - g::float8 / %(count)s) - random() * interval '5 min'",
    "received_at": "%(end)s - %(span)s * (1 - g::float8 / %(count)s)",
    "session": "CASE WHEN s.session = '' THEN '' ELSE 's' || %(prefix)s || (g / 4)::text END",
    "prompt_hash": "CASE WHEN s.prompt_hash = '' OR g %% 5 = 0 THEN s.prompt_hash "
    "ELSE md5(%(prefix)s || g::text) || md5(g::text || %(prefix)s) END",
    "content_hash": "md5('c' || %(prefix)s || g::text) || md5(g::text || 'c' || %(prefix)s)",
}


def ledger_seed(*, now: datetime, count: int = SEED_EVENTS) -> None:
    """`count` events written by the app's own ingestion service (validated, priced,
    features and prompt templates created on first sight), in process."""
    import msgspec

    from ingestion.services import events_ingest

    rng = random.Random(1)
    for start in range(0, count, 1000):
        items = [
            msgspec.json.encode(
                event(rng, event_id=f"seed-{i}", now=now, spread=timedelta(hours=1))
            )
            for i in range(start, min(count, start + 1000))
        ]
        results = events_ingest(key_tenant=None, items=items, now=now)
        if any(r.status != "accepted" for r in results):
            raise BenchError(f"seed events not accepted: {results[0]}")


def ledger_fill(
    conn: psycopg.Connection, *, prefix: str, count: int, end: datetime, span: timedelta
) -> float:
    """Add `count` rows made from the seed rows by SQL, times spread over `span` before
    `end`, one million per statement. Returns the seconds."""
    columns = event_columns(conn)
    names = ", ".join(f'"{c}"' for c in columns)
    select = ", ".join(_MULTIPLY.get(c, f's."{c}"') for c in columns)
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS bench_seed AS SELECT row_number() OVER (ORDER BY id) - 1 "
        f"AS k, {names} FROM {TABLE} WHERE event_id LIKE 'seed-%'"
    )
    seeds = conn.execute("SELECT count(*) FROM bench_seed").fetchone()[0]
    # Every copy keeps its seed's (valid) foreign keys: skip the deferred checks, which
    # would queue one trigger event per row and key until the commit.
    conn.execute("SET session_replication_role = replica")
    started = time.perf_counter()
    for low in range(0, count, 1_000_000):
        high = min(count, low + 1_000_000)
        conn.execute(
            f"INSERT INTO {TABLE} ({names}) SELECT {select} "
            f"FROM generate_series(%(low)s, %(high)s - 1) g "
            "JOIN bench_seed s ON s.k = g %% %(seeds)s",
            {
                "prefix": prefix,
                "end": end,
                "span": span,
                "count": count,
                "low": low,
                "high": high,
                "seeds": seeds,
            },
        )
        conn.commit()
        if count >= 2_000_000:
            say(f"  fill: {high:>11,} / {count:,} rows  {time.perf_counter() - started:6.1f} s")
    conn.execute("SET session_replication_role = DEFAULT")
    conn.commit()
    return time.perf_counter() - started


# --- The serving stack: nginx in front of two gunicorn pools --------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Stack:
    url: str  # nginx, as deployed (deploy/nginx.conf.template)
    static_url: str  # the same nginx answering 200 itself: the serving floor
    key: str


def nginx_conf(tmp: Path, *, port: int, static_port: int, web: str, guard: str) -> str:
    """deploy/nginx.conf.template's server block as is, in a minimal main config."""
    server = (ROOT / "deploy" / "nginx.conf.template").read_text()
    for name, value in (
        ("NGINX_PORT", f"127.0.0.1:{port}"),
        ("FINOPS_WEB", web),
        ("FINOPS_GUARD", guard),
    ):
        server = server.replace(f"${{{name}}}", value)
    temps = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes auto;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temps}
{server}
    server {{
        listen 127.0.0.1:{static_port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _wait_ready(url: str, processes: Sequence[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise BenchError("a server process exited while starting; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s")


# The standard servers a pool may run, as deployed: gunicorn's sync workers (the default)
# or granian's WSGI workers, which keep nginx's upstream connections alive.
SERVERS = {
    "gunicorn": "gunicorn config.wsgi:application --workers {workers} --bind 127.0.0.1:{port}",
    "granian": "granian --interface wsgi --workers {workers} --blocking-threads 1 "
    "--host 127.0.0.1 --port {port} --no-ws config.wsgi:application",
}


@contextmanager
def serving_stack(
    *,
    database_url: str,
    key: str,
    web_workers: int,
    guard_workers: int,
    log: Path,
    server: str = "gunicorn",
) -> Iterator[Stack]:
    """nginx (deploy/nginx.conf.template) in front of a web and a guard pool of stock
    `gunicorn config.wsgi:application --workers N`, as deployed; always stopped."""
    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    tmp.chmod(0o755)  # nginx's workers (nobody) write request bodies under it
    ports = {name: free_port() for name in ("web", "guard", "nginx", "static")}
    env = app_env(database_url)
    processes: list[subprocess.Popen] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            for pool, workers in (("web", web_workers), ("guard", guard_workers)):
                command = SERVERS[server].format(workers=workers, port=ports[pool])
                processes.append(
                    subprocess.Popen(
                        [BIN / command.split()[0], *command.split()[1:]],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            conf = tmp / "nginx.conf"
            conf.write_text(
                nginx_conf(
                    tmp,
                    port=ports["nginx"],
                    static_port=ports["static"],
                    web=f"127.0.0.1:{ports['web']}",
                    guard=f"127.0.0.1:{ports['guard']}",
                )
            )
            processes.append(
                subprocess.Popen(
                    [
                        NGINX,
                        "-p",
                        str(tmp),
                        "-c",
                        str(conf),
                        "-g",
                        f"daemon off; pid {tmp / 'nginx.pid'}; error_log stderr;",
                    ],  # fmt: skip
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
            url = f"http://127.0.0.1:{ports['nginx']}"
            _wait_ready(f"{url}/api/v1/health", processes)
            say(
                f"stack: nginx :{ports['nginx']} -> web pool {web_workers} workers, "
                f"guard pool {guard_workers} workers (log {log.relative_to(ROOT)})"
            )
            yield Stack(url, f"http://127.0.0.1:{ports['static']}", key)
        finally:
            for p in reversed(processes):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in processes:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            shutil.rmtree(tmp, ignore_errors=True)


# --- Results --------------------------------------------------------------------------


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("-dirty" if dirty else "")


def result_write(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC)
    result = {
        "benchmark": name,
        "at": stamp.isoformat(timespec="seconds"),
        "revision": git_revision(),
        "argv": sys.argv[1:],
        "load_average": os.getloadavg(),  # at the end: a shared machine's other work
        **result,
    }
    path = RESULTS / f"{name}-{stamp:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    say(f"result: {path.relative_to(ROOT)}")
    return path


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
