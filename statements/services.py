"""Chargeback statements: drafted from the ledger, finalized once, never changed after.

A statement bills one tenant for one calendar month (UTC). Its usage lines come from the
month's priced events grouped by feature, model, price row and batch flag, one line per
token kind: quantity, unit price per 1M tokens, amount. Each line's exact amount is
rounded once, half-up, to the currency's minor unit; totals are sums of rounded lines,
the exact sum is kept beside them.

Statements read the ledger, not the rollups: a line needs the price row its tokens were
priced by, which the rollups do not keep.

Late usage: once a month's statement is final, whatever the ledger holds for that month
beyond what final statements billed (late events, events priced late) appears as
adjustment lines, by month, on the tenant's earliest open statement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum

from billing.periods import MONTH, period_end, period_start
from finops.fields import ExactSum
from finops.models import ModelPrice, Tenant
from finops.money import EXACT, ONE_MILLION, decimal_string, round_money
from finops.pricing import UnitPrices
from ingestion.models import UsageEvent

from .models import Statement, StatementLine

ZERO = Decimal(0)
EXACT_PLACES = Decimal("1e-30")

# Token kinds as statements bill them: the parts of a call that carry their own price.
TOKEN_KINDS = (
    ("input", "input tokens"),
    ("cached_input", "cached input tokens"),
    ("cache_write", "cache write tokens"),
    ("output", "output tokens"),
    ("reasoning", "reasoning tokens"),
)
_UNIT_FIELD = {
    "input": "uncached_input",
    "cached_input": "cached_input",
    "cache_write": "cache_write",
    "output": "output",
    "reasoning": "reasoning",
}

LineKey = tuple[str, str, str, int | None, bool]  # feature, model, token kind, price, batch


@dataclass(slots=True)
class Amount:
    quantity: int
    amount: Decimal
    unit_price: Decimal | None


def month_start(d: date | datetime) -> datetime:
    return datetime(d.year, d.month, 1, tzinfo=UTC)


def statement_number(tenant: Tenant, period: date) -> str:
    return f"{tenant.slug.upper()}-{period:%Y-%m}"


# --- The ledger, by line ----------------------------------------------------------------


def ledger_lines(
    *, start: datetime, end: datetime, tenant_ids: Iterable[int] | None = None
) -> dict[int, dict[LineKey, Amount]]:
    """Per tenant: the month's usage by line key, exact. One grouped query."""
    events = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if tenant_ids is not None:
        events = events.filter(tenant_id__in=list(tenant_ids))
    groups = events.values("tenant_id", "feature__key", "model", "price_id", "batch").annotate(
        input=Sum(F("input_tokens") - F("cached_input_tokens") - F("cache_write_tokens")),
        cached_input=Sum("cached_input_tokens"),
        cache_write=Sum("cache_write_tokens"),
        output=Sum(F("output_tokens") - F("reasoning_tokens")),
        reasoning=Sum("reasoning_tokens"),
        cost=ExactSum("cost"),
        calls=Count("id"),
    )
    groups = list(groups)
    prices = ModelPrice.objects.in_bulk({g["price_id"] for g in groups if g["price_id"]})
    result: dict[int, dict[LineKey, Amount]] = {}
    with localcontext(EXACT):
        for g in groups:
            lines = result.setdefault(g["tenant_id"], {})
            price = prices.get(g["price_id"])
            units = UnitPrices.of(price, batch=g["batch"]) if price else None
            for kind, _ in TOKEN_KINDS:
                quantity = g[kind] or 0
                if not quantity:
                    continue
                key = (g["feature__key"] or "", g["model"], kind, g["price_id"], g["batch"])
                if units is None:
                    lines[key] = Amount(quantity, ZERO, None)
                    continue
                unit = getattr(units, _UNIT_FIELD[kind])
                lines[key] = Amount(quantity, quantity * unit / ONE_MILLION, unit)
    return result


