"""Ingestion of usage events: validate, resolve, price, and store each event once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from finops.models import SLUG_VALIDATOR, Tenant
from finops.pricing import PriceBook, effective_service_tier, usage_priced

from ..models import Feature, PromptTemplate, UsageEvent
from ..schema import EventIn, canonical_encoder, event_decoder, field_errors
from ..signals import SpendRow, spend_recorded
from .writer import event_columns, events_insert

Errors = dict[str, list[str]]

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
CONFLICT = "conflict"

COST_USD_PLACES = UsageEvent._meta.get_field("client_cost_usd").decimal_places

CONFLICT_MESSAGE = "An event with this event_id exists for this tenant with different content."


@dataclass(slots=True)
class ItemResult:
    index: int
    status: str
    event_id: str | None = None
    cost: Decimal | None = None
    priced: bool = False
    errors: Errors = field(default_factory=dict)


@dataclass(slots=True)
class _Valid:
    index: int
    event: EventIn
    tenant: Tenant
    content_hash: str = ""


_TEXT_FIELDS = ("event_id", "tenant", "feature", "model", "provider", "user", "session",
                "prompt_template", "region", "routing_tier", "prompt_hash")  # fmt: skip


def _no_nul(event: EventIn, now: datetime) -> Errors:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail the whole batch.
    errors: Errors = {}
    for name in _TEXT_FIELDS:
        value = getattr(event, name)
        if value and "\x00" in value:
            errors[name] = ["May not contain the NUL character."]
    if any("\x00" in k or "\x00" in v for k, v in event.tags.items()):
        errors["tags"] = ["May not contain the NUL character."]
    return errors


def _token_counts_agree(event: EventIn, now: datetime) -> Errors:
    errors: Errors = {}
    if event.cached_input_tokens + event.cache_write_tokens > event.input_tokens:
        errors["cached_input_tokens"] = [
            "cached_input_tokens + cache_write_tokens may not exceed input_tokens "
            f"({event.cached_input_tokens} + {event.cache_write_tokens} > {event.input_tokens})."
        ]
    if event.cache_write_1h_tokens > event.cache_write_tokens:
        errors["cache_write_1h_tokens"] = [
            f"cache_write_1h_tokens ({event.cache_write_1h_tokens}) may not exceed "
            f"cache_write_tokens ({event.cache_write_tokens})."
        ]
    if event.reasoning_tokens > event.output_tokens:
        errors["reasoning_tokens"] = [
            f"reasoning_tokens ({event.reasoning_tokens}) may not exceed output_tokens "
            f"({event.output_tokens})."
        ]
    return errors


def _one_tier(event: EventIn, now: datetime) -> Errors:
    if event.batch and event.service_tier not in ("standard", "batch"):
        return {
            "service_tier": [
                f"batch: true is the batch tier; it cannot be '{event.service_tier}' too."
            ]
        }
    return {}


def _within_the_window(event: EventIn, now: datetime) -> Errors:
    if event.timestamp > now + timedelta(seconds=settings.FINOPS_MAX_FUTURE_SKEW_SECONDS):
        return {
            "timestamp": [
                f"More than {settings.FINOPS_MAX_FUTURE_SKEW_SECONDS} seconds in the future."
            ]
        }
    if event.timestamp < now - timedelta(days=settings.FINOPS_BACKFILL_DAYS):
        return {
            "timestamp": [
                f"Older than the backfill window of {settings.FINOPS_BACKFILL_DAYS} days."
            ]
        }
    return {}


def _cost_usd_exact(event: EventIn, now: datetime) -> Errors:
    cost = event.cost_usd
    if cost is None or (
        cost.is_finite()
        and cost >= 0
        and cost.as_tuple().exponent >= -COST_USD_PLACES
        and cost.adjusted() < 12
    ):
        return {}
    return {
        "cost_usd": [
            f"Must be a decimal >= 0 below 10^12 with at most {COST_USD_PLACES} decimal places."
        ]
    }


def _chunks_agree(event: EventIn, now: datetime) -> Errors:
    retrieval = event.retrieval
    if retrieval is not None and retrieval.chunks_used > retrieval.chunks_retrieved:
        return {"retrieval.chunks_used": ["May not exceed chunks_retrieved."]}
    return {}


# The checks no schema can express, each on its own fields.
# The texts an event adds to the key of its rollup rows, and the bytes they may take
# together (UTF-8): PostgreSQL's unique index holds a key of about 2,700 bytes at most,
# and one event past that would stop the rollups of every tenant.
_ROLLUP_KEY_FIELDS = ("feature", "model", "prompt_template", "routing_tier", "provider",
                      "region")  # fmt: skip
ROLLUP_KEY_BYTES = 2000
_TAG_CHARACTERS = 200  # the rollups keep this much of the reported tag


def _fits_a_rollup_row(event: EventIn, now: datetime) -> Errors:
    sizes = {name: len((getattr(event, name) or "").encode()) for name in _ROLLUP_KEY_FIELDS}
    key = settings.FINOPS_REPORT_TAG_KEY
    sizes["tags"] = len(event.tags.get(key, "")[:_TAG_CHARACTERS].encode()) if key else 0
    total = sum(sizes.values())
    if total <= ROLLUP_KEY_BYTES:
        return {}
    largest = max(sizes, key=lambda name: sizes[name])
    return {largest: [
        f"feature, model, prompt_template, routing_tier, provider, region and the reported "
        f"tag may take {ROLLUP_KEY_BYTES:,} bytes together (UTF-8); these take {total:,}."
    ]}  # fmt: skip


_SEMANTIC_CHECKS = (
    _no_nul, _token_counts_agree, _one_tier, _within_the_window, _cost_usd_exact, _chunks_agree,
    _fits_a_rollup_row,
)  # fmt: skip


def _check_semantics(event: EventIn, *, now: datetime) -> Errors:
    errors: Errors = {}
    for check in _SEMANTIC_CHECKS:
        errors.update(check(event, now))
    return errors


def _content_hash(event: EventIn, tenant_slug: str) -> str:
    # The same event is the same content whatever its timestamp's offset or tag order.
    # `service_tier: "batch"` is written as `batch: true`, as events were before tiers.
    batch = effective_service_tier(event) == "batch"
    canonical = msgspec.structs.replace(
        event,
        tenant=tenant_slug,
        batch=batch,
        service_tier="standard" if batch else event.service_tier,
        timestamp=event.timestamp.astimezone(UTC),
        tags=dict(sorted(event.tags.items())),
    )
    return hashlib.sha256(canonical_encoder.encode(canonical)).hexdigest()


def _tenants_resolve(*, slugs: set[str]) -> tuple[dict[str, Tenant], dict[str, str]]:
    """Tenants by slug, creating unknown ones when allowed; and an error per bad slug."""
    errors: dict[str, str] = {}
    valid = set()
    for slug in slugs:
        try:
            SLUG_VALIDATOR(slug)
            valid.add(slug)
        except ValidationError as exc:
            errors[slug] = exc.messages[0]
    found = {t.slug: t for t in Tenant.objects.filter(slug__in=valid)}
    missing = valid - found.keys()
    if missing and settings.FINOPS_AUTO_CREATE_TENANTS:
        now = datetime.now(UTC)
        Tenant.objects.bulk_create(
            # Sorted, as every insert here, so concurrent requests cannot deadlock.
            [Tenant(slug=s, name=s, signup_at=now, auto_created=True) for s in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update({t.slug: t for t in Tenant.objects.filter(slug__in=missing)})
    for slug in valid - found.keys():
        errors[slug] = f"Unknown tenant '{slug}'."
    for slug, tenant in list(found.items()):
        if tenant.status != Tenant.Status.ACTIVE:
            errors[slug] = f"Tenant '{slug}' is {tenant.status}."
            del found[slug]
    return found, errors


def _ids_by_key(
    model: type[Feature] | type[PromptTemplate],
    keys: set[str],
    defaults: dict[str, dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Ids of features or prompt templates by key, creating the ones first seen."""
    if not keys:
        return {}
    ids = dict(model.objects.filter(key__in=keys).values_list("key", "id"))
    missing = keys - ids.keys()
    if missing:
        defaults = defaults or {}
        model.objects.bulk_create(
            [model(key=k, auto_created=True, **defaults.get(k, {})) for k in sorted(missing)],
            ignore_conflicts=True,
        )
        ids.update(model.objects.filter(key__in=missing).values_list("key", "id"))
    return ids


