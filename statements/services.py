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
from django.db import connection, transaction

from finops.models import BEGINNING_OF_TIME, ModelPrice, Tenant
from finops.money import EXACT, ONE_MILLION, decimal_string, round_money
from finops.periods import MONTH, period_end, period_start
from finops.pricing import TOKEN_KIND_LABELS, TOKEN_KINDS, RateCard, RateClass
from ingestion.models import Feature
from ingestion.selectors import event_line_sums, tenant_has_events
from ingestion.services.pricing import RepricingResult, events_reprice

from .models import Statement, StatementLine, VendorBill

ZERO = Decimal(0)
EXACT_PLACES = Decimal("1e-30")

# feature, model, token kind, price row, service tier, long-context threshold, off-peak:
# each class of rate of a price row bills on a line of its own.
LineKey = tuple[str, str, str, int | None, str, int, bool]


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
    groups = event_line_sums(start=start, end=end, tenant_ids=tenant_ids)
    prices = ModelPrice.objects.prefetch_related("rates").in_bulk(
        {g["price_id"] for g in groups if g["price_id"]}
    )
    features = dict(
        Feature.objects.filter(
            id__in={g["feature_id"] for g in groups if g["feature_id"]}
        ).values_list("id", "key")
    )
    result: dict[int, dict[LineKey, Amount]] = {}
    with localcontext(EXACT):
        for g in groups:
            lines = result.setdefault(g["tenant_id"], {})
            price = prices.get(g["price_id"])
            rate_class = RateClass(g["service_tier"], g["above_tokens"], g["off_peak"])
            units = RateCard.of(price).unit_prices(rate_class) if price else None
            for kind in TOKEN_KINDS:
                quantity = g[kind] or 0
                if not quantity:
                    continue
                feature = features.get(g["feature_id"], "")
                key = (feature, g["model"], kind, g["price_id"], *_class_of(g))
                if units is None:
                    lines[key] = Amount(quantity, ZERO, None)
                    continue
                unit = units[kind]
                lines[key] = Amount(quantity, quantity * unit / ONE_MILLION, unit)
    return result


def _billed(tenant_ids: Iterable[int], period: date) -> dict[int, dict[LineKey, Amount]]:
    """Per tenant, what final statements billed for one month: its own usage lines and
    adjustments for it on later final statements."""
    billed: dict[int, dict[LineKey, Amount]] = {}
    lines = StatementLine.objects.filter(
        statement__tenant_id__in=list(tenant_ids),
        statement__status=Statement.Status.FINALIZED,
        period=period,
        kind__in=[StatementLine.Kind.USAGE, StatementLine.Kind.ADJUSTMENT],
    ).exclude(token_kind="")  # rounding lines: no usage of their own
    columns = ("statement__tenant_id", "feature", "model", "token_kind", "price_id",
               "service_tier", "above_tokens", "off_peak", "quantity", "amount_exact",
               "unit_price")  # fmt: skip
    lines = lines.values_list(*columns)
    with localcontext(EXACT):
        for tenant_id, feature, model, kind, price_id, *rate, qty, amount, unit in lines:
            key = (feature, model, kind, price_id, *rate)
            current = billed.setdefault(tenant_id, {}).setdefault(key, Amount(0, ZERO, unit))
            current.quantity += qty or 0
            current.amount += amount
    return billed


# --- Building a statement -------------------------------------------------------------


def _class_of(group: dict) -> tuple[str, int, bool]:
    return (group["service_tier"], group["above_tokens"], group["off_peak"])


def rate_label(token_kind: str, service_tier: str, above_tokens: int, off_peak: bool) -> str:
    """A line's kind of charge: "input, above 200k", "cache write, 1 h", "batch output"."""
    label = TOKEN_KIND_LABELS[token_kind]
    if service_tier != "standard":
        label = f"{service_tier} {label}"
    rest = RateClass("standard", above_tokens, off_peak).label()
    return f"{label}, {rest}" if rest else label


def _describe(key: LineKey, *, adjustment_for: date | None = None) -> str:
    feature, model, kind, price_id, *rate = key
    text = f"{feature or '(no feature)'} / {model}: {rate_label(kind, *rate)}"
    if price_id is None:
        text += " (no price yet)"
    if adjustment_for is not None:
        text = f"Adjustment for {adjustment_for:%Y-%m}: {text}"
    return text


