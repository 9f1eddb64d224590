"""The weekly digest: last week's cost and its change, the top feature's share, the
projected month-end, the metrics in warning and one recommended action with its
estimated monthly saving; written once per week and sent once to the webhook and by
email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from billing.alerts import DeliveryResult, alert_channels, deliveries_send, webhook_post
from billing.selectors import feature_costs, feature_model_tokens, feature_repeats
from finops.money import money_format, round_money
from finops.periods import DAY, period_start
from finops.pricing import PriceBook, RateClass, TokenVector, token_cost
from ingestion.models import Feature

from .metrics import WARNING, Window, metrics_compute
from .models import Digest, DigestDelivery
from .projection import projection_compute

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


def _cache_actions(start: datetime, end: datetime) -> list[Action]:
    """Serve repeated prompts from a cache: the cost of last week's repeats, per month."""
    rows = feature_repeats(start=start, end=end)
    actions = []
    for row in rows:
        if not row["repeats"] or not row["calls_sum"]:
            continue
        weekly = row["cost_sum"] * row["repeats"] / row["calls_sum"]
        share = Decimal(row["repeats"]) * 100 / row["calls_sum"]
        actions.append(
            Action(
                f"Cache {row['feature']}'s responses by prompt hash: {share:.0f}% of its calls "
                "repeat a prompt sent the same day",
                weekly * DAYS_PER_MONTH / 7,
            )
        )
    return actions


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
    actions = sorted(
        _fallback_actions(start, end, now) + _cache_actions(start, end),
        key=lambda a: -a.monthly_saving,
    )

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
    lines.append(
        f"Projected month-end ({figures['projection_month']}): "
        f"{money_format(Decimal(figures['projected_month_end']), 'USD')}."
    )
    if figures["warnings"]:
        lines.append("Metrics in warning:")
        lines += [f"- {w['message']}" for w in figures["warnings"]]
    else:
        lines.append("No metric in warning.")
    action = figures["action"]
    if action:
        lines.append(
            f"Recommended action: {action['text']}; estimated saving "
            f"{money_format(Decimal(action['monthly_saving']), 'USD')} per month."
        )
    else:
        lines.append("Recommended action: none this week.")
    return "\n".join(lines)


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
