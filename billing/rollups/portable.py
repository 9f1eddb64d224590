"""The fold on databases without exact aggregation (the embedded SQLite, whose SUM is
floating point): in Python with `Decimal`, by chunks of events in id order.

It computes what the PostgreSQL fold computes (tests/billing/test_rollup_parity.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any

from django.db.models import Model, QuerySet, Sum, TextField, Value
from django.db.models.functions import Cast

from billing.models import DailyKey, FeatureRollup, RollupWatermark, UsageRollup
from finops.fields import ExactSum
from finops.money import EXACT
from finops.pricing import TOKEN_COLUMNS
from ingestion.models import CostChange, UsageEvent

from .columns import FEATURE_KEY, SUMS, USAGE_KEY
from .result import RollupResult
from .tags import tag_key, tag_value

CHUNK = 20_000
BATCH = 500

# A cell: (timestamp, tenant id, feature, model, prompt template, routing tier, tenant
# tier, provider, region, service tier, above tokens, off-peak, tag), what an event or
# cost change is folded by; its sums are a list in `SUMS` order.
Cell = tuple[datetime, int, str, str, str, str, str, str, str, str, int, bool, str]

# An event's cell in the order of `Cell`, its tags' JSON text last (read when a tag is
# reported), then what it adds up.
EVENT_CELL = (
    "timestamp", "tenant_id", "feature__key", "model", "prompt_template__key", "routing_tier",
    "tenant_tier", "provider", "region", "service_tier", "above_tokens", "off_peak",
)  # fmt: skip
EVENT_SUMS = (
    "price_id", *TOKEN_COLUMNS, "cost", "chunks_retrieved", "chunks_used",
    "reranker_changed_order", "escalated", "cache_hit", "outcome", "session", "prompt_hash",
)  # fmt: skip
CHANGE_SUMS = ("priced_delta", "cost_delta", "event__outcome", "event__session",
               "event__cache_hit")  # fmt: skip


class Sums:
    """The sums of a run by rollup row, per tenant (`usage`) and across tenants."""

    def __init__(self) -> None:
        self.usage: dict[tuple, list] = {}
        self.features: dict[tuple, list] = {}

    def add(self, cell: Cell, values: list) -> None:
        ts, tenant_id, feature, model, prompt, routing_tier, tenant_tier, *slices = cell
        hour = ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for grain, start in (("hour", hour), ("day", hour.replace(hour=0))):
            _add(self.usage, (grain, start, tenant_id, feature, model, prompt, routing_tier,
                              *slices), values)  # fmt: skip
            _add(self.features, (grain, start, feature, model, routing_tier, tenant_tier,
                                 *slices), values)  # fmt: skip


def _add(sums: dict[tuple, list], key: tuple, values: list) -> None:
    current = sums.get(key)
    if current is None:
        sums[key] = list(values)
    else:
        for i, value in enumerate(values):
            current[i] += value


def fold_portable(mark: RollupWatermark) -> RollupResult:
    """Fold the events and cost changes after the watermark's ids; move `mark`. Runs in
    the caller's transaction, which holds the watermark's row lock."""
    with localcontext(EXACT):
        sums = Sums()
        result = RollupResult()
        result.events = _fold_events(mark, sums)
        result.changes = _fold_changes(mark, sums)
        result.rows = _upsert(UsageRollup, USAGE_KEY, sums.usage) + _upsert(
            FeatureRollup, FEATURE_KEY, sums.features
        )
        return result


def _chunks(queryset: QuerySet, position: int) -> Iterator[list[tuple]]:
    while True:
        rows = list(queryset.filter(id__gt=position).order_by("id")[:CHUNK])
        if not rows:
            return
        position = rows[-1][0]
        yield rows


def _tags_text(path: str, key: str) -> Any:
    """The tags' JSON text (a constant when no tag is reported: nothing to read)."""
    return Cast(path, TextField()) if key else Value("")


def _fold_events(mark: RollupWatermark, sums: Sums) -> int:
    """An event counts as it was inserted: its cost changes are folded on their own."""
    folded = 0
    key = tag_key()
    events = UsageEvent.objects.values_list("id", *EVENT_CELL, _tags_text("tags", key),
                                            *EVENT_SUMS)  # fmt: skip
    for rows in _chunks(events, mark.events_position):
        firsts = _firsts(rows)
        changed = _changes_of([row[0] for row in rows])
        for row in rows:
            cell, values = _event_sums(row, firsts, changed, key)
            sums.add(cell, values)
        mark.events_position = rows[-1][0]
        folded += len(rows)
    return folded


def _changes_of(event_ids: list[int]) -> dict[int, tuple[int, Decimal]]:
    """The cost changes already written for these events: (priced, cost) by event."""
    changes = (
        CostChange.objects.filter(event_id__in=event_ids)
        .values_list("event_id")
        .annotate(priced=Sum("priced_delta"), cost=ExactSum("cost_delta"))
    )
    return {event_id: (priced, cost) for event_id, priced, cost in changes}


def _cell(row: tuple, key: str) -> Cell:
    """The cell of `row`: `EVENT_CELL` (or its cost change's) then the tags' text."""
    ts, tenant_id, feature, model, prompt, *columns, tags = row
    return (ts, tenant_id, feature or "", model, prompt or "", *columns, tag_value(tags, key))