def _sorted(lines: dict[LineKey, Amount]) -> list[tuple[LineKey, Amount]]:
    order = {kind: i for i, kind in enumerate(TOKEN_KINDS)}
    tiers = {"standard": 0, "priority": 1, "flex": 2, "batch": 3}
    return sorted(
        lines.items(),
        key=lambda kv: (kv[0][0], kv[0][1], tiers.get(kv[0][4], 9), kv[0][5], kv[0][6],
                        kv[0][3] or 0, order[kv[0][2]]),
    )  # fmt: skip


def _build_lines(
    statement: Statement,
    usage: dict[LineKey, Amount],
    adjustments: list[tuple[date, dict[LineKey, Amount]]],
) -> list[StatementLine]:
    currency = statement.currency
    lines: list[StatementLine] = []

    def add(kind: str, period: date, key: LineKey | None, amount: Amount, text: str) -> None:
        feature, model, token_kind, price_id, tier, above, off_peak = key or (
            "",
            "",
            "",
            None,
            "standard",
            0,
            False,
        )
        lines.append(
            StatementLine(
                statement=statement,
                position=len(lines) + 1,
                kind=kind,
                period=period,
                feature=feature,
                model=model,
                token_kind=token_kind,
                batch=tier == "batch",
                service_tier=tier,
                above_tokens=above,
                off_peak=off_peak,
                price_id=price_id,
                quantity=amount.quantity if key else None,
                unit_price=amount.unit_price,
                amount=round_money(amount.amount, currency),
                # The ledger's scale; only a markup on batch prices can reach past it.
                amount_exact=amount.amount.quantize(EXACT_PLACES, ROUND_HALF_UP, EXACT),
                description=text,
            )
        )

    def rounding(kind: str, period: date, group: list[StatementLine], text: str) -> None:
        """Rounding each line to the cent must not move the group's total off the exact
        total rounded: the difference is a line of its own (exactly 0 before rounding)."""
        with localcontext(EXACT):
            exact = sum((ln.amount_exact for ln in group), ZERO)
            residual = round_money(exact, currency) - sum((ln.amount for ln in group), ZERO)
        if residual:
            add(kind, period, None, Amount(0, ZERO, None), text)
            lines[-1].amount = residual

    for key, amount in _sorted(usage):
        add(StatementLine.Kind.USAGE, statement.period, key, amount, _describe(key))
    text = "Rounding: the usage lines, each rounded to the cent, to their exact total"
    rounding(StatementLine.Kind.USAGE, statement.period, list(lines), text)
    for month, diff in adjustments:
        first = len(lines)
        for key, amount in _sorted(diff):
            add(StatementLine.Kind.ADJUSTMENT, month, key, amount,
                _describe(key, adjustment_for=month))  # fmt: skip
        rounding(StatementLine.Kind.ADJUSTMENT, month, lines[first:],
                 f"Rounding of the adjustments for {month:%Y-%m} to their exact total")  # fmt: skip
    with localcontext(EXACT):
        billable = sum((line.amount_exact for line in lines), ZERO)
        if statement.markup_percent:
            markup = billable * statement.markup_percent / 100
            add(StatementLine.Kind.MARKUP, statement.period, None, Amount(0, markup, None),
                f"Chargeback markup {decimal_string(statement.markup_percent)}%")  # fmt: skip
    return lines


Adjustments = list[tuple[date, dict[LineKey, Amount]]]


