"""Ingestion benchmark: how fast `POST /api/v1/events` stores usage events.

Phases (see bench/README.md):

1. a fresh database (dropped and recreated), migrated, with tenants and an operator key;
2. the app under gunicorn on 127.0.0.1, as in production (DEBUG off);
3. the raw baseline: PostgreSQL alone taking the same rows by `COPY`, from one client;
4. batch ingestion: concurrent clients posting pre-encoded batches of 1000 events;
5. single events: concurrent clients posting one event per request (latency);
6. optionally a table preloaded with N rows by `COPY` (and a comparison with the empty table).

Figures are printed and written to bench/results/ingest-<timestamp>.json; nothing is
asserted about timing. Only 127.0.0.1 is contacted and every loop ends by count.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"

HOST = "127.0.0.1"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
EVENTS_PATH = "/api/v1/events"
HEALTH_PATH = "/api/v1/health"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/finops_bench"
TABLE = "ingestion_usageevent"

TARGET_BATCH_VS_COPY = 0.40  # batch ingestion at least 40% of the COPY rate
TARGET_SINGLE_P99_MS = 50.0  # single events: p99 under 50 ms
TARGET_PRELOADED_VS_EMPTY = 0.80  # batch rate on a full table within 20% of the empty one

HTTP_TIMEOUT_S = 120.0
HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
COPY_LINES_PER_WRITE = 5000
PRELOAD_ROWS_PER_COPY = 500_000
TEMPLATE_POOL = 4096
TIMESTAMP_POOL = 1 << 16
MAX_FAILURES_KEPT = 10
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
OTHER_CPU_WARNING = 0.05
CPU_SAMPLE_INTERVAL_S = 0.5  # share of all CPUs used by processes outside the benchmark

# --- Realistic traffic -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    key: str
    templates: tuple[str, ...]
    models: tuple[tuple[str, int], ...]  # (model name, weight)
    weight: int


MODELS = {
    m.name: m
    for m in (
        ModelSpec("gpt-4o-2024-08-06", "openai"),
        ModelSpec("gpt-4o-mini", "openai"),
        ModelSpec("claude-3-5-sonnet-20241022", "anthropic"),
        ModelSpec("gemini-2.5-flash", "vertex_ai", reasoning=True),
        ModelSpec("mistral/mistral-small-latest", "mistral"),
        ModelSpec("amazon.nova-lite-v1:0", "bedrock"),
    )
}

FEATURES = (
    FeatureSpec(
        "document_summarization",
        ("summarize-v3", "summarize-long-v1"),
        (("gpt-4o-mini", 5), ("claude-3-5-sonnet-20241022", 2), ("gemini-2.5-flash", 3)),
        weight=25,
    ),
    FeatureSpec(
        "chat_assistant",
        ("chat-system-v7", "chat-persona-v2"),
        (("gpt-4o-2024-08-06", 4), ("claude-3-5-sonnet-20241022", 3), ("gpt-4o-mini", 3)),
        weight=30,
    ),
    FeatureSpec(
        "support_triage",
        ("triage-classify-v2",),
        (("gpt-4o-mini", 4), ("mistral/mistral-small-latest", 3), ("amazon.nova-lite-v1:0", 3)),
        weight=15,
    ),
    FeatureSpec(
        "code_review",
        ("review-diff-v4", "review-explain-v1"),
        (("claude-3-5-sonnet-20241022", 6), ("gpt-4o-2024-08-06", 4)),
        weight=10,
    ),
    FeatureSpec(
        "search_answering",
        ("rag-answer-v5", "rag-rewrite-query-v1"),
        (("gemini-2.5-flash", 6), ("gpt-4o-mini", 4)),
        weight=12,
    ),
    FeatureSpec(
        "invoice_extraction",
        ("extract-invoice-v2",),
        (("amazon.nova-lite-v1:0", 5), ("mistral/mistral-small-latest", 3), ("gpt-4o-mini", 2)),
        weight=8,
    ),
)

TENANTS = (("acme", 40), ("globex", 30), ("initech", 20), ("umbrella", 10))
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
OFFSETS = (UTC, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))


class EventFactory:
    """Events as clients post them: a few tenants, features, prompts and models."""

    def __init__(self, *, seed: int, spread: timedelta) -> None:
        self._rng = random.Random(seed)
        # Event ids come from a system-seeded generator: unique across phases and runs.
        self._ids = random.Random()
        self._spread_s = spread.total_seconds()
        self._tenants = [slug for slug, _ in TENANTS]
        self._tenant_cum = list(itertools.accumulate(w for _, w in TENANTS))
        self._feature_cum = list(itertools.accumulate(f.weight for f in FEATURES))
        self._model_cum = {
            f.key: list(itertools.accumulate(w for _, w in f.models)) for f in FEATURES
        }

    def new_id(self) -> str:
        return f"{self._ids.getrandbits(128):032x}"

    def event(
        self,
        now: datetime,
        *,
        feature: FeatureSpec | None = None,
        template: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        rng = self._rng
        if feature is None:
            feature = rng.choices(FEATURES, cum_weights=self._feature_cum)[0]
        if template is None:
            template = rng.choice(feature.templates)
        if tenant is None:
            tenant = rng.choices(self._tenants, cum_weights=self._tenant_cum)[0]
        if model is None:
            names = [name for name, _ in feature.models]
            model = rng.choices(names, cum_weights=self._model_cum[feature.key])[0]
        spec = MODELS[model]
        input_tokens = int(200 * 40 ** rng.random())  # 200..8000, log-uniform
        output_tokens = int(50 * 30 ** rng.random())  # 50..1500
        cached = rng.randint(0, input_tokens // 2) if rng.random() < 0.5 else 0
        at = now - timedelta(seconds=rng.random() * self._spread_s)
        event: dict[str, Any] = {
            "event_id": self.new_id(),
            "tenant": tenant,
            "timestamp": at.astimezone(rng.choice(OFFSETS)),
            "model": spec.name,
            "provider": spec.provider,
            "feature": feature.key,
            "prompt_template": template,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "user": f"user-{rng.randrange(5000):04d}",
            "session": f"sess-{rng.getrandbits(48):012x}",
            "latency_ms": int(150 + output_tokens * rng.uniform(6, 25)),
            "tags": {"env": "prod", "region": rng.choice(REGIONS)},
        }
        if spec.reasoning:
            event["reasoning_tokens"] = rng.randint(0, output_tokens // 2)
        return event

    def every_combination(self, now: datetime) -> list[dict[str, Any]]:
        """One event per (feature, template, model) and tenant: creates every feature and
        prompt template on first sight, as the API does."""
        events = []
        tenants = itertools.cycle(self._tenants)
        for feature in FEATURES:
            for template in feature.templates:
                for model, _ in feature.models:
                    events.append(
                        self.event(
                            now,
                            feature=feature,
                            template=template,
                            tenant=next(tenants),
                            model=model,
                        )
                    )
        return events


encoder = msgspec.json.Encoder()


def batch_bodies(
    factory: EventFactory, *, total: int, batch_size: int
) -> tuple[list[bytes], list[int]]:
    """Pre-encoded `{"events": [...]}` bodies and the event count of each."""
    now = datetime.now(UTC)
    bodies: list[bytes] = []
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(batch_size, remaining)
        bodies.append(encoder.encode({"events": [factory.event(now) for _ in range(size)]}))
        sizes.append(size)
        remaining -= size
    return bodies, sizes


def single_bodies(factory: EventFactory, *, total: int) -> list[bytes]:
    now = datetime.now(UTC)
    return [encoder.encode(factory.event(now)) for _ in range(total)]


# --- Rows as the API writes them, for COPY -------------------------------------------

# Every column the app's writer fills (the database fills `id` and columns with a
# database default); checked against the live table before use.
COPY_COLUMNS = tuple(
    """
    tenant_id event_id timestamp received_at feature_id prompt_template_id model provider
    region input_tokens output_tokens cached_input_tokens cache_write_tokens
    reasoning_tokens grounding_tokens wasted_tokens user session routing_tier latency_ms
    cache_hit escalated batch chunks_retrieved chunks_used reranker_changed_order outcome
    prompt_hash tags client_cost_usd cost currency price_id priced_at tenant_tier
    content_hash
    """.split()
)
COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: object) -> str:
    if value is None:
        return COPY_NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).translate(_COPY_ESCAPES)


@dataclass(frozen=True, slots=True)
class PriceRow:
    id: int
    currency: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None
    reasoning: Decimal | None

    def cost(self, *, input_: int, cached: int, output: int, reasoning: int) -> Decimal:
        """As `finops.pricing.token_cost` for a non-batch call without cache writes."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        reasoning_price = self.output if self.reasoning is None else self.reasoning
        total = (
            (input_ - cached) * self.input
            + cached * cached_price
            + (output - reasoning) * self.output
            + reasoning * reasoning_price
        )
        return total.scaleb(-6)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Ids the API resolved: tenants (id, tier), features, prompt templates, prices."""

    tenants: dict[str, tuple[int, str]]
    features: dict[str, int]
    prompts: dict[str, int]
    prices: dict[str, PriceRow]


def load_catalog(conn: psycopg.Connection) -> Catalog:
    tenants = {
        slug: (id_, tier)
        for id_, slug, tier in conn.execute("SELECT id, slug, tier FROM finops_tenant")
    }
    features = dict(conn.execute("SELECT key, id FROM ingestion_feature").fetchall())
    prompts = dict(conn.execute("SELECT key, id FROM ingestion_prompttemplate").fetchall())
    rows = conn.execute(
        "SELECT DISTINCT ON (model) model, id, currency, input_per_million, "
        "output_per_million, cached_input_per_million, reasoning_per_million "
        "FROM finops_modelprice WHERE model = ANY(%s) ORDER BY model, effective_from DESC",
        [list(MODELS)],
    ).fetchall()
    prices = {row[0]: PriceRow(*row[1:]) for row in rows}
    missing = sorted(set(MODELS) - prices.keys())
    if missing:
        raise BenchError(f"no price for {', '.join(missing)} in the default price table")
    return Catalog(tenants, features, prompts, prices)


def row_template(event: dict[str, Any], catalog: Catalog, *, priced_at: str) -> tuple[str, str]:
    """A COPY line of `event` split around its variable part: the text before `event_id`
    and the text after `timestamp` and `received_at` (both filled per row)."""
    tenant_id, tier = catalog.tenants[event["tenant"]]
    price = catalog.prices[event["model"]]
    reasoning = event.get("reasoning_tokens", 0)
    cost = price.cost(
        input_=event["input_tokens"],
        cached=event["cached_input_tokens"],
        output=event["output_tokens"],
        reasoning=reasoning,
    )
    rest = (
        catalog.features[event["feature"]],
        catalog.prompts[event["prompt_template"]],
        event["model"],
        event["provider"],
        "",  # region
        event["input_tokens"],
        event["output_tokens"],
        event["cached_input_tokens"],
        0,  # cache_write_tokens
        reasoning,
        0,  # grounding_tokens
        0,  # wasted_tokens
        event["user"],
        event["session"],
        "",  # routing_tier
        event["latency_ms"],
        None,  # cache_hit
        None,  # escalated
        False,  # batch
        None,  # chunks_retrieved
        None,  # chunks_used
        None,  # reranker_changed_order
        "",  # outcome
        "",  # prompt_hash
        encoder.encode(event["tags"]).decode(),
        None,  # client_cost_usd
        cost,
        price.currency,
        price.id,
        priced_at,
        tier,
        f"{random.getrandbits(256):064x}",  # content_hash
    )
    return f"{tenant_id}\t", "\t" + "\t".join(_copy_text(v) for v in rest) + "\n"


class RowSource:
    """Streams COPY lines shaped like the API's rows: a pool of row templates, fresh
    event ids, timestamps spread over `spread` before now. Memory is bounded by the pools."""

    def __init__(
        self, factory: EventFactory, catalog: Catalog, *, spread: timedelta, seed: int
    ) -> None:
        now = datetime.now(UTC)
        priced_at = now.isoformat()
        self._factory = factory
        self._templates = [
            row_template(factory.event(now), catalog, priced_at=priced_at)
            for _ in range(TEMPLATE_POOL)
        ]
        rng = random.Random(seed)
        spread_s = spread.total_seconds()
        self._timestamps = [
            (now - timedelta(seconds=rng.random() * spread_s)).isoformat()
            for _ in range(TIMESTAMP_POOL)
        ]

    def chunks(self, count: int) -> Iterator[bytes]:
        """`count` lines, `COPY_LINES_PER_WRITE` to a chunk."""
        templates, timestamps = self._templates, self._timestamps
        n_templates, ts_mask = len(templates), len(timestamps) - 1
        new_id = self._factory.new_id
        done = 0
        while done < count:
            size = min(COPY_LINES_PER_WRITE, count - done)
            lines = []
            for i in range(done, done + size):
                prefix, suffix = templates[(i * 7919) % n_templates]
                at = timestamps[(i * 40503) & ts_mask]
                lines.append(f"{prefix}{new_id()}\t{at}\t{at}{suffix}")
            yield "".join(lines).encode()
            done += size


# --- Database -------------------------------------------------------------------------


class BenchError(Exception):
    pass


def check_database_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise BenchError(f"--database-url must be a postgres:// URL, not {parts.scheme}://")
    if parts.hostname not in LOCAL_HOSTS:
        raise BenchError("--database-url must point at a local server (127.0.0.1)")
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise BenchError(
            f"refusing to drop database '{name}': the bench database's name must contain 'bench'"
        )
    return name


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def check_copy_columns(conn: psycopg.Connection) -> None:
    """COPY_COLUMNS must name every column the database does not fill itself (as the
    app's writer does: the id and columns with a database default are left out)."""
    rows = conn.execute(
        "SELECT column_name, column_default IS NOT NULL OR is_identity = 'YES' "
        "FROM information_schema.columns WHERE table_name = %s",
        [TABLE],
    ).fetchall()
    live = {name for name, _ in rows}
    required = {name for name, filled_by_db in rows if not filled_by_db}
    listed = set(COPY_COLUMNS)
    if not required <= listed <= live:
        raise BenchError(
            f"{TABLE} columns changed; update COPY_COLUMNS in bench/ingest.py "
            f"(missing {sorted(required - listed)}, gone {sorted(listed - live)})"
        )


def copy_rows(conn: psycopg.Connection, chunks: Iterator[bytes] | Sequence[bytes]) -> None:
    columns = ", ".join(f'"{c}"' for c in COPY_COLUMNS)
    with conn.cursor() as cur, cur.copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)
    conn.commit()


