from __future__ import annotations

from django.apps import AppConfig


class StatementsConfig(AppConfig):
    name = "statements"
    verbose_name = "Chargeback statements"
    default_auto_field = "django.db.models.BigAutoField"
