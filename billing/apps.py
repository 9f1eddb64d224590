from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from ingestion.signals import spend_recorded

        from .guard.increments import spend_recorded_receiver

        if settings.FINOPS_GUARD_REDIS_URL:
            # Without Redis there are no hot counters to keep current.
            spend_recorded.connect(spend_recorded_receiver, dispatch_uid="guard-counters")