def _billed(tenant: Tenant, period: date) -> dict[LineKey, Amount]:
    """What final statements billed for one month: its own usage lines and adjustments
    for it on later final statements."""
    billed: dict[LineKey, Amount] = {}
    lines = StatementLine.objects.filter(
        statement__tenant=tenant,
        statement__status=Statement.Status.FINALIZED,
        period=period,
        kind__in=[StatementLine.Kind.USAGE, StatementLine.Kind.ADJUSTMENT],
    )
    with localcontext(EXACT):
        for line in lines:
            key = (line.feature, line.model, line.token_kind, line.price_id, line.batch)
            current = billed.setdefault(key, Amount(0, ZERO, line.unit_price))
            current.quantity += line.quantity or 0
            current.amount += line.amount_exact
    return billed


# --- Building a statement -------------------------------------------------------------


def _describe(key: LineKey, *, adjustment_for: date | None = None) -> str:
    feature, model, kind, price_id, batch = key
    label = dict(TOKEN_KINDS)[kind]
    text = f"{feature or '(no feature)'} / {model}: {label}"
    if batch:
        text += " (batch)"
    if price_id is None:
        text += " (no price yet)"
    if adjustment_for is not None:
        text = f"Adjustment for {adjustment_for:%Y-%m}: {text}"
    return text


def _sorted(lines: dict[LineKey, Amount]) -> list[tuple[LineKey, Amount]]:
    order = {kind: i for i, (kind, _) in enumerate(TOKEN_KINDS)}
    return sorted(
        lines.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][4], kv[0][3] or 0, order[kv[0][2]])
    )


def _build_lines(
    statement: Statement,
    usage: dict[LineKey, Amount],
    adjustments: list[tuple[date, dict[LineKey, Amount]]],
) -> list[StatementLine]:
    currency = statement.currency
    lines: list[StatementLine] = []

    def add(kind: str, period: date, key: LineKey | None, amount: Amount, text: str) -> None:
        feature, model, token_kind, price_id, batch = key or ("", "", "", None, False)
        lines.append(
            StatementLine(
                statement=statement,
                position=len(lines) + 1,
                kind=kind,
                period=period,
                feature=feature,
                model=model,
                token_kind=token_kind,
                batch=batch,
                price_id=price_id,
                quantity=amount.quantity if key else None,
                unit_price=amount.unit_price,
                amount=round_money(amount.amount, currency),
                # The ledger's scale; only a markup on batch prices can reach past it.
                amount_exact=amount.amount.quantize(EXACT_PLACES, ROUND_HALF_UP, EXACT),
                description=text,
            )
        )

    for key, amount in _sorted(usage):
        add(StatementLine.Kind.USAGE, statement.period, key, amount, _describe(key))
    for month, diff in adjustments:
        for key, amount in _sorted(diff):
            add(StatementLine.Kind.ADJUSTMENT, month, key, amount,
                _describe(key, adjustment_for=month))  # fmt: skip
    with localcontext(EXACT):
        billable = sum((line.amount_exact for line in lines), ZERO)
        if statement.markup_percent:
            markup = billable * statement.markup_percent / 100
            add(StatementLine.Kind.MARKUP, statement.period, None, Amount(0, markup, None),
                f"Chargeback markup {decimal_string(statement.markup_percent)}%")  # fmt: skip
    return lines


