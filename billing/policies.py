"""Feature policies: lifecycle, default and fallback model, kill switch."""

from __future__ import annotations

from typing import Any

from ingestion.models import Feature

POLICY_FIELDS = ("name", "status", "task_type", "default_model", "fallback_model",
                 "kill_switch_enabled")  # fmt: skip


def feature_policy_update(*, feature: Feature, **fields: Any) -> Feature:
    changed = [name for name in POLICY_FIELDS if name in fields]
    for name in changed:
        setattr(feature, name, fields[name])
    if fields.get("kill_switch_enabled") is False:
        # Turning the switch off also lifts it.
        feature.kill_switch_active_since = None
        changed.append("kill_switch_active_since")
    if changed:
        # Only the fields asked for: a kill switch the spike job trips meanwhile stays.
        feature.save(update_fields=changed)
    return feature
