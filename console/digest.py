"""The weekly digest: last week's cost and its change, the top feature's share, the
projected month-end, the metrics in warning and one recommended action with its
estimated monthly saving; written once per week and sent once to the webhook and by
email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from billing.alerts import DeliveryResult, alert_channels, deliveries_send, webhook_post
from billing.selectors import change_groups, feature_costs, feature_model_tokens
from finops.models import Tenant
from finops.money import money_format, round_money
from finops.periods import DAY, period_start
from finops.pricing import PriceBook, RateClass, TokenVector, token_cost
from ingestion.models import Feature

from .metrics import WARNING, Window, metrics_compute
from .models import Digest, DigestDelivery
from .projection import projection_accuracy, projection_compute
from .savings import savings_compute

DAYS_PER_MONTH = Decimal(30)


def _cents(value: Decimal) -> str:
    """A figure as the digest's data keeps it: a decimal string to the cent."""
    return str(round_money(value, "USD"))


def week_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The last complete week, Monday 00:00 to Monday 00:00 UTC."""
    today = period_start(DAY, now)
    this_monday = today - timedelta(days=today.weekday())
    return this_monday - timedelta(days=7), this_monday


@dataclass(slots=True)
class Action:
    text: str
    monthly_saving: Decimal


def _fallback_actions(start: datetime, end: datetime, now: datetime) -> list[Action]:
    """Route a feature's calls to its fallback model: last week's tokens priced with both
    models' price rows, the difference scaled to a month."""
    features = {
        f.key: f
        for f in Feature.objects.exclude(fallback_model="").exclude(status=Feature.Status.SUNSET)
    }
    if not features:
        return []
    rows = feature_model_tokens(start=start, end=end, features=features)
    rows = [r for r in rows if r["model"] != features[r["feature"]].fallback_model]
    book = PriceBook.for_models(
        {r["model"] for r in rows} | {features[r["feature"]].fallback_model for r in rows}
    )
    actions = []
    for row in rows:
        feature = features[row["feature"]]
        now_price = book.find(model=row["model"], provider="", at=now)
        fallback_price = book.find(model=feature.fallback_model, provider="", at=now)
        if now_price is None or fallback_price is None:
            continue
        tokens = TokenVector(
            input=row["input_tokens"], output=row["output_tokens"],
            cached_input=row["cached_input_tokens"], cache_write=row["cache_write_tokens"],
            cache_write_1h=row["cache_write_1h_tokens"], reasoning=row["reasoning_tokens"],
        )  # fmt: skip
        # A week's sum of calls: priced at the base rates, not as one long prompt.
        base = RateClass()
        weekly = token_cost(tokens=tokens, price=now_price, rate_class=base) - token_cost(
            tokens=tokens, price=fallback_price, rate_class=base
        )
        if weekly <= 0:
            continue
        calls = f"{feature.task_type} calls" if feature.task_type else "calls"
        actions.append(
            Action(
                f"Route {feature.key}'s {calls} from {row['model']} to its fallback model "
                f"{feature.fallback_model}",
                weekly * DAYS_PER_MONTH / 7,
            )
        )
    return actions


def _recommended(start: datetime, end: datetime, now: datetime) -> list[Action]:
    """The actions ranked by measured monthly saving: routing to fallback models, and the
    savings ledger's recommendations over the last four weeks (each clears its
    break-even: a cache only where the expected hit rate pays for the cache)."""
    savings = savings_compute(start=end - timedelta(days=28), end=end)
    actions = _fallback_actions(start, end, now) + [
        Action(r.text, r.monthly_saving) for r in savings.recommendations
    ]
    return sorted(actions, key=lambda a: (-a.monthly_saving, a.text))


@dataclass(slots=True)
class Cause:
    """The (tenant, feature, model) whose cost moved most the way the week's total moved,
    its share of that change, split into volume (its change of calls at last week's cost
    per call) and unit cost (the rest: this week's calls at the change of cost per call)."""

    tenant: str
    feature: str
    model: str
    change: Decimal
    share: Decimal | None
    volume: Decimal
    unit_cost: Decimal