def _event_id_of(raw: bytes) -> str | None:
    """The event_id of an item that failed validation, when it has a readable one."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


def _validate(
    *,
    key_tenant: Tenant | None,
    items: Sequence[bytes],
    now: datetime,
    results: list[ItemResult | None],
) -> list[tuple[int, EventIn]]:
    decoded: list[tuple[int, EventIn]] = []
    for index, raw in enumerate(items):
        try:
            event = event_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            results[index] = ItemResult(
                index, REJECTED, _event_id_of(raw), errors=field_errors(exc)
            )
            continue
        except RecursionError:
            errors = {"non_field_errors": ["Malformed JSON: nested too deeply."]}
            results[index] = ItemResult(index, REJECTED, None, errors=errors)
            continue
        errors = _check_semantics(event, now=now)
        if key_tenant is not None:
            if event.tenant is not None and event.tenant != key_tenant.slug:
                errors["tenant"] = ["This key may only post events of its own tenant."]
        elif event.tenant is None:
            errors["tenant"] = ["This field is required with an operator key."]
        if errors:
            results[index] = ItemResult(index, REJECTED, event.event_id, errors=errors)
            continue
        decoded.append((index, event))
    return decoded


def _with_tenants(
    *,
    key_tenant: Tenant | None,
    decoded: list[tuple[int, EventIn]],
    results: list[ItemResult | None],
) -> list[_Valid]:
    """The decoded events whose tenant may take them; the others are rejected."""
    if key_tenant is not None:
        tenants, tenant_errors = {key_tenant.slug: key_tenant}, {}
        if key_tenant.status != Tenant.Status.ACTIVE:
            tenant_errors = {key_tenant.slug: f"Tenant '{key_tenant.slug}' is {key_tenant.status}."}
    else:
        slugs = {event.tenant for _, event in decoded if event.tenant}
        tenants, tenant_errors = _tenants_resolve(slugs=slugs)
    valid: list[_Valid] = []
    for index, event in decoded:
        slug = event.tenant or key_tenant.slug
        if slug in tenant_errors:
            errors = {"tenant": [tenant_errors[slug]]}
            results[index] = ItemResult(index, REJECTED, event.event_id, errors=errors)
            continue
        valid.append(_Valid(index, event, tenants[slug], _content_hash(event, slug)))
    return valid


def events_ingest(
    *,
    key_tenant: Tenant | None,
    items: Sequence[bytes],
    now: datetime | None = None,
    api_key_id: int | None = None,
) -> list[ItemResult]:
    """Store each valid item once per (tenant, event_id); judge each item alone.

    `items` are JSON-encoded events. `key_tenant` is the tenant of a tenant-scoped key,
    or None for an operator key, which may post for any tenant; `api_key_id` is the
    posting key (what key budgets count). Returns one result per
    item, in order; when it returns, every accepted event is committed.
    """
    now = now or datetime.now(UTC)
    results: list[ItemResult | None] = [None] * len(items)
    decoded = _validate(key_tenant=key_tenant, items=items, now=now, results=results)

    valid = _with_tenants(key_tenant=key_tenant, decoded=decoded, results=results)
    # Within one batch the first occurrence of an id is the one stored.
    first_of: dict[tuple[int, str], _Valid] = {}
    repeats: list[_Valid] = []
    for item in valid:
        pair = (item.tenant.id, item.event.event_id)
        if pair in first_of:
            repeats.append(item)
        else:
            first_of[pair] = item
    to_store = list(first_of.values())

    with transaction.atomic():
        feature_ids = _ids_by_key(Feature, {i.event.feature for i in to_store if i.event.feature})
        # A prompt template belongs to the feature it is first seen with.
        prompt_defaults = {
            i.event.prompt_template: {"feature_id": feature_ids[i.event.feature]}
            for i in to_store
            if i.event.prompt_template and i.event.feature
        }
        prompt_ids = _ids_by_key(
            PromptTemplate,
            {i.event.prompt_template for i in to_store if i.event.prompt_template},
            prompt_defaults,
        )
        columns, costs = _columns(to_store, feature_ids=feature_ids, prompt_ids=prompt_ids, now=now,
                                  api_key_id=api_key_id)  # fmt: skip
        insert = events_insert(columns=columns, count=len(to_store))
        inserted = insert.pairs
        if inserted and spend_recorded.has_listeners():
            rows = [
                SpendRow(
                    tenant=item.tenant,
                    feature_id=feature_ids[item.event.feature] if item.event.feature else None,
                    feature_key=item.event.feature or "",
                    prompt_template_id=(
                        prompt_ids[item.event.prompt_template]
                        if item.event.prompt_template
                        else None
                    ),
                    model=item.event.model,
                    timestamp=item.event.timestamp,
                    cost=costs[position][0] or Decimal(0),
                    new_event=True,
                    user=item.event.user,
                    api_key_id=api_key_id,
                    tokens=item.event.input_tokens + item.event.output_tokens,
                    reservation=item.event.reservation_id,
                )
                for position, item in enumerate(to_store)
                if (item.tenant.id, item.event.event_id) in inserted
            ]
            spend_recorded.send(sender=UsageEvent, rows=rows, xact=insert.xact)

    not_inserted = [i for i in to_store if (i.tenant.id, i.event.event_id) not in inserted]
    stored = _stored_events(not_inserted + repeats)
    for position, item in enumerate(to_store):
        pair = (item.tenant.id, item.event.event_id)
        if pair in inserted:
            cost, priced = costs[position]
            results[item.index] = ItemResult(
                item.index, ACCEPTED, item.event.event_id, cost, priced
            )
        else:
            results[item.index] = _existing_result(item, stored.get(pair))
    position_of = {id(item): position for position, item in enumerate(to_store)}
    for item in repeats:
        pair = (item.tenant.id, item.event.event_id)
        original = first_of[pair]
        if pair in inserted and original.content_hash == item.content_hash:
            cost, priced = costs[position_of[id(original)]]
            results[item.index] = ItemResult(
                item.index, DUPLICATE, item.event.event_id, cost, priced
            )
        else:
            results[item.index] = _existing_result(item, stored.get(pair))
    return [r for r in results if r is not None]


def _existing_result(item: _Valid, stored: _Stored | None) -> ItemResult:
    if stored is None or stored[0] != item.content_hash:
        return ItemResult(
            item.index, CONFLICT, item.event.event_id, errors={"event_id": [CONFLICT_MESSAGE]}
        )
    return ItemResult(item.index, DUPLICATE, item.event.event_id, stored[1], stored[2])


_Stored = tuple[str, Decimal | None, bool]  # content hash, cost, priced


def _stored_events(items: Iterable[_Valid]) -> dict[tuple[int, str], _Stored]:
    by_tenant: dict[int, set[str]] = {}
    for item in items:
        by_tenant.setdefault(item.tenant.id, set()).add(item.event.event_id)
    stored: dict[tuple[int, str], _Stored] = {}
    for tenant_id, ids in by_tenant.items():
        rows = UsageEvent.objects.filter(tenant_id=tenant_id, event_id__in=ids).values_list(
            "event_id", "content_hash", "cost", "price_id"
        )
        for event_id, content_hash, cost, price_id in rows:
            stored[(tenant_id, event_id)] = (content_hash, cost, price_id is not None)
    return stored


def _columns(
    items: Sequence[_Valid],
    *,
    feature_ids: dict[str, int],
    prompt_ids: dict[str, int],
    now: datetime,
    api_key_id: int | None = None,
) -> tuple[dict[str, list[Any]], list[tuple[Decimal | None, bool]]]:
    """Column-wise values for the writer, and each row's (cost, priced)."""
    book = PriceBook.for_models(
        {i.event.model for i in items},
        {i.event.provider for i in items if i.event.provider},
        {i.event.region for i in items if i.event.region},
    )
    columns: dict[str, list[Any]] = {f.attname: [] for f in event_columns()}
    costs: list[tuple[Decimal | None, bool]] = []
    c = columns
    for item in items:
        e = item.event
        card = book.find(model=e.model, provider=e.provider, at=e.timestamp, region=e.region)
        tier = effective_service_tier(e)
        priced = None if card is None else usage_priced(usage=e, price=card)
        price = card.price if priced is not None else None
        cost = priced.cost if priced is not None else None
        costs.append((cost, price is not None))
        retrieval = e.retrieval
        c["tenant_id"].append(item.tenant.id)
        c["event_id"].append(e.event_id)
        c["timestamp"].append(e.timestamp)
        c["received_at"].append(now)
        c["feature_id"].append(feature_ids[e.feature] if e.feature else None)
        c["prompt_template_id"].append(prompt_ids[e.prompt_template] if e.prompt_template else None)
        c["model"].append(e.model)
        c["provider"].append(e.provider)
        c["region"].append(e.region)
        c["input_tokens"].append(e.input_tokens)
        c["output_tokens"].append(e.output_tokens)
        c["cached_input_tokens"].append(e.cached_input_tokens)
        c["cache_write_tokens"].append(e.cache_write_tokens)
        c["cache_write_1h_tokens"].append(e.cache_write_1h_tokens)
        c["queries"].append(e.queries)
        c["service_tier"].append(tier)
        c["reasoning_tokens"].append(e.reasoning_tokens)
        c["grounding_tokens"].append(e.grounding_tokens)
        c["wasted_tokens"].append(e.wasted_tokens)
        c["user"].append(e.user)
        c["api_key_id"].append(api_key_id)
        c["session"].append(e.session)
        c["routing_tier"].append(e.routing_tier)
        c["latency_ms"].append(e.latency_ms)
        c["cache_hit"].append(e.cache_hit)
        c["escalated"].append(e.escalated)
        c["batch"].append(tier == "batch")
        c["chunks_retrieved"].append(retrieval.chunks_retrieved if retrieval else None)
        c["chunks_used"].append(retrieval.chunks_used if retrieval else None)
        c["reranker_changed_order"].append(e.reranker_changed_order)
        c["outcome"].append(e.outcome)
        c["prompt_hash"].append(e.prompt_hash)
        c["tags"].append(e.tags)
        c["client_cost_usd"].append(e.cost_usd)
        c["cost"].append(cost)
        c["currency"].append(price.currency if price else "")
        c["price_id"].append(price.id if price else None)
        c["priced_at"].append(now if price else None)
        c["above_tokens"].append(priced.rate_class.above_tokens if priced else 0)
        c["off_peak"].append(priced.rate_class.off_peak if priced else False)
        c["tenant_tier"].append(item.tenant.tier)
        c["content_hash"].append(item.content_hash)
    return columns, costs
