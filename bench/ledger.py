"""Shared by the benchmarks: realistic events, rows shaped as the API writes them for
COPY, and the bench database (drop, recreate, migrate, tenants, operator key)."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import psycopg

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TABLE = "ingestion_usageevent"
COPY_LINES_PER_WRITE = 5000
PRELOAD_ROWS_PER_COPY = 500_000
TEMPLATE_POOL = 4096
TIMESTAMP_POOL = 1 << 16


# --- Realistic traffic -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    tier: str  # the routing tier a router sends to this model: cheap, standard, premium
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """A feature's traffic. The shares are of its calls: `retrieval` retrieve chunks
    (RAG), `reranked` of those run a reranker, `outcome` get a verdict (feedback or an
    eval), `hot_prompts` send one of the day's popular prompts (a repeated prompt hash);
    `sessions` tells whether its calls come in sessions of several calls."""

    key: str
    templates: tuple[str, ...]
    models: tuple[tuple[str, int], ...]  # (model name, weight)
    weight: int
    task_type: str = ""
    retrieval: float = 0.0
    reranked: float = 0.0
    outcome: float = 0.0
    hot_prompts: float = 0.0
    sessions: bool = True


MODELS = {
    m.name: m
    for m in (
        ModelSpec("gpt-4o-2024-08-06", "openai", "premium"),
        ModelSpec("gpt-4o-mini", "openai", "cheap"),
        ModelSpec("claude-3-5-sonnet-20241022", "anthropic", "premium"),
        ModelSpec("gemini-2.5-flash", "vertex_ai", "standard", reasoning=True),
        ModelSpec("mistral/mistral-small-latest", "mistral", "cheap"),
        ModelSpec("amazon.nova-lite-v1:0", "bedrock", "cheap"),
    )
}

FEATURES = (
    FeatureSpec(
        "document_summarization",
        ("summarize-v3", "summarize-long-v1"),
        (("gpt-4o-mini", 5), ("claude-3-5-sonnet-20241022", 2), ("gemini-2.5-flash", 3)),
        weight=25,
        task_type="summarization",
        outcome=0.1,
        hot_prompts=0.1,
    ),
    FeatureSpec(
        "chat_assistant",
        ("chat-system-v7", "chat-persona-v2"),
        (("gpt-4o-2024-08-06", 4), ("claude-3-5-sonnet-20241022", 3), ("gpt-4o-mini", 3)),
        weight=30,
        task_type="chat",
        retrieval=0.3,
        outcome=0.1,
        hot_prompts=0.05,
    ),
    FeatureSpec(
        "support_triage",
        ("triage-classify-v2",),
        (("gpt-4o-mini", 4), ("mistral/mistral-small-latest", 3), ("amazon.nova-lite-v1:0", 3)),
        weight=15,
        task_type="classification",
        outcome=0.5,
        hot_prompts=0.35,
        sessions=False,
    ),
    FeatureSpec(
        "code_review",
        ("review-diff-v4", "review-explain-v1"),
        (("claude-3-5-sonnet-20241022", 6), ("gpt-4o-2024-08-06", 4)),
        weight=10,
        task_type="generation",
        outcome=0.3,
        hot_prompts=0.02,
    ),
    FeatureSpec(
        "search_answering",
        ("rag-answer-v5", "rag-rewrite-query-v1"),
        (("gemini-2.5-flash", 6), ("gpt-4o-mini", 4)),
        weight=12,
        task_type="retrieval",
        retrieval=1.0,
        reranked=0.8,
        outcome=0.2,
        hot_prompts=0.2,
    ),
    FeatureSpec(
        "invoice_extraction",
        ("extract-invoice-v2",),
        (("amazon.nova-lite-v1:0", 5), ("mistral/mistral-small-latest", 3), ("gpt-4o-mini", 2)),
        weight=8,
        task_type="extraction",
        outcome=0.6,
        hot_prompts=0.25,
        sessions=False,
    ),
)

TENANTS = (("acme", 40), ("globex", 30), ("initech", 20), ("umbrella", 10))
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
OFFSETS = (UTC, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))
FEATURE_SPECS = {f.key: f for f in FEATURES}
CORRECT_SHARE = 0.85  # of the calls with an outcome
RERANKER_CHANGED_SHARE = 0.3  # of the reranked calls
HOT_PROMPTS = 20  # popular prompts per tenant and prompt template
HASHED_SHARE = 0.7  # calls whose client sends a prompt hash
RETRY_SHARE = 0.1  # calls of a session that resend the previous call's prompt
SESSION_LENGTHS = 4099  # pool of session lengths (prime: cycles apart from the others)
TENANT_POOL = 65521  # odd (prime): cycles independently of the template and timestamp pools
ZIPF_EXPONENT = 0.8  # tenant sizes: the k-th biggest tenant has weight 1 / k**0.8


def prompt_hash(*parts: object) -> str:
    """A client's prompt hash (sha256 hex) of a prompt named by `parts`."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=32).hexdigest()


