"""Feature policies: lifecycle, default and fallback model, kill switch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ingestion.models import Feature

from .killswitches import kill_switch_clear, kill_switch_trip
from .models import KillSwitch

POLICY_FIELDS = ("name", "status", "task_type", "default_model", "fallback_model",
                 "kill_switch_enabled", "workload", "allowed_regions")  # fmt: skip


@transaction.atomic
def feature_policy_update(
    *,
    feature: Feature,
    kill_switch_all: bool | None = None,
    set_by: str = "staff",
    now: datetime | None = None,
    **fields: Any,
) -> Feature:
    """Change the feature's policy fields; `kill_switch_all` sets (true) or clears
    (false) its kill switch for every tenant, recorded as set by `set_by`."""
    now = now or timezone.now()
    changed = [name for name in POLICY_FIELDS if name in fields]
    for name in changed:
        setattr(feature, name, fields[name])
    if changed:
        feature.save(update_fields=changed)
    if fields.get("kill_switch_enabled") is False:
        # Turning automatic kill switches off also lifts those the spike detection tripped.
        for switch in KillSwitch.objects.filter(feature=feature, automatic=True,
                                                cleared_at__isnull=True):  # fmt: skip
            kill_switch_clear(switch=switch, now=now)
    if kill_switch_all:
        kill_switch_trip(feature=feature, tenant=None, automatic=False, now=now,
                         reason=f"Set by {set_by}.")  # fmt: skip
    elif kill_switch_all is False:
        for switch in KillSwitch.objects.filter(feature=feature, tenant__isnull=True,
                                                cleared_at__isnull=True):  # fmt: skip
            kill_switch_clear(switch=switch, now=now)
    return feature
