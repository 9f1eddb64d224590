"""Retirement reviews: the least-used features, prompt templates and models of the last
90 days, put before staff; a retired feature walks deprecated -> throttled -> sunset on
the dates staff set, and the guard enforces each step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from billing.selectors import daily_usage_by, tenant_ids_using
from finops.models import Tenant
from finops.periods import DAY, period_start
from ingestion.models import Feature

from .models import RetirementReview

WINDOW_DAYS = 90
BOTTOM_SHARE = Decimal("0.05")
KEEP_QUIET_DAYS = 90

_FIELD = {
    RetirementReview.Kind.FEATURE: "feature",
    RetirementReview.Kind.PROMPT_TEMPLATE: "prompt_template",
    RetirementReview.Kind.MODEL: "model",
}


@dataclass(slots=True)
class ReviewResult:
    opened: int = 0
    candidates: int = 0


def reviews_open(*, now: datetime) -> ReviewResult:
    """Open a review for each of the bottom 5 percent (by calls) of features, prompt
    templates and models used in the last 90 days, unless one is open or decided (a kept
    subject rests for 90 days)."""
    result = ReviewResult()
    today = period_start(DAY, now)
    since = today - timedelta(days=WINDOW_DAYS)
    for kind, field in _FIELD.items():
        usage = daily_usage_by(field=field, since=since, until=today + timedelta(days=1))
        if not usage:
            continue
        count = math.ceil(len(usage) * BOTTOM_SHARE)
        ranked = sorted(usage.values(), key=lambda r: (r["calls_sum"], r["cost_sum"], r[field]))
        bottom = ranked[:count]
        result.candidates += len(bottom)
        recent = daily_usage_by(
            field=field, since=today - timedelta(days=29), until=today + timedelta(days=1)
        )
        previous = daily_usage_by(
            field=field, since=today - timedelta(days=59), until=today - timedelta(days=29)
        )
        for row in bottom:
            subject = row[field]
            if _resting(kind, subject, now):
                continue
            tenant_ids = tenant_ids_using(field=field, value=subject, since=since)
            RetirementReview.objects.create(
                kind=kind,
                subject=subject,
                opened_at=now,
                window_days=WINDOW_DAYS,
                calls=row["calls_sum"],
                cost=row["cost_sum"] or Decimal(0),
                calls_last_30_days=recent.get(subject, {}).get("calls_sum") or 0,
                calls_previous_30_days=previous.get(subject, {}).get("calls_sum") or 0,
                last_seen=row["last"],
                tenants=sorted(
                    Tenant.objects.filter(id__in=tenant_ids).values_list("slug", flat=True)
                ),  # fmt: skip
            )
            result.opened += 1
    return result


def _resting(kind: str, subject: str, now: datetime) -> bool:
    for review in RetirementReview.objects.filter(kind=kind, subject=subject):
        if review.decision == RetirementReview.Decision.OPEN:
            return True
        if review.decision in (RetirementReview.Decision.RETIRE,
                               RetirementReview.Decision.CONSOLIDATE):  # fmt: skip
            return True
        if review.decided_at and review.decided_at > now - timedelta(days=KEEP_QUIET_DAYS):
            return True
    return False


def review_decide(
    *,
    review: RetirementReview,
    decision: str,
    user: Any,
    now: datetime,
    consolidate_into: Feature | None = None,
    deprecate_on: Any = None,
    throttle_on: Any = None,
    sunset_on: Any = None,
    note: str = "",
) -> RetirementReview:
    """Record who decided what and when; a retired or consolidated feature starts its
    lifecycle."""
    review.decision = decision
    review.consolidate_into = consolidate_into
    review.deprecate_on, review.throttle_on, review.sunset_on = deprecate_on, throttle_on, sunset_on
    review.note = note
    review.decided_by = user
    review.decided_at = now
    with transaction.atomic():
        review.save()
        lifecycles_advance(now=now)
    return review


def lifecycles_advance(*, now: datetime) -> int:
    """Move each retired or consolidated feature to the lifecycle step its dates reached
    (never back). Returns how many features changed."""
    order = [Feature.Status.ACTIVE, Feature.Status.DEPRECATED, Feature.Status.THROTTLED,
             Feature.Status.SUNSET]  # fmt: skip
    today = now.date()
    changed = 0
    reviews = RetirementReview.objects.filter(
        kind=RetirementReview.Kind.FEATURE,
        decision__in=[RetirementReview.Decision.RETIRE, RetirementReview.Decision.CONSOLIDATE],
    )
    for review in reviews:
        target = Feature.Status.ACTIVE
        for status, day in ((Feature.Status.DEPRECATED, review.deprecate_on),
                            (Feature.Status.THROTTLED, review.throttle_on),
                            (Feature.Status.SUNSET, review.sunset_on)):  # fmt: skip
            if day is not None and day <= today:
                target = status
        if review.decision == RetirementReview.Decision.CONSOLIDATE and target == order[0]:
            target = Feature.Status.DEPRECATED  # its traffic moves to another feature
        feature = Feature.objects.filter(key=review.subject).first()
        if feature is None:
            continue
        if review.sunset_on and feature.sunset_on != review.sunset_on:
            # What the guard's notice to a deprecated feature's callers names.
            feature.sunset_on = review.sunset_on
            feature.save(update_fields=["sunset_on"])
        if order.index(target) <= order.index(feature.status):
            continue
        feature.status = target
        feature.save(update_fields=["status"])
        changed += 1
    return changed


def review_decision_errors(
    *,
    review: RetirementReview,
    decision: str,
    consolidate_into: Feature | None = None,
    deprecate_on: Any = None,
    throttle_on: Any = None,
    sunset_on: Any = None,
) -> dict[str, list[str]]:
    """Why a decision cannot be recorded, by field (empty: it can); the rules the admin's
    decision form applies."""
    errors: dict[str, list[str]] = {}
    if decision == RetirementReview.Decision.CONSOLIDATE and consolidate_into is None:
        errors["consolidate_into"] = ["Name the feature it is consolidated into."]
    if (
        decision == RetirementReview.Decision.RETIRE
        and review.kind == RetirementReview.Kind.FEATURE
    ):
        dates = [deprecate_on, throttle_on, sunset_on]
        if not all(dates):
            errors["sunset_on"] = ["Retiring a feature needs its three dates."]
        elif not dates[0] <= dates[1] <= dates[2]:
            errors["throttle_on"] = ["The dates go deprecate <= throttle <= sunset."]
    return errors