def wal_lsn(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def table_rows(conn: psycopg.Connection) -> int:
    row = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(row[0]) if row else 0


def table_size(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", [TABLE, TABLE]).fetchone()
    return {"table_bytes": int(row[0]), "index_bytes": int(row[1])} if row else {}


# --- CPU accounting (Linux /proc) -----------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")
KTHREADD = 2  # the parent of every kernel thread


def _stat(pid: str) -> tuple[int, str, float] | None:
    """(ppid, command, CPU seconds) of a process, None when it is gone."""
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    close = stat.rfind(")")
    fields = stat[close + 2 :].split()
    return (
        int(fields[1]),
        stat[stat.find("(") + 1 : close],
        (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
    )


def _is_our_postgres(pid: int, database: str) -> bool:
    """A backend of the bench database, or a shared background process (checkpointer,
    WAL writer...): not the client backends of other databases."""
    try:
        title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if f" {database} " in title:
        return True
    return title.startswith("postgres: ") and "(" not in title and "[local]" not in title


def _system_busy() -> tuple[float, float]:
    """CPU seconds all processors spent busy since boot, and of those in interrupts."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal
    ticks = [int(v) for v in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / CLOCK_TICKS, (ticks[5] + ticks[6]) / CLOCK_TICKS


@dataclass(slots=True)
class CpuSample:
    wall: float
    system: float
    interrupts: float
    client: float
    gunicorn: dict[int, float] = field(default_factory=dict)
    postgres: dict[int, float] = field(default_factory=dict)
    kernel: dict[int, float] = field(default_factory=dict)


class CpuMeter:
    """CPU seconds used by gunicorn (master and workers), PostgreSQL (the bench database's
    backends and the shared background processes), this client, the kernel (its threads,
    such as I/O writeback, and interrupts) and every other process."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.gunicorn_pid: int | None = None
        self._postgres_pids: dict[int, bool] = {}

    def sample(self) -> CpuSample:
        times = os.times()
        sample = CpuSample(time.perf_counter(), *_system_busy(), times.user + times.system)
        if not PROC.is_dir():
            return sample
        table = {}
        for entry in os.scandir(PROC):
            if entry.name.isdigit() and (stat := _stat(entry.name)) is not None:
                table[int(entry.name)] = stat
        ours = {self.gunicorn_pid} if self.gunicorn_pid in table else set()
        grew = bool(ours)
        while grew:
            children = {pid for pid, (ppid, _, _) in table.items() if ppid in ours} - ours
            ours |= children
            grew = bool(children)
        sample.gunicorn = {pid: table[pid][2] for pid in ours}
        for pid, (ppid, command, cpu) in table.items():
            if pid == KTHREADD or ppid == KTHREADD:
                sample.kernel[pid] = cpu
            if command != "postgres":
                continue
            if pid not in self._postgres_pids:
                self._postgres_pids[pid] = _is_our_postgres(pid, self.database)
            if self._postgres_pids[pid]:
                sample.postgres[pid] = cpu
        return sample

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """CPU use of the enclosed block, in the dict yielded (filled on exit).

        A thread samples every `CPU_SAMPLE_INTERVAL_S`: a process that ends meanwhile (a
        database connection closed after `CONN_MAX_AGE`) keeps what it used until its
        last sample."""
        used: dict[str, float] = {}
        start = self.sample()
        seen_gunicorn: dict[int, float] = {}
        seen_postgres: dict[int, float] = {}
        stop = threading.Event()

        def track() -> None:
            while not stop.wait(CPU_SAMPLE_INTERVAL_S):
                sample = self.sample()
                seen_gunicorn.update(sample.gunicorn)
                seen_postgres.update(sample.postgres)

        tracker = threading.Thread(target=track, daemon=True)
        tracker.start()
        try:
            yield used
        finally:
            stop.set()
            tracker.join()
            end = self.sample()
            end.gunicorn = {**seen_gunicorn, **end.gunicorn}
            end.postgres = {**seen_postgres, **end.postgres}
            used.update(self.used(start, end))

    @staticmethod
    def used(start: CpuSample, end: CpuSample) -> dict[str, float]:
        """CPU seconds between two samples."""

        def delta(a: dict[int, float], b: dict[int, float]) -> float:
            return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())

        wall = end.wall - start.wall
        used = {
            "wall_s": wall,
            "gunicorn_s": delta(start.gunicorn, end.gunicorn),
            "postgres_s": delta(start.postgres, end.postgres),
            "client_s": end.client - start.client,
            "kernel_s": delta(start.kernel, end.kernel) + end.interrupts - start.interrupts,
        }
        system = end.system - start.system
        used["other_s"] = max(0.0, system - sum(v for k, v in used.items() if k != "wall_s"))
        used["busy_share"] = system / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        return {k: round(v, 3) for k, v in used.items()}


def cpu_disturbed(cpu: dict[str, float]) -> bool:
    capacity = cpu["wall_s"] * (os.cpu_count() or 1)
    return capacity > 0 and cpu["other_s"] / capacity > OTHER_CPU_WARNING


def cpu_text(cpu: dict[str, float]) -> str:
    cores = os.cpu_count() or 1
    text = (
        f"CPU s: gunicorn {cpu['gunicorn_s']:.1f}, postgres {cpu['postgres_s']:.1f}, "
        f"client {cpu['client_s']:.1f}, kernel {cpu['kernel_s']:.1f}, "
        f"other processes {cpu['other_s']:.1f} "
        f"({cpu['busy_share']:.0%} of {cores} CPUs busy)"
    )
    if cpu_disturbed(cpu):
        text += "; WARNING: other processes used the CPUs, figures are disturbed"
    return text


# --- The app under gunicorn -----------------------------------------------------------


def app_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-not-for-any-deployment-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="finops.settings",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """gunicorn serving `finops.wsgi:application` on 127.0.0.1; always stopped on exit."""

    def __init__(self, *, env: dict[str, str], workers: int, threads: int, log: Path) -> None:
        self.port = free_port()
        self.workers = workers
        self.threads = threads
        self._env = env
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> Gunicorn:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "finops.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
        ]
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BenchError(f"gunicorn exited at start; see {relative(self._log_path)}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
            try:
                conn.request("GET", HEALTH_PATH)
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.2)
        raise BenchError(f"no 200 from {HEALTH_PATH} in {HEALTH_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # The session was started for gunicorn: its group is gunicorn and its workers.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- HTTP load ------------------------------------------------------------------------


class ItemOut(msgspec.Struct):
    status: str
    priced: bool = False


class BatchOut(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemOut]


class SingleOut(msgspec.Struct):
    status: str
    priced: bool


batch_decoder = msgspec.json.Decoder(BatchOut)
single_decoder = msgspec.json.Decoder(SingleOut)

# (request index, HTTP status, body) -> (error or None, events priced)
Checker = Callable[[int, int, bytes], tuple[str | None, int]]


@dataclass(slots=True)
class LoadResult:
    requests: int = 0
    events: int = 0
    priced: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    # (seconds since the start, events) of each accepted request, in completion order
    completions: list[tuple[float, int]] = field(default_factory=list)
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)


def run_load(
    *,
    port: int,
    key: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    clients: int,
    check: Checker,
) -> LoadResult:
    """`clients` threads, each on its own connection, post `bodies` until none is left."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = LoadResult()
    lock = threading.Lock()
    next_index = itertools.count()

    def fail(message: str) -> None:
        with lock:
            result.failures += 1
            if len(result.failure_samples) < MAX_FAILURES_KEPT:
                result.failure_samples.append(message[:500])

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        latencies: list[float] = []
        completions: list[tuple[float, int]] = []
        events = priced = 0
        try:
            while True:
                with lock:
                    index = next(next_index)
                if index >= len(bodies):
                    break
                started = time.perf_counter()
                try:
                    conn.request("POST", EVENTS_PATH, body=bodies[index], headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    fail(f"request {index}: {exc.__class__.__name__}: {exc}")
                    continue
                done = time.perf_counter()
                latencies.append(done - started)
                error, n_priced = check(index, response.status, data)
                if error:
                    fail(f"request {index}: {error}")
                else:
                    events += sizes[index]
                    priced += n_priced
                    completions.append((done - load_started, sizes[index]))
        finally:
            conn.close()
            with lock:
                result.latencies_s.extend(latencies)
                result.completions.extend(completions)
                result.requests += len(latencies)
                result.events += events
                result.priced += priced

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    load_started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - load_started
    result.completions.sort()
    return result


def rate_profile(completions: Sequence[tuple[float, int]], parts: int) -> list[float]:
    """Events/s over each successive `1/parts` of the events, in completion order: shows
    whether the rate drifts during a phase (e.g. full-page writes after a checkpoint)."""
    total = sum(n for _, n in completions)
    rates: list[float] = []
    if total == 0:
        return rates
    bound, events, part_events, part_start = total / parts, 0, 0, 0.0
    for at, n in completions:
        events += n
        part_events += n
        if events >= bound * (len(rates) + 1) - 1e-9 and at > part_start:
            rates.append(round(part_events / (at - part_start), 1))
            part_events, part_start = 0, at
    return rates


def batch_checker(sizes: Sequence[int]) -> Checker:
    def check(index: int, status: int, data: bytes) -> tuple[str | None, int]:
        if status != 202:
            return f"HTTP {status}: {data[:300]!r}", 0
        try:
            out = batch_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            return f"unreadable answer: {exc}", 0
        if out.accepted != sizes[index] or out.duplicates or out.rejected:
            return (
                f"accepted {out.accepted} of {sizes[index]} "
                f"(duplicates {out.duplicates}, rejected {out.rejected})"
            ), 0
        return None, sum(1 for item in out.results if item.priced)

    return check


def single_check(index: int, status: int, data: bytes) -> tuple[str | None, int]:
    if status != 202:
        return f"HTTP {status}: {data[:300]!r}", 0
    try:
        out = single_decoder.decode(data)
    except msgspec.MsgspecError as exc:
        return f"unreadable answer: {exc}", 0
    if out.status != "accepted":
        return f"status {out.status!r}", 0
    return None, int(out.priced)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; `q` in 0..100."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    if not values:
        return {}
    return {
        name: round(percentile(values, q) * 1000, 2)
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
    }


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


def say(message: str) -> None:
    print(message, flush=True)


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
    if failures:
        raise BenchError("warm-up failed: " + "; ".join(failures[:3]))
    ctx.catalog = load_catalog(ctx.admin)
    say(
        f"warm-up: {seed.events + warm.events + warm_single.events} events posted, "
        f"{len(ctx.catalog.features)} features and {len(ctx.catalog.prompts)} prompt "
        "templates created on first sight"
    )
    return {"events": seed.events + warm.events + warm_single.events}


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


# --- Setup, summary, main -------------------------------------------------------------


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def prepare_database(url: str, name: str, env: dict[str, str]) -> str:
    """Drop and recreate the database, migrate, create tenants; return an operator key."""
    say(f"database: recreating {name} ...")
    recreate_database(url, name)
    manage(env, "migrate", "--no-input")
    for slug, _ in TENANTS:
        manage(env, "createtenant", slug, "--tier", "pro")
    output = manage(env, "createapikey", "--name", "bench").strip().splitlines()
    if not output or not output[-1].startswith("fo_"):
        raise BenchError("createapikey printed no key on its last line")
    say(f"database: migrated; tenants {', '.join(s for s, _ in TENANTS)}; operator key created")
    return output[-1]


def check_flag(ok: bool) -> str:
    return "met" if ok else "NOT met"


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
        "--preload", type=int, default=0, help="rows COPYed into the table before phases 4-5"
    )
    parser.add_argument(
        "--compare-empty",
        action="store_true",
        help="run batch ingestion on the empty table first, then preload and run it again",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the event contents")
    args = parser.parse_args(argv)
    positive = ("workers", "threads", "copy_rows", "clients", "batch_size", "batch_events")
    for name in (*positive, "single_clients", "single_events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000 (the API's limit)")
    if args.preload < 0:
        parser.error("--preload must be >= 0")
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
