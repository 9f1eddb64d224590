"""`{% load money %}{{ amount|money:currency }}`: an amount for people, by `money_format`."""

from __future__ import annotations

from decimal import Decimal

from django import template

from finops.money import money_format

register = template.Library()


@register.filter
def money(amount: Decimal | int | str | None, currency: str) -> str:
    """`12.35 USD`, `0.023 USD`; nothing for no amount (None, or a missing variable's "")."""
    if amount is None or amount == "":
        return ""
    return money_format(Decimal(amount), currency) or ""
