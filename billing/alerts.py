"""Alerts: raised once per rule, scope, period and threshold; each notice (raised, and
resolved for a condition that clears) sent once to each target its routes name."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
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

from .models import SEVERITY_RANK, Alert, AlertDelivery, AlertMute, AlertRoute, Severity

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def alert_channels() -> list[str]:
    """The default staff channels set in the settings (also the digest's)."""
    channels = []
    if settings.FINOPS_ALERT_WEBHOOK_URL:
        channels.append(AlertDelivery.Channel.WEBHOOK)
    if settings.FINOPS_ALERT_EMAILS:
        channels.append(AlertDelivery.Channel.EMAIL)
    return channels


def _default_targets() -> list[tuple[str, str]]:
    targets = []
    if settings.FINOPS_ALERT_WEBHOOK_URL:
        targets.append((AlertDelivery.Channel.WEBHOOK, settings.FINOPS_ALERT_WEBHOOK_URL))
    if settings.FINOPS_ALERT_EMAILS:
        targets.append((AlertDelivery.Channel.EMAIL, ",".join(settings.FINOPS_ALERT_EMAILS)))
    return targets


def _target(channel: str, target: str) -> str:
    """One spelling per target, so that two routes to it send once."""
    if channel == AlertDelivery.Channel.EMAIL:
        return ",".join(a.strip() for a in target.split(",") if a.strip())
    return target.strip()


def _route_takes(route: AlertRoute, alert: Alert) -> bool:
    return SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[route.min_severity]


def alert_deliveries_plan(alert: Alert) -> list[AlertDelivery]:
    """The deliveries of a newly raised alert, one per distinct channel and target:

    - none when staff muted the alert's kind for its tenant (`AlertMute`);
    - each staff route (no tenant) of the alert's kind, or of every kind, whose minimum
      severity the alert reaches; when no staff route names the kind (or every kind), the
      default settings `FINOPS_ALERT_WEBHOOK_URL` and `FINOPS_ALERT_EMAILS`;
    - each route of the alert's own tenant the same way: never another tenant's.
    """
    kinds = Q(kind=alert.kind) | Q(kind="")
    if alert.tenant_id and AlertMute.objects.filter(kinds, tenant_id=alert.tenant_id).exists():
        return []
    whose = Q(tenant__isnull=True)
    if alert.tenant_id:
        whose |= Q(tenant_id=alert.tenant_id)
    routes = list(AlertRoute.objects.filter(kinds).filter(whose).order_by("id"))
    planned: list[tuple[str, str, AlertRoute | None]] = []
    if not any(r.tenant_id is None for r in routes):
        planned += [(channel, target, None) for channel, target in _default_targets()]
    planned += [(r.channel, r.target, r) for r in routes if _route_takes(r, alert)]
    deliveries: dict[tuple[str, str], AlertDelivery] = {}
    for channel, spelt, route in planned:
        target = _target(channel, spelt)
        # Two routes to one target send it once: the first route is recorded.
        deliveries.setdefault(
            (channel, target),
            AlertDelivery(alert=alert, channel=channel, target=target, route=route),
        )
    return list(deliveries.values())


def alert_raise(
    *,
    kind: str,
    dedup_key: str,
    message: str,
    now: datetime,
    severity: str = Severity.WARNING,
    tenant: Tenant | None = None,
    feature: str = "",
    model: str = "",
    prompt_template: str = "",
    budget_id: int | None = None,
    period_start: datetime | None = None,
    threshold: int | None = None,
    value: Decimal | None = None,
) -> Alert | None:
    """Store the alert and its deliveries (`alert_deliveries_plan`), unless `dedup_key`
    was raised before.

    The unique key decides, so two schedulers or overlapping runs raise it once.
    """
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=kind, severity=severity, dedup_key=dedup_key, message=message,
                created_at=now, tenant=tenant, feature=feature, model=model,
                prompt_template=prompt_template, budget_id=budget_id,
                period_start=period_start, threshold=threshold, value=value,
            )  # fmt: skip
            AlertDelivery.objects.bulk_create(alert_deliveries_plan(alert))
    except IntegrityError:
        return None
    _deliver_soon()
    return alert