def _root_cause(start: datetime, end: datetime) -> Cause | None:
    now = change_groups(start=start, end=end)
    before = change_groups(start=start - timedelta(days=7), end=start)
    total = sum((Decimal(c) for _, c in now.values()), Decimal(0)) - sum(
        (Decimal(c) for _, c in before.values()), Decimal(0)
    )

    def delta(key: tuple) -> Decimal:
        return Decimal(now.get(key, (0, 0))[1]) - Decimal(before.get(key, (0, 0))[1])

    # The group that moved most the way the total moved (a rise: the largest rise).
    sign = 1 if total >= 0 else -1
    keys = sorted(set(now) | set(before), key=lambda k: (-sign * delta(k), str(k)))
    if not keys or sign * delta(keys[0]) <= 0:
        return None
    key = keys[0]
    calls1, calls0 = now.get(key, (0, 0))[0], before.get(key, (0, 0))[0]
    cost0 = before.get(key, (0, 0))[1]
    per_call0 = Decimal(cost0) / calls0 if calls0 else Decimal(0)
    volume = (calls1 - calls0) * per_call0
    slug = Tenant.objects.filter(id=key[0]).values_list("slug", flat=True).first() or ""
    share = delta(key) / total if total else None
    return Cause(slug, key[1], key[2], delta(key), share, volume, delta(key) - volume)


def _cause_json(cause: Cause | None) -> dict[str, Any] | None:
    if cause is None:
        return None
    return {"tenant": cause.tenant, "feature": cause.feature or None, "model": cause.model,
            "change": _cents(cause.change),
            "share_percent": None if cause.share is None
            else str((cause.share * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)),
            "volume": _cents(cause.volume), "unit_cost": _cents(cause.unit_cost)}  # fmt: skip


def _projection_check(now: datetime) -> dict[str, Any] | None:
    """The last ended month's projection made on its first day, against its actual."""
    for month in projection_accuracy(now=now, months=1):
        kept = next((s for s in month.snapshots if s.months_ahead == 0), None)
        if kept is not None:
            return _check_json(month.month, month.actual, kept)
    return None


def _check_json(month: date, actual: Decimal, kept: Any) -> dict[str, Any]:
    return {"month": f"{month:%Y-%m}", "projected": _cents(kept.projected),
            "actual": _cents(actual),
            "error_percent": None if kept.error is None
            else str((kept.error * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)),
            "flagged": kept.flagged}  # fmt: skip


def digest_figures(*, now: datetime) -> dict[str, Any]:
    """Everything the digest says, as data (decimal strings)."""
    start, end = week_bounds(now)
    this_week = feature_costs(start=start, end=end)
    last_week = feature_costs(start=start - timedelta(days=7), end=start)
    total = sum(this_week.values(), Decimal(0))
    before = sum(last_week.values(), Decimal(0))
    change = (total - before) * 100 / before if before else None
    top = max(this_week.items(), key=lambda item: (item[1], item[0]), default=None)
    top_share = top_before = None
    if top is not None and total:
        top_share = top[1] * 100 / total
        top_before = last_week.get(top[0], Decimal(0)) * 100 / before if before else None
    projection = projection_compute(now=now)
    warnings = [m for m in metrics_compute(Window(start, end)) if m.status == WARNING]
    actions = _recommended(start, end, now)

    def pct(value: Decimal | None) -> str | None:
        return None if value is None else str(value.quantize(Decimal("0.1"), ROUND_HALF_UP))

    return {
        "week_start": start.date().isoformat(),
        "week_end": end.date().isoformat(),
        "total": _cents(total),
        "previous_total": _cents(before),
        "change_percent": pct(change),
        "top_feature": top[0] if top else None,
        "top_feature_share_percent": pct(top_share),
        "top_feature_previous_share_percent": pct(top_before),
        "projected_month_end": _cents(projection.projected),
        "projection_month": f"{projection.month:%Y-%m}",
        "warnings": [{"name": m.name, "message": m.message} for m in warnings],
        "root_cause": _cause_json(_root_cause(start, end)),
        "projection_check": _projection_check(now),
        "recommendations": [
            {"text": a.text, "monthly_saving": _cents(a.monthly_saving)} for a in actions[:5]
        ],
        "action": (
            {
                "text": actions[0].text,
                "monthly_saving": _cents(actions[0].monthly_saving),
            }
            if actions
            else None
        ),  # fmt: skip
    }


