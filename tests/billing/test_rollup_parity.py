"""The two folds agree: PostgreSQL's statements and the portable Python fold, on the same
varied ledger, write the same rollups to the last decimal, first run and incremental run
alike, and record the same day keys (their hashes differ by design: the count per day).
The ledger varies every dimension: providers, regions, service tiers (batch as a tier and
as `batch: true`), long-context and off-peak rates, and the reported tag, strings and
other JSON values alike."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction

from billing.models import DailyKey, FeatureRollup, RollupWatermark, UsageRollup
from billing.rollups import KEYS_WHOLE
from billing.rollups.columns import FEATURE_KEY, USAGE_KEY
from billing.rollups.driver import Fold, rollups_fold, rollups_reset
from billing.rollups.portable import fold_portable
from billing.rollups.postgresql import fold_postgresql
from finops.models import BEGINNING_OF_TIME, ModelPrice, PriceRate, Tenant
from ingestion.models import CostChange, UsageEvent
from ingestion.services import events_price_unpriced
from ingestion.services.pricing import events_reprice
from tests.billing.test_rollups import TAGS, _ledger_oracle, _rollups, _set_tags, post_events
from tests.conftest import event
from tests.factories import TenantFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PRICED = ("gpt-4o-mini", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "claude-sonnet-4-5",
          "gemini-2.5-pro")  # fmt: skip
PROVIDERS = {
    "gpt-4o-mini": "openai", "gpt-4o-2024-08-06": "openai",
    "claude-3-5-sonnet-20241022": "anthropic", "claude-sonnet-4-5": "anthropic",
}  # fmt: skip
RERANK = "rerank-parity"
LATE_PRICED = "frontier-parity"  # no price until after the first fold
NIGHT = "night-parity"  # off-peak rates from 22:00 to 06:00 UTC
TENANTS = ("acme", "globex", "initech")
FEATURES = ("chat_assistant", "document_summarization", "search", None)
PROMPTS = ("p-answer", "p-summary", None)


def _month_boundary() -> datetime:
    """The latest start of a month at least a day ago: events on both sides of it, all
    within the backfill window."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if now - start < timedelta(days=1):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def _event(rng: random.Random, event_id: str, at: datetime) -> dict[str, Any]:
    """One event with a random mix of everything the fold reads."""
    model = rng.choice((*PRICED, *PRICED, RERANK, LATE_PRICED, NIGHT))
    fields: dict[str, Any] = {
        "tenant": rng.choice(TENANTS), "feature": rng.choice(FEATURES),
        "prompt_template": rng.choice(PROMPTS), "user": rng.choice(("", "u1", "u2", "u3")),
        "service_tier": rng.choice(("standard", "standard", "batch", "flex", "priority")),
        "routing_tier": rng.choice(("", "cheap", "standard")),
        "provider": rng.choice(("", PROVIDERS.get(model, ""))),
        "region": rng.choice(("", "us-east-1", "eu-west-1")),
        "tags": rng.choice(({}, {"team": "search"}, {"team": "chat", "env": "prod"},
                            {"env": "dev"}, {"team": "\u00e9" * 210})),
    }  # fmt: skip
    if fields["service_tier"] == "standard" and rng.random() < 0.3:
        fields["batch"] = True
    if model == RERANK:
        fields |= {"input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0,
                   "queries": rng.randint(1, 9)}  # fmt: skip
    else:
        write_1h = rng.choice((0, 0, rng.randint(1, 50)))
        write = write_1h + rng.choice((0, rng.randint(1, 80)))
        cached = rng.choice((0, rng.randint(1, 500)))
        output = rng.randint(1, 900)
        # Some prompts above the long-context threshold (200k for gemini-2.5-pro).
        prompt = rng.choice((rng.randint(0, 5000), rng.randint(0, 5000), 250_000))
        fields |= {
            "input_tokens": cached + write + prompt, "cached_input_tokens": cached,
            "cache_write_tokens": write, "cache_write_1h_tokens": write_1h,
            "output_tokens": output, "reasoning_tokens": rng.choice((0, rng.randint(0, output))),
            "grounding_tokens": rng.choice((0, 0, rng.randint(1, 40))),
            "wasted_tokens": rng.choice((0, 0, rng.randint(1, 40))),
        }  # fmt: skip
    if rng.random() < 0.6:
        retrieved = rng.randint(0, 12)
        fields["retrieval"] = {"chunks_retrieved": retrieved,
                               "chunks_used": rng.randint(0, retrieved)}  # fmt: skip
    if rng.random() < 0.5:
        fields["reranker_changed_order"] = rng.random() < 0.5
    fields["outcome"] = rng.choice(("", "correct", "incorrect"))
    # Few sessions and prompt hashes: each repeats within a day, across tenants and runs.
    fields["session"] = rng.choice(("", "", "s1", "s2", "s3", "s4"))
    fields["prompt_hash"] = rng.choice(("", "h1", "h2", "h3"))
    for name in ("escalated", "cache_hit"):
        if rng.random() < 0.6:
            fields[name] = rng.random() < 0.3
    return event(event_id=event_id, timestamp=at.isoformat(), model=model, **fields)


