"""Shapes of the management API for features."""

from __future__ import annotations

from rest_framework import serializers

from finops.serializers import StrictQuery

from .models import Feature


class FeatureListSerializer(serializers.ModelSerializer):
    kill_switch_active = serializers.SerializerMethodField()

    class Meta:
        model = Feature
        fields = ["key", "name", "status", "task_type", "default_model", "fallback_model",
                  "kill_switch_enabled", "kill_switch_active", "auto_created",
                  "created_at"]  # fmt: skip
        read_only_fields = fields

    def get_kill_switch_active(self, feature: Feature) -> bool:
        return feature.kill_switch_active_since is not None


class FeatureQuerySerializer(StrictQuery):
    status = serializers.ChoiceField(choices=Feature.Status.choices, required=False)
    task_type = serializers.ChoiceField(choices=Feature.TaskType.choices, required=False)