def _adjustments(statements: list[Statement], now: datetime) -> dict[int, Adjustments]:
    """Per statement: differences between the ledger and what final statements billed,
    for each final month the backfill window can still reach. Only a tenant's earliest
    open statement carries them."""
    tenant_ids = [s.tenant_id for s in statements]
    earliest: dict[int, date] = {}
    for tenant_id, period in (
        Statement.objects.filter(tenant_id__in=tenant_ids, status=Statement.Status.DRAFT)
        .values_list("tenant_id", "period")
    ):  # fmt: skip
        if tenant_id not in earliest or period < earliest[tenant_id]:
            earliest[tenant_id] = period
    carriers = {s.tenant_id: s for s in statements if earliest.get(s.tenant_id) == s.period}
    horizon = month_start(now - timedelta(days=settings.FINOPS_BACKFILL_DAYS + 31)).date()
    finals: dict[date, list[int]] = {}
    for tenant_id, period in Statement.objects.filter(
        tenant_id__in=list(carriers), status=Statement.Status.FINALIZED, period__gte=horizon
    ).values_list("tenant_id", "period"):
        if period < carriers[tenant_id].period:
            finals.setdefault(period, []).append(tenant_id)
    result: dict[int, Adjustments] = {}
    for period in sorted(finals):
        tenants = finals[period]
        start = month_start(period)
        in_ledger = ledger_lines(start=start, end=period_end(MONTH, start), tenant_ids=tenants)
        billed = _billed(tenants, period)
        for tenant_id in tenants:
            now_lines, then_lines = in_ledger.get(tenant_id, {}), billed.get(tenant_id, {})
            diff: dict[LineKey, Amount] = {}
            with localcontext(EXACT):
                for key in now_lines.keys() | then_lines.keys():
                    now_ = now_lines.get(key, Amount(0, ZERO, None))
                    then = then_lines.get(key, Amount(0, ZERO, None))
                    if now_.quantity != then.quantity or now_.amount != then.amount:
                        diff[key] = Amount(
                            now_.quantity - then.quantity,
                            now_.amount - then.amount,
                            now_.unit_price if now_.unit_price is not None else then.unit_price,
                        )
            if diff:
                result.setdefault(carriers[tenant_id].id, []).append((period, diff))
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
                # Only where a line has them: hashes of earlier statements stay valid.
                *([ln.service_tier, ln.above_tokens, ln.off_peak] if _has_rate_class(ln) else []),
            ]
            for ln in lines
        ],  # fmt: skip
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _has_rate_class(line: StatementLine) -> bool:
    return (
        line.service_tier not in ("standard", "batch") or bool(line.above_tokens) or (line.off_peak)
    )


_STATEMENT_FIELDS = [
    "currency", "markup_percent", "subtotal", "adjustments", "markup", "total", "total_exact",
    "drafted_at", "status", "finalized_at", "content_hash",
]  # fmt: skip
_CHUNK = 250


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
    if previous not in months and tenant_has_events(tenant=tenant, start=previous, end=current):
        months.insert(0, previous)  # usage posted for a month before the signup date
    return [m.date() for m in months]


def _ensure_statements(now: datetime) -> int:
    """Create the missing statements of active tenants for this month and the last."""
    tenants = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE))
    current = period_start(MONTH, now)
    periods = {current.date(), period_start(MONTH, current - timedelta(days=1)).date()}
    existing = set(Statement.objects.filter(period__in=periods).values_list("tenant_id", "period"))
    missing = [
        Statement(tenant=tenant, period=period, number=statement_number(tenant, period),
                  currency=tenant.billing_currency, markup_percent=tenant.markup_percent)
        for tenant in tenants
        for period in _months_open(tenant, now)
        if (tenant.id, period) not in existing
    ]  # fmt: skip
    # A concurrent run may create some of them first: those are skipped.
    Statement.objects.bulk_create(missing, batch_size=1000, ignore_conflicts=True)
    return len(missing)


def _rebuild_period(period: date, now: datetime, *, finalize: bool, only: int | None = None) -> int:
    """Rebuild every draft of one month from the ledger (and freeze them if `finalize`).

    The month's usage is read once for all its tenants. A draft finalized meanwhile by
    another run is left alone; an event that commits after the read reaches a final
    statement as an adjustment on the next one, so nothing is lost or counted twice.
    """
    drafts = Statement.objects.filter(status=Statement.Status.DRAFT, period=period)
    if only is not None:
        drafts = drafts.filter(id=only)
    ids = list(drafts.order_by("id").values_list("id", flat=True))
    if not ids:
        return 0
    start = month_start(period)
    tenant_ids = list(Statement.objects.filter(id__in=ids).values_list("tenant_id", flat=True))
    usage = ledger_lines(start=start, end=period_end(MONTH, start), tenant_ids=tenant_ids)
    done = 0
    for i in range(0, len(ids), _CHUNK):
        with transaction.atomic():
            statements = list(
                Statement.objects.select_for_update(of=("self",))
                .select_related("tenant")
                .filter(id__in=ids[i : i + _CHUNK], status=Statement.Status.DRAFT)
                .order_by("id")
            )
            adjustments = _adjustments(statements, now)
            lines: list[StatementLine] = []
            for statement in statements:
                tenant = statement.tenant
                statement.currency = tenant.billing_currency
                statement.markup_percent = tenant.markup_percent
                built = _build_lines(statement, usage.get(statement.tenant_id, {}),
                                     adjustments.get(statement.id, []))  # fmt: skip
                _totals(statement, built)
                statement.drafted_at = now
                if finalize:
                    statement.status = Statement.Status.FINALIZED
                    statement.finalized_at = now
                    statement.content_hash = content_hash(statement, built)
                lines += built
            StatementLine.objects.filter(statement__in=statements).delete()
            _write(statements, lines)
            done += len(statements)
    return done