def _adjustments(statement: Statement, now: datetime) -> list[tuple[date, dict[LineKey, Amount]]]:
    """Differences between the ledger and what final statements billed, for each final
    month the backfill window can still reach; only on the tenant's earliest open
    statement."""
    earliest_open = (
        Statement.objects.filter(tenant=statement.tenant, status=Statement.Status.DRAFT)
        .order_by("period")
        .values_list("id", flat=True)
        .first()
    )
    if earliest_open != statement.id:
        return []
    horizon = month_start(now - timedelta(days=settings.FINOPS_BACKFILL_DAYS + 31)).date()
    finals = Statement.objects.filter(
        tenant=statement.tenant, status=Statement.Status.FINALIZED, period__gte=horizon,
        period__lt=statement.period,
    ).order_by("period")  # fmt: skip
    result = []
    for final in finals:
        start = month_start(final.period)
        in_ledger = ledger_lines(
            start=start, end=period_end(MONTH, start), tenant_ids=[statement.tenant_id]
        ).get(statement.tenant_id, {})
        billed = _billed(statement.tenant, final.period)
        diff: dict[LineKey, Amount] = {}
        with localcontext(EXACT):
            for key in in_ledger.keys() | billed.keys():
                now_ = in_ledger.get(key, Amount(0, ZERO, None))
                then = billed.get(key, Amount(0, ZERO, None))
                if now_.quantity != then.quantity or now_.amount != then.amount:
                    diff[key] = Amount(
                        now_.quantity - then.quantity,
                        now_.amount - then.amount,
                        now_.unit_price if now_.unit_price is not None else then.unit_price,
                    )
        if diff:
            result.append((final.period, diff))
    return result


def _totals(statement: Statement, lines: list[StatementLine]) -> None:
    def total(kind: str | None) -> Decimal:
        return sum((ln.amount for ln in lines if kind is None or ln.kind == kind), ZERO)

    statement.subtotal = total(StatementLine.Kind.USAGE)
    statement.adjustments = total(StatementLine.Kind.ADJUSTMENT)
    statement.markup = total(StatementLine.Kind.MARKUP)
    statement.total = total(None)
    with localcontext(EXACT):
        statement.total_exact = sum((ln.amount_exact for ln in lines), ZERO)


def content_hash(statement: Statement, lines: Iterable[StatementLine]) -> str:
    """SHA-256 of the statement's canonical JSON: what it bills, to whom, for when."""
    document = {
        "number": statement.number,
        "tenant": statement.tenant.slug,
        "period": statement.period_label,
        "currency": statement.currency,
        "markup_percent": decimal_string(statement.markup_percent),
        "subtotal": decimal_string(statement.subtotal),
        "markup": decimal_string(statement.markup),
        "adjustments": decimal_string(statement.adjustments),
        "total": decimal_string(statement.total),
        "total_exact": decimal_string(statement.total_exact),
        "lines": [
            [
                ln.position,
                ln.kind,
                f"{ln.period:%Y-%m}",
                ln.feature,
                ln.model,
                ln.token_kind,
                ln.batch,
                ln.price_id,
                ln.quantity,
                decimal_string(ln.unit_price),
                decimal_string(ln.amount),
                decimal_string(ln.amount_exact),
            ]
            for ln in lines
        ],  # fmt: skip
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _rebuild(statement: Statement, usage: dict[LineKey, Amount], now: datetime) -> None:
    tenant = statement.tenant
    statement.currency = tenant.billing_currency
    statement.markup_percent = tenant.markup_percent
    lines = _build_lines(statement, usage, _adjustments(statement, now))
    _totals(statement, lines)
    statement.drafted_at = now
    StatementLine.objects.filter(statement=statement).delete()
    StatementLine.objects.bulk_create(lines, batch_size=1000)
    statement.save()
    statement._built_lines = lines  # type: ignore[attr-defined]


# --- Jobs -----------------------------------------------------------------------------


@dataclass(slots=True)
class DraftResult:
    created: int = 0
    drafted: int = 0
    finalized: int = 0


def _months_open(tenant: Tenant, now: datetime) -> list[date]:
    """The months a tenant should have a statement for now: this one and the last, from
    its signup month on, and any of them it has usage in."""
    current = period_start(MONTH, now)
    previous = period_start(MONTH, current - timedelta(days=1))
    signup = period_start(MONTH, tenant.signup_at)
    months = [m for m in (previous, current) if m >= signup]
    if (
        previous not in months
        and UsageEvent.objects.filter(
            tenant=tenant, timestamp__gte=previous, timestamp__lt=current
        ).exists()
    ):
        months.insert(0, previous)  # usage posted for a month before the signup date
    return [m.date() for m in months]


def _ensure(tenant: Tenant, period: date) -> Statement:
    statement = Statement.objects.filter(tenant=tenant, period=period).first()
    if statement is not None:
        return statement
    try:
        with transaction.atomic():
            return Statement.objects.create(
                tenant=tenant,
                period=period,
                number=statement_number(tenant, period),
                currency=tenant.billing_currency,
                markup_percent=tenant.markup_percent,
            )
    except IntegrityError:  # created meanwhile by a concurrent run
        return Statement.objects.get(tenant=tenant, period=period)


def statements_draft(*, now: datetime) -> DraftResult:
    """Create this month's (and last month's) statement for every active tenant and
    rebuild every open draft from the ledger."""
    result = DraftResult()
    tenants = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE))
    for tenant in tenants:
        for period in _months_open(tenant, now):
            before = Statement.objects.filter(tenant=tenant, period=period).exists()
            _ensure(tenant, period)
            result.created += 0 if before else 1
    drafts = Statement.objects.filter(status=Statement.Status.DRAFT).select_related("tenant")
    by_period: dict[date, list[Statement]] = {}
    for statement in drafts:
        by_period.setdefault(statement.period, []).append(statement)
    for period, statements in sorted(by_period.items()):
        start = month_start(period)
        usage = ledger_lines(start=start, end=period_end(MONTH, start),
                             tenant_ids=[s.tenant_id for s in statements])  # fmt: skip
        for statement in statements:
            if _draft_one(statement, usage.get(statement.tenant_id, {}), now):
                result.drafted += 1
    return result