def alert_resolve(*, alert: Alert, now: datetime) -> bool:
    """Mark an open alert resolved and send a resolved notice, once, to the targets its
    raised notice went to (none for a muted alert). False when it was resolved already.

    The conditional update decides: of two runs at once, the second finds the alert
    resolved (on PostgreSQL it waits for the first one's row lock, then reads it again),
    and the unique delivery key keeps each notice to one row whatever happens.
    """
    with transaction.atomic():
        changed = Alert.objects.filter(id=alert.id, resolved_at__isnull=True).update(
            resolved_at=now
        )
        if not changed:
            return False
        alert.resolved_at = now
        raised = AlertDelivery.objects.filter(alert=alert, notice=AlertDelivery.Notice.TRIGGERED)
        notices = [
            AlertDelivery(alert=alert, notice=AlertDelivery.Notice.RESOLVED, channel=d.channel,
                          target=d.target, route_id=d.route_id)
            for d in raised.order_by("id")
        ]  # fmt: skip
        try:
            with transaction.atomic():
                AlertDelivery.objects.bulk_create(notices)
        except IntegrityError:
            pass  # its resolved notices exist: they are sent once
    _deliver_soon()
    return True


def alerts_resolve(*, alerts: Iterable[Alert], now: datetime) -> int:
    """Resolve each open alert of `alerts`; how many this call resolved."""
    return sum(alert_resolve(alert=alert, now=now) for alert in alerts)


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
        "severity": alert.severity,
        "tenant": alert.tenant.slug if alert.tenant_id else None,
        "feature": alert.feature or None,
        "model": alert.model or None,
        "prompt_template": alert.prompt_template or None,
        "period_start": alert.period_start.isoformat() if alert.period_start else None,
        "threshold": alert.threshold,
        "value": decimal_string(alert.value),
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def _notice_text(alert: Alert, notice: str) -> str:
    if notice == AlertDelivery.Notice.RESOLVED:
        return f"Resolved: {alert.message}"
    return alert.message


def alert_payload(alert: Alert, notice: str = AlertDelivery.Notice.TRIGGERED) -> dict[str, Any]:
    """Slack-compatible (`text`), with the notice (`alert.triggered` or `alert.resolved`)
    and the alert's fields for other receivers."""
    return {
        "text": _notice_text(alert, notice),
        "event": f"alert.{notice}",
        "alert": alert_json(alert),
    }


def webhook_post(payload: dict[str, Any], headers: dict[str, str], url: str = "") -> None:
    """POST JSON to a staff-set webhook (default: `FINOPS_ALERT_WEBHOOK_URL`); anything but
    a 2xx is an error."""
    request = urllib.request.Request(
        url or settings.FINOPS_ALERT_WEBHOOK_URL,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - staff-set URL
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(
                request.full_url, response.status, "webhook refused", response.headers, None
            )


def _send_webhook(delivery: AlertDelivery) -> None:
    alert = delivery.alert
    headers = {"X-Finops-Alert-Id": str(alert.id), "X-Finops-Alert-Event": delivery.notice}
    webhook_post(alert_payload(alert, delivery.notice), headers, delivery.target)


def _send_email(delivery: AlertDelivery) -> None:
    alert = delivery.alert
    recipients = [a.strip() for a in delivery.target.split(",") if a.strip()]
    text = _notice_text(alert, delivery.notice)
    subject = f"[finops] {alert.get_kind_display()} ({alert.severity}): {text[:120]}"
    send_mail(subject, text, None, recipients or settings.FINOPS_ALERT_EMAILS)


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
    """Send the alerts' due notices, each once (see `deliveries_send`)."""
    deliveries = AlertDelivery.objects.select_related("alert", "alert__tenant")
    return deliveries_send(deliveries, lambda d: _SENDERS[d.channel](d), now=now, limit=limit)
