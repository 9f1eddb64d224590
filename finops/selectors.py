"""Reads of the core."""

from __future__ import annotations

from django.db.models import PROTECT, BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet

from .models import ModelPrice


def _protecting_relations() -> list:
    """Every foreign key that protects a price row from deletion: the priced events and
    the statement lines, whichever apps hold them (the core names none of them)."""
    return [
        rel
        for rel in ModelPrice._meta.get_fields(include_hidden=True)
        if rel.one_to_many and rel.auto_created and rel.on_delete is PROTECT
    ]


def price_is_used(*, price: ModelPrice) -> bool:
    """Whether a price row has priced anything (an event, a statement line): such a row
    is history, never edited or deleted; a change of price is a new row."""
    return any(
        rel.related_model._default_manager.filter(**{rel.field.name: price.pk}).exists()
        for rel in _protecting_relations()
    )


def prices_with_use(prices: QuerySet[ModelPrice]) -> QuerySet[ModelPrice]:
    """`prices` annotated with `used` (see `price_is_used`)."""
    used = Q(pk__in=[])
    for rel in _protecting_relations():
        rows = rel.related_model._default_manager.filter(**{rel.field.name: OuterRef("pk")})
        used |= Q(Exists(rows))
    return prices.annotate(used=ExpressionWrapper(used, output_field=BooleanField()))
