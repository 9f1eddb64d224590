from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finops.management.commands.import_prices import parse_instant
from finops.models import Tenant
from finops.services import tenant_create


def parse_amount(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{option}: '{value}' is not a decimal amount.") from None
    if not amount.is_finite() or amount < 0:
        raise CommandError(f"{option}: must be a finite amount >= 0.")
    return amount


class Command(BaseCommand):
    help = "Create a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name")
        parser.add_argument("--tier", choices=Tenant.Tier.values, default=Tenant.Tier.FREE)
        parser.add_argument("--monthly-cap", help="Contractual monthly cap, e.g. 500.00")
        parser.add_argument("--ltv", help="Predicted lifetime value, e.g. 20.00")
        parser.add_argument("--signup", help="Signup instant, ISO 8601 (default: now)")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"Tenant '{slug}' already exists.")
        try:
            tenant = tenant_create(
                slug=slug,
                name=options["name"] or slug,
                tier=options["tier"],
                monthly_cap=parse_amount(options["monthly_cap"], "--monthly-cap"),
                predicted_ltv=parse_amount(options["ltv"], "--ltv"),
                signup_at=parse_instant(options["signup"], "--signup")
                if options["signup"]
                else None,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.tier}).")