def _event_sums(
    row: tuple, firsts: set[tuple[str, int]], changed: dict[int, tuple[int, Decimal]], key: str
) -> tuple[Cell, list]:
    event_id = row[0]
    cell = _cell(row[1 : len(EVENT_CELL) + 2], key)
    price_id, *rest = row[len(EVENT_CELL) + 2 :]
    tokens, rest = rest[: len(TOKEN_COLUMNS)], rest[len(TOKEN_COLUMNS) :]
    cost, retrieved, used, reranker, escalated, cache_hit, outcome, session, prompt_hash = rest
    change_priced, change_cost = changed.get(event_id, (0, Decimal(0)))
    cost = (cost if cost is not None else Decimal(0)) - change_cost
    priced = (0 if price_id is None else 1) - change_priced
    metrics = [
        retrieved or 0, used or 0, int(reranker is not None), int(bool(reranker)),
        int(bool(outcome)), int(outcome == "correct"), cost if outcome else 0,
        cost if session else 0, int(("s", event_id) in firsts), int(bool(prompt_hash)),
        int(bool(prompt_hash) and ("p", event_id) not in firsts),
        int(bool(escalated)), int(cache_hit is not None), int(bool(cache_hit)),
        cost if cache_hit else 0,
    ]  # fmt: skip
    return cell, [1, priced, *tokens, cost, *metrics]


def _fold_changes(mark: RollupWatermark, sums: Sums) -> int:
    folded = 0
    zeros = [0] * len(TOKEN_COLUMNS)
    key = tag_key()
    changes = CostChange.objects.values_list(
        "id", *(f"event__{c}" for c in EVENT_CELL), _tags_text("event__tags", key), *CHANGE_SUMS
    )
    for rows in _chunks(changes, mark.changes_position):
        for row in rows:
            cell = _cell(row[1 : len(EVENT_CELL) + 2], key)
            priced, cost, outcome, session, cache_hit = row[len(EVENT_CELL) + 2 :]
            metrics = [0] * 6 + [cost if outcome else 0, cost if session else 0, 0, 0, 0,
                                 0, 0, 0, cost if cache_hit else 0]  # fmt: skip
            sums.add(cell, [0, priced, *zeros, cost, *metrics])
        mark.changes_position = rows[-1][0]
        folded += len(rows)
    return folded


def key_hash(tenant_id: int, kind: str, text: str) -> int:
    digest = hashlib.blake2b(f"{tenant_id}:{kind}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def _firsts(rows: list[tuple]) -> set[tuple[str, int]]:
    """(kind, event id) for each event that is the first of its session or prompt hash
    for its tenant that UTC day, the keys recorded as it goes."""
    first: dict[tuple[str, date, int], int] = {}
    for row in rows:
        event_id, ts, tenant_id, session, prompt_hash = row[0], row[1], row[2], row[-2], row[-1]
        day = ts.astimezone(UTC).date()
        for kind, text in (("s", session), ("p", prompt_hash)):
            if text:
                first.setdefault((kind, day, key_hash(tenant_id, kind, text)), event_id)
    keys = list(first)
    for i in range(0, len(keys), BATCH):
        batch = keys[i : i + BATCH]
        seen = set(
            DailyKey.objects.filter(
                day__in={day for _, day, _ in batch}, key__in={key for _, _, key in batch}
            ).values_list("day", "key")
        )
        for key in batch:
            if key[1:] in seen:
                del first[key]
    # Every key, old days too: a later chunk of this run looks them up (the run prunes
    # them at its end).
    DailyKey.objects.bulk_create(
        [DailyKey(day=day, key=key) for _, day, key in first], batch_size=BATCH
    )
    return {(kind, event_id) for (kind, _, _), event_id in first.items()}


def _upsert(model: type[Model], key_fields: tuple[str, ...], sums: dict[tuple, list]) -> int:
    """Add `sums` (by `key_fields`) to the rows of `model`, creating the missing ones."""
    if not sums:
        return 0
    existing = _existing(model, key_fields, sums)
    to_update: list = []
    to_create: list = []
    for key, values in sums.items():
        row = existing.get(key)
        if row is None:
            row = model(**dict(zip(key_fields, key, strict=True)))
            for name, value in zip(SUMS, values, strict=True):
                setattr(row, name, value)
            to_create.append(row)
        else:
            for name, value in zip(SUMS, values, strict=True):
                setattr(row, name, getattr(row, name) + value)
            to_update.append(row)
    model.objects.bulk_create(to_create, batch_size=BATCH)
    model.objects.bulk_update(to_update, list(SUMS), batch_size=BATCH)
    return len(to_create) + len(to_update)


def _existing(
    model: type[Model], key_fields: tuple[str, ...], sums: dict[tuple, list]
) -> dict[tuple, Any]:
    """The rows of `model` already there for the periods of `sums`, by key."""
    existing: dict[tuple, Any] = {}
    periods = {(k[0], k[1]) for k in sums}
    for grain in {g for g, _ in periods}:
        starts = [s for g, s in periods if g == grain]
        for i in range(0, len(starts), BATCH):
            for row in model.objects.filter(grain=grain, period_start__in=starts[i : i + BATCH]):
                existing[tuple(getattr(row, f) for f in key_fields)] = row
    return existing