def _draft_one(statement: Statement, usage: dict[LineKey, Amount], now: datetime) -> bool:
    with transaction.atomic():
        locked = Statement.objects.select_for_update().select_related("tenant").get(id=statement.id)
        if locked.status != Statement.Status.DRAFT:
            return False  # finalized meanwhile: never touched again
        _rebuild(locked, usage, now)
        return True


def statements_finalize(*, now: datetime) -> DraftResult:
    """Finalize every draft whose month ended more than the grace period ago."""
    result = DraftResult()
    grace = timedelta(days=settings.FINOPS_STATEMENT_GRACE_DAYS)
    due = [
        s
        for s in Statement.objects.filter(status=Statement.Status.DRAFT).select_related("tenant")
        if period_end(MONTH, month_start(s.period)) + grace <= now
    ]
    # Oldest first: a month's adjustments then land on the statement that stays open.
    for statement in sorted(due, key=lambda s: (s.period, s.tenant_id)):
        if statement_finalize(statement=statement, now=now):
            result.finalized += 1
    return result


def statement_finalize(*, statement: Statement, now: datetime) -> bool:
    """Rebuild the draft one last time and freeze it. False if it was final already."""
    start = month_start(statement.period)
    with transaction.atomic():
        locked = Statement.objects.select_for_update().select_related("tenant").get(id=statement.id)
        if locked.status != Statement.Status.DRAFT:
            return False
        usage = ledger_lines(start=start, end=period_end(MONTH, start),
                             tenant_ids=[locked.tenant_id])  # fmt: skip
        _rebuild(locked, usage.get(locked.tenant_id, {}), now)
        locked.status = Statement.Status.FINALIZED
        locked.finalized_at = now
        locked.content_hash = content_hash(locked, locked._built_lines)  # type: ignore[attr-defined]
        locked.save(update_fields=["status", "finalized_at", "content_hash"])
    return True


def statement_verify(statement: Statement) -> bool:
    """Whether a final statement still hashes to what it was finalized with."""
    lines = list(statement.lines.order_by("position"))
    return statement.content_hash == content_hash(statement, lines)