def digest_text(figures: dict[str, Any]) -> str:
    """The digest as people read it."""
    lines = [f"Weekly FinOps review, week of {figures['week_start']}"]
    total = money_format(Decimal(figures["total"]), "USD")
    if figures["change_percent"] is None:
        lines.append(f"Total cost: {total} (no spend the week before).")
    else:
        change = Decimal(figures["change_percent"])
        lines.append(
            f"Total cost: {total}, {change:+.1f}% week over week "
            f"(was {money_format(Decimal(figures['previous_total']), 'USD')})."
        )
    if figures["top_feature"] is not None and figures["top_feature_share_percent"]:
        share = Decimal(figures["top_feature_share_percent"])
        text = f"Top feature: {figures['top_feature']} at {share:.0f}% of cost"
        if figures["top_feature_previous_share_percent"] is not None:
            points = (share - Decimal(figures["top_feature_previous_share_percent"])).quantize(
                Decimal(1), ROUND_HALF_UP
            )
            text += (
                f" ({points:+} points on the week before)" if points else " (as the week before)"
            )
        lines.append(text + ".")
    lines += _cause_lines(figures.get("root_cause"))
    lines.append(
        f"Projected month-end ({figures['projection_month']}): "
        f"{money_format(Decimal(figures['projected_month_end']), 'USD')}."
    )
    lines += _check_lines(figures.get("projection_check"))
    if figures["warnings"]:
        lines.append("Metrics in warning:")
        lines += [f"- {w['message']}" for w in figures["warnings"]]
    else:
        lines.append("No metric in warning.")
    recommendations = figures.get("recommendations") or []
    if recommendations:
        lines.append("Recommended actions, by measured saving:")
        lines += [
            f"- {r['text']}: {money_format(Decimal(r['monthly_saving']), 'USD')} per month"
            for r in recommendations[:3]
        ]
    else:
        lines.append("Recommended action: none this week.")
    return "\n".join(lines)


def _usd(text: str) -> str:
    return money_format(Decimal(text), "USD") or text


def _cause_lines(cause: dict[str, Any] | None) -> list[str]:
    if not cause:
        return []
    share = f", {cause['share_percent']}% of the change" if cause["share_percent"] else ""
    sign = "+" if Decimal(cause["change"]) >= 0 else ""
    return [
        f"Root cause: {cause['feature'] or '(no feature)'} on {cause['model']} for "
        f"{cause['tenant']}, {sign}{_usd(cause['change'])}{share} (volume "
        f"{_usd(cause['volume'])}, cost per call {_usd(cause['unit_cost'])})."
    ]


def _check_lines(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return []
    error = check["error_percent"]
    verdict = "no actual cost" if error is None else f"{Decimal(error):+.1f}%"
    if check["flagged"]:
        verdict += ", outside tolerance"
    return [
        f"Projection check: {check['month']} was projected at {_usd(check['projected'])} on "
        f"its first day, actual {_usd(check['actual'])} ({verdict})."
    ]


def digest_write(*, now: datetime) -> Digest | None:
    """Write last week's digest unless it exists (the unique week decides, so two
    schedulers write it once), with one delivery per configured channel."""
    start, _ = week_bounds(now)
    if Digest.objects.filter(week_start=start.date()).exists():
        return None
    figures = digest_figures(now=now)
    try:
        with transaction.atomic():
            digest = Digest.objects.create(week_start=start.date(), created_at=now,
                                           text=digest_text(figures), figures=figures)  # fmt: skip
            DigestDelivery.objects.bulk_create(
                [DigestDelivery(digest=digest, channel=c) for c in alert_channels()]
            )
    except IntegrityError:
        return None
    return digest


def _send(delivery: DigestDelivery) -> None:
    digest = delivery.digest
    if delivery.channel == DigestDelivery.Channel.WEBHOOK:
        webhook_post({"text": digest.text, "digest": digest.figures},
                     {"X-Finops-Digest-Id": str(digest.id)})  # fmt: skip
    else:
        send_mail(f"[finops] {digest}", digest.text, None, settings.FINOPS_ALERT_EMAILS)


def digests_deliver(*, now: datetime | None = None, limit: int = 50) -> DeliveryResult:
    return deliveries_send(DigestDelivery.objects.select_related("digest"), _send, now=now,
                           limit=limit)  # fmt: skip
