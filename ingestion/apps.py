from __future__ import annotations

from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Usage events"
    default_auto_field = "django.db.models.BigAutoField"