def _traffic(rng: random.Random, prefix: str, count: int, around: datetime) -> list[dict]:
    """Events from 30 hours before `around` to 20 hours after (two day boundaries and,
    around a month's start, a month boundary)."""
    return [
        _event(rng, f"{prefix}-{i}", around + timedelta(seconds=rng.randint(-30 * 3600, 20 * 3600)))
        for i in range(count)
    ]


def _post(operator, events: list[dict]) -> None:
    for i in range(0, len(events), 200):
        post_events(operator, {"events": events[i : i + 200]})


def _other_tags(rng: random.Random, prefix: str, count: int) -> None:
    """Tags of JSON values other than strings (the API takes none) on some events."""
    ids = list(UsageEvent.objects.filter(event_id__startswith=f"{prefix}-")
               .values_list("event_id", flat=True))  # fmt: skip
    for event_id in rng.sample(ids, count):
        _set_tags(event_id, rng.choice(list(TAGS)))


def _wait_until_visible() -> None:
    """The PostgreSQL fold stops at the oldest open transaction of the server, which others
    share: wait until every event and cost change written is below it."""
    tables = ("ingestion_usageevent", "ingestion_costchange")
    latest = " UNION ALL ".join(f"SELECT max(xact) FROM {t}" for t in tables)
    with connection.cursor() as cursor:
        for _ in range(600):
            cursor.execute(f"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
                           f"> (SELECT COALESCE(max(max), 0) FROM ({latest}) x)")  # fmt: skip
            if cursor.fetchone()[0]:
                return
            time.sleep(0.1)
    pytest.fail("another transaction of the server stayed open for a minute")


def _fold(fold: Fold, mark: RollupWatermark) -> None:
    if fold is fold_postgresql:
        _wait_until_visible()
    with transaction.atomic():
        rollups_fold(mark, fold=fold)


def _tables() -> dict[str, list[dict]]:
    """Every row of the rollups and the day keys, every column."""
    return {
        "usage": list(UsageRollup.objects.values(*_columns(UsageRollup))),
        "feature": list(FeatureRollup.objects.values(*_columns(FeatureRollup))),
        "keys": list(DailyKey.objects.values("day", "key")),
    }


def _columns(model: Any) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.column and f.attname != "id"]


def _restore(tables: dict[str, list[dict]]) -> None:
    with transaction.atomic():
        rollups_reset(RollupWatermark())
        UsageRollup.objects.bulk_create(UsageRollup(**row) for row in tables["usage"])
        FeatureRollup.objects.bulk_create(FeatureRollup(**row) for row in tables["feature"])
        DailyKey.objects.bulk_create(DailyKey(**row) for row in tables["keys"])


def _comparable(tables: dict[str, list[dict]]) -> dict[str, Any]:
    """The rollups by their unique keys, every sum exact; the day keys counted per day (the
    two folds hash them differently), the PostgreSQL fold's marker left out."""

    def by_group(rows: list[dict], group: tuple[str, ...]) -> dict[tuple, dict]:
        keyed = {tuple(r[k] for k in group): r for r in rows}
        assert len(keyed) == len(rows)
        return keyed

    return {
        "usage": by_group(tables["usage"], USAGE_KEY),
        "feature": by_group(tables["feature"], FEATURE_KEY),
        "keys": Counter(r["day"] for r in tables["keys"] if r["day"] != KEYS_WHOLE),
    }


def _expected_keys() -> Counter:
    """Sessions and prompt hashes, each once per tenant and UTC day."""
    keys = set()
    for tenant_id, ts, session, prompt_hash in UsageEvent.objects.values_list(
        "tenant_id", "timestamp", "session", "prompt_hash"
    ):
        day = ts.astimezone(UTC).date()
        keys |= {(tenant_id, day, "s", session)} if session else set()
        keys |= {(tenant_id, day, "p", prompt_hash)} if prompt_hash else set()
    return Counter(day for _, day, _, _ in keys)


