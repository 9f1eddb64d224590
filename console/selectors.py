from __future__ import annotations

from django.db.models import Count

from .models import DigestDelivery


def digest_delivery_counts() -> dict[str, int]:
    """Digest deliveries not sent, per status: pending (waiting, or waiting to retry),
    sending (claimed by a worker) and failed (given up)."""
    unsent = [DigestDelivery.Status.PENDING.value, DigestDelivery.Status.SENDING.value,
              DigestDelivery.Status.FAILED.value]  # fmt: skip
    rows = DigestDelivery.objects.filter(status__in=unsent).values_list("status")
    counts = dict.fromkeys(unsent, 0)
    counts.update(rows.annotate(n=Count("id")).order_by())
    return counts
