"""Demo data: one tenant per tier, product features and 30 days of realistic traffic.

Deterministic: the events of a given tenant and day are the same on every run, so
seeding twice stores nothing twice (the second run's events come back as duplicates).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from django.db import transaction

from billing.models import Budget
from console.models import OptimizationDecision, PlannedFeature, ProvisionedOffer
from finops.models import Tenant, TierPlan
from ingestion.models import Feature
from ingestion.services import ACCEPTED, DUPLICATE, events_ingest


@dataclass(frozen=True)
class DemoFeature:
    key: str
    name: str
    task_type: str
    default_model: str
    fallback_model: str
    provider: str
    share: float  # of a tenant's calls
    input_range: tuple[int, int]
    output_range: tuple[int, int]
    reasoning: bool = False
    retrieval: bool = False
    workload: str = Feature.Workload.LATENCY_SENSITIVE
    batch_share: float = 0.0  # of its calls sent through the batch API
    app_cache: bool = False  # the application caches its answers (reports cache_hit)


FEATURES = [
    DemoFeature(
        "document_summarization",
        "Document summarization",
        "summarization",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "openai",
        0.30,
        (2000, 12000),
        (200, 700),
    ),
    DemoFeature(
        "chat_assistant",
        "Chat assistant",
        "chat",
        "claude-3-5-sonnet-20241022",
        "claude-3-5-haiku-20241022",
        "anthropic",
        0.28,
        (800, 6000),
        (100, 900),
        retrieval=True,
        app_cache=True,
    ),
    DemoFeature(
        "support_triage",
        "Support ticket triage",
        "classification",
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "openai",
        0.20,
        (300, 1500),
        (5, 40),
        workload=Feature.Workload.STEADY,
    ),
    DemoFeature(
        "invoice_extraction",
        "Invoice field extraction",
        "extraction",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini",
        0.12,
        (1500, 5000),
        (150, 600),
        workload=Feature.Workload.BATCHABLE,
        batch_share=0.3,
    ),
    DemoFeature(
        "code_review",
        "Code review comments",
        "generation",
        "o3-mini",
        "gpt-4.1-mini",
        "openai",
        0.08,
        (3000, 15000),
        (400, 3000),
        reasoning=True,
    ),
    DemoFeature(
        "semantic_search_rerank",
        "Semantic search re-ranking",
        "retrieval",
        "mistral-small-latest",
        "ministral-8b-latest",
        "mistral",
        0.02,
        (500, 2500),
        (20, 120),
        retrieval=True,
    ),
]

# (slug, name, tier, calls per weekday, monthly cap, LTV, markup percent)
TENANTS = [
    ("acme", "Acme Corporation", Tenant.Tier.ENTERPRISE, 420, Decimal("2500"), None, Decimal(12)),
    ("globex", "Globex Inc.", Tenant.Tier.PRO, 160, Decimal("400"), None, Decimal(8)),
    ("initech", "Initech (free trial)", Tenant.Tier.FREE, 45, None, Decimal("15"), Decimal(0)),
]

# Calls of a model nobody has priced yet, so the console's unpriced list is not empty.
UNPRICED_MODEL = "llama-3.1-70b-selfhosted"

_HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 8, 9, 10, 10, 9, 7, 5, 4, 3, 2, 2, 1]


@dataclass
class SeedResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def _tenants_ensure(now: datetime) -> list[tuple[Tenant, int]]:
    tenants = []
    for slug, name, tier, per_day, cap, ltv, markup in TENANTS:
        tenant, _ = Tenant.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "tier": tier,
                "monthly_cap": cap,
                "predicted_ltv": ltv,
                "markup_percent": markup,
            },
            create_defaults={
                "name": name,
                "tier": tier,
                "monthly_cap": cap,
                "predicted_ltv": ltv,
                "markup_percent": markup,
                "signup_at": now - timedelta(days=120 if tier != Tenant.Tier.FREE else 20),
            },
        )
        tenants.append((tenant, per_day))
    return tenants


def _features_ensure() -> None:
    for f in FEATURES:
        Feature.objects.update_or_create(
            key=f.key,
            defaults={
                "name": f.name,
                "task_type": f.task_type,
                "default_model": f.default_model,
                "fallback_model": f.fallback_model,
                # The demo shows the spike kill switch armed on its costliest feature.
                "kill_switch_enabled": f.key == "document_summarization",
                "workload": f.workload,
                "allowed_regions": ["us", "eu"] if f.key == "document_summarization" else [],
            },
        )


# (tier, monthly price, expected lifetime in months, upgrade rate, tier upgraded to)
PLANS = [
    (Tenant.Tier.FREE, Decimal(0), 6, Decimal("0.05"), Tenant.Tier.PRO),
    (Tenant.Tier.PRO, Decimal(49), 24, Decimal("0.02"), Tenant.Tier.ENTERPRISE),
    (Tenant.Tier.ENTERPRISE, Decimal(2000), 36, Decimal(0), ""),
]


def _savings_ledger_ensure(now: datetime) -> None:
    """The tiers' plan prices (margins, derived lifetime values), a provisioned
    throughput offer for the steady triage model, and one optimization decision a
    fortnight ago, so the quarterly report has every part to show."""
    for tier, price, months, rate, upgrades_to in PLANS:
        TierPlan.objects.get_or_create(
            tier=tier,
            defaults={"monthly_price": price, "lifetime_months": months, "upgrade_rate": rate,
                      "upgrades_to": upgrades_to},
        )  # fmt: skip
    ProvisionedOffer.objects.get_or_create(
        model="gpt-4o-mini",
        defaults={"monthly_price": Decimal(150), "tokens_per_minute": 2000,
                  "note": "Demo: a quoted provisioned throughput unit."},
    )  # fmt: skip
    OptimizationDecision.objects.get_or_create(
        lever="routing",
        feature=Feature.objects.get(key="document_summarization"),
        defaults={"decided_on": (now - timedelta(days=14)).date(),
                  "expected_monthly_saving": Decimal(40),
                  "note": "Demo: short documents go to the fallback model."},
    )  # fmt: skip


def _budgets_ensure(tenants: list[tuple[Tenant, int]]) -> None:
    by_slug = {t.slug: t for t, _ in tenants}
    Budget.objects.get_or_create(
        name="Globex monthly LLM budget",
        defaults={"tenant": by_slug["globex"], "period": Budget.Period.MONTH,
                  "amount": Decimal("60"), "action": Budget.Action.NOTIFY},
    )  # fmt: skip
    Budget.objects.get_or_create(
        name="Chat assistant daily",
        defaults={"feature": Feature.objects.get(key="chat_assistant"),
                  "period": Budget.Period.DAY, "amount": Decimal("5"),
                  "action": Budget.Action.DOWNGRADE},
    )  # fmt: skip


def _planned_ensure(now: datetime) -> None:
    """A planned feature on the extraction pipeline, launching within five days and this
    month: the month-end projection shows its step."""
    month_end = (now.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    PlannedFeature.objects.get_or_create(
        name="contract_clause_extraction",
        defaults={
            "reuses": Feature.objects.get(key="invoice_extraction"),
            "launch_date": min(now + timedelta(days=5), month_end).date(),
            "note": "Reuses the invoice extraction pipeline on contracts.",
        },
    )


def _day_events(tenant: Tenant, per_day: int, day: datetime, now: datetime) -> Iterator[dict]:
    rng = random.Random(f"{tenant.slug}:{day:%Y-%m-%d}")
    weekday_factor = 0.45 if day.weekday() >= 5 else 1.0
    calls = int(per_day * weekday_factor * rng.uniform(0.85, 1.15))
    weights = [f.share for f in FEATURES]
    total_weight = sum(_HOURLY)
    for n in range(calls):
        hour = rng.choices(range(24), weights=_HOURLY)[0] if total_weight else 12
        at = day + timedelta(hours=hour, seconds=rng.randrange(3600))
        if at > now:
            continue
        feature = rng.choices(FEATURES, weights=weights)[0]
        downgraded = rng.random() < 0.15
        model = feature.fallback_model if downgraded else feature.default_model
        if rng.random() < 0.01:
            model = UNPRICED_MODEL
        input_tokens = int(rng.triangular(*feature.input_range))
        cached = int(input_tokens * rng.uniform(0.2, 0.6)) if rng.random() < 0.35 else 0
        output_tokens = int(rng.triangular(*feature.output_range))
        reasoning = int(output_tokens * rng.uniform(0.3, 0.7)) if feature.reasoning else 0
        user = f"{tenant.slug}-user-{rng.randrange(1, 25)}"
        event = {
            "event_id": f"demo-{tenant.slug}-{day:%Y%m%d}-{n:05d}",
            "tenant": tenant.slug,
            "timestamp": at.isoformat(),
            "feature": feature.key,
            "prompt_template": f"{feature.key}-v{1 if rng.random() < 0.3 else 2}",
            "model": model,
            "provider": feature.provider,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "reasoning_tokens": reasoning,
            "user": user,
            "session": f"{user}-s{rng.randrange(1, 6)}",
            "routing_tier": "cheap" if downgraded else "premium",
            "latency_ms": int(rng.lognormvariate(6.5, 0.5)),
            "escalated": rng.random() < 0.05,
            "outcome": "correct" if rng.random() < 0.86 else "incorrect",
            # About one call in nine repeats a prompt sent earlier that day.
            "prompt_hash": f"h{rng.randrange(0, 4 * calls + 1)}",
            "region": rng.choice(["us", "eu"]),
            "tags": {"env": "prod"},
        }
        if feature.app_cache:
            event["cache_hit"] = rng.random() < 0.12
        if rng.random() < feature.batch_share:
            event["service_tier"] = "batch"
        if feature.retrieval:
            retrieved = rng.randrange(4, 20)
            event["retrieval"] = {
                "chunks_retrieved": retrieved,
                "chunks_used": rng.randrange(1, retrieved + 1),
            }
            event["reranker_changed_order"] = rng.random() < 0.3
        yield event


def demo_seed(*, now: datetime | None = None, days: int = 30, batch_size: int = 1000) -> SeedResult:
    """Create the demo tenants and features and post `days` days of their traffic."""
    now = now or datetime.now(UTC)
    with transaction.atomic():
        tenants = _tenants_ensure(now)
        _features_ensure()
        _budgets_ensure(tenants)
        _planned_ensure(now)
        _savings_ledger_ensure(now)
    result = SeedResult()
    encoder = msgspec.json.Encoder()
    batch: list[bytes] = []
    for event in _traffic(tenants, days=days, now=now):
        batch.append(encoder.encode(event))
        if len(batch) >= batch_size:
            _post(batch, now=now, result=result)
    _post(batch, now=now, result=result)
    return result


def _traffic(tenants: list[tuple[Tenant, int]], *, days: int, now: datetime) -> Iterator[dict]:
    """The demo tenants' events of the last `days` days, day by day."""
    first_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for offset in range(days + 1):
        day = first_day + timedelta(days=offset)
        for tenant, per_day in tenants:
            for event in _day_events(tenant, per_day, day, now):
                if day >= now - timedelta(days=days):
                    yield event


def _post(batch: list[bytes], *, now: datetime, result: SeedResult) -> None:
    if not batch:
        return
    counted = {ACCEPTED: "accepted", DUPLICATE: "duplicates"}
    for item in events_ingest(key_tenant=None, items=batch, now=now):
        name = counted.get(item.status, "rejected")
        setattr(result, name, getattr(result, name) + 1)
    batch.clear()