class EventFactory:
    """Events as clients post them: a few tenants, features, prompts and models."""

    def __init__(self, *, seed: int, spread: timedelta) -> None:
        self._rng = random.Random(seed)
        # The predictive metrics' fields have their own generator: the other fields draw
        # the same values as before those existed.
        self._metric_rng = random.Random(seed + 0x5EED)
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
        event.update(self._metric_fields(feature, template, tenant, spec))
        return event

    def _metric_fields(
        self, feature: FeatureSpec, template: str, tenant: str, model: ModelSpec
    ) -> dict[str, Any]:
        """Routing tier, retrieval, reranker, outcome and prompt hash of one call."""
        rng = self._metric_rng
        fields: dict[str, Any] = {"routing_tier": model.tier}
        if rng.random() < feature.retrieval:
            retrieved = rng.choice((5, 8, 10, 10, 20))
            used = min(retrieved, round(retrieved * rng.uniform(0.25, 0.95)))
            fields["retrieval"] = {"chunks_retrieved": retrieved, "chunks_used": used}
            if rng.random() < feature.reranked:
                fields["reranker_changed_order"] = rng.random() < RERANKER_CHANGED_SHARE
        if rng.random() < feature.outcome:
            fields["outcome"] = "correct" if rng.random() < CORRECT_SHARE else "incorrect"
        if rng.random() < HASHED_SHARE:
            if rng.random() < feature.hot_prompts:
                fields["prompt_hash"] = prompt_hash(tenant, template, rng.randrange(HOT_PROMPTS))
            else:
                fields["prompt_hash"] = f"{rng.getrandbits(256):064x}"
        return fields

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
    content_hash cache_write_1h_tokens service_tier queries above_tokens off_peak
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
    retrieval = event.get("retrieval") or {}
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
        event.get("routing_tier", ""),
        event["latency_ms"],
        None,  # cache_hit
        None,  # escalated
        False,  # batch
        retrieval.get("chunks_retrieved"),
        retrieval.get("chunks_used"),
        event.get("reranker_changed_order"),
        event.get("outcome", ""),
        event.get("prompt_hash", ""),
        encoder.encode(event["tags"]).decode(),
        None,  # client_cost_usd
        cost,
        price.currency,
        price.id,
        priced_at,
        tier,
        f"{random.getrandbits(256):064x}",  # content_hash
        0,  # cache_write_1h_tokens
        "standard",  # service_tier
        0,  # queries
        0,  # above_tokens
        False,  # off_peak
    )
    return f"{tenant_id}\t", "\t" + "\t".join(_copy_text(v) for v in rest) + "\n"


@dataclass(frozen=True, slots=True)
class _RowTemplate:
    """A row template cut around the columns set per row: tenant, event id, timestamps
    (before `head`), session (between `head` and `mid`), prompt hash (before `tail`)."""

    tenant_id: int
    feature: FeatureSpec
    prompt: str
    head: str
    mid: str
    tail: str


def _cut(event: dict[str, Any], catalog: Catalog, priced_at: str) -> _RowTemplate:
    _, suffix = row_template(event, catalog, priced_at=priced_at)
    fields = suffix[1:-1].split("\t")
    session = COPY_COLUMNS.index("session") - 4
    prompt = COPY_COLUMNS.index("prompt_hash") - 4
    return _RowTemplate(
        catalog.tenants[event["tenant"]][0],
        FEATURE_SPECS[event["feature"]],
        event["prompt_template"],
        "\t".join(fields[:session]),
        "\t".join(fields[session + 1 : prompt]),
        "\t".join(fields[prompt + 1 :]),
    )


