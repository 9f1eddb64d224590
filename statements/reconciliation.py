"""Reconciliation: per provider and month, the priced events beside the vendors' bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings

from finops.periods import MONTH, period_end
from ingestion.selectors import priced_cost_by_provider

from .models import VendorBill
from .services import month_start


@dataclass(slots=True)
class ProviderRow:
    provider: str
    currency: str
    ledger: Decimal
    events: int
    billed: Decimal | None
    difference: Decimal | None  # ledger - billed
    percent: Decimal | None  # of the bill
    flagged: bool
    note: str


def reconciliation(period: date) -> list[ProviderRow]:
    start = month_start(period)
    ledger = priced_cost_by_provider(start=start, end=period_end(MONTH, start))
    bills: dict[tuple[str, str], Decimal] = {}
    for bill in VendorBill.objects.filter(period=period):
        key = (bill.provider, bill.currency)
        bills[key] = bills.get(key, Decimal(0)) + bill.amount
    tolerance = settings.FINOPS_RECONCILIATION_TOLERANCE_PERCENT
    rows = []
    for key in sorted(ledger.keys() | bills.keys()):
        provider, currency = key
        cost = ledger[key]["cost"] if key in ledger else Decimal(0)
        calls = ledger[key]["calls"] if key in ledger else 0
        billed = bills.get(key)
        difference = percent = None
        flagged, note = False, ""
        if billed is None:
            note = "no bill entered"
        else:
            difference = cost - billed
            if billed:
                percent = (difference * 100 / billed).quantize(Decimal("0.01"))
                flagged = abs(percent) > tolerance
            else:
                flagged = cost != 0
            if flagged:
                note = f"differs by more than {tolerance}%"
        rows.append(ProviderRow(provider, currency, cost, calls, billed, difference, percent,
                                flagged, note))  # fmt: skip
    return rows
