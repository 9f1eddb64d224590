"""Kill switches: trip, clear, and the active one the guard reads for a tenant's call.

A switch with a tenant covers that tenant's calls of the feature (tripped by the spike
detection on the tenant's own spend, or by staff); one without covers every tenant's
calls of the feature and is only ever set by staff (admin, `PATCH /api/v1/features/{key}`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from finops.models import Tenant
from ingestion.models import Feature

from .models import KillSwitch

_cache: dict[Any, tuple[float, Any]] = {}


def kill_switch_cache_clear() -> None:
    _cache.clear()


def _active_by_tenant(feature_id: int) -> dict[int | None, KillSwitch]:
    """The feature's active switches by tenant id (None: the feature-wide one), kept in
    memory for FINOPS_GUARD_POLICY_TTL seconds as the guard's other policies are."""
    ttl = settings.FINOPS_GUARD_POLICY_TTL
    now = time.monotonic()
    key = ("kill_switches", feature_id)
    hit = _cache.get(key)
    if ttl > 0 and hit is not None and hit[0] > now:
        return hit[1]
    switches = KillSwitch.objects.filter(feature_id=feature_id, cleared_at__isnull=True)
    value = {s.tenant_id: s for s in switches.select_related("feature", "tenant")}
    if ttl > 0:
        _cache[key] = (now + ttl, value)
    return value


def active_kill_switch(tenant_id: int, feature_id: int) -> KillSwitch | None:
    """The switch that covers the tenant's calls of the feature: its own active one,
    else the feature-wide one, else None. A switch the spike detection tripped counts
    only while the feature's kill switch is enabled (the next run clears it); one staff
    set counts until staff clear it."""
    switches = _active_by_tenant(feature_id)
    own = switches.get(tenant_id)
    if own is not None and (not own.automatic or own.feature.kill_switch_enabled):
        return own
    return switches.get(None)


def kill_switch_reason(switch: KillSwitch) -> str:
    """The guard's reason for a call the switch downgrades."""
    whose = f"for {switch.tenant.slug}" if switch.tenant_id else "for every tenant"
    at = f"{switch.tripped_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    how = f"tripped at {at} on a spend spike" if switch.automatic else f"was set by staff at {at}"
    reason = switch.reason.strip().rstrip(".")
    return f"The kill switch of {switch.feature.key} {whose} {how}" + (
        f": {reason}." if reason else "."
    )


def kill_switch_trip(
    *,
    feature: Feature,
    tenant: Tenant | None,
    reason: str,
    now: datetime,
    automatic: bool = True,
) -> tuple[KillSwitch, bool]:
    """The active switch of the tenant (None: every tenant) on the feature, tripped now
    unless one is active already; and whether this call tripped it.

    PostgreSQL's unique index (`kill_switch_one_active`) decides between two runs; SQLite
    cannot hold that index (its NULL tenants are distinct), but it runs one writer at a
    time and takes the write lock at BEGIN, so the look-up and the insert cannot
    interleave there.
    """
    if tenant is None and automatic:
        raise ValueError("Only staff set a kill switch for every tenant.")
    active = KillSwitch.objects.filter(feature=feature, tenant=tenant, cleared_at__isnull=True)
    try:
        with transaction.atomic():
            switch = active.first()
            if switch is not None:
                return switch, False
            switch = KillSwitch.objects.create(
                feature=feature, tenant=tenant, reason=reason, automatic=automatic, tripped_at=now
            )
    except IntegrityError:
        return active.get(), False
    kill_switch_cache_clear()
    return switch, True


def kill_switch_clear(*, switch: KillSwitch, now: datetime) -> bool:
    """Clear the switch; False when it was cleared already (by staff or another run)."""
    cleared = KillSwitch.objects.filter(id=switch.id, cleared_at__isnull=True).update(
        cleared_at=now
    )
    if not cleared:
        return False
    switch.cleared_at = now
    kill_switch_cache_clear()
    return True


def kill_switch_list(*, feature: Feature) -> list[KillSwitch]:
    """The feature's active switches, newest first."""
    return list(
        KillSwitch.objects.filter(feature=feature, cleared_at__isnull=True).select_related("tenant")
    )