def _assert_same(postgresql: dict[str, list[dict]], portable: dict[str, list[dict]]) -> None:
    left, right = _comparable(postgresql), _comparable(portable)
    assert left["usage"].keys() == right["usage"].keys()
    for group, row in left["usage"].items():
        assert row == right["usage"][group], group
    assert left["feature"].keys() == right["feature"].keys()
    for group, row in left["feature"].items():
        assert row == right["feature"][group], group
    assert left["keys"] == right["keys"] == _expected_keys()
    # The exactness the comparison relies on: costs are Decimals carried in full.
    assert all(isinstance(r["cost"], Decimal) for r in postgresql["usage"])


def _late_changes(operator, rng: random.Random, around: datetime) -> None:
    """After a first fold: late events into folded hours (the same sessions and prompt
    hashes, the same days), retries of folded events, a tenant moving tier, the unpriced
    model priced and a price corrected (cost changes both)."""
    _post(operator, _traffic(rng, "late", 150, around))
    _other_tags(rng, "late", 30)
    _post(operator, _traffic(random.Random(1), "first", 40, around))  # retries: stored once
    Tenant.objects.filter(slug="globex").update(tier=Tenant.Tier.ENTERPRISE)
    _post(operator, _traffic(rng, "tiered", 60, around + timedelta(hours=3)))
    ModelPrice.objects.create(model=LATE_PRICED, input_per_million=Decimal("1.75"),
                              output_per_million=Decimal("7.125"))  # fmt: skip
    assert events_price_unpriced().priced
    ModelPrice.objects.create(model="gpt-4o-mini", input_per_million=Decimal("0.1333"),
                              output_per_million=Decimal("0.6001"),
                              effective_from=around - timedelta(days=3))  # fmt: skip
    repriced = events_reprice(models={"gpt-4o-mini"}, open_from={},
                              default_open_from=BEGINNING_OF_TIME)  # fmt: skip
    assert repriced.events
    assert CostChange.objects.filter(reason="priced").exists()
    assert CostChange.objects.filter(reason="repriced").exists()


def test_the_postgresql_and_portable_folds_write_the_same_rollups(operator, acme, globex,
                                                                   settings) -> None:  # fmt: skip
    settings.FINOPS_REPORT_TAG_KEY = "team"
    TenantFactory(slug="initech", tier=Tenant.Tier.FREE)
    ModelPrice.objects.create(model=RERANK, provider="cohere", mode="rerank",
                              input_per_million=0, output_per_million=0,
                              per_query=Decimal("0.0021"))  # fmt: skip
    night = ModelPrice.objects.create(
        model=NIGHT,
        input_per_million=Decimal("0.27"),
        output_per_million=Decimal("1.1"),
        off_peak_windows=[{"hours_utc": ["22:00-06:00"]}],
    )
    for kind, rate in (("input", "0.135"), ("cached_input", "0.035"), ("output", "0.55")):
        PriceRate.objects.create(price=night, service_tier="standard", token_kind=kind,
                                 off_peak=True, per_million=Decimal(rate))  # fmt: skip
    around = _month_boundary()
    _post(operator, _traffic(random.Random(1), "first", 400, around))
    _other_tags(random.Random(3), "first", 60)
    assert {"batch", "flex", "priority"} <= set(
        UsageEvent.objects.values_list("service_tier", flat=True)
    )
    assert UsageEvent.objects.filter(above_tokens=200_000).exists()
    assert UsageEvent.objects.filter(off_peak=True).exists()
    assert UsageEvent.objects.filter(off_peak=False, model=NIGHT).exists()
    assert UsageEvent.objects.filter(price__isnull=True, model=LATE_PRICED).exists()
    on_postgresql, portable = RollupWatermark(name="postgresql"), RollupWatermark(name="py")

    # A first fold of each, from empty tables.
    _fold(fold_postgresql, on_postgresql)
    postgresql_first = _tables()
    rollups_reset(RollupWatermark())
    _fold(fold_portable, portable)
    portable_first = _tables()
    _assert_same(postgresql_first, portable_first)
    assert _rollups() == _ledger_oracle()

    # An incremental fold of each, from its own first one.
    _late_changes(operator, random.Random(2), around)
    _fold(fold_portable, portable)
    portable_then = _tables()
    assert _rollups() == _ledger_oracle()
    _restore(postgresql_first)
    _fold(fold_postgresql, on_postgresql)
    _assert_same(_tables(), portable_then)
    assert _rollups() == _ledger_oracle()

    # And each from scratch over the whole ledger: the same again.
    rollups_reset(on_postgresql)
    _fold(fold_postgresql, on_postgresql)
    postgresql_whole = _tables()
    rollups_reset(portable)
    _fold(fold_portable, portable)
    _assert_same(postgresql_whole, _tables())
    _assert_same(postgresql_whole, portable_then)
