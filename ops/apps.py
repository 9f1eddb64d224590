from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Orchestration: the periodic jobs run in process, the demo data. The top layer: it
    may import every other app, and none imports it."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"
