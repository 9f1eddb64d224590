from __future__ import annotations

from django.apps import AppConfig


class FinopsConfig(AppConfig):
    name = "finops"
    verbose_name = "Tenants, keys and prices"
    default_auto_field = "django.db.models.BigAutoField"