_LINE_FIELDS = [f for f in StatementLine._meta.concrete_fields if not f.primary_key]


def _write(statements: list[Statement], lines: list[StatementLine]) -> None:
    """Store rebuilt statements and their lines. On PostgreSQL the lines are COPied and
    the statements updated from a staging table: a month of 1,000 tenants is some
    100,000 lines, which the ORM's multi-row statements spend most of their time building."""
    if connection.vendor != "postgresql":
        StatementLine.objects.bulk_create(lines, batch_size=500)
        Statement.objects.bulk_update(statements, _STATEMENT_FIELDS, batch_size=100)
        return
    table = StatementLine._meta.db_table
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _LINE_FIELDS)
    statement_fields = [Statement._meta.get_field(name) for name in _STATEMENT_FIELDS]
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for line in lines:
                copy.write_row([f.get_db_prep_save(getattr(line, f.attname), connection)
                                for f in _LINE_FIELDS])  # fmt: skip
        names = ", ".join(f.column for f in statement_fields)
        cursor.execute(
            "CREATE TEMP TABLE statement_stage ON COMMIT DROP AS "
            f"SELECT id, {names} FROM {Statement._meta.db_table} WITH NO DATA"
        )
        with cursor.copy(f"COPY statement_stage (id, {names}) FROM STDIN") as copy:
            for statement in statements:
                copy.write_row([statement.id] + [
                    f.get_db_prep_save(getattr(statement, f.attname), connection)
                    for f in statement_fields])  # fmt: skip
        assignments = ", ".join(f"{f.column} = s.{f.column}" for f in statement_fields)
        cursor.execute(
            f"UPDATE {Statement._meta.db_table} t SET {assignments} "
            "FROM statement_stage s WHERE t.id = s.id"
        )
        cursor.execute("DROP TABLE statement_stage")


def statements_draft(*, now: datetime) -> DraftResult:
    """Create this month's (and last month's) statement for every active tenant and
    rebuild every open draft from the ledger."""
    result = DraftResult(created=_ensure_statements(now))
    periods = Statement.objects.filter(status=Statement.Status.DRAFT).values_list(
        "period", flat=True
    )
    for period in sorted(set(periods)):
        result.drafted += _rebuild_period(period, now, finalize=False)
    return result


def _due(period: date, now: datetime) -> bool:
    grace = timedelta(days=settings.FINOPS_STATEMENT_GRACE_DAYS)
    return period_end(MONTH, month_start(period)) + grace <= now


def statements_finalize(*, now: datetime) -> DraftResult:
    """Finalize every draft whose month ended more than the grace period ago, oldest
    month first (its late usage then lands on the statement that stays open)."""
    result = DraftResult()
    periods = Statement.objects.filter(status=Statement.Status.DRAFT).values_list(
        "period", flat=True
    )
    for period in sorted(p for p in set(periods) if _due(p, now)):
        result.finalized += _rebuild_period(period, now, finalize=True)
    return result


def statement_finalize(*, statement: Statement, now: datetime) -> bool:
    """Rebuild one draft a last time and freeze it. False if it was final already."""
    return _rebuild_period(statement.period, now, finalize=True, only=statement.id) == 1


def statement_verify(statement: Statement) -> bool:
    """Whether a final statement still hashes to what it was finalized with."""
    lines = list(statement.lines.order_by("position"))
    return statement.content_hash == content_hash(statement, lines)


def reprice_open_periods(*, models: set[str], now: datetime) -> RepricingResult:
    """After a price correction: price again the events of `models` in every month whose
    statement is not final (per tenant: from the month after its last final statement).
    Final statements never change; their months are left alone."""
    open_from: dict[int, datetime] = {}
    for tenant_id, period in Statement.objects.filter(
        status=Statement.Status.FINALIZED
    ).values_list("tenant_id", "period"):
        after = period_end(MONTH, month_start(period))
        if tenant_id not in open_from or after > open_from[tenant_id]:
            open_from[tenant_id] = after
    return events_reprice(models=models, open_from=open_from,
                          default_open_from=BEGINNING_OF_TIME, now=now)  # fmt: skip


def vendor_bill_create(
    *, provider: str, period: date, amount: Decimal, currency: str = "USD", reference: str = ""
) -> VendorBill:
    """Record what a provider invoiced for a month (reconciliation sums a provider's
    bills of a month and currency)."""
    bill = VendorBill(provider=provider, period=period, amount=amount, currency=currency,
                      reference=reference)  # fmt: skip
    bill.full_clean()
    bill.save()
    return bill
