"""Keeping the counters current: what each committed transaction adds to them, applied
right after it commits (see `seeding` for how increments and seeds meet)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal, localcontext
from typing import Any

import redis
from django.db import connection, transaction

from finops.models import Tenant
from finops.money import EXACT
from ingestion.signals import SpendRow

from ..caps import FREE_TIER_WINDOW
from . import redis as guard_redis
from .amounts import to_limbs
from .reservations import Release, reservations_settle
from .scopes import window_scope

log = logging.getLogger(__name__)

# tenant, feature id, prompt id, key id, model, end user, minute
Cell = tuple[int, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Increment:
    """What one committed transaction adds: cost and tokens per minute cell, cost per
    window counter, and the reservations its new events settle."""

    xact: int
    cells: dict[Cell, tuple[Decimal, int]]
    direct: dict[str, Decimal]
    releases: list[Release]


def spend_recorded_receiver(sender: Any, rows: list[SpendRow], **kwargs: Any) -> None:
    """Inside the storing transaction: note its id and what it adds; after the commit,
    add it to the hot counters."""
    if not guard_redis.enabled() or not rows:
        return
    xact = kwargs.get("xact")
    if not xact:  # a sender that did not insert the rows itself
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            xact = cursor.fetchone()[0]
    increment = spend_increment(xact, rows, reservations_settle(r.reservation for r in rows))
    transaction.on_commit(lambda: _apply(increment))


def spend_increment(
    xact: int, rows: list[SpendRow], releases: list[Release] | None = None
) -> Increment:
    cells: dict[Cell, tuple[Decimal, int]] = {}
    direct: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for row in rows:
            if not row.cost and not row.tokens:
                continue
            cell = _cell(row)
            cost, tokens = cells.get(cell, (Decimal(0), 0))
            cells[cell] = (cost + row.cost, tokens + row.tokens)
            window = _free_window(row) if row.cost else None
            if window is not None:
                direct[window] = direct.get(window, Decimal(0)) + row.cost
    return Increment(xact=xact, cells=cells, direct=direct, releases=releases or [])


def _cell(row: SpendRow) -> Cell:
    return (
        row.tenant.id,
        "" if row.feature_id is None else str(row.feature_id),
        "" if row.prompt_template_id is None else str(row.prompt_template_id),
        "" if row.api_key_id is None else str(row.api_key_id),
        row.model,
        row.user,
        row.timestamp.astimezone(UTC).strftime("%Y%m%d%H%M"),
    )


def _free_window(row: SpendRow) -> str | None:
    """The counter of the tenant's free days, if the row falls in them."""
    tenant = row.tenant
    if tenant.tier != Tenant.Tier.FREE:
        return None
    end = tenant.signup_at + FREE_TIER_WINDOW
    if not tenant.signup_at <= row.timestamp < end:
        return None
    return window_scope(tenant_id=tenant.id, start=tenant.signup_at, end=end).name


def increment_apply(inc: Increment) -> None:
    args: list[Any] = [inc.xact, len(inc.cells)]
    for cell, (cost, tokens) in inc.cells.items():
        args += [*cell, to_limbs(cost), to_limbs(Decimal(tokens))]
    args.append(len(inc.direct))
    for name, amount in inc.direct.items():
        args += [name, to_limbs(amount)]
    args.append(len(inc.releases))
    for name, member in inc.releases:
        args += [name, member]
    guard_redis.scripts().apply(args=args)


def _apply(increment: Increment) -> None:
    if not guard_redis.available():
        return  # the ledger has it; the counters heal when they are seeded again
    try:
        increment_apply(increment)
    except redis.RedisError:
        guard_redis.mark_down()
        # The ledger has it; the counter heals when it is seeded again.
        log.warning("guard: could not add committed spend to Redis", exc_info=True)
