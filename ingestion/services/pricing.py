"""Pricing events stored before a price for their model existed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

from finops.models import ModelPrice, Tenant
from finops.pricing import PriceBook, usage_cost

from ..models import CostChange, UsageEvent
from ..signals import SpendRow, spend_recorded

CHUNK = 2000


@dataclass(slots=True)
class RepriceResult:
    priced: int = 0
    still_unpriced: int = 0
    cost: Decimal = Decimal(0)


def events_price_unpriced(*, now: datetime | None = None, chunk: int = CHUNK) -> RepriceResult:
    """Price every unpriced event whose model now has a price in force at its time."""
    now = now or datetime.now(UTC)
    result = RepriceResult()
    pairs = set(
        UsageEvent.objects.filter(price__isnull=True).values_list("model", "provider").distinct()
    )
    if not pairs:
        return result
    book = PriceBook.for_models({m for m, _ in pairs}, {p for _, p in pairs if p})
    # Only models that now have some price; the partial index on unpriced rows serves this.
    priceable = {m for m, p in pairs if book.has(model=m, provider=p)}
    result.still_unpriced = (
        UsageEvent.objects.filter(price__isnull=True).exclude(model__in=priceable).count()
    )
    last_id = 0
    while priceable:
        batch = list(
            UsageEvent.objects.filter(price__isnull=True, model__in=priceable, id__gt=last_id)
            .order_by("id")
            .only(
                "id",
                "tenant_id",
                "feature_id",
                "prompt_template_id",
                "model",
                "provider",
                "timestamp",
                "batch",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
            )[:chunk]
        )
        if not batch:
            break
        last_id = batch[-1].id
        updates: list[UsageEvent] = []
        for event in batch:
            price: ModelPrice | None = book.find(
                model=event.model, provider=event.provider, at=event.timestamp
            )
            if price is None:
                result.still_unpriced += 1
                continue
            event.cost = usage_cost(usage=event, price=price)
            event.price_id = price.id
            event.currency = price.currency
            event.priced_at = now
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
                        )
                        for e in updates
                        if e.id in priced
                    ],
                )
    return result
