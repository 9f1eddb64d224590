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
