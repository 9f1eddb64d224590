from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.models import ApiKey, Tenant
from finops.services import apikey_create


class Command(BaseCommand):
    help = (
        "Create an API key and print it alone on the last line. Without --tenant it is an "
        "operator key, which may act for every tenant. The key is shown only this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug; omit for an operator key.")
        parser.add_argument(
            "--scopes", default="ingest,read", help="Comma-separated, among ingest, read, manage"
        )
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options["tenant"]:
            try:
                tenant = Tenant.objects.get(slug=options["tenant"])
            except Tenant.DoesNotExist:
                raise CommandError(f"No tenant '{options['tenant']}'.") from None
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        bad = sorted(set(scopes) - set(ApiKey.Scope.values))
        if bad or not scopes:
            raise CommandError(
                f"--scopes: unknown {', '.join(bad) or '(none given)'}; "
                f"choose among {', '.join(ApiKey.Scope.values)}."
            )
        key, plaintext = apikey_create(tenant=tenant, scopes=scopes, name=options["name"])
        owner = f"tenant {tenant.slug}" if tenant else "operator (all tenants)"
        self.stdout.write(f"API key {key.prefix} for {owner}, scopes {','.join(key.scopes)}:")
        self.stdout.write(plaintext)
