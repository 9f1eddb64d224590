"""Signals other apps listen to, so that ingestion depends on none of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.dispatch import Signal

from finops.models import Tenant


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One event's change of cost: its cost when stored, or a later cost change."""

    tenant: Tenant
    feature_id: int | None
    feature_key: str
    prompt_template_id: int | None
    model: str
    timestamp: datetime
    cost: Decimal
    new_event: bool
    user: str = ""
    api_key_id: int | None = None
    tokens: int = 0  # input + output, of a new event
    reservation: str = ""  # the guard's reservation the new event settles


# Sent inside the transaction that stores the rows, with `rows` (a list of SpendRow) and,
# when the sender knows it, `xact` (the transaction's id); receivers that act on other
# systems must wait for the commit (`transaction.on_commit`).
spend_recorded = Signal()
