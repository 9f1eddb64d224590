"""Pricing events stored before a price for their model existed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

from finops.models import Tenant
from finops.pricing import PriceBook, Priced, RateCard, usage_priced

from ..models import CostChange, UsageEvent
from ..signals import SpendRow, spend_recorded

CHUNK = 2000
# What pricing reads of an event.
PRICING_FIELDS = ("id", "tenant_id", "feature_id", "prompt_template_id", "model", "provider",
                  "region",
                  "timestamp", "batch", "service_tier", "input_tokens", "output_tokens",
                  "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                  "reasoning_tokens", "queries", "user", "api_key_id")  # fmt: skip


@dataclass(slots=True)
class RepriceResult:
    priced: int = 0
    still_unpriced: int = 0
    cost: Decimal = Decimal(0)


def events_price_unpriced(*, now: datetime | None = None, chunk: int = CHUNK) -> RepriceResult:
    """Price every unpriced event whose model now has a price in force at its time."""
    now = now or datetime.now(UTC)
    result = RepriceResult()
    triples = set(
        UsageEvent.objects.filter(price__isnull=True)
        .values_list("model", "provider", "region")
        .distinct()
    )
    if not triples:
        return result
    pairs = {(m, p) for m, p, _ in triples}
    book = PriceBook.for_models({m for m, _ in pairs}, {p for _, p in pairs if p},
                                {r for _, _, r in triples if r})  # fmt: skip
    # Only models that now have some price; the partial index on unpriced rows serves this.
    priceable = {m for m, p, r in triples if book.has(model=m, provider=p, region=r)}
    result.still_unpriced = (
        UsageEvent.objects.filter(price__isnull=True).exclude(model__in=priceable).count()
    )
    last_id = 0
    while priceable:
        batch = list(
            UsageEvent.objects.filter(price__isnull=True, model__in=priceable, id__gt=last_id)
            .order_by("id")
            .only(*PRICING_FIELDS)[:chunk]
        )
        if not batch:
            break
        last_id = batch[-1].id
        updates: list[UsageEvent] = []
        for event in batch:
            card = book.find(model=event.model, provider=event.provider, at=event.timestamp,
                             region=event.region)  # fmt: skip
            priced = None if card is None else usage_priced(usage=event, price=card)
            if priced is None:
                result.still_unpriced += 1
                continue
            event.cost = priced.cost
            event.price_id = card.price.id
            event.currency = card.price.currency
            event.priced_at = now
            event.above_tokens = priced.rate_class.above_tokens
            event.off_peak = priced.rate_class.off_peak
            updates.append(event)
        with transaction.atomic():
            # Only rows still unpriced are touched, so a concurrent run cannot price twice.
            changes: list[CostChange] = []
            for event in updates:
                updated = UsageEvent.objects.filter(id=event.id, price__isnull=True).update(
                    cost=event.cost,
                    price_id=event.price_id,
                    currency=event.currency,
                    priced_at=event.priced_at,
                    above_tokens=event.above_tokens,
                    off_peak=event.off_peak,
                )
                if updated:
                    result.priced += 1
                    result.cost += event.cost
                    changes.append(
                        CostChange(
                            event_id=event.id,
                            cost_delta=event.cost,
                            priced_delta=1,
                            reason=CostChange.Reason.PRICED,
                            created_at=now,
                        )
                    )
            CostChange.objects.bulk_create(changes)
            if changes and spend_recorded.has_listeners():
                priced = {change.event_id for change in changes}
                tenants = Tenant.objects.in_bulk({e.tenant_id for e in updates})
                spend_recorded.send(
                    sender=CostChange,
                    rows=[
                        SpendRow(
                            tenant=tenants[e.tenant_id],
                            feature_id=e.feature_id,
                            feature_key="",
                            prompt_template_id=e.prompt_template_id,
                            model=e.model,
                            timestamp=e.timestamp,
                            cost=e.cost,
                            new_event=False,
                            user=e.user,
                            api_key_id=e.api_key_id,
                        )
                        for e in updates
                        if e.id in priced
                    ],
                )
    return result


@dataclass(slots=True)
class RepricingResult:
    events: int = 0
    delta: Decimal = Decimal(0)
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)


def events_reprice(
    *,
    models: set[str],
    open_from: dict[int, datetime],
    default_open_from: datetime,
    now: datetime | None = None,
    chunk: int = CHUNK,
) -> RepricingResult:
    """Price again, at the price in force at their time, the events of `models` whose
    month is still open: from `open_from[tenant_id]` on (the first month without a final
    statement), else `default_open_from`. Each change of cost is a `CostChange` in the
    same transaction, so rollups, budgets and the guard's counters follow; final
    statements never change (their months are not touched)."""
    now = now or datetime.now(UTC)
    result = RepricingResult()
    if not models:
        return result
    places = set(
        UsageEvent.objects.filter(model__in=models).values_list("provider", "region").distinct()
    )
    book = PriceBook.for_models(models, {p for p, _ in places if p}, {r for _, r in places if r})
    earliest = min([default_open_from, *open_from.values()])
    last_id = 0
    while True:
        batch = list(
            UsageEvent.objects.filter(model__in=models, timestamp__gte=earliest, id__gt=last_id)
            .order_by("id")
            .only(*PRICING_FIELDS, "cost", "price_id", "above_tokens", "off_peak")[:chunk]
        )
        if not batch:
            break
        last_id = batch[-1].id
        changed = _repriced(batch, book=book, open_from=open_from, default=default_open_from)
        if not changed:
            continue
        _changes_record(changed, now=now, result=result)
    return result


_Change = tuple[UsageEvent, Decimal, Decimal | None, Priced, RateCard]


def _repriced(
    batch: list[UsageEvent],
    *,
    book: PriceBook,
    open_from: dict[int, datetime],
    default: datetime,
) -> list[_Change]:
    """The events of an open month whose cost, price row or class of rate changes."""
    changed: list[_Change] = []
    for event in batch:
        if event.timestamp < open_from.get(event.tenant_id, default):
            continue
        card = book.find(model=event.model, provider=event.provider, at=event.timestamp,
                         region=event.region)  # fmt: skip
        priced = None if card is None else usage_priced(usage=event, price=card)
        if priced is None:
            continue
        rate_class = (event.above_tokens, event.off_peak)
        new_class = (priced.rate_class.above_tokens, priced.rate_class.off_peak)
        if (priced.cost, card.price.id, new_class) == (event.cost, event.price_id, rate_class):
            continue
        changed.append((event, priced.cost, event.cost, priced, card))
    return changed


@transaction.atomic
def _changes_record(changed: list[_Change], *, now: datetime, result: RepricingResult) -> None:
    """Each event's new cost and its `CostChange`, in one transaction; the counters hear."""
    changes: list[CostChange] = []
    moved: list[UsageEvent] = []
    for event, cost, old_cost, priced, card in changed:
        # Only if the row is as read: a concurrent pricing run wins, this one skips.
        updated = UsageEvent.objects.filter(
            id=event.id, price_id=event.price_id, cost=old_cost
        ).update(
            cost=cost,
            price_id=card.price.id,
            priced_at=now,
            currency=card.price.currency,
            above_tokens=priced.rate_class.above_tokens,
            off_peak=priced.rate_class.off_peak,
        )
        if not updated:
            continue
        delta = cost - (old_cost or Decimal(0))
        reason = CostChange.Reason.REPRICED if event.price_id else CostChange.Reason.PRICED
        changes.append(CostChange(
            event_id=event.id, cost_delta=delta,
            priced_delta=1 if event.price_id is None else 0,
            reason=reason, created_at=now,
        ))  # fmt: skip
        result.events += 1
        result.before += old_cost or Decimal(0)
        result.after += cost
        result.delta += delta
        event.cost = delta  # what the counters must add
        moved.append(event)
    CostChange.objects.bulk_create(changes)
    if moved and spend_recorded.has_listeners():
        tenants = Tenant.objects.in_bulk({e.tenant_id for e in moved})
        spend_recorded.send(sender=CostChange, rows=[
            SpendRow(tenant=tenants[e.tenant_id], feature_id=e.feature_id, feature_key="",
                     prompt_template_id=e.prompt_template_id, model=e.model,
                     timestamp=e.timestamp, cost=e.cost, new_event=False, user=e.user,
                     api_key_id=e.api_key_id)
            for e in moved
        ])  # fmt: skip
