"""Alerts: raised once per rule, scope, period and threshold; sent once per channel."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from finops.models import Tenant
from finops.money import decimal_string

from .models import Alert, AlertDelivery

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def alert_channels() -> list[str]:
    channels = []
    if settings.FINOPS_ALERT_WEBHOOK_URL:
        channels.append(AlertDelivery.Channel.WEBHOOK)
    if settings.FINOPS_ALERT_EMAILS:
        channels.append(AlertDelivery.Channel.EMAIL)
    return channels


def alert_raise(
    *,
    kind: str,
    dedup_key: str,
    message: str,
    now: datetime,
    tenant: Tenant | None = None,
    feature: str = "",
    model: str = "",
    prompt_template: str = "",
    budget_id: int | None = None,
    period_start: datetime | None = None,
    threshold: int | None = None,
    value: Decimal | None = None,
) -> Alert | None:
    """Store the alert and its deliveries, unless `dedup_key` was raised before.

    The unique key decides, so two schedulers or overlapping runs raise it once.
    """
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=kind, dedup_key=dedup_key, message=message, created_at=now, tenant=tenant,
                feature=feature, model=model, prompt_template=prompt_template,
                budget_id=budget_id, period_start=period_start, threshold=threshold, value=value,
            )  # fmt: skip
            AlertDelivery.objects.bulk_create(
                [AlertDelivery(alert=alert, channel=c) for c in alert_channels()]
            )
    except IntegrityError:
        return None
    _deliver_soon()
    return alert


def _deliver_soon() -> None:
    from .tasks import alerts_deliver_task

    def enqueue() -> None:
        try:
            alerts_deliver_task.delay()
        except Exception:  # noqa: BLE001 - the broker may be down; the schedule catches up
            logger.warning("could not enqueue alert delivery; the schedule will send it")

    transaction.on_commit(enqueue)


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API lists it and as webhooks receive it."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "tenant": alert.tenant.slug if alert.tenant_id else None,
        "feature": alert.feature or None,
        "model": alert.model or None,
        "prompt_template": alert.prompt_template or None,
        "period_start": alert.period_start.isoformat() if alert.period_start else None,
        "threshold": alert.threshold,
        "value": decimal_string(alert.value),
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
    }


def alert_payload(alert: Alert) -> dict[str, Any]:
    """Slack-compatible (`text`), with the alert's fields for other receivers."""
    return {"text": alert.message, "alert": alert_json(alert)}


def webhook_post(payload: dict[str, Any], headers: dict[str, str]) -> None:
    """POST JSON to the staff-set webhook; anything but a 2xx is an error."""
    request = urllib.request.Request(
        settings.FINOPS_ALERT_WEBHOOK_URL,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - staff-set URL
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(
                request.full_url, response.status, "webhook refused", response.headers, None
            )


def _send_webhook(alert: Alert) -> None:
    webhook_post(alert_payload(alert), {"X-Finops-Alert-Id": str(alert.id)})


def _send_email(alert: Alert) -> None:
    subject = f"[finops] {alert.get_kind_display()}: {alert.message[:120]}"
    send_mail(subject, alert.message, None, settings.FINOPS_ALERT_EMAILS)


_SENDERS = {
    AlertDelivery.Channel.WEBHOOK: _send_webhook,
    AlertDelivery.Channel.EMAIL: _send_email,
}


@dataclass(slots=True)
class DeliveryResult:
    sent: int = 0
    failed: int = 0


LEASE = timedelta(minutes=5)


def _claim(deliveries: QuerySet, now: datetime) -> Any:
    """Take one due delivery in a short transaction: no lock or transaction stays open
    while it is sent. A claim whose worker died is taken again after `LEASE`."""
    with transaction.atomic():
        delivery = (
            deliveries.select_for_update(skip_locked=True, of=("self",))
            .filter(status__in=["pending", "sending"])
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("id")
            .first()
        )
        if delivery is None:
            return None
        delivery.status = "sending"
        delivery.attempts += 1
        delivery.next_attempt_at = now + LEASE
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
    return delivery


def deliveries_send(
    deliveries: QuerySet, send: Callable[[Any], None], *, now: datetime | None, limit: int
) -> DeliveryResult:
    """Send due deliveries (rows with channel, status, attempts, next_attempt_at,
    last_error, sent_at), each claimed first, sent outside any transaction, then marked.

    Two workers never send the same delivery (the claim is taken under `SKIP LOCKED`). A
    worker killed between sending and marking leaves the claim, which is sent again once
    its lease ends: receivers get an id header to drop such a repeat.
    """
    result = DeliveryResult()
    for _ in range(limit):
        current = now or timezone.now()
        delivery = _claim(deliveries, current)
        if delivery is None:
            break
        try:
            send(delivery)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = "failed"
                result.failed += 1
                logger.error("%s not delivered by %s", delivery, delivery.channel)
            else:
                delivery.status = "pending"
                delivery.next_attempt_at = current + timedelta(minutes=2**delivery.attempts)
        else:
            delivery.status = "sent"
            delivery.sent_at = current
            delivery.next_attempt_at = None
            result.sent += 1
        delivery.save(update_fields=["status", "last_error", "next_attempt_at", "sent_at"])
    return result


def alerts_deliver(*, now: datetime | None = None, limit: int = 500) -> DeliveryResult:
    """Send the alerts' due deliveries, each once (see `deliveries_send`)."""
    deliveries = AlertDelivery.objects.select_related("alert", "alert__tenant")
    return deliveries_send(deliveries, lambda d: _SENDERS[d.channel](d.alert), now=now, limit=limit)
