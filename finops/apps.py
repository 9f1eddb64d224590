from __future__ import annotations

from django.apps import AppConfig


class FinopsConfig(AppConfig):
    name = "finops"
    verbose_name = "Tenants, keys and prices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from .fields import register_sqlite_functions

        # Database plumbing, not business logic: exact decimal sums on SQLite.
        connection_created.connect(
            register_sqlite_functions, dispatch_uid="finops-sqlite-functions"
        )

        from django.db.models.signals import post_delete, post_save

        from .authentication import key_cache_clear
        from .models import ApiKey, Tenant

        # A key or tenant changed in this process: forget the keys this worker holds.
        for model in (ApiKey, Tenant):
            post_save.connect(key_cache_clear, sender=model, dispatch_uid=f"keys-{model.__name__}")
            post_delete.connect(key_cache_clear, sender=model,
                                dispatch_uid=f"keys-del-{model.__name__}")  # fmt: skip