class RowSource:
    """Streams COPY lines shaped like the API's rows: a pool of row templates, fresh
    event ids, timestamps spread over `spread` before `end` (default: now). Memory is
    bounded by the pools.

    Calls come in sessions of several calls (1 to 30, about 4 on average) of one tenant
    and one feature, a minute or so apart; features without sessions send the same bursts
    without a session id. A share of calls (`HASHED_SHARE`) carries a prompt hash: a
    feature's `hot_prompts` share is one of its tenant's popular prompts, a call of a
    session sometimes resends its previous prompt, the rest are new prompts. With
    `tenants` (tenant ids, as often as each should appear), each session's tenant is
    drawn from it in turn; otherwise it is the template's (the `TENANTS` mix)."""

    def __init__(
        self,
        factory: EventFactory,
        catalog: Catalog,
        *,
        spread: timedelta,
        seed: int,
        end: datetime | None = None,
        tenants: Sequence[int] | None = None,
    ) -> None:
        now = datetime.now(UTC)
        end = end or now
        priced_at = now.isoformat()
        self._factory = factory
        self._templates = [
            _cut(factory.event(end), catalog, priced_at) for _ in range(TEMPLATE_POOL)
        ]
        self._by_feature: dict[str, list[int]] = {}
        for i, template in enumerate(self._templates):
            self._by_feature.setdefault(template.feature.key, []).append(i)
        self._place = {i: n for same in self._by_feature.values() for n, i in enumerate(same)}
        rng = random.Random(seed)
        self._start = end - spread
        spread_s = spread.total_seconds()
        self._timestamps = [
            end - timedelta(seconds=rng.random() * spread_s) for _ in range(TIMESTAMP_POOL)
        ]
        self._lengths = [min(30, 1 + int(rng.expovariate(1 / 3))) for _ in range(SESSION_LENGTHS)]
        self._gaps = [timedelta(seconds=rng.uniform(5, 180)) for _ in range(SESSION_LENGTHS)]
        self._tenants = list(tenants) if tenants else None
        self._rng = rng
        self._salt = f"{random.getrandbits(24):06x}"  # session ids unique across runs
        self._session = 0

    def chunks(self, count: int) -> Iterator[bytes]:
        """`count` lines, `COPY_LINES_PER_WRITE` to a chunk."""
        done = 0
        lines: list[str] = []
        for line in self._lines(count):
            lines.append(line)
            if len(lines) == COPY_LINES_PER_WRITE:
                yield "".join(lines).encode()
                done += len(lines)
                lines = []
        if lines:
            yield "".join(lines).encode()

    def _lines(self, count: int) -> Iterator[str]:
        templates, timestamps, by_feature = self._templates, self._timestamps, self._by_feature
        n_templates, ts_mask = len(templates), len(timestamps) - 1
        tenants, rng, start, salt = self._tenants, self._rng, self._start, self._salt
        new_id, random_ = self._factory.new_id, rng.random
        left = count
        while left > 0:
            s = self._session
            self._session += 1
            first = templates[(s * 7919) % n_templates]
            feature = first.feature
            same = by_feature[feature.key]
            place = self._place[(s * 7919) % n_templates]
            tenant = tenants[s % len(tenants)] if tenants else first.tenant_id
            session = f"sess-{salt}{s:010x}" if feature.sessions else ""
            base, gap = timestamps[(s * 40503) & ts_mask], self._gaps[s % SESSION_LENGTHS]
            calls = min(left, self._lengths[s % SESSION_LENGTHS])
            previous = ""
            for c in range(calls):
                t = templates[same[(place + c * 13) % len(same)]]
                at = max(start, base - c * gap).isoformat()
                if random_() >= HASHED_SHARE:
                    hashed = ""
                elif previous and random_() < RETRY_SHARE:
                    hashed = previous
                elif random_() < feature.hot_prompts:
                    hashed = prompt_hash(tenant, t.prompt, rng.randrange(HOT_PROMPTS))
                else:
                    hashed = f"{rng.getrandbits(256):064x}"
                previous = hashed or previous
                yield (
                    f"{tenant}\t{new_id()}\t{at}\t{at}\t{t.head}\t{session}\t{t.mid}"
                    f"\t{hashed}\t{t.tail}\n"
                )
            left -= calls


def tenant_pool(tenant_ids: list[int], rng: random.Random) -> list[int]:
    """Tenant ids to draw rows from, each as often as its Zipf weight says (at least
    once), in random order."""
    ranked = tenant_ids[:]
    rng.shuffle(ranked)
    weights = [1 / (k**ZIPF_EXPONENT) for k in range(1, len(ranked) + 1)]
    scale = TENANT_POOL / sum(weights)
    pool = list(
        itertools.chain.from_iterable(
            [tid] * max(1, int(w * scale)) for tid, w in zip(ranked, weights, strict=True)
        )
    )
    while len(pool) < TENANT_POOL or len(pool) % 2 == 0:
        pool.append(rng.choices(ranked, weights=weights)[0])
    rng.shuffle(pool)
    return pool


def create_tenants(count: int, *, signup: datetime) -> list[str]:
    """Tenants `t0001`, `t0002`... besides the 4 of `TENANTS` (made by
    `prepare_database`), `count` in all, every one signed up at `signup`. Returns the
    slugs, the `t` tenants first."""
    from finops.models import Tenant

    slugs = [f"t{i:04d}" for i in range(1, count - len(TENANTS) + 1)]
    Tenant.objects.bulk_create(
        [
            Tenant(slug=slug, name=f"Tenant {slug[1:]}", tier=Tenant.Tier.PRO, signup_at=signup)
            for slug in slugs
        ],
        batch_size=1000,
    )
    Tenant.objects.update(signup_at=signup)  # the ledger's 4 signed up "now"
    return slugs + [slug for slug, _ in TENANTS]


def fill(conn: psycopg.Connection, source: RowSource, count: int) -> float:
    """COPY `count` rows of `source`, `PRELOAD_ROWS_PER_COPY` a statement; the seconds."""
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(PRELOAD_ROWS_PER_COPY, count - done)
        copy_rows(conn, source.chunks(size))
        done += size
        if count >= 1_000_000:
            elapsed = time.perf_counter() - started
            say(f"  {done:>12,} / {count:,} rows  {elapsed:7.1f} s")
    return time.perf_counter() - started


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


def drop_database(url: str) -> None:
    """Drop the bench database of `url`, after closing this process's connections."""
    name = check_database_url(url)
    from django.db import connections

    connections.close_all()
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    say(f"database: dropped {name}")


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


# --- Running the app -----------------------------------------------------------------


def app_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-not-for-any-deployment-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="config.settings",
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


def say(message: str) -> None:
    print(message, flush=True)


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


def check_flag(ok: bool) -> str:
    return "met" if ok else "NOT met"


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name
